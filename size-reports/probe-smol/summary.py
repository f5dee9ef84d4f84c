#!/usr/bin/env python3
"""Markdown tables for size-reports/smol.md from bench.sh's raw files.

    summary.py DIR      (DIR holds files.tsv, runs.tsv, lat.tsv; see bench.sh)

Medians (p50) and p90 by nearest rank; every variant also as a ratio to `threads` measured in
the same interleaved run.
"""
import csv, sys
from collections import defaultdict

D = sys.argv[1]
BASE = "threads"


def pct(v, p):
    v = sorted(v)
    return v[int(round((len(v) - 1) * p))] if v else None


def rows(name):
    with open(f"{D}/{name}") as f:
        return list(csv.DictReader((l for l in f if not l.startswith("#")), delimiter="\t"))


def r(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


files = rows("files.tsv")
labels = [f["label"] for f in files if f["arch"] == "x86_64"]
size = {(f["label"], f["arch"]): int(f["bytes"]) for f in files}
# variants measured with an environment switch (same binary): label/switch
extra = []
for name in ("runs.tsv", "lat.tsv"):
    with open(f"{D}/{name}") as f:
        for l in f:
            lab = l.split("\t", 1)[0]
            if "/" in lab and lab not in extra and not lab.startswith("#"):
                extra.append(lab)
labels += sorted(extra)
for l in extra:
    for a in ("x86_64", "arm64"):
        if (l.split("/")[0], a) in size:
            size[(l, a)] = size[(l.split("/")[0], a)]

runs = rows("runs.tsv")
col = defaultdict(list)
for x in runs:
    for k in ("reg_us", "next_us", "rss_kb", "threads", "minflt", "cpu_us_reg"):
        v = int(x[k])
        if v >= 0:
            col[(x["label"], x["mode"], k)].append(v)
nruns = {l: len(col[(l, "cold", "reg_us")]) for l in labels + ["floor"]}

lat = defaultdict(list)
for x in rows("lat.tsv"):
    lat[(x["label"], x["mode"])].append(int(x["ns"]) / 1000)
after = defaultdict(list)
with open(f"{D}/lat.tsv") as f:
    for l in f:
        if l.startswith("# ") and l.count("\t") == 3:
            lab, _, th, rss = l[2:].split("\t")
            after[lab].append((int(th), int(rss)))

print("| | " + " | ".join(labels) + " |")
print("|---|" + "---:|" * len(labels))


def line(name, vals, fmt=lambda v: f"{v}", base=True):
    b = vals[labels.index(BASE)]
    cells = []
    for l, v in zip(labels, vals):
        if v is None:
            cells.append("–")
        elif l == BASE or not base:
            cells.append(fmt(v))
        else:
            cells.append(f"{fmt(v)} ({r(v, b)})")
    print(f"| {name} | " + " | ".join(cells) + " |")


def sp(n):
    return f"{n:,}".replace(",", " ")


line("static x86_64, bytes", [size.get((l, "x86_64")) for l in labels], sp)
line("static arm64, bytes", [size.get((l, "arm64")) for l in labels], sp)
for mode in ("cold", "warm"):
    for k, what in (("reg_us", "exec→register"), ("next_us", "exec→first next")):
        for p in (0.5, 0.9):
            line(f"{mode} {what}, µs p{int(p * 100)}", [pct(col[(l, mode, k)], p) for l in labels])
line("CPU (all threads) exec→register, µs p50 (warm)", [pct(col[(l, "warm", "cpu_us_reg")], 0.5) for l in labels])
line("RSS at first next, KiB p50 (warm)", [pct(col[(l, "warm", "rss_kb")], 0.5) for l in labels])
line("minor faults at first next p50 (warm)", [pct(col[(l, "warm", "minflt")], 0.5) for l in labels])
line("threads at first next", [pct(col[(l, "warm", "threads")], 0.5) for l in labels], base=False)
line("threads after the POSTs (connections closed)", [pct([t for t, _ in after[l]], 0.5) for l in labels], base=False)
line("RSS after the POSTs, KiB p50", [pct([m for _, m in after[l]], 0.5) for l in labels])
for mode, what in (("ka", "kept-alive connection"), ("new", "new connection each")):
    for p in (0.5, 0.9, 0.99):
        line(f"100-record POST→200, {what}, µs p{int(p * 100)}", [pct(lat[(l, mode)], p) for l in labels],
             lambda v: f"{v:.1f}")
fl = {k: pct(col[("floor", k[0], k[1])], 0.5) for k in (("cold", "reg_us"), ("warm", "reg_us"), ("warm", "next_us"))}
print()
print(f"Samples: {nruns.get(BASE)} cold + {nruns.get(BASE)} warm start-ups per variant; "
      + ", ".join(f"{l}: {len(lat[(l, 'ka')])} kept-alive + {len(lat[(l, 'new')])} new-connection POSTs" for l in labels if lat[(l, 'ka')])
      + f". Reference in the same run, the C floor (register, then next): cold register {fl[('cold', 'reg_us')]} µs, "
      f"warm register {fl[('warm', 'reg_us')]} µs, warm first next {fl[('warm', 'next_us')]} µs (p50).")
