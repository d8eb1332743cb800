# Helpers for tests/examples/<name>.sh. Each check script runs one example with --quick and
# calls these; a failed check prints why and makes the script exit non-zero.
# Provided by scripts/test_examples.sh: $BIN (the build/examples dir), $DATA, $OUT (a scratch dir).
fails=0
fail() { echo "    check failed: $*"; fails=$((fails + 1)); }

# run NAME ARGS... : runs the example, keeping stdout in $OUT/NAME.stdout; fails on non-zero exit
run() {
  local name=$1; shift
  if ! "$BIN/$name" --data "$DATA" --out "$OUT/$name" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr"; then
    fail "$name $* exited with status $?"; tail -5 "$OUT/$name.stderr"; return 1
  fi
}

# value NAME VARIANT KEY : the value of KEY on the "RESULT NAME VARIANT ..." line (empty if absent)
value() {
  awk -v n="$1" -v v="$2" -v k="$3" '$1 == "RESULT" && $2 == n && $3 == v {
    for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) { print kv[2]; exit } } }' "$OUT/$1.stdout"
}

# has NAME VARIANT KEY... : the RESULT line exists and has every key
has() {
  local name=$1 variant=$2; shift 2
  grep -q "^RESULT $name $variant " "$OUT/$name.stdout" || { fail "no RESULT line for $name $variant"; return; }
  for key in "$@"; do [ -n "$(value "$name" "$variant" "$key")" ] || fail "RESULT $name $variant has no $key="; done
}

# between NAME VARIANT KEY LOW HIGH : LOW <= value <= HIGH (finite)
between() {
  local v; v=$(value "$1" "$2" "$3")
  awk -v x="$v" -v lo="$4" -v hi="$5" 'BEGIN { exit !(x != "" && x == x + 0 && x >= lo && x <= hi) }' ||
    fail "$1 $2 $3=$v is not in [$4, $5]"
}

# equals NAME VARIANT KEY EXPECTED : exact string match
equals() {
  local v; v=$(value "$1" "$2" "$3")
  [ "$v" = "$4" ] || fail "$1 $2 $3=$v, expected $4"
}

# csv_rows FILE MIN : the CSV under $OUT has a header and at least MIN data rows
csv_rows() {
  [ -f "$OUT/$1" ] || { fail "missing CSV $1"; return; }
  local n; n=$(($(wc -l < "$OUT/$1") - 1))
  [ "$n" -ge "$2" ] || fail "$1 has $n rows, expected at least $2"
}

finish() { exit $((fails > 0)); }
