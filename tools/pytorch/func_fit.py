"""PyTorch reference for examples/func_fit.c (Homework 1 HW1-1): the same three 571-parameter
models, data, optimiser and epochs. Prints one line per model like the example's RESULT line.
Run: /usr/bin/python3 tools/pytorch/func_fit.py [--epochs N] [--seed S] [--function sinc|sign]"""
import argparse, math, time
import torch
import torch.nn as nn

torch.set_num_threads(1)
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=2000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--points", type=int, default=1000)
p.add_argument("--function", default="sinc")
args = p.parse_args()

VARIANTS = [("shallow", [190]), ("medium", [10, 20, 15]), ("deep", [7, 12, 14, 12, 7])]

def target(x):
    s = torch.sin(5 * math.pi * x)
    return torch.sign(s) if args.function == "sign" else s / (5 * math.pi * x)

x = (torch.arange(1, args.points + 1, dtype=torch.float64) / args.points).float().unsqueeze(1)
y = target(x.double()).float()
g = (torch.arange(1, 2001, dtype=torch.float64) / 2000).float().unsqueeze(1)
gy = target(g.double()).float()

for name, widths in VARIANTS:
    torch.manual_seed(args.seed)
    layers, prev = [], 1
    for w in widths:
        layers += [nn.Linear(prev, w), nn.LeakyReLU(0.01)]
        prev = w
    layers.append(nn.Linear(prev, 1))
    model = nn.Sequential(*layers)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-2, weight_decay=1e-4)
    loss_fn = nn.MSELoss()
    t0 = time.time()
    curve = []
    for epoch in range(1, args.epochs + 1):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(loss.item())
    with torch.no_grad():
        final = loss_fn(model(x), y).item()
        grid = loss_fn(model(g), gy).item()
    marks = " ".join(f"e{e}={curve[e - 1]:.4e}" for e in (100, 200, 500, 1000) if e <= len(curve))
    print(f"PYTORCH func_fit {name} params={sum(q.numel() for q in model.parameters())} "
          f"final_loss={final:.4e} grid_loss={grid:.4e} min_loss={min(curve):.4e} {marks} "
          f"seconds={time.time() - t0:.2f}", flush=True)
