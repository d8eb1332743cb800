#!/usr/bin/python3
"""Writes tests/fixtures/torch_reference.h: PyTorch's numbers for small networks, which
tests/test_torch.c rebuilds with nn.h and compares against.

Run from anywhere with the Debian PyTorch (python3-torch, installed by `scripts/setup.sh torch`):

    /usr/bin/python3 tests/pytorch/gen_fixtures.py

The output is a deterministic function of this script (fixed torch.Generator seeds, one
thread, float64 arithmetic): running it again rewrites the header byte for byte.

How the numbers are made
------------------------
* Every parameter, input and float target is drawn from a seeded torch.Generator, rounded to
  float32 and written out in full: nn.h copies them into nn_params()/nn_state(), it never uses
  its own initialisation for these tests.
* The reference itself is computed in float64 from those float32 values and only the results
  are rounded to float32, so it is the exact answer for the float32 inputs, not one float32
  rounding path among many. The same cases are also run in float32 PyTorch and the script
  prints (to stderr) how far that lands from the float64 reference, in units of the test's
  tolerance (1e-5 + 1e-4*|expected|): it shows that the tolerance is fair for float32.
* Every ReLU / LeakyReLU input is kept at least MARGIN away from 0 and every max-pool
  window's winner at least MARGIN above the runner-up (checked at every optimiser step too),
  so float32 rounding cannot flip a branch; the script fails if a seed breaks that.

Flat layouts (nn.h's)
---------------------
* params: torch.nn.utils.parameters_to_vector(model.parameters()), i.e. per layer in build
  order weight then bias; Linear weight [out][in], Conv2d [oc][ic][kh][kw], BatchNorm gamma
  then beta.
* state: per BatchNorm layer in build order, running_mean then running_var.
* inputs NCHW; outputs [batch][features] (C, H, W flattened for image outputs).
"""
import io
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)  # nothing below uses the global generator; set anyway

MARGIN = 2e-4
ATOL, RTOL = 1e-5, 1e-4  # the C test's tolerance, used here only for the float32 report

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "torch_reference.h"))


# ------------------------------------------------------------------ writing C
def c_float(v):
    s = "%.9g" % v
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


class Header:
    def __init__(self):
        self.out = io.StringIO()

    def line(self, s=""):
        self.out.write(s + "\n")

    def comment(self, text):
        lines = text.strip("\n").split("\n")
        self.line("/* " + lines[0])
        for l in lines[1:]:
            self.line(("   " + l).rstrip())
        self.out.seek(self.out.tell() - 1)
        self.out.write(" */\n")

    def farr(self, name, t):
        vals = [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]
        self.line("static const float %s[%d] = {" % (name, len(vals)))
        for i in range(0, len(vals), 8):
            self.line("    " + ", ".join(c_float(v) for v in vals[i:i + 8]) + ",")
        self.line("};")

    def iarr(self, name, vals):
        vals = [int(v) for v in vals]
        self.line("static const int %s[%d] = {" % (name, len(vals)))
        for i in range(0, len(vals), 16):
            self.line("    " + ", ".join(str(v) for v in vals[i:i + 16]) + ",")
        self.line("};")

    def fscal(self, name, v):
        self.line("static const float %s = %s;" % (name, c_float(float(torch.tensor(float(v), dtype=torch.float32)))))

    def iscal(self, name, v):
        self.line("static const int %s = %d;" % (name, int(v)))


# ------------------------------------------------------------------ helpers
def gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def f32(t):
    """Round to float32 and come back in float64 (the values nn.h will see, exactly)."""
    return t.to(torch.float32).to(torch.float64)


def uniform(g, n, lo, hi):
    return f32(torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo)


def normal(g, shape, std=1.0):
    return f32(torch.randn(shape, generator=g, dtype=torch.float64) * std)


def init_params(model, g):
    """Explicit values for every parameter, in list(model.parameters()) order (float32-exact)."""
    chunks = []
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            fan_in = mod.weight[0].numel()
            bound = (3.0 / fan_in) ** 0.5  # unit-variance pre-activations for unit inputs
            mod.weight.data.copy_(uniform(g, mod.weight.numel(), -bound, bound).view_as(mod.weight))
            if mod.bias is not None:
                mod.bias.data.copy_(uniform(g, mod.bias.numel(), -0.5, 0.5))
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.weight.data.copy_(uniform(g, mod.weight.numel(), 0.7, 1.3))
            mod.bias.data.copy_(uniform(g, mod.bias.numel(), -0.3, 0.3))
    for p in model.parameters():
        chunks.append(p.detach().reshape(-1))
    return torch.cat(chunks).clone()


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def flat_grads(model):
    return torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()]).clone()


