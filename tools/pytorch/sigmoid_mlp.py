"""PyTorch reference for examples/sigmoid_mlp.c (Project 3, part 1).

    /usr/bin/python3 tools/pytorch/sigmoid_mlp.py [--grad mean|sum] [--epochs 100] [--train 50000]
        [--scale 255 | --normalize] [--lr 1e-3] [--batch 256] [--seed 0] [--every 10]

784-64-10, sigmoid hidden layer, softmax + cross-entropy, weights N(0, 0.1^2), biases 0, plain SGD,
on 1 thread; MNIST's first 50 000 training images train (--train N: the first N of them), the last
10 000 validate. --grad sum uses CrossEntropyLoss(reduction='sum'), the report's per-sample
gradients added over the batch without dividing. Prints train/validation accuracy (whole sets,
eval mode, end of epoch) every --every epochs and the final test accuracy."""
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
    p.add_argument('--grad', default='mean', choices=['mean', 'sum'])
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--train', type=int, default=50000)
    p.add_argument('--scale', type=float, default=255.0)
    p.add_argument('--normalize', action='store_true', help='(x - mean) / std of the training pixels')
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--batch', type=int, default=256)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--every', type=int, default=10)
    a = p.parse_args()
    xa = torch.tensor(load_idx(a.data + '/train-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32)
    ya = torch.tensor(load_idx(a.data + '/train-labels-idx1-ubyte').astype(np.int64))
    xt = torch.tensor(load_idx(a.data + '/t10k-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32)
    yt = torch.tensor(load_idx(a.data + '/t10k-labels-idx1-ubyte').astype(np.int64))
    if a.normalize:
        m, s = xa.mean(), xa.std()
        xa, xt = (xa - m) / s, (xt - m) / s
    else:
        xa, xt = xa / a.scale, xt / a.scale
    x, y = xa[:a.train], ya[:a.train]
    xv, yv = xa[50000:], ya[50000:]
    torch.manual_seed(a.seed)
    model = nn.Sequential(nn.Linear(784, 64), nn.Sigmoid(), nn.Linear(64, 10))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.normal_(0.0, 0.1)
            layer.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = nn.CrossEntropyLoss(reduction=a.grad)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), a.batch):
            idx = perm[i:i + a.batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % a.every == 0 or epoch == a.epochs:
            with torch.no_grad():
                tr = (model(x).argmax(1) == y).float().mean().item() * 100
                va = (model(xv).argmax(1) == yv).float().mean().item() * 100
            print(f'grad={a.grad} train={a.train} epoch={epoch} train_acc={tr:.2f} val_acc={va:.2f} '
                  f't={time.time() - t0:.1f}', flush=True)
    with torch.no_grad():
        te = (model(xt).argmax(1) == yt).float().mean().item() * 100
    print(f'grad={a.grad} train={a.train} epochs={a.epochs} test_acc={te:.2f} seconds={time.time() - t0:.1f}')


if __name__ == '__main__':
    main()
