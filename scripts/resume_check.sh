#!/usr/bin/env bash
# The kill-and-resume test of make test (make test-resume): a training example run once without
# interruption, then again with --checkpoint FILE --resume, killed with SIGKILL at random moments
# (and right while a checkpoint is being written: as soon as its temporary FILE.tmp appears) and
# started again each time until it completes. The model it saves at the end (--save, nn_save) must
# be byte-identical to the uninterrupted run's, its RESULT lines identical (timings aside) and its
# CSV files identical (their seconds columns aside). Both runs use the same thread count.
# Usage: scripts/resume_check.sh [BUILD_DIR] [EXAMPLE ARGS...]
#   default: sigmoid_mlp --quick --epochs 12 --threads 1 (two models one after another, 12 epochs
#   each, a checkpoint after every epoch: about 2 s uninterrupted)
#   KILLS=N           random kills (default 4), plus 2 during checkpoint writes
#   KILL_SEED=S       the random delays' seed (default: the time; printed, to rerun a failure)
# Writes BUILD_DIR/extra-checks/resume.summary ("resume <passed> <failed>") for scripts/run_tests.sh.
set -u
shopt -s nullglob
build=${1:-build}
shift $(( $# > 0 ? 1 : 0 ))
if [ $# -gt 0 ]; then example=$1; shift; args=("$@"); else example=sigmoid_mlp; args=(--quick --epochs 12 --threads 1); fi
bin="$build/examples/$example"
data=${DATA:-data/mnist}
dir="$build/resume-check/$example"
kills=${KILLS:-4}
seed=${KILL_SEED:-$(date +%s)}
summary="$build/extra-checks/resume.summary"
mkdir -p "$build/extra-checks"
echo "== kill and resume: $example ${args[*]} (KILL_SEED=$seed)"
fail() {
  echo "  FAIL  resume $example: $*"
  echo "resume 0 1" > "$summary"
  exit 1
}
[ -x "$bin" ] || fail "$bin not built (make examples)"
rm -rf "$dir"
mkdir -p "$dir"
common=("${args[@]}" --data "$data")
save_a=(); save_b=()
if "$bin" --help | grep -q -- '--save'; then save_a=(--save "$dir/a.nn"); save_b=(--save "$dir/b.nn"); fi

# the uninterrupted run
t0=$(date +%s%N)
"$bin" "${common[@]}" --out "$dir/a" "${save_a[@]}" > "$dir/a.out" 2> "$dir/a.err" || fail "the uninterrupted run failed: $(tail -1 "$dir/a.err")"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))

# killed and resumed, each run from the checkpoint the last one left: twice right while a checkpoint
# is being written (as soon as its temporary file appears), then at random moments (between a
# tenth and a half of the uninterrupted run's time, while there is still work left), then to the end
RANDOM=$seed
runs=0; killed=0; in_write=0; delays=""
resumed() {
  "$bin" "${common[@]}" --out "$dir/b" "${save_b[@]}" --checkpoint "$dir/run.ckpt" --resume > "$dir/b.out" 2>> "$dir/b.err" &
  pid=$!
  runs=$((runs + 1))
}
ended() { # the status of run $pid; a kill counts, a failure ends the test
  { wait "$pid"; } 2>/dev/null; rc=$? # (no "Killed" job message)
  [ $rc -eq 137 ] && killed=$((killed + 1))
  [ $rc -ne 137 ] && [ $rc -ne 0 ] && fail "run $runs exited with status $rc: $(tail -1 "$dir/b.err")"
  return $rc
}
for ((k = 0; k < 2; k++)); do
  rm -f "$dir"/run.ckpt*.tmp # what an earlier kill left (the next save removes it anyway): wait for a new one
  resumed
  while kill -0 "$pid" 2>/dev/null; do
    if compgen -G "$dir/run.ckpt*.tmp" > /dev/null; then kill -KILL "$pid" 2>/dev/null; break; fi
  done
  ended && continue
  compgen -G "$dir/run.ckpt*.tmp" > /dev/null && in_write=$((in_write + 1)) # the kill left the write unfinished
done
for ((k = 0; k < kills; k++)); do
  delay=$(( ms / 10 + RANDOM % (ms * 4 / 10 + 1) ))
  delays="$delays ${delay}ms"
  resumed
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -KILL "$pid" 2>/dev/null
  ended
done
resumed
ended || true
[ "$rc" -eq 0 ] || fail "the last resumed run was killed"
inside=$(grep "resumed from" "$dir/b.err" | grep -vc "had finished")
echo "  $runs runs: $killed killed ($in_write in the middle of a checkpoint write, the others after${delays:- -}), the last one to the end;"
echo "  $inside time(s) a model's training went on from a checkpoint"

# the same model, RESULT lines and CSV files
if [ ${#save_a[@]} -gt 0 ]; then cmp -s "$dir/a.nn" "$dir/b.nn" || fail "the saved models differ ($dir/a.nn, $dir/b.nn)"; fi
strip() { grep '^RESULT' "$1" | sed -E 's/ [a-z0-9_]*(seconds|images_per_s|_over_)[a-z0-9_]*=[^ ]*//g'; }
if ! diff <(strip "$dir/a.out") <(strip "$dir/b.out") > "$dir/result.diff"; then
  fail "the RESULT lines differ: $(head -4 "$dir/result.diff" | tr '\n' ' ')"
fi
[ "$(strip "$dir/a.out" | wc -l)" -gt 0 ] || fail "no RESULT line"
nocols() { # the CSV without its columns whose header names seconds
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) drop[i] = ($i ~ /seconds/) } { line = ""; for (i = 1; i <= NF; i++) if (!drop[i]) line = line (line == "" ? "" : ",") $i; print line }' "$1"
}
csvs=("$dir"/a/*)
for f in "${csvs[@]}"; do
  g="$dir/b/${f##*/}"
  [ -f "$g" ] || fail "${f##*/} missing after the resumed runs"
  cmp -s <(nocols "$f") <(nocols "$g") || fail "${f##*/} differs (its seconds columns aside)"
done
echo "  ok    resume $example: ${save_a[*]:+model file, }RESULT lines and ${#csvs[@]} CSV files as the uninterrupted run's"
echo "resume 1 0" > "$summary"
