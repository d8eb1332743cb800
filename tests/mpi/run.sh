#!/usr/bin/env bash
# tests/mpi/run.sh - nn_mpi.h under mpirun: tests/mpi/test_mpi.c on 1, 2 and 3 ranks, a rank that
# cannot load its data (every rank must exit with the message), a rank that dies (mpirun must end
# the job, not hang), and examples/mpi/mnist_mpi --quick on 2 ranks. Run by `make test-mpi`
# (examples/mpi/mpi.mk); writes $BUILD/extra-checks/mpi.summary ("mpi <passed> <failed>") for
# scripts/run_tests.sh. Without mpicc or mpirun it skips: prints "SKIP mpi: ...", writes
# "mpi 0 0" (nothing passed, nothing failed) and exits 0; `scripts/setup.sh mpi` installs Open MPI.
# Environment: BUILD (build), DATA (data/mnist), MAKE (make), MPIRUN_FLAGS (extra mpirun flags).
set -u
build=${BUILD:-build}
data=${DATA:-data/mnist}
make=${MAKE:-make}
logs="$build/mpi/logs"
summary="$build/extra-checks/mpi.summary"

echo "== MPI (nn_mpi.h)"
if ! command -v "${MPICC:-mpicc}" >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP mpi: mpicc or mpirun not found (scripts/setup.sh mpi installs Open MPI)"
  mkdir -p "$build/extra-checks"; echo "mpi 0 0" > "$summary"
  exit 0
fi
mkdir -p "$logs" "$build/extra-checks"
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "  ok    $*"; }
bad()  { failed=$((failed + 1)); echo "  FAIL  $*"; }
finish() {
  echo "mpi $passed $failed" > "$summary"
  echo "mpi: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]; exit
}

makefiles=()  # until the Makefile includes examples/mpi/mpi.mk, name both
grep -q 'examples/mpi/mpi.mk' Makefile || makefiles=(-f Makefile -f examples/mpi/mpi.mk)
if ! $make --no-print-directory ${makefiles[@]+"${makefiles[@]}"} "$build/mpi/test_mpi" "$build/mpi/mnist_mpi" \
     > "$logs/build.log" 2>&1; then
  bad "build with mpicc"; tail -20 "$logs/build.log"; finish
fi

# One thread per rank (2 cores here), and OpenMP threads that sleep rather than spin when they
# wait: on a shared machine a spinning waiter starves the thread it waits for.
export NN_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# mpirun: more ranks than cores on one host (--oversubscribe), root in containers and CI
# (--allow-run-as-root); if the default transports do not work (a container without a network
# or without ptrace rights for single-copy), fall back to shared memory without single-copy, then TCP.
base=(--oversubscribe)
[ "$(id -u)" = 0 ] && base+=(--allow-run-as-root)
# shellcheck disable=SC2206
extra=(${MPIRUN_FLAGS:-})
flags=()
for try in "" "--mca btl self,vader --mca pml ob1 --mca btl_vader_single_copy_mechanism none" \
           "--mca btl self,tcp --mca pml ob1 --mca btl_tcp_if_include lo"; do
  # shellcheck disable=SC2206
  candidate=("${base[@]}" $try "${extra[@]}")
  if timeout 60 mpirun "${candidate[@]}" -np 2 "$build/mpi/test_mpi" probe > "$logs/probe.log" 2>&1; then
    flags=("${candidate[@]}"); break
  fi
