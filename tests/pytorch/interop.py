#!/usr/bin/python3
"""PyTorch <-> nn.h through safetensors, both directions (make test's `interop` check).

    /usr/bin/python3 tests/pytorch/interop.py export DIR   # PyTorch writes models, inputs, logits
    build/tools/interop_check DIR                          # nn.h loads, compares, trains, saves
    /usr/bin/python3 tests/pytorch/interop.py verify DIR   # PyTorch loads nn.h's files, compares

The networks are the seed networks of bench/models.h and examples/cnn_compare.c, rebuilt here
node for node in nn.h's build order, so that their modules carry nn.h's default node names
(conv2d1, batchnorm3, linear2, ...: a kind and its 1-based count among the nodes of that kind).
The MLP instead uses torch.nn.Sequential's names ("0", "2", "4"), which the C side gives its
layers with nn_set_name: the two ways a user meets.

safetensors is written and read with plain Python (json + struct): no safetensors package.
"""
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
BATCH = 8


class Graph(nn.Module):
    """A network built like nn.h builds it: every call adds one node; nodes with parameters
    become submodules named the way nn.h names them by default."""

    def __init__(self, c, h, w):
        super().__init__()
        self.shape_in = (c, h, w)
        self.program = []  # (kind, module name or None, input ids, settings)
        self.counts = {}
        self.shapes = [(c, h, w)]
        self.program.append(("input", None, (), None))

    def _add(self, kind, module, inputs, settings, shape):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        name = "%s%d" % (kind, self.counts[kind])
        if module is not None:
            self.add_module(name, module)
        self.program.append((kind, name if module is not None else None, inputs, settings))
        self.shapes.append(shape)
        return len(self.program) - 1

    def conv(self, x, out, k, stride, pad, bias):
        c, h, w = self.shapes[x]
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        return self._add("conv2d", nn.Conv2d(c, out, k, stride, pad, bias=bias), (x,), None, (out, oh, ow))

    def bn(self, x):
        return self._add("batchnorm", nn.BatchNorm2d(self.shapes[x][0]), (x,), None, self.shapes[x])

    def linear(self, x, out, bias=True):
        c, h, w = self.shapes[x]
        return self._add("linear", nn.Linear(c * h * w, out, bias=bias), (x,), None, (out, 1, 1))

    def relu(self, x):
        return self._add("relu", None, (x,), None, self.shapes[x])

    def sigmoid(self, x):
        return self._add("sigmoid", None, (x,), None, self.shapes[x])

    def maxpool(self, x, k, s):
        c, h, w = self.shapes[x]
        return self._add("maxpool2d", None, (x,), (k, s), (c, (h - k) // s + 1, (w - k) // s + 1))

    def gap(self, x):
        return self._add("global_avgpool", None, (x,), None, (self.shapes[x][0], 1, 1))

    def flatten(self, x):
        c, h, w = self.shapes[x]
        return self._add("flatten", None, (x,), None, (c * h * w, 1, 1))

    def dropout(self, x, p):
        return self._add("dropout", None, (x,), p, self.shapes[x])

    def add(self, a, b):
        return self._add("add", None, (a, b), None, self.shapes[a])

    def log_softmax(self, x):
        return self._add("log_softmax", None, (x,), None, self.shapes[x])

    def forward(self, x):
        values = []
        for kind, name, inputs, settings in self.program:
            a = values[inputs[0]] if inputs else x
            if kind == "input":
                v = a
            elif kind in ("conv2d", "batchnorm"):
                v = getattr(self, name)(a)
            elif kind == "linear":
                v = getattr(self, name)(torch.flatten(a, 1))
            elif kind == "relu":
                v = F.relu(a)
            elif kind == "sigmoid":
                v = torch.sigmoid(a)
            elif kind == "maxpool2d":
                v = F.max_pool2d(a, settings[0], settings[1])
            elif kind == "global_avgpool":
                v = a.mean(dim=(2, 3), keepdim=True)
            elif kind == "flatten":
                v = torch.flatten(a, 1)
            elif kind == "dropout":
                v = F.dropout(a, settings, self.training)
            elif kind == "add":
                v = a + values[inputs[1]]
            elif kind == "log_softmax":
                v = F.log_softmax(a, dim=1)
            else:
                raise ValueError(kind)
            values.append(v)
        return torch.flatten(values[-1], 1)


def lenet():
    g = Graph(1, 28, 28)
    h = g.relu(g.maxpool(g.conv(0, 6, 5, 1, 0, True), 2, 2))
    h = g.relu(g.maxpool(g.conv(h, 16, 5, 1, 0, True), 2, 2))
    h = g.relu(g.linear(g.flatten(h), 120))
    h = g.relu(g.linear(h, 84))
    g.linear(h, 10)
    return g


def custom_cnn():  # examples/cnn_compare.c's build_custom (seed 001), dropout 0.25
    g = Graph(1, 28, 28)
    h = g.relu(g.conv(0, 32, 3, 1, 0, True))
    h = g.dropout(g.relu(g.maxpool(g.conv(h, 64, 3, 1, 0, True), 2, 2)), 0.25)
    h = g.dropout(g.relu(g.maxpool(g.conv(h, 64, 3, 1, 0, True), 2, 2)), 0.25)
    h = g.dropout(g.relu(g.linear(g.flatten(h), 256)), 0.25)
    g.log_softmax(g.linear(h, 10))
    return g


def resnet18():  # bench/models.h's bm_resnet18
    g = Graph(1, 28, 28)

    def conv_bn(x, out, k, stride, pad):
        return g.bn(g.conv(x, out, k, stride, pad, False))

    def block(x, out, stride):
        h = g.relu(conv_bn(x, out, 3, stride, 1))
        h = conv_bn(h, out, 3, 1, 1)
        shortcut = x
        if stride != 1 or g.shapes[x][0] != out:
            shortcut = conv_bn(x, out, 1, stride, 0)
        return g.relu(g.add(h, shortcut))

    h = g.relu(conv_bn(0, 64, 3, 1, 1))
    for stage in range(4):
        h = block(h, 64 << stage, 1 if stage == 0 else 2)
        h = block(h, 64 << stage, 1)
    g.linear(g.gap(h), 10)
    return g


def mlp():  # bench/models.h's bm_mlp_relu, as a plain nn.Sequential: its linear layers are "1", "3" and "5"
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


MODELS = {"mlp": mlp, "lenet": lenet, "custom_cnn": custom_cnn, "resnet18": resnet18}


DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}
BYTES = {"F32": 4, "I64": 8, "F16": 2, "BF16": 2, "F64": 8}


def save_safetensors(state_dict, path, dtype=None):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in state_dict.items():
        t = t.detach().contiguous().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: its bits through int16
            data = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            data = t.numpy().astype("<" + t.numpy().dtype.str[1:]).tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        kind = {"F32": torch.float32, "I64": torch.int64, "F64": torch.float64, "F16": torch.float16}[entry["dtype"]]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=kind).reshape(entry["shape"])
    return out


