#!/usr/bin/env bash
# nn.h vs PyTorch end to end, and nn.h's GEMM/convolution kernels vs OpenBLAS; writes
# docs/performance.md. `make bench-compare` builds what it needs and runs this.
#
# Usage: scripts/bench_compare.sh [BUILD_DIR]        (default build; needs BUILD_DIR/bench/*)
#
# Every run happens one after another, never two at once. Settings (environment variables):
#   BENCH_EPOCHS=1             epochs for the MLPs and LeNet (time per epoch is reported)
#   BENCH_THREADS="1 2"        thread counts for both sides
#   BENCH_MODELS="mlp_relu mlp_sigmoid lenet resnet18"
#   BENCH_LIMIT=0              train on the first N MNIST images (0: all 60000)
#   BENCH_RESNET_STEPS=10      timed ResNet-18 steps (batch 64), after BENCH_WARMUP=2 untimed ones
#   BENCH_MIN_TIME=0.5         --benchmark_min_time of the GEMM/conv microbenchmarks
#   BENCH_MICRO_THREADS=1      threads of the microbenchmarks
#   BENCH_MICRO_FILTER=...     which microbenchmark rows (default: peak, sgemm*, conv2d_* on
#                              avx2/avx512/neon/openblas; "" skips the microbenchmarks)
#   BENCH_SMOKE=1              a quick check of the whole pipeline (a few minutes): defaults become
#                              BENCH_LIMIT=4096 BENCH_RESNET_STEPS=1 BENCH_WARMUP=0
#                              BENCH_MIN_TIME=0.01, a few GEMM/conv shapes, and the report says
#                              in bold that its numbers are not measurements
#   BENCH_OUT=docs/performance.md, BENCH_DATA=data/mnist
# The defaults take about 10-15 minutes on a 2-core Zen 4 (most of it ResNet-18 and LeNet).
set -euo pipefail
cd "$(dirname "$0")/.."

# The command as given, for the report: the BENCH_* settings the caller chose, then the entry.
given=""
for v in $(env | grep -o '^BENCH_[A-Z_]*' | sort -u); do given+="$v=$(printf '%q' "${!v}") "; done
if [ -n "${MAKELEVEL:-}" ]; then command_line="${given}make bench-compare"
else command_line="${given}scripts/bench_compare.sh $*"; fi

