#!/usr/bin/env python3
"""Development build of only what the decay_attn CUDA tests need (core, backend, decay_attn, the
test harness), from build/h-cuda2's compile_commands.json: on a shared 2-core machine the whole
library takes most of an hour. Links build/h-cuda2/mytests/da_cuda_tests. Not the release build."""
import glob, json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

root = "/work/main"
b = f"{root}/build/h-cuda2"
cc = {e["file"]: e for e in json.load(open(f"{b}/compile_commands.json"))}
srcs = sorted(set(glob.glob(f"{root}/src/core/*.cpp") + glob.glob(f"{root}/src/backend/**/*.cpp", recursive=True)
               + glob.glob(f"{root}/src/backend/**/*.cu", recursive=True)
               + glob.glob(f"{root}/src/ops/decay_attn/**/*.cpp", recursive=True)
               + glob.glob(f"{root}/src/ops/decay_attn/**/*.cu", recursive=True)))
tests = [f"{root}/tests/test_main.cpp", f"{root}/tests/support/op_harness.cpp", f"{root}/tests/ops/decay_attn_cuda_test.cpp"]
# CHUNK_EXTRA_TESTS="decay_attn_test.cpp ..." (names under tests/ops) adds the CPU decay_attn tests,
# linked into build/h-cuda2/mytests/<CHUNK_OUT> (default da_cuda_tests).
tests += [f"{root}/tests/ops/{t}" for t in os.environ.get("CHUNK_EXTRA_TESTS", "").split()]
exe = os.environ.get("CHUNK_OUT", "da_cuda_tests")
tmpl = cc[f"{root}/tests/ops/decay_attn_test.cpp"]
objs = []
jobs = []
deps_extra = glob.glob(f"{root}/src/ops/decay_attn/**/*.h", recursive=True) + glob.glob(f"{root}/src/ops/decay_attn/**/*.cuh", recursive=True) + [f"{root}/tests/ops/decay_attn_test_util.h"]
newest_hdr = max(os.path.getmtime(p) for p in deps_extra)
for s in srcs + tests:
    if s in cc:
        e = cc[s]
        cmd = e["command"]
        out = cmd.split(" -o ")[1].split()[0]
    else:
        e = tmpl
        out = f"mytests/{os.path.basename(s)}.o"
        cmd = e["command"].replace(e["file"], s)
        cmd = cmd.replace(cmd.split(" -o ")[1].split()[0], out)
    out_abs = os.path.join(b, out)
    objs.append(out_abs)
    os.makedirs(os.path.dirname(out_abs), exist_ok=True)
    if not os.path.exists(out_abs) or os.path.getmtime(out_abs) < max(os.path.getmtime(s), newest_hdr if "decay_attn" in s or "tests/" in s else 0):
        jobs.append((s, cmd))

def run(j):
    s, cmd = j
    r = subprocess.run(cmd, shell=True, cwd=b, capture_output=True, text=True)
    print(("ok   " if r.returncode == 0 else "FAIL ") + s, flush=True)
    if r.returncode:
        print(r.stdout[-3000:], r.stderr[-3000:])
    return r.returncode

with ThreadPoolExecutor(2) as ex:
    rcs = list(ex.map(run, jobs))
if any(rcs):
    sys.exit(1)
os.makedirs(f"{b}/mytests", exist_ok=True)
link = (f"c++ -O2 -fopenmp {' '.join(objs)} -o {b}/mytests/{exe} -Wl,-rpath,'$ORIGIN' "
        "/usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libfmt.so.9.1.0 "
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so -lpthread "
        "/usr/local/cuda/lib64/libcudart.so /usr/local/cuda/lib64/libcublas.so /usr/local/cuda/lib64/libcublasLt.so")
r = subprocess.run(link, shell=True, cwd=b, capture_output=True, text=True)
print("link rc", r.returncode, r.stderr[-4000:])
sys.exit(r.returncode)
