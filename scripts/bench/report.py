#!/usr/bin/env python3
"""Tables for scripts/bench.sh from benchrun's raw rows (and subscribe-race's).

    report.py RUNS_TSV FILES_TSV [RACE_TSV] [--builds L1,L2,..] [--modes L1,L2,..]

RUNS_TSV: benchrun output. FILES_TSV: label, path, bytes, relocs. Prints Markdown: the
start-up table (one row per label in --builds, floor first), the subscribe-mode table (labels
in --modes), the resource table and the race verdict. Every figure also as a ratio to the
floor's same figure (p50 to p50, p90 to p90).
"""
import csv
import sys


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    # nearest rank, as benchrun/exectime (index round((n-1)p))
    return v[int(round((len(v) - 1) * p))]


def read_tsv(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt_ms(us):
    return "n/a" if us is None else f"{us / 1000:.2f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "—"
    return f"{a / b:.2f}×"


def main():
    args = sys.argv[1:]
    opts = {}
    pos = []
    while args:
        a = args.pop(0)
        if a.startswith("--"):
            opts[a[2:]] = args.pop(0)
        else:
            pos.append(a)
    runs = read_tsv(pos[0])
    files = {r["label"]: r for r in read_tsv(pos[1])}
    race = read_tsv(pos[2]) if len(pos) > 2 and pos[2] else []
    labels = []
    for r in runs:
        if r["label"] not in labels:
            labels.append(r["label"])
    builds = opts.get("builds", ",".join(labels)).split(",")
    modes = [m for m in opts.get("modes", "").split(",") if m]

    def vals(label, mode, col):
        out = []
        for r in runs:
            if r["label"] == label and r["mode"] == mode:
                v = int(r[col])
                if v >= 0:
                    out.append(v)
        return out

    def stat(label, mode, col, p):
        return pct(vals(label, mode, col), p)

    n = {l: len([r for r in runs if r["label"] == l and r["mode"] == "cold"]) for l in labels}
    floor = "floor"

    def timing_table(rows, title):
        print(f"### {title}\n")
        print("| binary | cold exec→register p50 / p90 ms | warm exec→register p50 / p90 ms "
              "| cold exec→first next p50 / p90 ms | warm exec→first next p50 / p90 ms |")
        print("|---|---|---|---|---|")
        for l in rows:
            cells = []
            for mode, col in (("cold", "reg_us"), ("warm", "reg_us"), ("cold", "next_us"), ("warm", "next_us")):
                a50, a90 = stat(l, mode, col, 0.5), stat(l, mode, col, 0.9)
                f50, f90 = stat(floor, mode, col, 0.5), stat(floor, mode, col, 0.9)
                cells.append(f"{fmt_ms(a50)} ({ratio(a50, f50)}) / {fmt_ms(a90)} ({ratio(a90, f90)})")
            print(f"| {l} | " + " | ".join(cells) + " |")
        print()

    timing_table(builds, "Start-up (×floor in brackets)")
    if modes:
        timing_table(modes, "Subscribe modes (SLIMCAP_SUBSCRIBE)")
        print("| binary | cold exec→subscribe p50 ms | warm exec→subscribe p50 ms | subscribe after first next (cold+warm runs) |")
        print("|---|---|---|---|")
        for l in modes:
            late = 0
            tot = 0
            for r in runs:
                if r["label"] == l:
                    tot += 1
                    s, nx = int(r["sub_us"]), int(r["next_us"])
                    if s < 0 or (nx >= 0 and s > nx):
                        late += 1
            print(f"| {l} | {fmt_ms(stat(l, 'cold', 'sub_us', 0.5))} | {fmt_ms(stat(l, 'warm', 'sub_us', 0.5))} | {late} / {tot} |")
        print()

    print("### Size and resources (medians; ×floor in brackets)\n")
    print("| binary | bytes | relocations | cold major faults | minor faults (warm) | RSS at first next KiB "
          "| anon RSS KiB | threads at next | CPU to register ms (cold / warm) | instructions to register |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for l in [x for x in labels if x in builds or x == floor] if floor not in builds else builds:
        f = files.get(l, {})
        fb = files.get(floor, {})
        size = int(f["bytes"]) if f.get("bytes") else None
        rel = int(f["relocs"]) if f.get("relocs") else None
        fsize = int(fb["bytes"]) if fb.get("bytes") else None
        frel = int(fb["relocs"]) if fb.get("relocs") else None
        cells = [
            f"{size:,} ({ratio(size, fsize)})" if size is not None else "n/a",
            f"{rel} ({ratio(rel, frel)})" if rel is not None else "n/a",
        ]
        for mode, col in (("cold", "majflt"), ("warm", "minflt"), ("warm", "rss_kb"), ("warm", "anon_kb"), ("warm", "threads")):
            a, b = stat(l, mode, col, 0.5), stat(floor, mode, col, 0.5)
            cells.append("n/a" if a is None else f"{a} ({ratio(a, b)})")
        c50, w50 = stat(l, "cold", "cpu_us_reg", 0.5), stat(l, "warm", "cpu_us_reg", 0.5)
        fc, fw = stat(floor, "cold", "cpu_us_reg", 0.5), stat(floor, "warm", "cpu_us_reg", 0.5)
        cells.append(f"{fmt_ms(c50)} ({ratio(c50, fc)}) / {fmt_ms(w50)} ({ratio(w50, fw)})")
        ins, fins = stat(l, "warm", "instr_reg", 0.5), stat(floor, "warm", "instr_reg", 0.5)
        cells.append("n/a (no PMU)" if ins is None else f"{ins:,} ({ratio(ins, fins)})")
        print(f"| {l} | " + " | ".join(cells) + " |")
    print()
    runs_per = sorted(set(n.values()))
    print(f"Runs: {'/'.join(map(str, runs_per))} cold + as many warm per binary, interleaved. "
          "Floor: static C (musl), register then next on one connection.\n")

    if race:
        print("### Subscribe race on the emulator (window closes at the first next once the runtime is ready)\n")
        print("| binary | mode | runtime init ms | runs | subscribe 200 | 403 SubscriptionClosed | no telemetry delivered "
              "| INIT duration p50 / p90 ms | exec→first next p50 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in race:
            print(f"| {r['label']} | {r['mode']} | {r['init_ms']} | {r['runs']} | {r['sub_200']} | {r['sub_403']} "
                  f"| {r['no_telemetry']} | {float(r['init_p50']):.2f} / {float(r['init_p90']):.2f} | {float(r['next_p50']):.2f} |")
        print()


if __name__ == "__main__":
    main()