def write_floats(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes())


def read_floats(path, shape):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(shape)


def export(directory):
    os.makedirs(directory, exist_ok=True)
    g = torch.Generator().manual_seed(2024)
    for index, (name, build) in enumerate(MODELS.items()):
        torch.manual_seed(100 + index)
        model = build()
        x = torch.rand(BATCH, 1, 28, 28, generator=g)
        # a few training-mode passes so that batch norm's running statistics are not the defaults
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.rand(BATCH, 1, 28, 28, generator=g) * 2.0 - 0.3)
        model.eval()
        with torch.no_grad():
            logits = model(x)
        # ResNet's weights go out in bfloat16, the custom CNN's in float64: the loader converts
        dtype = {"resnet18": torch.bfloat16, "custom_cnn": torch.float64}.get(name)
        if dtype is not None:  # the reference logits are those of the rounded weights
            model.load_state_dict({k: (v.to(dtype).to(v.dtype) if v.is_floating_point() else v)
                                   for k, v in model.state_dict().items()})
            with torch.no_grad():
                logits = model(x)
        save_safetensors(model.state_dict(), os.path.join(directory, name + ".safetensors"), dtype)
        write_floats(os.path.join(directory, name + "_input.bin"), x)
        write_floats(os.path.join(directory, name + "_logits.bin"), logits)
        print("interop export: %s, %d tensors%s" % (name, len(model.state_dict()),
                                                    ", as %s" % str(dtype).split(".")[-1] if dtype else ""))


def verify(directory):
    failures = 0
    for name in ("lenet", "resnet18"):
        path = os.path.join(directory, name + "_trained.safetensors")
        model = MODELS[name]()
        model.load_state_dict(load_safetensors(path), strict=True)
        model.eval()
        x = read_floats(os.path.join(directory, name + "_input.bin"), (BATCH, 1, 28, 28))
        want = read_floats(os.path.join(directory, name + "_trained_logits.bin"), (BATCH, 10))
        with torch.no_grad():
            got = model(x)
        err = ((got - want).abs() / (want.abs() + 1e-3)).max().item()
        ok = torch.allclose(got, want, rtol=1e-4, atol=1e-4)
        print("interop verify: PyTorch runs nn.h's trained %s: largest relative difference %.2e %s"
              % (name, err, "ok" if ok else "FAIL"))
        failures += not ok
    return failures


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "verify"):
        sys.exit("usage: interop.py export|verify DIR")
    if sys.argv[1] == "export":
        export(sys.argv[2])
    else:
        sys.exit(1 if verify(sys.argv[2]) else 0)