def bn_state(model):
    parts = []
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            parts += [mod.running_mean.detach().clone(), mod.running_var.detach().clone()]
    return torch.cat(parts) if parts else None


def set_state(model, state):
    i = 0
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            n = mod.running_mean.numel()
            mod.running_mean.copy_(state[i:i + n]); i += n
            mod.running_var.copy_(state[i:i + n]); i += n
            mod.num_batches_tracked.zero_()


def load(model, params, state, dtype):
    model = model.to(dtype)
    # clone: vector_to_parameters makes the parameters views of the vector it is given, and
    # an optimiser would then update the caller's copy in place
    torch.nn.utils.vector_to_parameters(params.to(dtype).clone(), model.parameters())
    if state is not None:
        set_state(model, state.to(dtype).clone())
    return model


class Margins:
    """Forward hooks: smallest |x| entering a ReLU/LeakyReLU and smallest max-pool winner gap."""

    def __init__(self, model):
        self.min = float("inf")
        self.handles = []
        for mod in model.modules():
            if isinstance(mod, (nn.ReLU, nn.LeakyReLU)):
                self.handles.append(mod.register_forward_hook(self.relu))
            elif isinstance(mod, nn.MaxPool2d):
                self.handles.append(mod.register_forward_hook(self.maxpool))

    def relu(self, mod, inp, out):
        self.min = min(self.min, inp[0].detach().abs().min().item())

    def maxpool(self, mod, inp, out):
        k, s = mod.kernel_size, mod.stride
        w = inp[0].detach().unfold(2, k, s).unfold(3, k, s)
        w = w.reshape(*w.shape[:4], -1)
        top = w.topk(2, dim=-1).values
        self.min = min(self.min, (top[..., 0] - top[..., 1]).min().item())

    def close(self):
        for h in self.handles:
            h.remove()


def check_margin(name, m):
    if m < MARGIN:
        sys.exit("gen_fixtures: case %s has a branch margin %.3g < %g: change its seed" % (name, m, MARGIN))


