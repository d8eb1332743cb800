"""PyTorch reference for examples/fnn_mnist.c (Deep Learning Assignment 1, question 3):
784-128-64-10 ReLU, inputs ToTensor + Normalize((0.5,), (0.5,)), Adam lr 1e-3, batch 64 reshuffled
each epoch, 10 epochs, CrossEntropyLoss; with logits (fnn) or with the report's softmax output layer
(softmax_output). 1 thread.

    /usr/bin/python3 tools/pytorch/fnn_mnist.py [--epochs 10] [--seed 0] [--variant fnn,softmax_output]
"""
import argparse, struct, time
import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)


def load_idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    ndim = struct.unpack('>I', data[:4])[0] & 0xff
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', default='data/mnist')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--variant', default='fnn,softmax_output')
    a = p.parse_args()

    def images(name):
        x = torch.tensor(load_idx(f'{a.data}/{name}').reshape(-1, 784), dtype=torch.float32) / 255.0
        return (x - 0.5) / 0.5

    x, xt = images('train-images-idx3-ubyte'), images('t10k-images-idx3-ubyte')
    y = torch.tensor(load_idx(f'{a.data}/train-labels-idx1-ubyte').astype(np.int64))
    yt = torch.tensor(load_idx(f'{a.data}/t10k-labels-idx1-ubyte').astype(np.int64))
    for variant in a.variant.split(','):
        torch.manual_seed(a.seed)
        layers = [nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)]
        if variant == 'softmax_output':
            layers.append(nn.Softmax(dim=1))
        model = nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(a.seed)
        t0 = time.time()
        for epoch in range(1, a.epochs + 1):
            perm = torch.randperm(len(x), generator=g)
            ls, correct = 0.0, 0
            for i in range(0, len(x), 64):
                idx = perm[i:i + 64]
                out = model(x[idx])
                loss = loss_fn(out, y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                ls += loss.item() * len(idx)
                correct += (out.argmax(1) == y[idx]).sum().item()
            with torch.no_grad():
                ot = model(xt)
                print(f'{variant} epoch={epoch} run_loss={ls / len(x):.4f} run_acc={100 * correct / len(x):.2f} '
                      f'test_loss={loss_fn(ot, yt).item():.4f} test_acc={(ot.argmax(1) == yt).float().mean().item() * 100:.2f} '
                      f't={time.time() - t0:.1f}', flush=True)
        with torch.no_grad():
            out, ot = model(x), model(xt)
            print(f'FINAL {variant} train_loss={loss_fn(out, y).item():.4f} '
                  f'train_acc={(out.argmax(1) == y).float().mean().item() * 100:.2f} '
                  f'test_loss={loss_fn(ot, yt).item():.4f} test_acc={(ot.argmax(1) == yt).float().mean().item() * 100:.2f} '
                  f'seconds={time.time() - t0:.1f}', flush=True)


if __name__ == '__main__':
    main()
