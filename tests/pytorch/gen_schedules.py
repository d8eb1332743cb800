#!/usr/bin/python3
"""Writes tests/fixtures/torch_schedules.h: PyTorch's learning-rate schedules and gradient
clipping, which tests/test_schedules.c replays with nn.h and compares against.

Run from anywhere with the Debian PyTorch (python3-torch, installed by `scripts/setup.sh torch`):

    /usr/bin/python3 tests/pytorch/gen_schedules.py

The output is a deterministic function of this script (fixed generator seeds, fixed metric
sequences): running it again rewrites the header byte for byte.

Schedules
---------
Each case builds torch.optim.lr_scheduler objects on an optimizer over one dummy parameter and
records the rate after construction (index 0) and after each of `steps` calls to step(), as
Python floats (doubles), written with repr so that C reads the same double back. Base rates are
float32 values (nn_optimizer keeps its rate in a float, and nn_schedule_start takes it from
there). A warm-up is SequentialLR([LinearLR(start_factor, total_iters=W), schedule],
milestones=[W]); ReduceLROnPlateau cannot sit in a SequentialLR, so its warm-up case runs LinearLR
for W - 1 steps, sets the rate to the base at step W (what SequentialLR's step(0) does for the
others) and steps ReduceLROnPlateau from step W + 1 on: nn.h's definition of a warm-up in front
of a plateau schedule. OneCycleLR cases also record the cycled momentum (SGD's momentum, Adam's
beta1). Plateau cases record the metric given at each step.

Clipping
--------
torch.nn.utils.clip_grad_norm_ and clip_grad_value_ on the gradients of a Linear(5,4)-ReLU-
Linear(4,3) network (39 values in nn.h's flat layout: weight then bias per layer), from fixed
float32 gradient vectors; the result is PyTorch's float32 arithmetic (its norm is a float32 too).
"""
import io
import math
import os
import sys
import warnings

import torch
import torch.nn as nn
from torch.optim import lr_scheduler as S

torch.set_num_threads(1)
warnings.filterwarnings("ignore")  # PyTorch's "step(epoch) is deprecated" from SequentialLR

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "torch_schedules.h"))

# nn_schedule_kind values
STEP, MULTI_STEP, EXPONENTIAL, COSINE, ONE_CYCLE, PLATEAU = range(6)


def f32(v):
    return float(torch.tensor(v, dtype=torch.float32).item())


def c_double(v):
    s = repr(float(v))
    assert "inf" not in s and "nan" not in s, s
    return s


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

    def array(self, ctype, name, vals, fmt, per_line):
        self.line("static const %s %s[%d] = {" % (ctype, name, len(vals)))
        for i in range(0, len(vals), per_line):
            self.line("    " + ", ".join(fmt(v) for v in vals[i:i + per_line]) + ",")
        self.line("};")


def optimizer(kind, lr):
    p = nn.Parameter(torch.zeros(1))
    if kind == "adam":
        return torch.optim.Adam([p], lr=lr)
    return torch.optim.SGD([p], lr=lr, momentum=0.9)


def momentum_of(opt):
    g = opt.param_groups[0]
    return g["betas"][0] if "betas" in g else g["momentum"]


def run_schedule(case):
    """The rates (and momenta, metrics) of one case, index 0 after construction."""
    opt = optimizer(case.get("optimizer", "sgd"), case["base"])
    kind, steps, w = case["kind"], case["steps"], case.get("warmup", 0)
    metrics = case.get("metrics")
    make = {
        STEP: lambda: S.StepLR(opt, step_size=case["step_size"], gamma=case["gamma"]),
        MULTI_STEP: lambda: S.MultiStepLR(opt, milestones=case["milestones"], gamma=case["gamma"]),
        EXPONENTIAL: lambda: S.ExponentialLR(opt, gamma=case["gamma"]),
        COSINE: lambda: S.CosineAnnealingLR(opt, T_max=case["t_max"], eta_min=case["min_rate"]),
        ONE_CYCLE: lambda: S.OneCycleLR(opt, max_lr=case["max_rate"], total_steps=case["total_steps"],
                                        pct_start=case.get("pct_start", 0.3),
                                        div_factor=case.get("div_factor", 25.0),
                                        final_div_factor=case.get("final_div_factor", 1e4),
                                        three_phase=case.get("three_phase", False)),
        PLATEAU: lambda: S.ReduceLROnPlateau(opt, mode="max" if case.get("mode_max") else "min",
                                             factor=case["factor"], patience=case["patience"],
                                             threshold=case.get("threshold", 1e-4),
                                             threshold_mode="abs" if case.get("threshold_abs") else "rel",
                                             cooldown=case.get("cooldown", 0), min_lr=case.get("min_rate", 0),
                                             eps=case.get("eps", 1e-8)),
    }[kind]
    rates, momenta = [], []

    def record():
        rates.append(opt.param_groups[0]["lr"])
        momenta.append(momentum_of(opt))

    if kind == PLATEAU:
        if w:
            warm = S.LinearLR(opt, start_factor=case["warmup_start_factor"], total_iters=w)
        sched = make()
        record()
        for t in range(1, steps + 1):
            if t < w:
                warm.step()
            elif t == w:
                opt.param_groups[0]["lr"] = case["base"]
            else:
                sched.step(metrics[t])
            record()
        return rates, momenta
    if w:
        warm = S.LinearLR(opt, start_factor=case["warmup_start_factor"], total_iters=w)
        sched = S.SequentialLR(opt, schedulers=[warm, make()], milestones=[w])
    else:
        sched = make()
    record()
    for _ in range(steps):
        opt.step()
        sched.step()
        record()
    return rates, momenta