def run(model, x, loss_fn, target, name):
    """One train-mode forward + backward. Returns a dict of float64 results."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    mg = Margins(model)
    out = model(x)
    mg.close()
    check_margin(name, mg.min)
    loss = loss_fn(out, target)
    loss.backward()
    r = {"output": out.detach().reshape(out.shape[0], -1).clone(), "loss": loss.detach().clone(),
         "grad": flat_grads(model), "dx": x.grad.detach().clone(), "state": bn_state(model),
         "margin": mg.min}
    if r["state"] is not None:
        model.eval()
        with torch.no_grad():
            r["eval_output"] = model(x.detach()).reshape(out.shape[0], -1).clone()
        model.train()
    return r


REPORT = []  # (case, quantity, worst error in tolerance units) of float32 PyTorch


def report(case, ref, got):
    for key in ("output", "loss", "grad", "dx", "state", "eval_output"):
        if key in ref and ref[key] is not None:
            a = ref[key].to(torch.float64)
            b = got[key].to(torch.float64)
            ratio = ((a - b).abs() / (ATOL + RTOL * a.abs())).max().item()
            REPORT.append((case, key, ratio))


def to_target(t, dtype):
    return t.to(dtype) if t.is_floating_point() else t


def case(h, name, build, x, target, loss_fn, seed, description, state0_default=True):
    """Builds the network, draws its parameters, runs it in float64 (reference) and float32
    (report only), writes the group."""
    g = gen(seed)
    model = build()
    params = init_params(model, g)
    state0 = bn_state(model)
    ref = run(load(build(), params, state0, torch.float64), x, loss_fn, to_target(target, torch.float64), name)
    low = run(load(build(), params, state0, torch.float32), x.to(torch.float32), loss_fn,
              to_target(target, torch.float32), name)
    report(name, ref, low)

    p = "torch_" + name
    h.line()
    h.comment("Case %s: %s\n(smallest ReLU input / max-pool winner gap: %.3g)" % (name, description.strip("\n"), ref["margin"]))
    h.iscal(p + "_batch", x.shape[0])
    h.farr(p + "_params", params)
    if state0 is not None:
        h.farr(p + "_state0", state0)
    h.farr(p + "_x", x)
    if target.is_floating_point():
        h.farr(p + "_targets", target)
    else:
        h.iarr(p + "_labels", target.tolist())
    h.farr(p + "_output", ref["output"])
    h.fscal(p + "_loss", ref["loss"])
    h.farr(p + "_grad", ref["grad"])
    h.farr(p + "_dx", ref["dx"])
    if ref["state"] is not None:
        h.farr(p + "_state", ref["state"])
        h.farr(p + "_eval_output", ref["eval_output"])
    return params, ref


# ------------------------------------------------------------------ networks
class ScaledTanh(nn.Module):
    def forward(self, x):
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class SoftmaxMSE(nn.Module):
    """MSE between softmax(logits) and one-hot labels, mean over batch*classes."""

    def forward(self, logits, labels):
        onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return F.mse_loss(F.softmax(logits, dim=1), onehot)


class ResBlock(nn.Module):
    def __init__(self):
        super().__init__()
        # registration order = nn.h build order = flat parameter order
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.convs = nn.Conv2d(3, 4, 1, bias=False)
        self.bns = nn.BatchNorm2d(4)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        a = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        s = self.bns(self.convs(x))
        return self.fc(torch.flatten(self.pool(self.relu2(a + s)), 1))


def mlp_a():
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def small_mlp(act):
    return lambda: nn.Sequential(nn.Linear(5, 4), act(), nn.Linear(4, 3))


def cnn():
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=1, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4, 5))


def mlp_batchnorm1d():
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


# ------------------------------------------------------------------ custom loss, freezing
FOCAL_GAMMA = 2.0
FOCAL_LR = 0.1


def focal_loss(logits, labels):
    """Mean over the batch of -(1 - p_t)^gamma log p_t, p = softmax(logits) (Lin et al. 2017)."""
    logp = F.log_softmax(logits, dim=1).gather(1, labels.view(-1, 1)).view(-1)
    return (-(1.0 - logp.exp()) ** FOCAL_GAMMA * logp).mean()


def focal_loss_case(h, params, x, y):
    """Case cnn's network and batch under a focal loss (nn.h: NN_LOSS_NONE, the loss and its
    gradient written in the C test, nn_backward_from), then one SGD step."""
    res = {}
    for dtype in (torch.float64, torch.float32):
        model = load(cnn(), params, None, dtype)
        opt = torch.optim.SGD(model.parameters(), lr=FOCAL_LR)
        r = run(model, x.to(dtype), focal_loss, y, "focal_cnn")
        opt.step()
        r["params_after"] = flat_params(model)
        res[dtype] = r
    report("focal_cnn", res[torch.float64], res[torch.float32])
    ref = res[torch.float64]
    p = "torch_focal_cnn"
    h.line()
    h.comment("Case focal_cnn: case cnn's network, torch_cnn_params, _x and _labels under a focal loss,\n"
              "mean over the batch of -(1 - p_t)^gamma log p_t with p = softmax(output), p_t = p[label],\n"
              "gamma = %g; _grad and _dx as in the other cases; _params_after = the parameters after\n"
              "one SGD(lr=%g) step from that gradient." % (FOCAL_GAMMA, FOCAL_LR))
    h.fscal(p + "_gamma", FOCAL_GAMMA)
    h.fscal(p + "_lr", FOCAL_LR)
    h.fscal(p + "_loss", ref["loss"])
    h.farr(p + "_grad", ref["grad"])
    h.farr(p + "_dx", ref["dx"])
    h.farr(p + "_params_after", ref["params_after"])


FREEZE_OPTS = [
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("adam", torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)),
    ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.01)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01, weight_decay=0.01, momentum=0.5)),
]


def freeze_case(h, name, build, params, x, y, frozen, opts, description):
    """3 steps of forward (train) + backward + step on one batch with the Sequential modules at
    indices `frozen` set requires_grad_(False); the optimiser gets every parameter (PyTorch skips
    the ones without a gradient, weight decay included)."""
    h.line()
    h.comment("Freezing case %s: %s\nFrozen: Sequential modules %s (requires_grad_(False)); the optimiser is given all\n"
              "parameters. 3 steps of forward (train) + backward + step on the batch; _<opt>_traj =\n"
              "[3][param_count] flat params after each step%s." %
              (name, description, list(frozen), ", _<opt>_state = the running stats after the 3 steps"
               if bn_state(build()) is not None else ""))
    for opt_name, cls, kw in opts:
        res = {}
        for dtype in (torch.float64, torch.float32):
            model = load(build(), params, bn_state(build()), dtype)
            for i in frozen:
                model[i].requires_grad_(False)
            opt = cls(model.parameters(), **kw)
            traj = []
            model.train()
            for step in range(3):
                opt.zero_grad(set_to_none=True)
                mg = Margins(model)
                out = model(x.to(dtype))
                mg.close()
                check_margin("freeze_%s_%s" % (name, opt_name), mg.min)
                F.cross_entropy(out, y).backward()
                opt.step()
                traj.append(flat_params(model))
            res[dtype] = (torch.stack(traj), bn_state(model))
        traj, state = res[torch.float64]
        for i in frozen:  # the frozen modules did not move
            for q0, q in zip(load(build(), params, None, torch.float64)[i].parameters(), model[i].parameters()):
                assert torch.equal(q0.to(torch.float32), q.detach()), (name, opt_name)
        REPORT.append(("freeze_%s_%s" % (name, opt_name), "traj",
                       ((traj - res[torch.float32][0].double()).abs() / (ATOL + RTOL * traj.abs())).max().item()))
        p = "torch_freeze_%s_%s" % (name, opt_name)
        for key in ("lr", "momentum", "weight_decay"):
            if key in kw:
                h.fscal("%s_%s" % (p, key), kw[key])
        h.farr(p + "_traj", traj)
        if state is not None:
            h.farr(p + "_state", state)


def main():
    h = Header()
    h.comment("""torch_reference.h - PyTorch %s reference values for tests/test_torch.c.
