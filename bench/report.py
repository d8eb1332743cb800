#!/usr/bin/python3
"""Writes docs/performance.md from scripts/bench_compare.sh's raw results (standard library only).

  --results FILE   the BENCH lines of train_compare (nn.h) and train_compare.py (PyTorch)
  --micro FILE     bench_kernels' Google Benchmark JSON (peak, sgemm*, conv2d_* rows)
  --micro-openblas-forced FILE
                   the same for the openblas rows rerun with OPENBLAS_CORETYPE forced (optional;
                   they become the openblas_forced rows)
  --meta FILE      key=value lines: machine, versions, date, command, settings
  --out FILE       the markdown file to write
"""
import argparse
import json
import os
import re
import sys


def parse_results(path):
    runs = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[0] != "BENCH":
                continue
            run = {"framework": parts[1], "model": parts[2], "_line": line.strip()}
            for kv in parts[3:]:
                k, _, v = kv.partition("=")
                if re.fullmatch(r"-?[0-9]+", v):
                    run[k] = int(v)
                elif re.fullmatch(r"-?[0-9]*\.[0-9]+(e[-+]?[0-9]+)?", v):
                    run[k] = float(v)
                else:
                    run[k] = v
            runs.append(run)
    return runs


def parse_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                meta[k] = v
    return meta


