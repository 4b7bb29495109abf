#!/usr/bin/env python3
"""Where a kernel's warps wait: reads Nsight Compute's SASS source page as CSV (`ncu -i REP --page source
--csv --print-source sass`) and prints the instructions with the most warp-state samples, then the samples
by opcode. Usage: sass_stalls.py FILE.csv [top N (default 40)]"""
import csv
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


tot = sum(num(r[samp]) for r in rows) or 1.0
print(f"{len(rows)} instructions, {tot:.0f} warp samples ({samp})")
idx = {id(r): i for i, r in enumerate(rows)}
for r in sorted(rows, key=lambda r: -num(r[samp]))[:top]:
    print(f"{idx[id(r)]:6d} {r[addr]:>8} {100 * num(r[samp]) / tot:5.1f}%  {r[src][:90]}")
ops = Counter()
for r in rows:
    ops[r[src].split()[0].split(".")[0] if r[src].split() else "?"] += num(r[samp])
print("by opcode:", ", ".join(f"{k} {100 * v / tot:.1f}%" for k, v in ops.most_common(15)))
