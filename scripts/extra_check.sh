#!/usr/bin/env bash
# Runs one of make test's extra checks (a make target) and makes sure it is counted: if the
# target does not write build/extra-checks/<name>.summary itself, one line is written for it:
# "<name> 1 0" when it succeeded, "<name> 0 1" when it failed.
# Usage: scripts/extra_check.sh NAME TARGET [BUILD_DIR]
set -u
name=$1 target=$2 build=${3:-build}
summary="$build/extra-checks/$name.summary"
mkdir -p "$build/extra-checks"
rm -f "$summary"
if make --no-print-directory "$target"; then
  [ -s "$summary" ] || echo "$name 1 0" > "$summary"
else
  [ -s "$summary" ] || echo "$name 0 1" > "$summary"
  echo "  FAIL  $name ($target)"
fi
exit 0