GENERATED by tests/pytorch/gen_fixtures.py - do not edit; rerun the script instead.

Every case lists: _batch, _params (initial flat parameters, nn.h layout: per layer in build
order weight then bias; Linear [out][in], Conv2d [oc][ic][kh][kw], BatchNorm gamma then beta),
_state0/_state (BatchNorm running_mean then running_var per layer, before/after one train
forward), _x (NCHW input), _labels or _targets, _output (train-mode forward, [batch][features]),
_loss (mean reduction), _grad (flat d loss / d params), _dx (d loss / d input), _eval_output
(eval-mode forward after that train forward, BatchNorm cases only).
Reference computed in float64 from the float32 values below, then rounded to float32.""" % torch.__version__)
    h.line("#ifndef NN_TORCH_REFERENCE_H")
    h.line("#define NN_TORCH_REFERENCE_H")

    ce = nn.CrossEntropyLoss()

    # a. mlp_relu_ce ---------------------------------------------------------------------
    g = gen(1000)
    xa = normal(g, (4, 6))
    ya = torch.tensor([0, 2, 1, 2])
    params_a, ref_a = case(h, "mlp_relu_ce", mlp_a, xa, ya, ce, 13,
                       "Linear(6,5)-ReLU-Linear(5,4)-ReLU-Linear(4,3), CrossEntropyLoss,\n"
                       "batch 4, input 6x1x1.")

    # b. activations ----------------------------------------------------------------------
    acts = [("act_sigmoid", nn.Sigmoid, "Sigmoid"),
            ("act_tanh", nn.Tanh, "Tanh"),
            ("act_leaky_relu_001", lambda: nn.LeakyReLU(0.01), "LeakyReLU(0.01)"),
            ("act_leaky_relu_02", lambda: nn.LeakyReLU(0.2), "LeakyReLU(0.2)"),
            ("act_scaled_tanh", ScaledTanh, "1.7159*tanh(2x/3) (nn_scaled_tanh)")]
    for i, (name, act, text) in enumerate(acts):
        g = gen(2000 + i)
        x = normal(g, (4, 5), 1.5)
        y = torch.randint(0, 3, (4,), generator=g)
        case(h, name, small_mlp(act), x, y, ce, 10 + i,
             "Linear(5,4)-%s-Linear(4,3), CrossEntropyLoss, batch 4." % text)

    g = gen(2100)
    x = normal(g, (4, 5), 1.5)
    y = torch.tensor([1, 0, 2, 1])
    _, ref = case(h, "softmax_mse", small_mlp(nn.ReLU), x, y, SoftmaxMSE(), 20,
         "Linear(5,4)-ReLU-Linear(4,3), then MSELoss(softmax(logits), one_hot(labels)), mean\n"
         "over batch*classes = 12 elements (nn.h: NN_LOSS_SOFTMAX_MSE on the logits; equally\n"
         "nn_softmax + NN_LOSS_MSE against one-hot targets). _output = the logits;\n"
         "_probs = softmax(logits); _onehot = the one-hot float targets.")
    # the same case's softmax output and one-hot targets, for the nn_softmax + MSE variant
    h.farr("torch_softmax_mse_probs", F.softmax(ref["output"], dim=1))
    h.farr("torch_softmax_mse_onehot", F.one_hot(y, 3).to(torch.float64))

    g = gen(2200)
    x = normal(g, (4, 5), 1.5)
    y = torch.tensor([2, 2, 0, 1])
    case(h, "log_softmax_nll", lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3), nn.LogSoftmax(dim=1)),
         x, y, nn.NLLLoss(), 30,
         "Linear(5,4)-Tanh-Linear(4,3)-LogSoftmax(dim=1), NLLLoss (nn.h: nn_log_softmax,\n"
         "NN_LOSS_NLL), batch 4. _output = the log-probabilities.")

    g = gen(2300)
    x = uniform(g, 8, -2.0, 2.0).view(8, 1)
    t = f32(torch.sin(2.0 * x) + 0.5 * x)
    case(h, "mse_regression", lambda: nn.Sequential(nn.Linear(1, 8), nn.LeakyReLU(0.01), nn.Linear(8, 1)),
         x, t, nn.MSELoss(), 40,
         "Linear(1,8)-LeakyReLU(0.01)-Linear(8,1), MSELoss against float targets\n"
         "(NN_LOSS_MSE, mean over all elements), batch 8, input 1x1x1.")

    # c. cnn ------------------------------------------------------------------------------
    g = gen(3000)
    x = normal(g, (3, 2, 9, 9))
    y = torch.tensor([4, 0, 2])
    params_cnn, _ = case(h, "cnn", cnn, x, y, ce, 50,
        "input 3 x 2x9x9: Conv2d(2,3,3,stride=1,padding=1) -> 3x9x9, MaxPool2d(2) -> 3x4x4\n"
        "(the odd last row/column is dropped), ReLU, Conv2d(3,4,3,stride=2,padding=1) -> 4x2x2,\n"
        "ReLU, AvgPool2d(2) -> 4x1x1, Flatten, Linear(4,5), CrossEntropyLoss.")
    focal_loss_case(h, params_cnn, x, y)
    g = gen(3100)
    x = normal(g, (2, 2, 7, 10))
    t = normal(g, (2, 60), 0.5)
    case(h, "conv_nobias", lambda: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False), nn.Flatten()),
         x, t, nn.MSELoss(), 60,
         "input 2 x 2x7x10: Conv2d(2,3,3,stride=2,padding=1,bias=False) -> 3x4x5 (the width's\n"
         "last padded column is dropped), Flatten, MSELoss against float targets [2][60]\n"
         "(NN_LOSS_MSE, mean over the 120 elements).")

    # d. batch norm -----------------------------------------------------------------------
    g = gen(4000)
    x = normal(g, (4, 3, 6, 6))
    y = torch.tensor([1, 0, 2, 1])
    case(h, "resblock", ResBlock, x, y, ce, 70,
         "input 4 x 3x6x6, train mode: a = BN2(Conv2(ReLU(BN1(Conv1(x))))) with\n"
         "Conv1 = Conv2d(3,4,3,padding=1,bias=False), Conv2 = Conv2d(4,4,3,padding=1,bias=False);\n"
         "shortcut s = BNs(Convs(x)), Convs = Conv2d(3,4,1,bias=False); then ReLU(a + s),\n"
         "AdaptiveAvgPool2d(1) (global average pool), Flatten, Linear(4,3), CrossEntropyLoss.\n"
         "BatchNorm2d(4): momentum 0.1, eps 1e-5, running_var updated with the unbiased batch\n"
         "variance. Build / parameter order: Conv1, BN1, Conv2, BN2, Convs, BNs, Linear.\n"
         "_state0 = PyTorch's initial running stats (mean 0, var 1); _state after the train\n"
         "forward; _eval_output = eval-mode forward of the same input with those stats.")

    g = gen(4100)
    x = normal(g, (6, 6))
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    params_bn, _ = case(h, "mlp_batchnorm1d", mlp_batchnorm1d, x, y, ce, 80,
         "Linear(6,5)-BatchNorm1d(5)-ReLU-Linear(5,3), CrossEntropyLoss, batch 6, train mode\n"
         "(momentum 0.1, eps 1e-5, unbiased running_var); _eval_output as for resblock.")
    x_bn, y_bn = x, y

    # e. optimisers (case a's network and batch) -------------------------------------------
    h.line()
    h.comment("Optimisers: case mlp_relu_ce's network, initial torch_mlp_relu_ce_params and batch\n"
              "(torch_mlp_relu_ce_x, _labels); 3 steps of forward (train) + backward + step on the\n"
              "same batch. _traj = [3][param_count] flat params after each step; _losses = the\n"
              "loss before each step (mean reduction unless said).")
    opts = [
        ("sgd", torch.optim.SGD, dict(lr=0.1), "SGD(lr=0.1)"),
        ("sgd_momentum", torch.optim.SGD, dict(lr=0.1, momentum=0.9), "SGD(lr=0.1, momentum=0.9)"),
        ("sgd_nesterov_wd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
         "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)"),
        ("sgd_dampening_wd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01),
         "SGD(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)"),
        ("adam", torch.optim.Adam, dict(lr=0.01), "Adam(lr=0.01), betas (0.9, 0.999), eps 1e-8"),
        ("adam_wd", torch.optim.Adam, dict(lr=0.01, weight_decay=0.01),
         "Adam(lr=0.01, weight_decay=0.01) (L2 added to the gradient)"),
        ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.01),
         "AdamW(lr=0.01, weight_decay=0.01) (decoupled decay)"),
        ("rmsprop", torch.optim.RMSprop, dict(lr=0.01), "RMSprop(lr=0.01), alpha 0.99, eps 1e-8"),
        ("rmsprop_wd_momentum", torch.optim.RMSprop, dict(lr=0.01, weight_decay=0.01, momentum=0.5),
         "RMSprop(lr=0.01, weight_decay=0.01, momentum=0.5)"),
        ("sgd_sum", torch.optim.SGD, dict(lr=0.1),
         "SGD(lr=0.1) with CrossEntropyLoss(reduction='sum') (nn.h: NN_GRAD_SUM); _grad = the\n"
         "first step's flat gradient of the summed loss; _losses = the mean loss before each\n"
         "step, _losses_sum = the summed loss (= batch * mean)"),
    ]
    for name, cls, kw, text in opts:
        reduction = "sum" if name.endswith("_sum") else "mean"
        res = {}
        for dtype in (torch.float64, torch.float32):
            model = load(mlp_a(), params_a, None, dtype)
            opt = cls(model.parameters(), **kw)
            lossf = nn.CrossEntropyLoss(reduction=reduction)
            traj, losses, first_grad = [], [], None
            for step in range(3):
                opt.zero_grad(set_to_none=True)
                mg = Margins(model)
                out = model(xa.to(dtype))
                mg.close()
                check_margin("opt_" + name, mg.min)
                loss = lossf(out, ya)
                loss.backward()
                if first_grad is None:
                    first_grad = flat_grads(model)
                losses.append(loss.detach().clone())
                opt.step()
                traj.append(flat_params(model))
            res[dtype] = (torch.stack(traj), torch.stack(losses), first_grad)
        traj, losses, first_grad = res[torch.float64]
        # every trajectory starts from case a: same first loss (guards against shared storage)
        first = losses[0] / (xa.shape[0] if reduction == "sum" else 1)
        assert abs(first.item() - ref_a["loss"].item()) < 1e-12, name
        lt, ll, lg = res[torch.float32]
        REPORT.append(("opt_" + name, "traj", ((traj - lt.double()).abs() / (ATOL + RTOL * traj.abs())).max().item()))
        p = "torch_opt_" + name
        h.line()
        h.comment("%s: %s." % (p, text))
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            if key in kw:
                h.fscal("%s_%s" % (p, key), kw[key])
        if "nesterov" in kw:
            h.iscal(p + "_nesterov", 1)
        h.farr(p + "_traj", traj)
        if reduction == "sum":
            h.farr(p + "_losses", losses / xa.shape[0])
            h.farr(p + "_losses_sum", losses)
            h.farr(p + "_grad", first_grad)
        else:
            h.farr(p + "_losses", losses)

    # f. freezing ---------------------------------------------------------------------------
    freeze_case(h, "mlp_middle", mlp_a, params_a, xa, ya, [2], FREEZE_OPTS,
                "case mlp_relu_ce's network, parameters and batch, the middle\n"
                "Linear(5,4) frozen: its input gradient still flows to the first layer.")
    freeze_case(h, "mlp_first", mlp_a, params_a, xa, ya, [0], FREEZE_OPTS,
                "case mlp_relu_ce's network, parameters and batch, the first\n"
                "Linear(6,5) frozen (nn.h skips its backward altogether).")
    freeze_case(h, "batchnorm1d", mlp_batchnorm1d, params_bn, x_bn, y_bn, [1], FREEZE_OPTS[:1],
                "case mlp_batchnorm1d's network, parameters and batch, the\n"
                "BatchNorm1d frozen: gamma and beta stay, its running statistics still move in train mode.")

    h.line()
    h.line("#endif /* NN_TORCH_REFERENCE_H */")
    text = h.out.getvalue()
    with open(OUT + ".tmp", "w") as f:
        f.write(text)
    os.replace(OUT + ".tmp", OUT)

    sys.stderr.write("wrote %s (%d bytes)\n" % (OUT, len(text)))
    sys.stderr.write("float32 PyTorch vs the float64 reference, worst |diff| / (%g + %g*|ref|):\n" % (ATOL, RTOL))
    for c, k, r in REPORT:
        sys.stderr.write("  %-28s %-12s %.3g\n" % (c, k, r))


# ------------------------------------------------------------------ bf16 autocast (issue 19)
OUT_BF16 = os.path.normpath(os.path.join(HERE, "..", "fixtures", "torch_bf16.h"))
BF16_LR = 0.1
BF16_TOL = 2.0 ** -6  # the C test's tolerance, relative to each quantity's largest magnitude


def bf16_cnn():
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, stride=1, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 10))


def bf(t):
    """nn_bf16_round of the float32 value of t, back in t's dtype."""
    return t.to(torch.float32).to(torch.bfloat16).to(t.dtype)