def parse_micro(path, rename=None):
    """name (without Google Benchmark's /real_time-style suffixes) -> GFLOPS, or a skip reason;
    the run's context; name -> the row's label. rename maps an implementation's name to another
    (the forced OpenBLAS run's openblas rows become openblas_forced)."""
    if not path or not os.path.exists(path):
        return {}, {}, {}
    with open(path) as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return {}, {}, {}
    rows, samples, labels = {}, {}, {}
    for b in doc.get("benchmarks", []):
        parts = b.get("run_name", b["name"]).split("/")[:3]
        if rename and len(parts) == 3 and parts[1] in rename:
            parts[1] = rename[parts[1]]
        name = "/".join(parts)
        if b.get("label"):
            labels[name] = b["label"]
        if b.get("error_occurred"):
            rows[name] = b.get("error_message", "error")
            continue
        if "GFLOPS" not in b:
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                rows[name] = float(b["GFLOPS"])
            continue
        samples.setdefault(name, []).append(float(b["GFLOPS"]))
    for name, values in samples.items():
        if not isinstance(rows.get(name), float):
            rows[name] = sorted(values)[len(values) // 2]
    return rows, doc.get("context", {}), labels


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def pct(x, peak):
    return "-" if x is None or not peak else f"{100.0 * x / peak:.0f}%"


def gflops(rows, name):
    v = rows.get(name)
    return v if isinstance(v, float) else None


def end_to_end(out, runs, meta):
    nnh = [r for r in runs if r["framework"] == "nnh"]
    torch = [r for r in runs if r["framework"] == "pytorch"]
    models = []
    for r in runs:
        if r["model"] not in models:
            models.append(r["model"])

    def pick(rs, model, threads, fmt=None):
        return [r for r in rs if r["model"] == model and int(r.get("threads", 0)) == threads
                and (fmt is None or r.get("memory_format", "nchw") == fmt)]

    def formats(model):  # PyTorch's memory formats run for this model, NCHW first
        found = {r.get("memory_format", "nchw") for r in torch if r["model"] == model}
        return sorted(found, key=lambda f: (f != "nchw", f)) or ["nchw"]

    threads_list = sorted({int(r.get("threads", 0)) for r in runs})
    epoch_models = [m for m in models if m != "resnet18"]
    if epoch_models:
        out.append("### Epoch time (MLPs, LeNet)\n")
        out.append("Seconds per training epoch (wall clock; lower is better) and the test accuracy after the "
                   f"run's {meta.get('epochs', '?')} epoch(s). *Speed ratio* = PyTorch time / nn.h time "
                   "(above 1: nn.h is faster). PyTorch at more than one thread: the best of its BLAS settings "
                   "(see the raw runs below). *PyTorch layout*: its memory format, `nchw` (the default) or "
                   "`channels_last` (model and batches `.to(memory_format=torch.channels_last)`); one row each, "
                   "nn.h's figures repeated. *cpu s*: process CPU time per epoch, all threads.\n")
        out.append("| model | threads | PyTorch layout | nn.h s | nn.h cpu s | PyTorch s | PyTorch cpu s "
                   "| PyTorch BLAS threads | speed ratio nn.h/PyTorch | nn.h test acc % | PyTorch test acc % |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for m in epoch_models:
            for t in threads_list:
                for f in formats(m):
                    a = pick(nnh, m, t)
                    b = pick(torch, m, t, f)
                    if not a and not b:
                        continue
                    a = a[0] if a else {}
                    best = min(b, key=lambda r: r["epoch_seconds"]) if b else {}
                    out.append(f"| {m} | {t} | {f} | {fmt(a.get('epoch_seconds'), 3)} "
                               f"| {fmt(a.get('epoch_cpu_seconds'), 3)} "
                               f"| {fmt(best.get('epoch_seconds'), 3)} | {fmt(best.get('epoch_cpu_seconds'), 3)} "
                               f"| {best.get('blas_threads', '-')} "
                               f"| {fmt(ratio(best.get('epoch_seconds'), a.get('epoch_seconds')))} "
                               f"| {fmt(a.get('test_acc'))} | {fmt(best.get('test_acc'))} |")
        out.append("")
    if "resnet18" in models:
        out.append("### ResNet-18 training throughput\n")
        out.append("Training images per second (batch 64, higher is better) over the timed steps after the "
                   "warm-up steps. *Speed ratio* = nn.h images/s / PyTorch images/s. *PyTorch layout* as above.\n")
        out.append("| threads | PyTorch layout | nn.h img/s | nn.h cpu s/step | PyTorch img/s | PyTorch cpu s/step "
                   "| PyTorch BLAS threads | speed ratio nn.h/PyTorch | steps |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for t in threads_list:
            for f in formats("resnet18"):
                a = pick(nnh, "resnet18", t)
                b = pick(torch, "resnet18", t, f)
                if not a and not b:
                    continue
                a = a[0] if a else {}
                best = max(b, key=lambda r: r["images_per_second"]) if b else {}
                steps = a.get("steps", best.get("steps"))
                out.append(f"| {t} | {f} | {fmt(a.get('images_per_second'))} | {fmt(a.get('step_cpu_seconds'), 3)} "
                           f"| {fmt(best.get('images_per_second'))} | {fmt(best.get('step_cpu_seconds'), 3)} "
                           f"| {best.get('blas_threads', '-')} "
                           f"| {fmt(ratio(a.get('images_per_second'), best.get('images_per_second')))} "
                           f"| {int(steps) if steps is not None else '-'} |")
        out.append("")
    out.append("<details><summary>Raw runs (every BENCH line)</summary>\n")
    out.append("```")
    for r in runs:
        out.append(r["_line"])
    out.append("```\n</details>\n")


def micro_tables(out, rows, labels, peak, references):
    """The GEMM and convolution tables. references: (implementation, column title) of the other
    libraries, in column order; a table shows those with a figure in it."""
    impls = [i for i in ("avx2", "avx512", "neon") if any(k.split("/")[1] == i and isinstance(v, float)
                                                         for k, v in rows.items() if k.count("/") == 2)]
    if not impls:
        out.append("No microbenchmark results.\n")
        return
    best_of = lambda names: max((v for v in (gflops(rows, n) for n in names) if v is not None), default=None)

    def table(kernels, shapes, shape_title, extra=None):
        """One row per (kernel, shape): nn.h's backends, each reference, nn.h / each reference,
        then % peak of nn.h's best and of each reference. extra: (title, kernel, shape -> text)."""
        refs = [(impl, title) for impl, title in references
                if any(isinstance(rows.get(f"{k}/{impl}/{sh}"), float) for k, sh in zip(kernels, shapes))]
        cols = [f"nn.h {i}" for i in impls] + [title for _, title in refs] + \
               [f"ratio nn.h/{title}" for _, title in refs] + ["nn.h % peak"] + [f"{title} % peak" for _, title in refs]
        if extra:
            cols.append(extra[0])
        out.append(f"| {shape_title} | " + " | ".join(cols) + " |")
        out.append("|" + "---|" * (shape_title.count("|") + 1) + "---:|" * (len(cols) - (1 if extra else 0))
                   + ("---|" if extra else ""))
        for k, sh in zip(kernels, shapes):
            best = best_of([f"{k}/{i}/{sh}" for i in impls])
            ref_values = [gflops(rows, f"{k}/{impl}/{sh}") for impl, _ in refs]
            cells = [fmt(gflops(rows, f"{k}/{i}/{sh}"), 1) for i in impls] + [fmt(v, 1) for v in ref_values] + \
                    [fmt(ratio(best, v)) for v in ref_values] + [pct(best, peak)] + [pct(v, peak) for v in ref_values]
            if extra:
                cells.append(extra[1](k, sh))
            first = f"{k} | {sh}" if len(set(kernels)) > 1 else sh
            out.append(f"| {first} | " + " | ".join(cells) + " |")
        out.append("")

    names = [title for _, title in references]
    out.append("### GEMM (nn_sgemm vs " + ", ".join(names) + ")\n")
    out.append("GFLOPS (2·M·N·K per call, higher is better), row-major, C = op(A)·op(B). `_nt`: B transposed, "
               "`_tn`: A transposed. OpenBLAS: `cblas_sgemm`; oneDNN: `dnnl_sgemm`. *Ratio* = best nn.h backend / "
               "the library (above 1: nn.h is faster); *% peak* = fraction of the measured FMA peak above.\n")
    gemm = sorted({tuple(k.split("/")[::2]) for k in rows if k.startswith("sgemm")},
                  key=lambda t: (tuple(int(x) for x in t[1].split("x")), t[0]))
    if gemm:
        table([k for k, _ in gemm], [sh for _, sh in gemm], "kernel | M×N×K")

    def onednn_impl(kernel, shape):
        label = labels.get(f"{kernel}/onednn/{shape}", "")
        return f"`{label}`" if label else "-"

    first_conv = True
    for kernel, title in (("conv2d_fwd", "forward (OpenBLAS column: the textbook lowering, im2col then one "
                                         "cblas_sgemm per image)"),
                          ("conv2d_bwd_data", "backward, input gradient"),
                          ("conv2d_bwd_weight", "backward, weight gradient")):
        shapes = []
        for k in rows:
            if k.startswith(kernel + "/"):
                sh = k.split("/")[2]
                if sh not in shapes:
                    shapes.append(sh)
        if not shapes:
            continue
        out.append(f"### Convolution {title}\n")
        if first_conv:
            out.append("GFLOPS (2·batch·out·in·k²·outH·outW per call, padded taps included: a kernel that skips "
                       "them, as oneDNN's do, can pass the peak on small padded images); layer names: "
                       "`<net>_b<batch>_<C>x<H>x<W>_o<out channels>k<kernel>p<padding>`, stride 1. nn.h and "
                       "OpenBLAS work in NCHW; oneDNN in the layouts its primitive chose (reordered once, outside "
                       "the timing), named in its column in oneDNN's notation (`abcd`: NCHW, `aBcd16b`: NCHW in "
                       "blocks of 16 channels, PyTorch's nChw16c) for x, w and y (dy, dx, dw in the backward "
                       "passes). Same columns in the tables below.\n")
            first_conv = False
        has_onednn = any(f"{kernel}/onednn/{sh}" in labels for sh in shapes)
        table([kernel] * len(shapes), shapes, "layer", ("oneDNN implementation, layouts", onednn_impl) if has_onednn
              else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--micro")
    p.add_argument("--micro-openblas-forced")
    p.add_argument("--meta", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    runs = parse_results(a.results)
    meta = parse_meta(a.meta)
    rows, context, labels = parse_micro(a.micro)
    forced_rows, forced_context, _ = parse_micro(a.micro_openblas_forced, {"openblas": "openblas_forced"})
    rows.update(forced_rows)
    forced_core = re.search(r"OPENBLAS_CORETYPE=(\S+)", meta.get("openblas_forced", "")) if forced_rows else None
    references = [("openblas", "OpenBLAS")]
    if forced_core:
        references.append(("openblas_forced", f"OpenBLAS {forced_core.group(1)}"))
    references.append(("onednn", "oneDNN"))
    peaks = {k.split("/")[1]: v for k, v in rows.items() if k.startswith("peak/") and isinstance(v, float)}
    micro_threads = int(meta.get("micro_threads", "1"))
    peak = max(peaks.values()) * micro_threads if peaks else None

    out = ["# Performance: nn.h vs PyTorch, OpenBLAS and oneDNN", ""]
    if meta.get("smoke") == "1":
        out.append("> **SMOKE RUN — these numbers are not measurements.** They come from a reduced run "
                   "(`BENCH_SMOKE=1`: a training subset, one ResNet step, microbenchmarks at "
                   f"`--benchmark_min_time={meta.get('min_time', '?')}`) on a machine that was busy with other "
                   f"jobs (load average {meta.get('load_before', '?')} before, {meta.get('load_after', '?')} "
                   "after, on 2 cores). They show that the pipeline works, nothing about speed. "
                   "Regenerate with `make bench-compare` on a quiet machine.\n")
    else:
        out.append(f"Load average before the run: {meta.get('load_before', '?')}; after: "
                   f"{meta.get('load_after', '?')} ({meta.get('cpus', '?')} CPUs). Figures are only meaningful "
                   "when nothing else ran.\n")
    if meta.get("failures"):
        out.append(f"> **Runs that failed** (no figures for them): {meta['failures']}. See build/bench/compare/log.txt.\n")
    out.append("Generated by `scripts/bench_compare.sh` (`make bench-compare`); edit that, not this file.\n")
    out.append("## Setup\n")
    out.append("| | |\n|---|---|")
    if peaks:
        best_isa = max(peaks, key=peaks.get)
        meta["peak"] = f"{peaks[best_isa]:.1f} GFLOPS per core (`peak/{best_isa}/fma`, see Peak below)"
    if context.get("openblas_config"):
        meta["openblas"] = meta.get("openblas", "?") + f"; as shipped: `{context['openblas_config']}`"
    if meta.get("openblas_forced"):
        config = forced_context.get("openblas_config")
        meta["openblas_forced"] += f": `{config}`" if config else ""
    if context.get("onednn"):
        meta["onednn"] = meta.get("onednn", "?") + f"; {context['onednn']}"
    for key, label in (("cpu", "CPU (model name)"), ("cpu_id", "CPU vendor, family, model"),
                       ("peak", "measured FMA peak"), ("cpus", "CPUs online"), ("kernel", "kernel"),
                       ("date", "date (UTC)"), ("command", "command"), ("nnh", "nn.h"), ("cc", "C compiler"),
                       ("cflags", "C flags"), ("torch", "PyTorch"), ("torch_blas", "PyTorch build"),
                       ("openblas", "OpenBLAS"), ("openblas_forced", "OpenBLAS forced to AVX-512 (second run)"),
                       ("openblas_inherited", "OpenBLAS variables in the caller's environment"),
                       ("onednn", "oneDNN"), ("gbench", "Google Benchmark"), ("python", "Python")):
        if key in meta:
            value = meta[key].replace("|", "\\|")
            if key in ("command", "cflags"):
                value = f"`{value}`"
            out.append(f"| {label} | {value} |")
    if context.get("nn_best_backend"):
        out.append(f"| nn.h backend (microbenchmarks) | {context['nn_best_backend']}, "
                   f"{context.get('nn_threads', '?')} thread(s) |")
    out.append("")
    out.append("Settings: " + ", ".join(f"{k}={meta[k]}" for k in ("epochs", "limit", "threads", "torch_formats",
                                                                   "resnet_steps", "warmup", "min_time",
                                                                   "micro_threads")
                                      if k in meta) + ".\n")
    out.append("Both sides train on the same MNIST IDX files, normalised by the training set's mean and standard "
               "deviation, with the same models, optimisers, batch sizes and PyTorch's default initialisation. "
               "nn.h threads: `nn_set_threads`. PyTorch threads: `torch.set_num_threads` (intra-op, one inter-op "
               "thread); at one thread its BLAS is held to one thread too (`OMP_NUM_THREADS=1 "
               "OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1`), at more threads both the BLAS at the same count "
               "and the BLAS at one thread are run and the faster is reported. The convolutional models also "
               "run PyTorch in `channels_last` (NHWC), the layout its oneDNN convolutions prefer.\n")

    out.append("## Peak\n")
    if peaks:
        out.append("Independent FMA chains in registers (`peak/<isa>/fma`), one core: "
                   + ", ".join(f"{isa} {v:.1f} GFLOPS" for isa, v in sorted(peaks.items()))
                   + f". The GEMM and convolution tables use {peak:.1f} GFLOPS"
                   + (f" ({micro_threads} threads)" if micro_threads > 1 else "") + " as 100%.\n")
    else:
        out.append("Not measured.\n")

    out.append("## End to end: nn.h vs PyTorch\n")
    if runs:
        end_to_end(out, runs, meta)
    else:
        out.append("No end-to-end results.\n")
    out.append(f"## Kernels: nn.h vs OpenBLAS and oneDNN ({micro_threads} thread{'s' if micro_threads > 1 else ''})\n")
    out.append("The same binary times every library (`bench_kernels`, one thread each unless `--threads`): "
               "OpenBLAS as Debian ships it (its run-time core choice, in the setup table)"
               + (f", OpenBLAS again with `OPENBLAS_CORETYPE={forced_core.group(1)}` (its AVX-512 kernels)"
                  if forced_core else "")
               + " and oneDNN (the library PyTorch's convolutions use). oneDNN's convolution rows time the "
               "primitive alone: made once with the layouts it prefers, inputs reordered once, outside the "
               "timing. PyTorch with NCHW tensors pays such reorders in every call; nn.h's rows include all of "
               "their own work (im2col, packing).\n")
    micro_tables(out, rows, labels, peak, references)
    skipped = sorted({v for k, v in rows.items() if isinstance(v, str)})
    if skipped:
        out.append("Microbenchmark rows not run: " + "; ".join(v.replace("skipped: ", "") for v in skipped) + ".\n")
    analysis = os.path.join(os.path.dirname(os.path.abspath(a.out)), "performance_analysis.md")
    if os.path.exists(analysis):
        out.append("## Targets, misses and profiles\n")
        out.append("From `docs/performance_analysis.md` (hand-written; its figures come from the runs and "
                   "commands it names):\n")
        with open(analysis) as f:
            text = f.read()
        out.append(text.split("\n", 1)[1] if text.startswith("#") else text)
    out.append("## Reproduce\n")
    out.append("```\n" + meta.get("command", "make bench-compare") + "\n```\n")
    out.append("Every figure above comes from `build/bench/compare/` (raw BENCH lines, the Google Benchmark "
               "JSON and the logs). Microbenchmarks alone: `make bench BENCH_ARGS='--benchmark_filter=^sgemm/'`; "
               "all knobs of the comparison are the `BENCH_*` variables described at the top of "
               "`scripts/bench_compare.sh`.\n")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    print(f"report.py: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