done
if [ ${#flags[@]} -eq 0 ]; then
  bad "mpirun cannot start 2 ranks here (see $logs/probe.log)"; tail -20 "$logs/probe.log"; finish
fi
echo "  mpirun ${flags[*]}"
run() { # seconds log args...
  local seconds=$1 log=$2; shift 2
  timeout "$seconds" mpirun "${flags[@]}" "$@" > "$log" 2>&1
}

# 1. the unit checks, on 1, 2 and 3 ranks
for job in test_mpi:1 test_mpi:2 test_mpi:3; do
  prog=${job%:*} n=${job#*:}
  log="$logs/$prog.np$n.log"
  run 300 "$log" -np "$n" "$build/mpi/$prog" unit; rc=$?
  line=$(grep -m1 '^SUMMARY ' "$log")
  if [ -z "$line" ]; then
    bad "$prog on $n rank(s) exited $rc without a summary"; tail -20 "$log"; continue
  fi
  p=$(sed -E 's/.*passed=([0-9]+).*/\1/' <<<"$line"); f=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
    echo "  FAIL  $prog on $n rank(s): $f of $((p + f)) checks failed (exit $rc)"; grep FAIL "$log"
    [ "$f" -eq 0 ] && failed=$((failed + 1))
  else
    echo "  ok    $prog on $n rank(s): $p checks"
  fi
done

# 2. a rank that cannot load its data: every rank exits 1 with the failing rank's message
log="$logs/fail-load.log"
start=$(date +%s)
run 60 "$log" -np 2 "$build/mpi/test_mpi" fail-load; rc=$?
said=$(grep -c 'cannot start: rank 1 of 2: .*nonexistent' "$log")
if [ $rc -eq 124 ]; then bad "a rank without data: hung (killed after 60 s)"
elif [ $rc -ne 0 ] && [ "$said" -eq 2 ]; then ok "a rank without data: both ranks exit with its message ($(($(date +%s) - start)) s)"
else bad "a rank without data: exit $rc, $said of 2 ranks gave the message"; tail -10 "$log"; fi

# 3. a rank that dies during training: mpirun ends the job instead of leaving rank 0 waiting
log="$logs/die.log"
start=$(date +%s)
run 60 "$log" -np 2 "$build/mpi/test_mpi" die; rc=$?
if [ $rc -eq 124 ]; then bad "a rank that dies: the job hung (killed after 60 s)"
elif [ $rc -ne 0 ] && ! grep -q 'went unnoticed' "$log"; then ok "a rank that dies: mpirun ends the job, exit $rc ($(($(date +%s) - start)) s)"
else bad "a rank that dies: exit $rc"; tail -10 "$log"; fi

# 4. the example: missing data (every rank says so), then --quick on 2 ranks
log="$logs/mnist_mpi.nodata.log"
run 60 "$log" -np 2 "$build/mpi/mnist_mpi" --data "$build/mpi/no-such-dir" --out "$build/mpi/example"; rc=$?
said=$(grep -c 'cannot start: rank 0 of 2.*make data' "$log")
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$said" -eq 2 ]; then ok "mnist_mpi without data: both ranks exit with the message"
else bad "mnist_mpi without data: exit $rc, $said of 2 ranks gave the message"; tail -10 "$log"; fi

if [ -f "$data/train-images-idx3-ubyte" ]; then
  log="$logs/mnist_mpi.quick.log"
  start=$(date +%s)
  run 600 "$log" -np 2 "$build/mpi/mnist_mpi" --quick --data "$data" --out "$build/mpi/example"; rc=$?
  acc=$(awk '$1 == "RESULT" && $2 == "mnist_mpi" && $3 == "ranks2" { for (i = 4; i <= NF; i++) if ($i ~ /^test_acc=/) { sub(/test_acc=/, "", $i); print $i } }' "$log")
  rows=$(($(wc -l < "$build/mpi/example/epochs_ranks2.csv" 2>/dev/null || echo 1) - 1))
  if [ $rc -eq 0 ] && [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a >= 60 && a <= 100) }' && [ "$rows" -ge 2 ]; then
    ok "mnist_mpi --quick on 2 ranks: test_acc=$acc, $rows epochs in the CSV ($(($(date +%s) - start)) s)"
  else
    bad "mnist_mpi --quick on 2 ranks: exit $rc, test_acc=$acc, $rows CSV rows"; tail -10 "$log"
  fi
else
  echo "  skip  mnist_mpi --quick: no MNIST in $data (make data)"
fi
finish
