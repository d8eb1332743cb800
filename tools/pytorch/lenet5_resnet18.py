"""PyTorch reference for examples/lenet5_resnet18.c (Deep Learning Assignment 1, solution 4).

    /usr/bin/python3 tools/pytorch/lenet5_resnet18.py [--model lenet5|resnet18] [--data data/fashion]
        [--epochs 10] [--steps 0] [--compare-step 100] [--test-count 0] [--seed 0]

The same networks, data and settings as the C example, on 1 thread: Adam lr 1e-3, batch 64,
cross-entropy, inputs (x / 255 - 0.5) / 0.5; LeNet-5 = conv 1->6 5x5 pad 2, ReLU, maxpool 2,
conv 6->16 5x5, ReLU, maxpool 2, dense 400-120-84-10; ResNet-18 = torchvision's BasicBlock
[2,2,2,2] with a 3x3 stride-1 stem and no max-pool, PyTorch's default initialisation.
Prints the loss at --compare-step (the batch's, and the mean of the last 10), then per epoch the
running train loss/accuracy and the test accuracy."""
import argparse, struct, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)


def load_idx(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic, = struct.unpack('>I', data[:4])
    ndim = magic & 0xff
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.f1(x.flatten(1)))
        return self.f3(F.relu(self.f2(x)))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.ba = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bb = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.ba(self.a(x)))
        return F.relu(self.bb(self.b(h)) + self.short(x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for i, w in enumerate([64, 128, 256, 512]):
            for b in range(2):
                layers.append(Block(cin, w, 2 if b == 0 and i > 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--data', default='data/fashion')
    p.add_argument('--model', default='lenet5', choices=['lenet5', 'resnet18'])
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--steps', type=int, default=0)
    p.add_argument('--compare-step', type=int, default=100)
    p.add_argument('--test-count', type=int, default=0)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    prep = lambda x: (torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255 - 0.5) / 0.5
    x = prep(load_idx(a.data + '/train-images-idx3-ubyte'))
    y = torch.tensor(load_idx(a.data + '/train-labels-idx1-ubyte').astype(np.int64))
    xt = prep(load_idx(a.data + '/t10k-images-idx3-ubyte'))
    yt = torch.tensor(load_idx(a.data + '/t10k-labels-idx1-ubyte').astype(np.int64))
    if a.test_count:
        xt, yt = xt[:a.test_count], yt[:a.test_count]
    torch.manual_seed(a.seed)
    model = LeNet5() if a.model == 'lenet5' else ResNet18()
    print(f'{a.model}: {sum(p.numel() for p in model.parameters())} parameters', flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)
    losses, step, t0 = [], 0, time.time()
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(len(x), generator=g)
        model.train()
        ls, correct, seen = 0.0, 0, 0
        for i in range(0, len(x), a.batch):
            idx = perm[i:i + a.batch]
            out = model(x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            ls += loss.item() * len(idx)
            seen += len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
            if step == a.compare_step:
                print(f'{a.model} step={step} step_loss={losses[-1]:.4f} step_loss_mean10={np.mean(losses[-10:]):.4f} '
                      f't={time.time() - t0:.1f}', flush=True)
            if a.steps and step >= a.steps:
                break
        model.eval()
        with torch.no_grad():
            acc = sum((model(xt[j:j + 500]).argmax(1) == yt[j:j + 500]).sum().item() for j in range(0, len(xt), 500))
        print(f'{a.model} epoch={epoch} steps={step} train_loss={ls / seen:.4f} train_acc={100 * correct / seen:.2f} '
              f'test_acc={100 * acc / len(xt):.2f} t={time.time() - t0:.1f}', flush=True)
        if a.steps and step >= a.steps:
            break


if __name__ == '__main__':
    main()
