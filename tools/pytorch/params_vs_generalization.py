"""PyTorch reference for examples/params_vs_generalization.c (Homework 1 HW1-3): 784-h1-h2-10 ReLU
MLPs, Adam, batch 50, inputs scaled to [0, 1], on 1 thread; after training, loss and accuracy on
the whole training and test sets (eval mode), one line per model.

    /usr/bin/python3 tools/pytorch/params_vs_generalization.py [--models 1,2,3] [--epochs 10]
        [--lr 1e-3] [--seed 1]
"""
import argparse, struct, time
import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
WIDTHS = [(5, 9), (25, 50), (50, 100), (60, 120), (100, 200), (150, 300), (200, 400), (250, 500), (280, 560),
          (350, 600)]


def load_idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic, = struct.unpack('>I', data[:4])
    ndim = magic & 0xff
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def evaluate(model, x, y, loss_fn):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out = model(x[i:i + 1000])
            loss += loss_fn(out, y[i:i + 1000]).item() * len(out)
            correct += (out.argmax(1) == y[i:i + 1000]).sum().item()
    model.train()
    return loss / len(x), 100.0 * correct / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', default='data/mnist')
    p.add_argument('--models', default='1,2,3,4')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--batch', type=int, default=50)
    p.add_argument('--seed', type=int, default=1)
    a = p.parse_args()
    x = torch.tensor(load_idx(a.data + '/train-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32) / 255
    y = torch.tensor(load_idx(a.data + '/train-labels-idx1-ubyte').astype(np.int64))
    xt = torch.tensor(load_idx(a.data + '/t10k-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32) / 255
    yt = torch.tensor(load_idx(a.data + '/t10k-labels-idx1-ubyte').astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    for k in [int(v) for v in a.models.split(',')]:
        h1, h2 = WIDTHS[k - 1]
        torch.manual_seed(a.seed)
        model = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 10))
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        t0 = time.time()
        for epoch in range(a.epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), a.batch):
                idx = perm[i:i + a.batch]
                loss = loss_fn(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        tl, ta = evaluate(model, x, y, loss_fn)
        vl, va = evaluate(model, xt, yt, loss_fn)
        print(f'PYTORCH params_vs_generalization model{k} hidden={h1}x{h2} '
              f'params={sum(q.numel() for q in model.parameters())} train_loss={tl:.4f} train_acc={ta:.2f} '
              f'test_loss={vl:.4f} test_acc={va:.2f} epochs={a.epochs} seconds={time.time() - t0:.2f}', flush=True)


if __name__ == '__main__':
    main()