def plateau_metrics(steps, seed):
    """A loss-like sequence with plateaus: falls, stalls (exactly, and within the threshold),
    falls again, rises; deterministic."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(steps + 1, generator=g, dtype=torch.float64).tolist()
    m, value = [0.0], 2.0
    for t in range(1, steps + 1):
        phase = (t // 15) % 4
        if phase == 0:
            value *= 0.9                                    # clear improvement
        elif phase == 1:
            pass                                            # exact plateau
        elif phase == 2:
            value *= 1.0 - 0.5e-4 * noise[t]                # improvement below the threshold
        else:
            value *= 1.0 + 0.01 * noise[t]                  # getting worse
        m.append(value)
    return m


def schedule_cases():
    b = f32(0.1)
    cases = [
        dict(name="step_30_0.1", kind=STEP, base=b, step_size=30, gamma=0.1, steps=300),
        dict(name="step_7_0.5", kind=STEP, base=f32(0.05), step_size=7, gamma=0.5, steps=200),
        dict(name="step_1_0.97", kind=STEP, base=f32(1.0), step_size=1, gamma=0.97, steps=300),
        dict(name="multistep_30_80", kind=MULTI_STEP, base=b, milestones=[30, 80], gamma=0.1, steps=200),
        dict(name="multistep_repeats", kind=MULTI_STEP, base=f32(0.3), milestones=[10, 10, 50, 120, 121],
             gamma=0.5, steps=200),
        dict(name="exponential_0.99", kind=EXPONENTIAL, base=b, gamma=0.99, steps=300),
        dict(name="exponential_0.9", kind=EXPONENTIAL, base=f32(0.01), gamma=0.9, steps=200),
        dict(name="cosine_100", kind=COSINE, base=b, t_max=100, min_rate=0.0, steps=300),
        dict(name="cosine_50_min", kind=COSINE, base=f32(0.2), t_max=50, min_rate=0.001, steps=300),
        dict(name="cosine_7_min", kind=COSINE, base=f32(0.05), t_max=7, min_rate=0.002, steps=100),
        dict(name="onecycle_default", kind=ONE_CYCLE, base=b, max_rate=0.1, total_steps=300, steps=300),
        dict(name="onecycle_adam", kind=ONE_CYCLE, base=b, optimizer="adam", max_rate=0.003, total_steps=250,
             pct_start=0.25, div_factor=10.0, final_div_factor=100.0, steps=250),
        dict(name="onecycle_three_phase", kind=ONE_CYCLE, base=b, max_rate=0.5, total_steps=200, three_phase=True,
             steps=200),
        dict(name="plateau_default", kind=PLATEAU, base=b, factor=0.1, patience=10, steps=300,
             metrics=plateau_metrics(300, 1)),
        dict(name="plateau_cooldown_min", kind=PLATEAU, base=f32(1.0), factor=0.5, patience=3, cooldown=4,
             min_rate=0.01, steps=300, metrics=plateau_metrics(300, 2)),
        dict(name="plateau_abs_eps", kind=PLATEAU, base=f32(0.001), factor=0.2, patience=2, threshold=1e-3,
             threshold_abs=1, eps=1e-6, steps=200, metrics=plateau_metrics(200, 3)),
        dict(name="plateau_max", kind=PLATEAU, base=b, factor=0.3, patience=5, mode_max=1, steps=200,
             metrics=[-v for v in plateau_metrics(200, 4)]),
        dict(name="plateau_max_abs", kind=PLATEAU, base=b, factor=0.3, patience=1, mode_max=1, threshold_abs=1,
             threshold=0.01, steps=200, metrics=[0.0] + [1.0 / v for v in plateau_metrics(200, 5)[1:]]),
    ]
    warm = [
        dict(name="warmup_step", kind=STEP, base=b, step_size=30, gamma=0.1, steps=300, warmup=5,
             warmup_start_factor=0.1),
        dict(name="warmup_multistep", kind=MULTI_STEP, base=b, milestones=[20, 60], gamma=0.2, steps=200, warmup=10,
             warmup_start_factor=1.0 / 3),
        dict(name="warmup_exponential", kind=EXPONENTIAL, base=b, gamma=0.98, steps=200, warmup=3,
             warmup_start_factor=0.5),
        dict(name="warmup_cosine", kind=COSINE, base=b, t_max=100, min_rate=0.001, steps=300, warmup=20,
             warmup_start_factor=0.01),
        dict(name="warmup_onecycle", kind=ONE_CYCLE, base=b, max_rate=0.2, total_steps=200, steps=210, warmup=10,
             warmup_start_factor=0.25),
        dict(name="warmup_plateau", kind=PLATEAU, base=b, factor=0.5, patience=4, steps=200, warmup=8,
             warmup_start_factor=0.2, metrics=plateau_metrics(200, 6)),
        dict(name="warmup_1_step", kind=STEP, base=b, step_size=10, gamma=0.5, steps=50, warmup=1,
             warmup_start_factor=0.3),
    ]
    return cases + warm


def clip_cases():
    g = torch.Generator().manual_seed(13)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    n = sum(p.numel() for p in model.parameters())
    out = []
    for name, scale, kind, limit in [("norm_above", 3.0, "norm", 1.0),
                                     ("norm_far_above", 100.0, "norm", 0.25),
                                     ("norm_below", 0.05, "norm", 1.0),
                                     ("norm_zero_limit", 1.0, "norm", 0.0),
                                     ("value_some", 1.0, "value", 0.3),
                                     ("value_below", 0.1, "value", 1.0)]:
        grads = (torch.randn(n, generator=g, dtype=torch.float32) * scale).to(torch.float32)
        at = 0
        for p in model.parameters():
            p.grad = grads[at:at + p.numel()].clone().view_as(p)
            at += p.numel()
        norm = 0.0
        if kind == "norm":
            norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))
        else:
            torch.nn.utils.clip_grad_value_(model.parameters(), limit)
        clipped = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        out.append(dict(name=name, kind=kind, limit=limit, grads=grads.tolist(), clipped=clipped.tolist(),
                        norm=norm, changed=not torch.equal(clipped, grads)))
    return n, out


def main():
    h = Header()
    h.line("/* torch_schedules.h - PyTorch %s learning-rate schedules and gradient clipping for" % torch.__version__)
    h.line("   tests/test_schedules.c. GENERATED by tests/pytorch/gen_schedules.py - do not edit; rerun it.")
    h.line("   Schedules: rates[0] after construction, rates[t] after the t-th step(); momenta likewise")
    h.line("   (OneCycleLR); metrics[t] is the metric of the t-th step (ReduceLROnPlateau, metrics[0] unused).")
    h.line("   Clipping: the flat gradients of Linear(5,4)-ReLU-Linear(4,3) before and after, and the norm")
    h.line("   clip_grad_norm_ returned (float32). */")
    h.line("#ifndef NN_TORCH_SCHEDULES_H")
    h.line("#define NN_TORCH_SCHEDULES_H")
    h.line()
    cases = schedule_cases()
    for c in cases:
        rates, momenta = run_schedule(c)
        c["rates"] = rates
        p = "torch_sched_" + c["name"].replace(".", "_")
        c["prefix"] = p
        h.array("double", p + "_rates", rates, c_double, 4)
        if c["kind"] == ONE_CYCLE:
            h.array("double", p + "_momenta", momenta, c_double, 4)
        if c["kind"] == PLATEAU:
            h.array("double", p + "_metrics", c["metrics"], c_double, 4)
    h.line()
    h.line("typedef struct torch_schedule_case {")
    h.line("    const char *name;")
    h.line("    int kind;                     /* nn_schedule_kind */")
    h.line("    double base_rate;             /* the optimizer's rate (a float32 value) */")
    h.line("    int adam;                     /* the optimizer is Adam (momentum cycled in beta1), else SGD */")
    h.line("    int step_size, milestone_count, milestones[8];")
    h.line("    double gamma;")
    h.line("    int t_max;")
    h.line("    double min_rate, max_rate;")
    h.line("    int total_steps;")
    h.line("    double pct_start, div_factor, final_div_factor;")
    h.line("    int three_phase;")
    h.line("    double factor;")
    h.line("    int patience, cooldown;")
    h.line("    double threshold, eps;")
    h.line("    int mode_max, threshold_abs, warmup_steps;")
    h.line("    double warmup_start_factor;")
    h.line("    int steps;                    /* rates has steps + 1 entries */")
    h.line("    const double *rates, *momenta, *metrics;")
    h.line("} torch_schedule_case;")
    h.line()
    h.line("static const torch_schedule_case torch_schedule_cases[] = {")
    for c in cases:
        p = c["prefix"]
        ms = c.get("milestones", [])
        fields = [
            '.name = "%s"' % c["name"], ".kind = %d" % c["kind"], ".base_rate = %s" % c_double(c["base"]),
            ".adam = %d" % (c.get("optimizer") == "adam"), ".step_size = %d" % c.get("step_size", 0),
            ".milestone_count = %d" % len(ms), ".milestones = {%s}" % ", ".join(str(m) for m in ms or [0]),
            ".gamma = %s" % c_double(c.get("gamma", 0.0)), ".t_max = %d" % c.get("t_max", 0),
            ".min_rate = %s" % c_double(c.get("min_rate", 0.0)), ".max_rate = %s" % c_double(c.get("max_rate", 0.0)),
            ".total_steps = %d" % c.get("total_steps", 0), ".pct_start = %s" % c_double(c.get("pct_start", 0.3)),
            ".div_factor = %s" % c_double(c.get("div_factor", 25.0)),
            ".final_div_factor = %s" % c_double(c.get("final_div_factor", 1e4)),
            ".three_phase = %d" % c.get("three_phase", False), ".factor = %s" % c_double(c.get("factor", 0.0)),
            ".patience = %d" % c.get("patience", 0), ".cooldown = %d" % c.get("cooldown", 0),
            ".threshold = %s" % c_double(c.get("threshold", 1e-4)), ".eps = %s" % c_double(c.get("eps", 1e-8)),
            ".mode_max = %d" % c.get("mode_max", 0), ".threshold_abs = %d" % c.get("threshold_abs", 0),
            ".warmup_steps = %d" % c.get("warmup", 0),
            ".warmup_start_factor = %s" % c_double(c.get("warmup_start_factor", 1.0 / 3)),
            ".steps = %d" % c["steps"], ".rates = %s_rates" % p,
            ".momenta = %s" % (p + "_momenta" if c["kind"] == ONE_CYCLE else "0"),
            ".metrics = %s" % (p + "_metrics" if c["kind"] == PLATEAU else "0"),
        ]
        h.line("    {" + ", ".join(fields) + "},")
    h.line("};")
    h.line()
    n, clips = clip_cases()
    h.line("#define TORCH_CLIP_PARAMS %d /* Linear(5,4)-ReLU-Linear(4,3) */" % n)
    for c in clips:
        p = "torch_clip_" + c["name"]
        h.array("float", p + "_grads", c["grads"], c_float, 6)
        h.array("float", p + "_clipped", c["clipped"], c_float, 6)
    h.line("typedef struct torch_clip_case {")
    h.line("    const char *name;")
    h.line("    int by_value;                 /* clip_grad_value_, else clip_grad_norm_ */")
    h.line("    double limit;                 /* max_norm or clip_value */")
    h.line("    double norm;                  /* what clip_grad_norm_ returned */")
    h.line("    int changed;                  /* the gradients changed */")
    h.line("    const float *grads, *clipped;")
    h.line("} torch_clip_case;")
    h.line("static const torch_clip_case torch_clip_cases[] = {")
    for c in clips:
        p = "torch_clip_" + c["name"]
        h.line('    {"%s", %d, %s, %s, %d, %s_grads, %s_clipped},' % (
            c["name"], c["kind"] == "value", c_double(c["limit"]), c_double(c["norm"]), c["changed"], p, p))
    h.line("};")
    h.line()
    h.line("#endif /* NN_TORCH_SCHEDULES_H */")
    text = h.out.getvalue()
    with open(OUT + ".tmp", "w") as f:
        f.write(text)
    os.replace(OUT + ".tmp", OUT)
    sys.stderr.write("wrote %s (%d bytes, %d schedule cases, %d clipping cases)\n" % (OUT, len(text), len(cases), len(clips)))
    for c in cases:
        r = c["rates"]
        sys.stderr.write("  %-22s %4d steps, rate %.4g .. %.4g, %d distinct\n" % (
            c["name"], c["steps"], min(r), max(r), len(set(r))))


if __name__ == "__main__":
    main()
