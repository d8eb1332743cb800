#!/usr/bin/python3
"""PyTorch's side of the end-to-end comparison (bench/train_compare.c is nn.h's side;
scripts/bench_compare.sh runs both, one after the other).

Same data, models, hyper-parameters and thread count as the C program:
  mlp_relu     784-64-32-10 ReLU, Adam 1e-3, batch 64      -> epoch time, test accuracy
  mlp_sigmoid  784-64-10 sigmoid, SGD lr 0.1, batch 32     -> epoch time, test accuracy
  lenet        LeNet-5 (conv 6@5x5, max-pool 2, ReLU, conv 16@5x5, max-pool 2, ReLU, 120, 84, 10),
               SGD lr 0.01 momentum 0.9, batch 64          -> epoch time, test accuracy
  resnet18     ResNet-18 for 28x28x1 (BasicBlocks [2,2,2,2], widths 64..512, BN, 3x3 stride-1
               stem, no max-pool, global average pool), SGD lr 0.01 momentum 0.9, batch 64,
               a fixed number of steps after warm-up steps -> training images per second
MNIST is read from the IDX files with numpy and normalised by the training set's mean and
standard deviation (population, in float64), as nn.h's nn_dataset_stats/normalize do. Every
layer keeps PyTorch's default initialisation (nn.h copies those defaults). Only training is
timed: per epoch, the shuffle, batch gathering, forward, backward and update. With
--channels-last the model and every batch are converted with .to(memory_format=
torch.channels_last) (NHWC, the layout oneDNN prefers; the conversion of a batch is timed, as a
user's loop would pay it); the default keeps PyTorch's NCHW. Output, one line per model:
  BENCH pytorch <model> threads=<t> blas_threads=<b> memory_format=<nchw|channels_last> ...
        epoch_seconds=<s> epoch_cpu_seconds=<c> test_acc=<a>
  BENCH pytorch resnet18 threads=<t> blas_threads=<b> memory_format=<f> ... images_per_second=<x> step_cpu_seconds=<c>
(cpu: the process's CPU time, all threads, as in the C program.)
blas_threads records OPENBLAS_NUM_THREADS / OMP_NUM_THREADS as set by the caller (the BLAS
library reads them when it loads, so they must be set in the environment, not here).

Run with the Debian PyTorch: /usr/bin/python3 bench/pytorch/train_compare.py --help
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    dims = magic & 0xFF
    if magic >> 8 != 0x08 or dims not in (1, 3):
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(data_dir, limit):
    xs, ys = [], []
    for prefix in ("train", "t10k"):
        x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte")).astype(np.float32)
        y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        xs.append(x.reshape(-1, 1, 28, 28))
        ys.append(y)
    train64 = xs[0].astype(np.float64)
    mean, std = train64.mean(), train64.std()  # the full training set's, whatever limit keeps
    norm = [torch.from_numpy(((x.astype(np.float64) - mean) / std).astype(np.float32)) for x in xs]
    train_x, test_x = norm
    train_y, test_y = torch.from_numpy(ys[0]), torch.from_numpy(ys[1])
    if limit > 0:
        train_x, train_y = train_x[:limit].contiguous(), train_y[:limit].contiguous()
    return train_x, train_y, test_x, test_y


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, cin = [], 64
        for stage in range(4):
            cout = 64 << stage
            blocks += [BasicBlock(cin, cout, 1 if stage == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        h = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def build(name):
    if name == "mlp_relu":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                              nn.Linear(32, 10))
        return model, torch.optim.Adam(model.parameters(), lr=1e-3), 64
    if name == "mlp_sigmoid":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 10))
        return model, torch.optim.SGD(model.parameters(), lr=0.1), 32
    if name == "lenet":
        model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2),
                              nn.ReLU(), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                              nn.Linear(84, 10))
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 64
    if name == "resnet18":
        model = ResNet18()
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), 64
    raise ValueError(name)


def memory_format(args):
    return torch.channels_last if args.channels_last else torch.contiguous_format


def memory_format_name(args):
    return "channels_last" if args.channels_last else "nchw"


def train_step(model, opt, xb, yb):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    return loss


def blas_threads():
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            return os.environ[var]
    return "default"


def run_fit(name, args, data):
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(args.seed)
    model, opt, batch = build(name)
    fmt = memory_format(args)
    model = model.to(memory_format=fmt)  # in place: opt still holds the same parameters
    n = train_x.shape[0]
    seconds, cpu = [], []
    for epoch in range(args.epochs):
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n)
        loss_sum = torch.zeros(())
        for first in range(0, n, batch):
            idx = perm[first:first + batch]
            xb, yb = train_x.index_select(0, idx).to(memory_format=fmt), train_y.index_select(0, idx)
            loss = train_step(model, opt, xb, yb)
            loss_sum += loss.detach() * xb.shape[0]
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        print(f"[pytorch {name}] epoch {epoch + 1}  train loss {loss_sum.item() / n:.4f}  {seconds[-1]:.2f}s",
              file=sys.stderr)
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, test_x.shape[0], 1000):
            pred = model(test_x[first:first + 1000].to(memory_format=fmt)).argmax(1)
            correct += (pred == test_y[first:first + 1000]).sum().item()
    acc = 100.0 * correct / test_x.shape[0]
    print(f"BENCH pytorch {name} threads={torch.get_num_threads()} blas_threads={blas_threads()} "
          f"memory_format={memory_format_name(args)} epochs={args.epochs} train_samples={n} batch={batch} "
          f"epoch_seconds={sum(seconds) / len(seconds):.3f} epoch_cpu_seconds={sum(cpu) / len(cpu):.3f} "
          f"test_acc={acc:.2f}", flush=True)


def run_steps(name, args, data):
    train_x, train_y = data[0], data[1]
    torch.manual_seed(args.seed)
    model, opt, batch = build(name)
    fmt = memory_format(args)
    model = model.to(memory_format=fmt)
    model.train()
    batches = train_x.shape[0] // batch
    if batches < 1:
        sys.exit(f"train_compare.py: fewer than {batch} training images")
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(args.warmup + args.resnet_steps):
        if step == args.warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        b = step % batches
        loss = train_step(model, opt, train_x[b * batch:(b + 1) * batch].to(memory_format=fmt),
                          train_y[b * batch:(b + 1) * batch])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"[pytorch {name}] {args.resnet_steps} steps in {seconds:.2f}s, last loss {loss.item():.4f}",
          file=sys.stderr)
    print(f"BENCH pytorch {name} threads={torch.get_num_threads()} blas_threads={blas_threads()} "
          f"memory_format={memory_format_name(args)} steps={args.resnet_steps} warmup={args.warmup} batch={batch} "
          f"step_seconds={seconds / args.resnet_steps:.4f} step_cpu_seconds={cpu / args.resnet_steps:.4f} "
          f"images_per_second={args.resnet_steps * batch / seconds:.2f}", flush=True)


MODELS = ("mlp_relu", "mlp_sigmoid", "lenet", "resnet18")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="all", choices=MODELS + ("all",))
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--epochs", type=int, default=1, help="epochs for the MLPs and LeNet (default 1)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N images (default 0: all)")
    p.add_argument("--resnet-steps", type=int, default=10, help="timed ResNet-18 steps (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed ResNet-18 steps before them (default 2)")
    p.add_argument("--data", default="data/mnist", help="MNIST IDX directory (default data/mnist)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--channels-last", action="store_true",
                   help="model and inputs in torch.channels_last (NHWC) instead of NCHW")
    args = p.parse_args()
    if args.threads < 1 or args.epochs < 1 or args.resnet_steps < 1 or args.warmup < 0 or args.limit < 0:
        p.error("counts must be positive")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    data = load_mnist(args.data, args.limit)
    for name in MODELS:
        if args.model not in ("all", name):
            continue
        if name == "resnet18":
            run_steps(name, args, data)
        else:
            run_fit(name, args, data)


if __name__ == "__main__":
    main()
