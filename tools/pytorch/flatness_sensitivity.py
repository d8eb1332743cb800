"""PyTorch reference for examples/flatness_sensitivity.c (Homework 1 HW1-3, flatness part 2): a
784-20-30-10 ReLU MLP, SGD (momentum 0), inputs = pixels/255, one model per batch size, all from
the same initial weights; then test loss/accuracy and the sensitivity
    sensitivity = sqrt(mean_i |d loss_i / d x_i|^2),  frobenius = sqrt(sum_i |d loss_i / d x_i|^2)
over the 10 000 test images (the per-sample gradients are taken as the gradient of the SUM of the
per-sample losses, which is exactly d loss_i / d x_i row by row). One thread.
Run: /usr/bin/python3 tools/pytorch/flatness_sensitivity.py [--epochs N] [--batch-sizes 5,25,...]"""
import argparse, os, struct, time
import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
p = argparse.ArgumentParser()
p.add_argument("--data", default="data/mnist")
p.add_argument("--epochs", type=int, default=50)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--batch-sizes", default="5,25,50,100,200")
p.add_argument("--train-size", type=int, default=60000)
p.add_argument("--seed", type=int, default=42)
args = p.parse_args()

def idx(name):
    with open(os.path.join(args.data, name), "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 2051:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 784).astype(np.float32) / 255.0
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)

xtr = torch.from_numpy(idx("train-images-idx3-ubyte"))[: args.train_size]
ytr = torch.from_numpy(idx("train-labels-idx1-ubyte"))[: args.train_size]
xte = torch.from_numpy(idx("t10k-images-idx3-ubyte"))
yte = torch.from_numpy(idx("t10k-labels-idx1-ubyte"))

def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
        return nn.functional.cross_entropy(out, y).item(), 100.0 * (out.argmax(1) == y).float().mean().item()

def frobenius(model, x, y):
    x = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g.double().pow(2).sum().sqrt().item()

torch.manual_seed(args.seed)
init = nn.Sequential(nn.Linear(784, 20), nn.ReLU(), nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
for b in [int(v) for v in args.batch_sizes.split(",")]:
    model = nn.Sequential(nn.Linear(784, 20), nn.ReLU(), nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))
    model.load_state_dict(init.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed + b)
    t0 = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), b):
            j = perm[i : i + b]
            loss = nn.functional.cross_entropy(model(xtr[j]), ytr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    tl, ta = evaluate(model, xtr, ytr)
    vl, va = evaluate(model, xte, yte)
    f = frobenius(model, xte, yte)
    print(f"PYTORCH flatness_sensitivity batch{b} sensitivity={f / len(xte) ** 0.5:.4f} frobenius={f:.4f} "
          f"train_loss={tl:.4f} train_acc={ta:.2f} test_loss={vl:.4f} test_acc={va:.2f} seconds={time.time() - t0:.2f}",
          flush=True)
