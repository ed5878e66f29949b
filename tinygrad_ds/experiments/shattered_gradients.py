"""shattered-gradients: dy/dx over a 1-D sweep of inputs for a shallow network, a deep plain
network and a deep residual network, and the autocorrelation of those gradients (Balduzzi et
al. 2017, "The shattered gradients problem", as shown in lecture 002).

Each network maps a scalar x to a scalar y through layers of `width` ReLU units. The sweep is
x = -2 .. 2; the gradient at every point comes from one backward pass (the points do not
interact: batch norm uses statistics measured once on the sweep, then frozen, so each output
depends on its own input only).
"""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import color, figure, integer_ticks

NAME = "shattered-gradients"
TITLE = "the gradient dy/dx over a 1-D input sweep: shallow, deep plain and deep residual nets"
USES_DATA = False
CLAIM = """The Shattered Gradient Phenomenon ... Take a look at ∂y/∂x for shallow and deep
networks. Gradients of deeper networks are much less correlated! A small step in gradient
descent may jump to wildly different valued gradient!"""
SOURCE = "lectures/002_224146b65b05455f.txt, 'The Shattered Gradient Phenomenon' (lines 113-143)"
NETS = ("shallow", "plain", "residual")
LABELS = {"shallow": "shallow", "plain": "deep plain", "residual": "deep residual"}


def build(kind: str, width: int, depth: int):
    """shallow: 1 -> width -> 1. plain: `depth` layers Linear-BN-ReLU. residual: `depth`
    blocks h + Linear(ReLU(BN(h))) (pre-activation). Weights He-normal, biases uniform as
    PyTorch's Linear."""
    from .. import nn

    def lin(i, o):
        m = nn.Linear(i, o)
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        return m

    if kind == "shallow":
        return nn.Sequential(lin(1, width), nn.ReLU(), lin(width, 1))
    layers = [lin(1, width), nn.ReLU()]
    for _ in range(depth):
        if kind == "plain":
            layers += [lin(width, width), nn.BatchNorm1d(width, momentum=1.0), nn.ReLU()]
        else:
            layers.append(nn.Residual(nn.Sequential(nn.BatchNorm1d(width, momentum=1.0),
                                                    nn.ReLU(), lin(width, width))))
    layers.append(lin(width, 1))
    return nn.Sequential(*layers)


def sweep_gradient(model, xs: np.ndarray) -> np.ndarray:
    """dy/dx at each x of xs (n,): batch-norm statistics taken from the sweep, then frozen."""
    from .. import autograd
    from ..tensor import Tensor

    x = Tensor(xs.reshape(-1, 1).astype(np.float32))
    model.train()
    with autograd.no_grad():
        model(x)  # momentum 1: the running statistics become the sweep's
    model.eval()
    x = Tensor(xs.reshape(-1, 1).astype(np.float32), requires_grad=True)
    model(x).sum().backward()
    return x.grad.data.reshape(-1).astype(np.float64)


def autocorrelation(g: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation of g at lags 0..max_lag."""
    g = g - g.mean()
    denom = float(np.dot(g, g)) or 1.0
    return np.array([np.dot(g[:len(g) - k], g[k:]) / denom for k in range(max_lag + 1)])


def run(ctx: RunContext) -> Verdict:
    width, depth, points, inits = ctx.pick((100, 24, 256, 3), (200, 24, 1024, 10))
    max_lag = 40
    xs = np.linspace(-2, 2, points)
    grads, acs, rows, ac_rows = {}, {}, [], []
    for j, kind in enumerate(NETS):
        gs, cs = [], []
        for i in range(inits):
            manual_seed(ctx.seed * 100 + i)
            g = sweep_gradient(build(kind, width, depth), xs)
            gs.append(g)
            cs.append(autocorrelation(g, max_lag))
            for x, v in zip(xs, g):
                rows.append(dict(network=kind, init=i, x=x, grad=v))
            for k, c in enumerate(cs[-1]):
                ac_rows.append(dict(network=kind, init=i, lag=k, autocorrelation=c))
        grads[kind], acs[kind] = np.array(gs), np.array(cs)
        ctx.step(j + 1, len(NETS), f"{LABELS[kind]}: lag-1 autocorrelation "
                 f"{acs[kind][:, 1].mean():.3f}")
    ctx.write_csv("gradients.csv", rows, ["network", "init", "x", "grad"])
    ctx.write_csv("autocorrelation.csv", ac_rows, ["network", "init", "lag", "autocorrelation"])

    fig, axes = figure(4, width=3.6, height=3.3, title=f"Shattered gradients: dy/dx over a sweep "
                       f"of {points} inputs (width {width}; deep = {depth} layers or blocks)")
    for a, kind in zip(axes[:3], NETS):
        g = grads[kind][0]
        scale = np.percentile(np.abs(g), 99) or 1.0
        a.plot(xs, g / scale, color=color(LABELS[kind]), lw=0.8)
        a.set_title(f"{LABELS[kind]} (1st initialisation)")
        a.set_xlabel("input x")
        a.set_ylabel("dy/dx / (99th percentile of |dy/dx|)")
        a.set_ylim(-1.5, 1.5)
    a = axes[3]
    lags = np.arange(max_lag + 1)
    for kind in NETS:
        m = acs[kind].mean(axis=0)
        a.plot(lags, m, marker=".", color=color(LABELS[kind]), label=LABELS[kind])
        a.fill_between(lags, acs[kind].min(axis=0), acs[kind].max(axis=0),
                       color=color(LABELS[kind]), alpha=0.15)
    a.axhline(0, color="#868e96", lw=0.8)
    a.set_ylim(-0.4, 1.02)
    a.set_xlabel(f"lag (input steps of {xs[1] - xs[0]:.4f})")
    a.set_ylabel("autocorrelation of dy/dx")
    a.set_title(f"autocorrelation (mean, range over {inits} inits)")
    integer_ticks(a)
    a.legend(loc="upper right")
    ctx.save_figure(fig, "shattered.png")

    r1 = {k: float(acs[k][:, 1].mean()) for k in NETS}
    r5 = {k: float(acs[k][:, 5].mean()) for k in NETS}
    agree = r1["shallow"] > r1["residual"] > r1["plain"]
    measured = ("| network | lag-1 autocorrelation | lag-5 autocorrelation |\n|---|---|---|\n"
                + "\n".join(f"| {LABELS[k]} | {r1[k]:.3f} | {r5[k]:.3f} |" for k in NETS)
                + f"\n\nMeans over {inits} random initialisations; the lag is in steps of "
                  f"{xs[1] - xs[0]:.4f} along the input.")
    line = (f"lag-1 autocorrelation of dy/dx: shallow {r1['shallow']:.2f}, deep residual "
            f"{r1['residual']:.2f}, deep plain {r1['plain']:.2f}")
    setup = (f"Three networks from 1 input to 1 output with {width} ReLU units per layer: "
             f"shallow (one hidden layer), deep plain ({depth} Linear-BatchNorm-ReLU layers) "
             f"and deep residual ({depth} pre-activation blocks h + Linear(ReLU(BN(h))));"
             f" He-normal weights, PyTorch's default biases. The input sweeps {points} points "
             f"from -2 to 2; batch norm uses the sweep's statistics, frozen, so every point's "
             f"gradient is its own. {inits} random initialisations each.")
    return Verdict("agrees" if agree else "disagrees",
                   ("As in the lecture, the deeper the network, the less correlated its "
                    "gradients, and the skip connections keep them correlated: " if agree else
                    "Unlike the lecture's ordering (shallow > residual > plain): ") + line,
                   setup, measured)
