#!/usr/bin/env python3
"""A/B timing of two bench_kernels binaries, side by side in one run.

    tools/bench_ab.py OLD NEW [FILTER] [ROUNDS] [MIN_TIME]

Runs OLD and NEW (two builds of build/bench/bench_kernels, e.g. one from `git worktree add`
at the base commit) on the rows matching FILTER, ROUNDS times, alternating which goes first
(on a shared VM whichever runs first can be favoured), and prints the median time of each row
and NEW/OLD. Rows above 1.08 are flagged. Compare rows whose code did not change (the openblas
and onednn rows) to see how much the machine itself moved during the run."""
import collections
import json
import statistics
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    old, new = sys.argv[1], sys.argv[2]
    pattern = sys.argv[3] if len(sys.argv) > 3 else "."
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    min_time = sys.argv[5] if len(sys.argv) > 5 else "0.1"
    times = collections.defaultdict(lambda: {"old": [], "new": []})
    order = []
    for r in range(rounds):
        runs = (("old", old), ("new", new)) if r % 2 == 0 else (("new", new), ("old", old))
        for label, exe in runs:
            out = subprocess.run([exe, "--benchmark_filter=" + pattern, "--benchmark_min_time=" + min_time,
                                  "--benchmark_format=json"], capture_output=True, text=True, check=True).stdout
            for row in json.loads(out)["benchmarks"]:
                if row.get("error_occurred") or row.get("skipped"):
                    continue
                if row["name"] not in times:
                    order.append(row["name"])
                times[row["name"]][label].append(row["real_time"])
    print(f"{'row':60s} {'old':>12s} {'new':>12s} {'new/old':>8s}")
    for name in order:
        t = times[name]
        if not t["old"] or not t["new"]:
            continue
        a, b = statistics.median(t["old"]), statistics.median(t["new"])
        print(f"{name:60s} {a:12.1f} {b:12.1f} {b / a:8.3f}{'  <-- slower' if b / a > 1.08 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
