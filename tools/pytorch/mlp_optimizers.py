"""PyTorch reference for examples/mlp_optimizers.c and ce_vs_mse.c (ENGR 510 homework): which
epochs / batch size / input scaling make the report's three optimiser results hold together?

    /usr/bin/python3 tools/pytorch/mlp_optimizers.py [--batch 64] [--epochs 10] [--scale 255]
        [--opt adam1e-3,sgd1e-3,sgd1e-2] [--model a|b] [--seed 0] [--loss ce|mse]

Trains 784-64-32-10 (model a) or 784-256-10 (model b), ReLU, cross-entropy, plain SGD (no
momentum) or Adam, on 1 thread, and prints per epoch: the mean of the epoch's minibatch losses
and accuracy (what a training loop prints) and the loss/accuracy of the whole training set in
eval mode after the epoch."""
import argparse, struct, time
import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)


def load_idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic, = struct.unpack('>I', data[:4])
    ndim = magic & 0xff
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', default='data/mnist')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--scale', type=float, default=255.0, help='divide pixels by this (1 = raw 0..255)')
    p.add_argument('--opt', default='adam1e-3,sgd1e-3,sgd1e-2')
    p.add_argument('--model', default='a')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--loss', default='ce', help='ce (CrossEntropyLoss) or mse (MSELoss(softmax, one-hot): ce_vs_mse)')
    a = p.parse_args()
    x = torch.tensor(load_idx(a.data + '/train-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32) / a.scale
    y = torch.tensor(load_idx(a.data + '/train-labels-idx1-ubyte').astype(np.int64))
    xt = torch.tensor(load_idx(a.data + '/t10k-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32) / a.scale
    yt = torch.tensor(load_idx(a.data + '/t10k-labels-idx1-ubyte').astype(np.int64))
    for name in a.opt.split(','):
        torch.manual_seed(a.seed)
        if a.model == 'a':
            model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        else:
            model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        lr = float(name[-4:])
        opt = torch.optim.Adam(model.parameters(), lr=lr) if name.startswith('adam') else \
            torch.optim.SGD(model.parameters(), lr=lr)
        ce = nn.CrossEntropyLoss()
        if a.loss == 'mse':
            mse = nn.MSELoss()
            loss_fn = lambda out, t: mse(torch.softmax(out, 1), nn.functional.one_hot(t, 10).float())
        else:
            loss_fn = ce
        g = torch.Generator().manual_seed(a.seed)
        t0 = time.time()
        for epoch in range(1, a.epochs + 1):
            perm = torch.randperm(len(x), generator=g)
            model.train()
            ls, correct = 0.0, 0
            for i in range(0, len(x), a.batch):
                idx = perm[i:i + a.batch]
                out = model(x[idx])
                loss = loss_fn(out, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                ls += loss.item() * len(idx)
                correct += (out.argmax(1) == y[idx]).sum().item()
            model.eval()
            with torch.no_grad():
                out = model(x)
                el, ea = loss_fn(out, y).item(), (out.argmax(1) == y).float().mean().item() * 100
                ece = ce(out, y).item()
                tacc = (model(xt).argmax(1) == yt).float().mean().item() * 100
            print(f'{name} loss={a.loss} batch={a.batch} scale={a.scale:g} epoch={epoch} run_loss={ls / len(x):.5f} '
                  f'run_acc={100 * correct / len(x):.3f} train_loss={el:.5f} train_acc={ea:.3f} '
                  f'train_ce={ece:.5f} test_acc={tacc:.2f} t={time.time() - t0:.1f}', flush=True)


if __name__ == '__main__':
    main()
