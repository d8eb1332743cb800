#!/usr/bin/env bash
# nn.h vs PyTorch end to end (PyTorch in NCHW and in channels_last), and nn.h's GEMM/convolution
# kernels vs OpenBLAS (as shipped and forced to its AVX-512 kernels) and oneDNN; writes
# docs/performance.md. `make bench-compare` builds what it needs and runs this.
#
# Usage: scripts/bench_compare.sh [BUILD_DIR]        (default build; needs BUILD_DIR/bench/*)
#
# Every run happens one after another, never two at once. Settings (environment variables):
#   BENCH_EPOCHS=1             epochs for the MLPs and LeNet (time per epoch is reported)
#   BENCH_THREADS="1 2"        thread counts for both sides
#   BENCH_MODELS="mlp_relu mlp_sigmoid lenet resnet18"
#   BENCH_TORCH_FORMATS="nchw channels_last"
#                              PyTorch memory formats for the convolutional models (lenet,
#                              resnet18; the MLPs run in nchw only, where the two are the same)
#   BENCH_LIMIT=0              train on the first N MNIST images (0: all 60000)
#   BENCH_RESNET_STEPS=10      timed ResNet-18 steps (batch 64), after BENCH_WARMUP=2 untimed ones
#   BENCH_MIN_TIME=0.5         --benchmark_min_time of the GEMM/conv microbenchmarks
#   BENCH_MICRO_THREADS=1      threads of the microbenchmarks
#   BENCH_MICRO_FILTER=...     which microbenchmark rows (default: peak, sgemm*, conv2d_* on
#                              avx2/avx512/neon/openblas/onednn; "" skips the microbenchmarks)
#   BENCH_OPENBLAS_CORETYPE=auto
#                              the OPENBLAS_CORETYPE of a second run of the openblas rows, forced
#                              to OpenBLAS's AVX-512 kernels: auto is SkylakeX on AMD family 25
#                              (Zen 4) and Cooperlake on family 26 (Zen 5) when the CPU has
#                              avx512f, and none elsewhere (Intel: as shipped already picks them);
#                              none skips it, as does a core that the as-shipped run already chose
#   BENCH_OPENBLAS_L2_SIZE=    OPENBLAS_L2_SIZE for that forced run only (default: unset)
#   BENCH_SMOKE=1              a quick check of the whole pipeline (a few minutes): defaults become
#                              BENCH_LIMIT=4096 BENCH_RESNET_STEPS=1 BENCH_WARMUP=0
#                              BENCH_MIN_TIME=0.01, a few GEMM/conv shapes, and the report says
#                              in bold that its numbers are not measurements
#   BENCH_OUT=docs/performance.md, BENCH_DATA=data/mnist
# Every run is OpenBLAS as shipped: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from the caller's
# environment are cleared (and recorded in the report); only the forced run sets them, for that
# command alone.
# The defaults took about 10-15 minutes on a 2-core Zen 4 (most of it ResNet-18 and LeNet) before
# the channels_last, oneDNN and forced OpenBLAS runs were added.
set -euo pipefail
cd "$(dirname "$0")/.."
inherited_openblas="OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-(unset)}"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

# The command as given, for the report: the BENCH_* settings the caller chose, then the entry.
given=""
for v in $(env | grep -o '^BENCH_[A-Z_]*' | sort -u); do given+="$v=$(printf '%q' "${!v}") "; done
if [ -n "${MAKELEVEL:-}" ]; then command_line="${given}make bench-compare"
else command_line="${given}scripts/bench_compare.sh $*"; fi

BUILD=${1:-build}
SMOKE=${BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  : "${BENCH_LIMIT:=4096}" "${BENCH_RESNET_STEPS:=1}" "${BENCH_WARMUP:=0}" "${BENCH_MIN_TIME:=0.01}"
  : "${BENCH_MICRO_FILTER:=^(peak/|sgemm[_a-z]*/(avx2|avx512|neon|openblas|onednn)/(64x64x784|64x784x64|512x512x512)|conv2d_[a-z_]+/(avx2|avx512|neon|openblas|onednn)/(lenet2|resnet_b64_256))}"
fi
EPOCHS=${BENCH_EPOCHS:-1}
THREADS=${BENCH_THREADS:-1 2}
MODELS=${BENCH_MODELS:-mlp_relu mlp_sigmoid lenet resnet18}
TORCH_FORMATS=${BENCH_TORCH_FORMATS:-nchw channels_last}
LIMIT=${BENCH_LIMIT:-0}
RESNET_STEPS=${BENCH_RESNET_STEPS:-10}
WARMUP=${BENCH_WARMUP:-2}
MIN_TIME=${BENCH_MIN_TIME:-0.5}
MICRO_THREADS=${BENCH_MICRO_THREADS:-1}
MICRO_FILTER=${BENCH_MICRO_FILTER-^(peak|sgemm|sgemm_nt|sgemm_tn|conv2d_fwd|conv2d_bwd_data|conv2d_bwd_weight)/(avx2|avx512|neon|openblas|onednn)/}
OPENBLAS_FORCED=${BENCH_OPENBLAS_CORETYPE:-auto}
OPENBLAS_FORCED_L2=${BENCH_OPENBLAS_L2_SIZE:-}
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

# The CPU, for the report and for the forced OpenBLAS core.
cpuinfo() { sed -n "s/^$1[[:space:]]*:[[:space:]]*//p" /proc/cpuinfo | head -1; }
cpu_vendor=$(cpuinfo vendor_id)
cpu_family=$(cpuinfo 'cpu family')
cpu_model=$(cpuinfo model)
cpu_name=$(cpuinfo 'model name')
cpu_avx512=no
grep -qw avx512f /proc/cpuinfo && cpu_avx512=yes
forced_why="BENCH_OPENBLAS_CORETYPE=none"
if [ "$OPENBLAS_FORCED" = auto ]; then
  OPENBLAS_FORCED=none
  forced_why="no AVX-512 core to force on a $cpu_vendor family $cpu_family CPU (avx512f: $cpu_avx512)"
  if [ "$cpu_vendor" = AuthenticAMD ] && [ "$cpu_avx512" = yes ]; then
    case "$cpu_family" in
      25) OPENBLAS_FORCED=SkylakeX ;;
      26) OPENBLAS_FORCED=Cooperlake ;;
    esac
  fi
