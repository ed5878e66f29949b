"""Vanishing and exploding gradients in the deep scalar chain, and how a skip connection helps.

The chain of the lecture (one input x, L hidden layers of one neuron each, no bias):

    y_1 = f(w_1 x),  y_l = f(w_l y_{l-1}) for l = 2..L+1
    plain:  theta = y_{L+1}                 (= f(w_{L+1} y_L))
    skip:   theta = y_{L+1} + w_1 x         (a skip from the input to the output)

and the risk R = theta, so that dR/dtheta = 1 and what is left is what backpropagation
accumulates. Closed forms:

    plain:  dR/dw_1 = x f'(w_1 x) prod_{l=2}^{L+1} w_l f'(w_l y_{l-1})
    skip:   dR/dw_1 = x (f'(w_1 x) prod_{l=2}^{L+1} w_l f'(w_l y_{l-1}) + 1)

With f = sigmoid (f' <= 1/4) and weights below 1 the product vanishes as L grows; with f = ReLU,
x > 0 and weights above 1 it explodes. The skip adds x to the gradient whatever the depth, so it
cannot vanish (it does nothing against explosion: the product is still there).

`chain_grad` builds the chain with the scalar engine and runs its backward; `closed_form_grad`
evaluates the formula with plain floats; `plot_grad_by_depth` draws |dR/dw_1| against L.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tinygrad_ds.scalar import Value

ACTIVATIONS = ("sigmoid", "relu", "tanh")


@dataclass(frozen=True)
class ChainCase:
    """One curve of the plot: an activation, one weight shared by every layer, skip or not."""

    activation: str
    weight: float
    skip: bool

    @property
    def name(self) -> str:
        return f"{self.activation}, w = {self.weight:g}, " + ("with skip" if self.skip else
                                                             "no skip")


# The lecture's two cases, each without and with the skip.
DEFAULT_CASES = (
    ChainCase("sigmoid", 0.8, False),
    ChainCase("sigmoid", 0.8, True),
    ChainCase("relu", 1.5, False),
    ChainCase("relu", 1.5, True),
)


def _weights(depth: int, w: float | Sequence[float]) -> list[float]:
    if depth < 1:
        raise ValueError(f"the chain needs depth L >= 1 hidden layers, got {depth}")
    if isinstance(w, (int, float)):
        return [float(w)] * (depth + 1)
    ws = [float(v) for v in w]
    if len(ws) != depth + 1:
        raise ValueError(f"a chain of depth L = {depth} has L + 1 = {depth + 1} weights "
                         f"(w_1 .. w_{depth + 1}), got {len(ws)}")
    return ws


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: use one of {', '.join(ACTIVATIONS)}")


def build_chain(depth: int, w: float | Sequence[float] = 0.8, activation: str = "sigmoid",
                x: float = 1.0, skip: bool = False) -> tuple[Value, list[Value]]:
    """The chain as scalar-engine Values: returns (theta, [w_1, ..., w_{L+1}]).

    depth: L, the number of hidden layers; w: one weight for every layer or a list of L + 1.
    Nodes are labelled (x, w1, z1, y1, ..., theta) so that a drawing of a small chain reads.
    """
    _check_activation(activation)
    ws = [Value(v, label=f"w{i}") for i, v in enumerate(_weights(depth, w), 1)]
    xv = Value(x, label="x")
    y = xv
    for i, wv in enumerate(ws, 1):
        z = wv * y
        z.label = f"z{i}"
        y = getattr(z, activation)()
        y.label = f"y{i}"
    if skip:
        s = ws[0] * xv
        s.label = "w1 x"
        y = y + s
    y.label = "theta"
    return y, ws


def chain_grad(depth: int, w: float | Sequence[float] = 0.8, activation: str = "sigmoid",
               x: float = 1.0, skip: bool = False) -> float:
    """dR/dw_1 for the chain of depth L with R = theta, by the scalar engine's backward."""
    theta, ws = build_chain(depth, w, activation, x, skip)
    theta.backward()
    return ws[0].grad


