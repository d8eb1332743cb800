"""PyTorch reference for examples/weight_pca.c (Homework 1 HW1-2): the report notebook's
784-10-20-10 ReLU MLP, Adam lr 4e-4 / weight decay 1e-4, batch 1000, 45 epochs, inputs in [0, 1],
weights (no biases) collected every 3 epochs; PCA (numpy SVD, scikit-learn's sign convention) of all
runs' snapshots together, for the whole model and for the first layer. 1 thread.

    /usr/bin/python3 tools/pytorch/weight_pca.py [--runs 8] [--epochs 45] [--seed 1]
"""
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


def evr2(rows):
    c = rows.astype(np.float64) - rows.mean(0)
    s = np.linalg.svd(c, compute_uv=False) ** 2
    return s[:2] / s.sum()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', default='data/mnist')
    p.add_argument('--runs', type=int, default=8)
    p.add_argument('--epochs', type=int, default=45)
    p.add_argument('--seed', type=int, default=1)
    a = p.parse_args()
    x = torch.tensor(load_idx(a.data + '/train-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32) / 255
    y = torch.tensor(load_idx(a.data + '/train-labels-idx1-ubyte').astype(np.int64))
    xt = torch.tensor(load_idx(a.data + '/t10k-images-idx3-ubyte').reshape(-1, 784), dtype=torch.float32) / 255
    yt = torch.tensor(load_idx(a.data + '/t10k-labels-idx1-ubyte').astype(np.int64))
    loss_fn = nn.CrossEntropyLoss()
    snaps = []
    for r in range(a.runs):
        torch.manual_seed(a.seed + r)
        model = nn.Sequential(nn.Linear(784, 10), nn.ReLU(), nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 10))
        opt = torch.optim.Adam(model.parameters(), lr=4e-4, weight_decay=1e-4)
        t0 = time.time()
        for epoch in range(1, a.epochs + 1):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 1000):
                idx = perm[i:i + 1000]
                loss = loss_fn(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch % 3 == 0:
                snaps.append(np.concatenate([m.weight.detach().numpy().ravel() for m in model if isinstance(m, nn.Linear)]))
        with torch.no_grad():
            out = model(xt)
            acc = 100.0 * (out.argmax(1) == yt).float().mean().item()
            tl = loss_fn(out, yt).item()
        print(f'PYTORCH weight_pca run{r + 1} final_acc={acc:.2f} final_loss={tl:.4f} seconds={time.time() - t0:.2f}',
              flush=True)
    s = np.stack(snaps)
    w, l1 = evr2(s), evr2(s[:, :7840])
    print(f'PYTORCH weight_pca pca snapshots={len(s)} weights={s.shape[1]} whole_evr1={w[0]:.4f} whole_evr2={w[1]:.4f} '
          f'layer1_evr1={l1[0]:.4f} layer1_evr2={l1[1]:.4f}')


if __name__ == '__main__':
    main()