fi

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
    formats=nchw
    case "$m" in lenet | resnet18) formats=$TORCH_FORMATS ;; esac
    for f in $formats; do
      layout=()
      case "$f" in
        nchw) ;;
        channels_last) layout=(--channels-last) ;;
        *) echo "bench_compare.sh: unknown memory format '$f' in BENCH_TORCH_FORMATS" >&2; exit 2 ;;
      esac
      torch=("$PY" bench/pytorch/train_compare.py --model "$m" --threads "$t" ${layout[@]+"${layout[@]}"} "${common[@]}")
      if [ "$t" = 1 ]; then
        run "PyTorch $m $f, 1 thread" env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "${torch[@]}"
      else
        run "PyTorch $m $f, $t threads (BLAS $t threads)" \
          env OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t" "${torch[@]}"
        run "PyTorch $m $f, $t threads (BLAS 1 thread)" \
          env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "${torch[@]}"
      fi
    done
  done
done

micro_json=$RAW/micro.json
forced_json=$RAW/micro_openblas_forced.json
forced_note=""
rm -f "$micro_json" "$forced_json"
if [ -n "$MICRO_FILTER" ]; then
  say "microbenchmarks ($MICRO_THREADS thread(s), min time $MIN_TIME s; OpenBLAS as shipped)"
  "$MICRO" --threads="$MICRO_THREADS" --benchmark_filter="$MICRO_FILTER" --benchmark_min_time="$MIN_TIME" \
    --benchmark_format=console --benchmark_out="$micro_json" --benchmark_out_format=json 2>>"$log" | tee -a "$log" >&2
  # The same openblas rows again with OpenBLAS forced to OPENBLAS_FORCED (set for this command only).
  shipped=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["context"].get("openblas_config", ""))' \
    "$micro_json" 2>/dev/null || true)
  forced_rows=$("$MICRO" --benchmark_list_tests --benchmark_filter="$MICRO_FILTER" | grep '/openblas/' | paste -sd '|' || true)
  if [ "$OPENBLAS_FORCED" = none ]; then
    forced_note="not run: $forced_why"
  elif [[ " $shipped " == *" $OPENBLAS_FORCED "* ]]; then
    forced_note="not run: as shipped, OpenBLAS already picks $OPENBLAS_FORCED on this CPU"
  elif [ -z "$forced_rows" ]; then
    forced_note="not run: BENCH_MICRO_FILTER selects no openblas row"
  else
    forced_env=(OPENBLAS_CORETYPE="$OPENBLAS_FORCED")
    [ -n "$OPENBLAS_FORCED_L2" ] && forced_env+=(OPENBLAS_L2_SIZE="$OPENBLAS_FORCED_L2")
    say "microbenchmarks, OpenBLAS forced: ${forced_env[*]}"
    env "${forced_env[@]}" "$MICRO" --threads="$MICRO_THREADS" --benchmark_filter="^($forced_rows)(/|\$)" \
      --benchmark_min_time="$MIN_TIME" --benchmark_format=console --benchmark_out="$forced_json" \
      --benchmark_out_format=json 2>>"$log" | tee -a "$log" >&2
    forced_note="${forced_env[*]}"
  fi
fi

meta=$RAW/meta.txt
# The oneDNN library a binary loads (PyTorch's CPU build uses oneDNN for its convolutions).
dnnl_of() { ldd "$1" 2>/dev/null | sed -n 's/^[[:space:]]*libdnnl[^ ]* => \([^ ]*\).*/\1/p' | grep . || echo "no oneDNN"; }
{
  echo "smoke=$SMOKE"
  echo "cpu=$cpu_name"
  echo "cpu_id=$cpu_vendor, family $cpu_family, model $cpu_model"
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
  echo "openblas_forced=$forced_note"
  echo "openblas_inherited=$inherited_openblas (cleared: every run but the forced one is as shipped)"
  torch_lib=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))')
  echo "onednn=$(dpkg-query -W -f='${Version}' libdnnl-dev 2>/dev/null || echo 'not installed') (Debian libdnnl-dev);" \
    "bench_kernels loads $(dnnl_of "$MICRO"), PyTorch $(dnnl_of "$torch_lib")"
  echo "gbench=$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo '?') (Debian libbenchmark-dev)"
  echo "python=$("$PY" --version 2>&1)"
  echo "epochs=$EPOCHS"
  echo "limit=$LIMIT"
  echo "threads=$THREADS"
  echo "torch_formats=$TORCH_FORMATS"
  echo "resnet_steps=$RESNET_STEPS"
  echo "warmup=$WARMUP"
  echo "min_time=$MIN_TIME"
  echo "micro_threads=$MICRO_THREADS"
  echo "load_before=$load_before"
  echo "load_after=$(load)"
  echo "failures=$(paste -sd ';' "$failures")"
} >"$meta"

"$PY" bench/report.py --results "$results" --micro "$micro_json" --micro-openblas-forced "$forced_json" --meta "$meta" \
  --out "$OUT"
say "done in $(( $(date +%s) - start )) s; wrote $OUT (raw results in $RAW)"
