#!/usr/bin/env python3
"""Where a kernel's warps wait: reads Nsight Compute's SASS source page as CSV (`ncu -i REP --page source
--csv --print-source sass`) and prints the instructions with the most warp-state samples, then the samples
by opcode. With LINES (an `nvdisasm -g` listing of the same kernel from a -lineinfo build of the same
source, e.g. `cuobjdump -xelf all x.o; nvdisasm -g -sf x.sm_90a.cubin`, cut to the kernel's .text
section), also the samples by source line with their three largest stall reasons (instruction offsets
from the kernel's first address; the opcodes are checked to agree).
Usage: sass_stalls.py FILE.csv [top N (default 40)] [LINES]"""
import csv
import re
import sys
from collections import Counter

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
with open(path, newline="") as f:
    lines = f.read().splitlines()
# (ncu may print lines before the CSV header: start at the first line naming the Source column)
start = next((i for i, ln in enumerate(lines) if '"Source"' in ln or ln.startswith("Source") or '"Address"' in ln), 0)
rows = list(csv.DictReader(lines[start:]))
if not rows:
    sys.exit(f"{path}: no rows")
cols = list(rows[0].keys())
samp = next((c for c in cols if "Sampling (All" in c), None) or next((c for c in cols if "Sampl" in c), None)
src = next((c for c in cols if c.strip() == "Source"), cols[1] if len(cols) > 1 else cols[0])
addr = next((c for c in cols if "Address" in c), cols[0])
if samp is None:
    sys.exit(f"{path}: no sampling column among {cols[:12]}")


def num(x):
    try:
        return float(str(x).replace(",", ""))
    except ValueError:
        return 0.0


def opcode(text):
    """An instruction's opcode without its predicate and modifiers."""
    w = text.split()
    return (w[1] if w and w[0].startswith("@") and len(w) > 1 else w[0] if w else "?").split(".")[0]


tot = sum(num(r[samp]) for r in rows) or 1.0
print(f"{len(rows)} instructions, {tot:.0f} warp samples ({samp})")
idx = {id(r): i for i, r in enumerate(rows)}
for r in sorted(rows, key=lambda r: -num(r[samp]))[:top]:
    print(f"{idx[id(r)]:6d} {r[addr]:>8} {100 * num(r[samp]) / tot:5.1f}%  {r[src][:90]}")
ops = Counter()
for r in rows:
    ops[opcode(r[src])] += num(r[samp])
print("by opcode:", ", ".join(f"{k} {100 * v / tot:.1f}%" for k, v in ops.most_common(15)))

if len(sys.argv) > 3:
    loc, ins, cur = {}, {}, None
    for ln in open(sys.argv[3]):
        m = re.search(r'//## File "([^"]+)", line (\d+)', ln)
        if m:
            cur = f"{m.group(1).split('/')[-1]}:{m.group(2)}"
            continue
        m = re.search(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", ln)
        if m:
            loc[int(m.group(1), 16)] = cur
            ins[int(m.group(1), 16)] = m.group(2)
    base = min(int(r[addr], 16) for r in rows)


    bad = sum(opcode(r[src]) != opcode(ins.get(int(r[addr], 16) - base, "")) for r in rows)
    if bad:
        print(f"{sys.argv[3]}: {bad} of {len(rows)} opcodes differ: not the same code, no source lines")
        sys.exit(0)
    reasons = [c for c in cols if c.startswith("stall_") and "(" not in c]
    by_line, why = Counter(), {}
    for r in rows:
        k = loc.get(int(r[addr], 16) - base)
        by_line[k] += num(r[samp])
        w = why.setdefault(k, Counter())
        for c in reasons:
            w[c[6:]] += num(r[c])
    print("by source line:")
    for k, v in by_line.most_common(top):
        print(f"  {100 * v / tot:5.1f}%  {k}  " + ", ".join(f"{c} {int(n)}" for c, n in why[k].most_common(3)))
