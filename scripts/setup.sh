#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing. Quiet when all is there.
# Usage: scripts/setup.sh GROUP...   groups: build test neon windows bench torch plots mpi fuzz
set -eu
want=()
for group in "$@"; do
  case "$group" in
    build) want+=(gcc g++ clang make) ;;
    test)  want+=(gcc g++ clang make libcmocka-dev valgrind) ;;
    neon)  want+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user) ;;
    windows) want+=(gcc-mingw-w64-x86-64 wine64 wine) ;;
    bench) want+=(g++ libbenchmark-dev libopenblas-dev libdnnl-dev) ;;
    torch) want+=(python3-torch python3-numpy) ;;
    plots) want+=(gnuplot-nox) ;;
    mpi)   want+=(libopenmpi-dev openmpi-bin) ;;
    fuzz)  want+=(clang libclang-rt-14-dev) ;;
    data)  command -v npm >/dev/null || want+=(npm) ;;
    *) echo "setup.sh: unknown group '$group'" >&2; exit 2 ;;
  esac
done
missing=()
for pkg in ${want[@]+"${want[@]}"}; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup.sh: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