class Bf16Conv(torch.autograd.Function):
    """nn.h's bf16 conv: x, w and (in backward) dy rounded to bf16; bias and its gradient not."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding):
        xr, wr = bf(x), bf(w)
        ctx.save_for_backward(xr, wr)
        ctx.conf = (x.shape, w.shape, stride, padding)
        return F.conv2d(xr, wr, b, stride, padding)

    @staticmethod
    def backward(ctx, gy):
        xr, wr = ctx.saved_tensors
        xs, ws, stride, padding = ctx.conf
        g = bf(gy)
        return (torch.nn.grad.conv2d_input(xs, wr, g, stride, padding),
                torch.nn.grad.conv2d_weight(xr, ws, g, stride, padding), gy.sum((0, 2, 3)), None, None)


class Bf16Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        xr, wr = bf(x), bf(w)
        ctx.save_for_backward(xr, wr)
        return xr @ wr.t() + b

    @staticmethod
    def backward(ctx, gy):
        xr, wr = ctx.saved_tensors
        g = bf(gy)
        return g @ wr, g.t() @ xr, gy.sum(0)


def nnh_bf16_step(model, x, y):
    """nn.h's bf16 mode emulated in float64 (the products' inputs rounded, nothing else)."""
    model.zero_grad(set_to_none=True)
    h = x
    for mod in model:
        if isinstance(mod, nn.Conv2d):
            h = Bf16Conv.apply(h, mod.weight, mod.bias, mod.stride, mod.padding)
        elif isinstance(mod, nn.Linear):
            h = Bf16Linear.apply(h, mod.weight, mod.bias)
        else:
            h = mod(h)
    loss = F.cross_entropy(h, y)
    loss.backward()
    return h.detach().clone(), loss.detach().clone(), flat_grads(model)


def bf16_margin(model, x):
    """Under autocast, the smallest ReLU input relative to 2^-10 of the layer's largest and the
    smallest max-pool winner gap relative to 2^-7 of the winner: below 1, bf16 rounding of the
    outputs (which PyTorch does and nn.h does not) could flip a branch or make a tie."""
    worst = [float("inf")]

    def relu(mod, inp, out):
        v = inp[0].detach().float()
        worst[0] = min(worst[0], (v.abs() / (2.0 ** -10 * v.abs().max())).min().item())

    def pool(mod, inp, out):
        k, s = mod.kernel_size, mod.stride
        w = inp[0].detach().float().unfold(2, k, s).unfold(3, k, s)
        top = w.reshape(*w.shape[:4], -1).topk(2, dim=-1).values
        worst[0] = min(worst[0], ((top[..., 0] - top[..., 1]) / (2.0 ** -7 * top[..., 0].abs())).min().item())

    hs = [m.register_forward_hook(relu if isinstance(m, nn.ReLU) else pool)
          for m in model if isinstance(m, (nn.ReLU, nn.MaxPool2d))]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    for hd in hs:
        hd.remove()
    return worst[0]


def bf16_main():
    for seed in range(3000, 3100):
        g = gen(seed)
        params = init_params(bf16_cnn(), g)
        x = normal(g, (4, 2, 8, 8)).to(torch.float32)
        y = torch.randint(0, 10, (4,), generator=g)
        if bf16_margin(load(bf16_cnn(), params, None, torch.float32), x) >= 1.0:
            break
    else:
        sys.exit("gen_fixtures: no seed in 3000..3099 keeps the bf16 CNN's branches apart")
    # PyTorch's autocast: float32 model, the step under torch.autocast
    model = load(bf16_cnn(), params, None, torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=BF16_LR)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = F.cross_entropy(out, y)
    loss.backward()
    grad = flat_grads(model)
    opt.step()
    after = flat_params(model)
    # how far float32 and nn.h's bf16 semantics (float64 emulation) land from it
    ref = {"output": out.detach().float().double(), "loss": loss.detach().double().reshape(1),
           "grad": grad.double(), "params": after.double()}
    f32m = load(bf16_cnn(), params, None, torch.float64)
    o, l = f32m(x.double()), None
    l = F.cross_entropy(o, y)
    l.backward()
    fp = {"output": o.detach(), "loss": l.detach().reshape(1), "grad": flat_grads(f32m)}
    fp["params"] = params - BF16_LR * fp["grad"]
    em = load(bf16_cnn(), params, None, torch.float64)
    eo, el, eg = nnh_bf16_step(em, x.double(), y)
    emu = {"output": eo, "loss": el.reshape(1), "grad": eg, "params": params - BF16_LR * eg}

    h = Header()
    h.comment("""torch_bf16.h - PyTorch %s bf16 autocast reference for tests/test_bf16.c.