BUILD=${1:-build}
SMOKE=${BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  : "${BENCH_LIMIT:=4096}" "${BENCH_RESNET_STEPS:=1}" "${BENCH_WARMUP:=0}" "${BENCH_MIN_TIME:=0.01}"
  : "${BENCH_MICRO_FILTER:=^(peak/|sgemm[_a-z]*/(avx2|avx512|neon|openblas)/(64x64x784|64x784x64|512x512x512)|conv2d_[a-z_]+/(avx2|avx512|neon|openblas)/(lenet2|resnet_b64_256))}"
fi
EPOCHS=${BENCH_EPOCHS:-1}
THREADS=${BENCH_THREADS:-1 2}
MODELS=${BENCH_MODELS:-mlp_relu mlp_sigmoid lenet resnet18}
LIMIT=${BENCH_LIMIT:-0}
RESNET_STEPS=${BENCH_RESNET_STEPS:-10}
WARMUP=${BENCH_WARMUP:-2}
MIN_TIME=${BENCH_MIN_TIME:-0.5}
MICRO_THREADS=${BENCH_MICRO_THREADS:-1}
MICRO_FILTER=${BENCH_MICRO_FILTER-^(peak|sgemm|sgemm_nt|sgemm_tn|conv2d_fwd|conv2d_bwd_data|conv2d_bwd_weight)/(avx2|avx512|neon|openblas)/}
OUT=${BENCH_OUT:-docs/performance.md}
DATA=${BENCH_DATA:-data/mnist}
PY=/usr/bin/python3   # Debian's python3-torch lives here, whatever python3 comes first on PATH

NNH=$BUILD/bench/train_compare
MICRO=$BUILD/bench/bench_kernels
for f in "$NNH" "$MICRO"; do
  [ -x "$f" ] || { echo "bench_compare.sh: $f is missing; run make bench-build" >&2; exit 1; }
done
[ -f "$DATA/train-images-idx3-ubyte" ] || { echo "bench_compare.sh: no MNIST in $DATA; run make data" >&2; exit 1; }
"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "bench_compare.sh: $PY cannot import torch and numpy (scripts/setup.sh torch)" >&2; exit 1; }

RAW=$BUILD/bench/compare
mkdir -p "$RAW"
results=$RAW/results.txt
log=$RAW/log.txt
: >"$results"
: >"$log"
load() { cut -d' ' -f1-3 /proc/loadavg; }
load_before=$(load)
start=$(date +%s)
say() { echo "bench_compare: $*" | tee -a "$log" >&2; }

common=(--epochs "$EPOCHS" --limit "$LIMIT" --resnet-steps "$RESNET_STEPS" --warmup "$WARMUP" --data "$DATA")
failures=$RAW/failures.txt
: >"$failures"
run() { # label, command...: BENCH lines to $results, everything to the log and the terminal
  local label=$1 status=0; shift
  say "$label"
  "$@" >"$RAW/last.txt" 2> >(tee -a "$log" >&2) || status=$?
  tee -a "$log" <"$RAW/last.txt" >&2
  grep '^BENCH ' "$RAW/last.txt" >>"$results" || true
  if [ "$status" != 0 ]; then say "FAILED (exit status $status): $label"; echo "$label" >>"$failures"; fi
}

for t in $THREADS; do
  for m in $MODELS; do
    run "nn.h $m, $t thread(s)" "$NNH" --model "$m" --threads "$t" "${common[@]}"
    if [ "$t" = 1 ]; then
      run "PyTorch $m, 1 thread" env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        "$PY" bench/pytorch/train_compare.py --model "$m" --threads 1 "${common[@]}"
    else
      run "PyTorch $m, $t threads (BLAS $t threads)" env OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t" \
        "$PY" bench/pytorch/train_compare.py --model "$m" --threads "$t" "${common[@]}"
      run "PyTorch $m, $t threads (BLAS 1 thread)" env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        "$PY" bench/pytorch/train_compare.py --model "$m" --threads "$t" "${common[@]}"
    fi
  done
done

micro_json=$RAW/micro.json
rm -f "$micro_json"
if [ -n "$MICRO_FILTER" ]; then
  say "microbenchmarks ($MICRO_THREADS thread(s), min time $MIN_TIME s)"
  "$MICRO" --threads="$MICRO_THREADS" --benchmark_filter="$MICRO_FILTER" --benchmark_min_time="$MIN_TIME" \
    --benchmark_format=console --benchmark_out="$micro_json" --benchmark_out_format=json 2>>"$log" | tee -a "$log" >&2
fi

meta=$RAW/meta.txt
{
  echo "smoke=$SMOKE"
  echo "cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
  echo "cpus=$(nproc)"
  echo "kernel=$(uname -sr)"
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command=$command_line"
  rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git diff --quiet HEAD -- nn.h 2>/dev/null || echo ", nn.h modified")
  echo "nnh=$(sed -n 's/^#define NN_VERSION_MAJOR \([0-9]*\)/\1/p' nn.h).$(sed -n 's/^#define NN_VERSION_MINOR \([0-9]*\)/\1/p' nn.h) (git $rev$dirty)"
  echo "cc=$(${CC:-cc} --version | head -1)"
  echo "cflags=-std=c99 -O2 -fopenmp (no -march: nn.h picks its kernels at run time)"
  echo "torch=$("$PY" -c 'import torch; print(torch.__version__)')"
  echo "torch_blas=$("$PY" -c 'import torch, re; c = torch.__config__.show(); print("; ".join(x.strip() for x in re.findall(r"(CPU capability usage: \w+|BLAS_INFO=\w+|USE_MKLDNN=\w+)", c)))')"
  echo "openblas=$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?') ($(grep -o 'OpenBLAS [0-9.]*' /usr/include/x86_64-linux-gnu/openblas_config.h 2>/dev/null | head -1 || true))"
  echo "gbench=$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?') (Debian libbenchmark-dev)"
  echo "python=$("$PY" --version 2>&1)"
  echo "epochs=$EPOCHS"
  echo "limit=$LIMIT"
  echo "threads=$THREADS"
  echo "resnet_steps=$RESNET_STEPS"
  echo "warmup=$WARMUP"
  echo "min_time=$MIN_TIME"
  echo "micro_threads=$MICRO_THREADS"
  echo "load_before=$load_before"
  echo "load_after=$(load)"
  echo "failures=$(paste -sd ';' "$failures")"
} >"$meta"

"$PY" bench/report.py --results "$results" --micro "$micro_json" --meta "$meta" --out "$OUT"
say "done in $(( $(date +%s) - start )) s; wrote $OUT (raw results in $RAW)"
