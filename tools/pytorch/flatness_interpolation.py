"""PyTorch reference for examples/flatness_interpolation.c (Homework 1 HW1-3, flatness part 1): two
784-30-50-10 ReLU MLPs trained with SGD (momentum 0) at batch 100 and batch 500 from different
seeds, inputs = pixels/255, then train/test loss and accuracy of (1-alpha)*theta1 + alpha*theta2
for --points alphas in [-1, 2]. One thread.
Run: /usr/bin/python3 tools/pytorch/flatness_interpolation.py [--lr 1e-3] [--epochs 10]"""
import argparse, os, struct, time
import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
p = argparse.ArgumentParser()
p.add_argument("--data", default="data/mnist")
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--points", type=int, default=50)
p.add_argument("--seed", type=int, default=42)
args = p.parse_args()

def idx(name):
    with open(os.path.join(args.data, name), "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 784).astype(np.float32) / 255.0
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)

xtr, ytr = torch.from_numpy(idx("train-images-idx3-ubyte")), torch.from_numpy(idx("train-labels-idx1-ubyte"))
xte, yte = torch.from_numpy(idx("t10k-images-idx3-ubyte")), torch.from_numpy(idx("t10k-labels-idx1-ubyte"))

def mlp():
    return nn.Sequential(nn.Linear(784, 30), nn.ReLU(), nn.Linear(30, 50), nn.ReLU(), nn.Linear(50, 10))

def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
        return nn.functional.cross_entropy(out, y).item(), 100.0 * (out.argmax(1) == y).float().mean().item()

thetas = []
for k, b in enumerate((100, 500)):
    torch.manual_seed(args.seed + k)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), b):
            j = perm[i : i + b]
            loss = nn.functional.cross_entropy(model(xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    tl, ta = evaluate(model, xtr, ytr)
    vl, va = evaluate(model, xte, yte)
    print(f"PYTORCH flatness_interpolation batch{b} lr={args.lr:g} train_loss={tl:.4f} train_acc={ta:.2f} "
          f"test_loss={vl:.4f} test_acc={va:.2f} seconds={time.time() - t0:.2f}", flush=True)
    thetas.append(nn.utils.parameters_to_vector(model.parameters()).detach().clone())

probe = mlp()
for i in range(args.points):
    alpha = -1.0 + 3.0 * i / (args.points - 1)
    nn.utils.vector_to_parameters((1 - alpha) * thetas[0] + alpha * thetas[1], probe.parameters())
    tl, ta = evaluate(probe, xtr, ytr)
    vl, va = evaluate(probe, xte, yte)
    print(f"alpha={alpha:.4f} train_loss={tl:.4f} train_acc={ta:.2f} test_loss={vl:.4f} test_acc={va:.2f}")