GENERATED by tests/pytorch/gen_fixtures.py - do not edit; rerun the script instead.

One SGD(lr=%g) step of Conv2d(2,6,3,p1)-MaxPool2d(2)-ReLU-Conv2d(6,8,3,s2,p1)-ReLU-Flatten-
Linear(32,10), CrossEntropyLoss, batch 4, input 2x8x8, the forward and the loss under
torch.autocast("cpu", dtype=torch.bfloat16) (seed %d). _params: before the step, nn.h layout;
_output: the logits (bf16 in PyTorch); _grad: the float32 .grad; _after: the parameters after
the step. PyTorch rounds every conv/linear OUTPUT to bf16 too and keeps the activations in bf16,
nn.h keeps them in float: the two agree to under 2^-7 of each quantity's largest magnitude
(gen_fixtures.py prints it, emulating nn.h's rounding in float64); the test allows 2^-6.""" % (torch.__version__, BF16_LR, seed))
    h.line("#ifndef NN_TORCH_BF16_H")
    h.line("#define NN_TORCH_BF16_H")
    h.fscal("torch_bf16_lr", BF16_LR)
    h.fscal("torch_bf16_tolerance", BF16_TOL)
    h.iscal("torch_bf16_batch", 4)
    h.farr("torch_bf16_params", params)
    h.farr("torch_bf16_x", x)
    h.iarr("torch_bf16_labels", y.tolist())
    h.farr("torch_bf16_output", ref["output"])
    h.fscal("torch_bf16_loss", ref["loss"][0])
    h.farr("torch_bf16_grad", ref["grad"])
    h.farr("torch_bf16_after", ref["params"])
    h.line()
    h.line("#endif /* NN_TORCH_BF16_H */")
    text = h.out.getvalue()
    with open(OUT_BF16 + ".tmp", "w") as f:
        f.write(text)
    os.replace(OUT_BF16 + ".tmp", OUT_BF16)
    sys.stderr.write("wrote %s: autocast against float64 and nn.h's bf16 emulated, worst |diff| / max|autocast| "
                     "(the C test allows %.3g):\n" % (OUT_BF16, BF16_TOL))
    for key in ("output", "loss", "grad", "params"):
        scale = ref[key].abs().max().item()
        d32 = (fp[key] - ref[key]).abs().max().item() / scale
        dem = (emu[key] - ref[key]).abs().max().item() / scale
        sys.stderr.write("  %-8s float %.3g   nn.h bf16 %.3g\n" % (key, d32, dem))
        if dem > BF16_TOL / 2:
            sys.exit("gen_fixtures: nn.h's bf16 semantics land %.3g from autocast on %s, over half the tolerance" % (dem, key))


if __name__ == "__main__":
    main()
    bf16_main()