def _f_and_slope(activation: str, z: float) -> tuple[float, float]:
    if activation == "sigmoid":
        s = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        return s, s * (1.0 - s)
    if activation == "relu":
        return max(z, 0.0), 1.0 if z > 0 else 0.0
    t = math.tanh(z)
    return t, 1.0 - t * t


def closed_form_grad(depth: int, w: float | Sequence[float] = 0.8, activation: str = "sigmoid",
                     x: float = 1.0, skip: bool = False) -> float:
    """dR/dw_1 from the lecture's formula, x f'(w_1 x) prod_{l=2}^{L+1} w_l f'(w_l y_{l-1})
    (+ x with the skip), evaluated with plain floats: no autodiff involved."""
    _check_activation(activation)
    ws = _weights(depth, w)
    y, slope = _f_and_slope(activation, ws[0] * x)
    product = slope
    for wl in ws[1:]:
        y_next, slope = _f_and_slope(activation, wl * y)
        product *= wl * slope
        y = y_next
    return x * product + (x if skip else 0.0)


def grad_by_depth(depths: Sequence[int], case: ChainCase, x: float = 1.0) -> np.ndarray:
    """|dR/dw_1| for each depth L in depths (scalar engine), as a float64 array."""
    return np.array([abs(chain_grad(L, case.weight, case.activation, x, case.skip))
                     for L in depths], dtype=np.float64)


def vanishing_table(depths: Sequence[int] = tuple(range(1, 51)),
                    cases: Sequence[ChainCase] = DEFAULT_CASES,
                    x: float = 1.0) -> dict[str, np.ndarray]:
    """{case name: |dR/dw_1| by depth} for every case; the data behind the plot."""
    return {c.name: grad_by_depth(depths, c, x) for c in cases}


def format_table(depths: Sequence[int], table: dict[str, np.ndarray],
                 show: Sequence[int] = (1, 5, 10, 20, 30, 50)) -> str:
    """A few rows of the table as text: depth, then |dR/dw_1| for each case."""
    names = list(table)
    rows = [f"{'L':>4}  " + "  ".join(f"{n:>26}" for n in names)]
    for i, L in enumerate(depths):
        if L in show:
            rows.append(f"{L:>4}  " + "  ".join(f"{table[n][i]:>26.3e}" for n in names))
    return "\n".join(rows)


def plot_grad_by_depth(depths: Sequence[int] = tuple(range(1, 51)),
                       cases: Sequence[ChainCase] = DEFAULT_CASES, x: float = 1.0,
                       path: str | Path | None = None):
    """A matplotlib Figure of |dR/dw_1| against depth L, log scale, one line per case (solid
    without the skip, dashed with it). Written to `path` (PNG, SVG, PDF by suffix) if given.
    Uses the Agg backend, so no display is needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = list(depths)
    colours = {"sigmoid": "tab:blue", "relu": "tab:red", "tanh": "tab:green"}
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for c in cases:
        # Skip curves get markers and sit on top: where skip and no-skip agree (explosion),
        # both stay visible.
        style = (dict(linestyle="--", linewidth=1.5, marker="o", markersize=4,
                      markevery=max(1, len(depths) // 10), zorder=3) if c.skip else
                 dict(linestyle="-", linewidth=2.5, alpha=0.8, zorder=2))
        ax.semilogy(depths, grad_by_depth(depths, c, x), color=colours[c.activation],
                    label=c.name, **style)
    ax.set_xlabel("depth L (hidden layers)")
    ax.set_ylabel(r"$|\,dR/dw_1\,|$")
    ax.set_title(r"Deep scalar chain $y_\ell = f(w_\ell\, y_{\ell-1})$: gradient at the first "
                 "weight", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="best")
    fig.text(0.01, 0.01, r"skip: $\theta = y_{L+1} + w_1 x$ adds $x$ to $dR/dw_1$ at every "
             "depth, so the gradient cannot vanish; it does not stop an explosion",
             fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    if path is not None:
        fig.savefig(path)
    return fig


__all__ = ["ChainCase", "DEFAULT_CASES", "build_chain", "chain_grad", "closed_form_grad",
           "grad_by_depth", "vanishing_table", "format_table", "plot_grad_by_depth"]
