"""Train a small MLP on two moons with both engines, and check that they agree.

    python examples/mlp.py
    tds viz examples/mlp.py       (draws `model` below, the same MLP as nn layers)

1. The tensor engine (tinygrad_ds.Tensor): a hand-written 2-32-32-1 tanh MLP on 400 points,
   full-batch gradient descent, binary cross-entropy with logits.
2. The scalar engine (tinygrad_ds.scalar.Value): the same idea one number at a time, a 2-8-8-1
   MLP on 60 points for a few dozen steps (every multiply and add is a Python object, so it is
   slower by orders of magnitude: that is what the tensor engine buys).
3. Both engines on the same small MLP (same weights, same points, float64): the same gradients.

Layers are written as PyTorch's nn.Linear: W has shape (out, in), y = x @ W.T + b, initialised
uniform in +-1/sqrt(in).
"""
from __future__ import annotations

import time

import numpy as np

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import nn
from tinygrad_ds.scalar import Value

Params = list[tuple[np.ndarray, np.ndarray]]  # [(W (out, in), b (out,)), ...]

# The same 2-32-32-1 tanh MLP as nn layers, for `tds viz examples/mlp.py` and `tds summary`.
model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
input_shape = (1, 2)


# ---- data and weights (numpy, seeded) ---------------------------------------------------------
def make_moons(n: int, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles. X: (n, 2) float64, centred; y: (n,) int64 in {0, 1}."""
    rng = np.random.default_rng(seed)
    n0 = n // 2
    a0 = rng.uniform(0, np.pi, n0)
    a1 = rng.uniform(0, np.pi, n - n0)
    top = np.stack([np.cos(a0), np.sin(a0)], axis=1)
    bottom = np.stack([1 - np.cos(a1), 0.5 - np.sin(a1)], axis=1)
    X = np.concatenate([top, bottom]) + rng.normal(0, noise, (n, 2))
    X = (X - np.array([0.5, 0.25])) / np.array([0.9, 0.5])  # roughly zero mean, unit spread
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n - n0, np.int64)])
    perm = rng.permutation(n)
    return X[perm], y[perm]


def init_mlp(sizes: list[int], seed: int = 0) -> Params:
    """Weights for an MLP with layer sizes e.g. [2, 8, 8, 1], as nn.Linear initialises them."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        params.append((rng.uniform(-bound, bound, (n_out, n_in)),
                       rng.uniform(-bound, bound, n_out)))
    return params


# ---- the tensor engine --------------------------------------------------------------------------
def tensor_params(params: Params, dtype: str = "float32") -> list[tds.Tensor]:
    return [tds.Tensor(a, dtype=dtype, requires_grad=True) for layer in params for a in layer]


def tensor_mlp(ps: list[tds.Tensor], X: tds.Tensor) -> tds.Tensor:
    """X: (N, in) -> logits (N,). tanh between layers, none after the last."""
    h = X
    for i in range(0, len(ps), 2):
        h = h @ ps[i].T + ps[i + 1]
        if i + 2 < len(ps):
            h = h.tanh()
    return h.reshape(-1)


def tensor_loss(ps: list[tds.Tensor], X: tds.Tensor, y: tds.Tensor) -> tds.Tensor:
    return F.binary_cross_entropy_with_logits(tensor_mlp(ps, X), y)


def accuracy_tensor(ps: list[tds.Tensor], X: np.ndarray, y: np.ndarray) -> float:
    with tds.no_grad():
        return float(((tensor_mlp(ps, tds.Tensor(X)).numpy() > 0) == (y == 1)).mean())


def train_tensor(X: np.ndarray, y: np.ndarray, sizes: list[int], steps: int, lr: float,
                 seed: int = 0) -> dict:
    ps = tensor_params(init_mlp(sizes, seed))
    Xt, yt = tds.Tensor(X), tds.Tensor(y.astype(np.float32))
    losses = []
    for _ in range(steps):
        loss = tensor_loss(ps, Xt, yt)
        loss.backward()
        losses.append(loss.item())
        for p in ps:  # plain SGD, by hand
            p.data -= lr * p.grad.data
            p.grad = None
    with tds.no_grad():
        final = tensor_loss(ps, Xt, yt).item()
    return {"first": losses[0], "last": final, "acc": accuracy_tensor(ps, X, y), "params": ps}


# ---- the scalar engine ------------------------------------------------------------------------
def scalar_params(params: Params) -> list[list[list[Value]]]:
    """For each layer, one list per neuron: [w_1, ..., w_in, b]."""
    return [[[Value(w, label=f"W{k}[{j},{i}]") for i, w in enumerate(W[j])] + [Value(b[j])]
             for j in range(W.shape[0])] for k, (W, b) in enumerate(params, 1)]


def scalar_mlp(layers: list[list[list[Value]]], x) -> Value:
    """One point x (a sequence of numbers) -> its logit, one Value at a time."""
    h = [Value(v) if not isinstance(v, Value) else v for v in x]
    for k, layer in enumerate(layers):
        h = [sum((w * hi for w, hi in zip(neuron[:-1], h)), neuron[-1]) for neuron in layer]
        if k + 1 < len(layers):
            h = [v.tanh() for v in h]
    return h[0]


def softplus(v: Value) -> Value:
    """log(1 + exp(v)), written so that exp never overflows (the branch is plain Python)."""
    if v.data > 0:
        return v + ((-v).exp() + 1.0).log()
    return (v.exp() + 1.0).log()


def scalar_loss(layers, X: np.ndarray, y: np.ndarray) -> Value:
    """Mean binary cross-entropy with logits: BCE(z, y) = softplus(z) - y z."""
    total = Value(0.0)
    for xi, yi in zip(X, y):
        z = scalar_mlp(layers, xi)
        total = total + softplus(z) - float(yi) * z
    return total / len(X)


def flat(layers) -> list[Value]:
    return [v for layer in layers for neuron in layer for v in neuron]


def train_scalar(X: np.ndarray, y: np.ndarray, sizes: list[int], steps: int, lr: float,
                 seed: int = 0) -> dict:
    layers = scalar_params(init_mlp(sizes, seed))
    params = flat(layers)
    losses = []
    for _ in range(steps):
        loss = scalar_loss(layers, X, y)
        for p in params:  # gradients accumulate: reset them before each backward
            p.grad = 0.0
        loss.backward()
        losses.append(loss.data)
        for p in params:
            p.data -= lr * p.grad
    final = scalar_loss(layers, X, y)
    acc = float(np.mean([(scalar_mlp(layers, xi).data > 0) == (yi == 1) for xi, yi in zip(X, y)]))
    return {"first": losses[0], "last": final.data, "acc": acc, "nodes": len(final.graph().nodes)}


# ---- the two engines side by side ---------------------------------------------------------------
def compare_gradients(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Loss and gradients of the same MLP at the same weights and points, by both engines in
    float64. Returns (tensor loss, scalar loss, max |grad difference| over all parameters)."""
    ps = tensor_params(params, dtype="float64")
    t_loss = F.binary_cross_entropy_with_logits(tensor_mlp(ps, tds.Tensor(X, dtype="float64")),
                                                tds.Tensor(y, dtype="float64"))
    t_loss.backward()
    layers = scalar_params(params)
    s_loss = scalar_loss(layers, X, y)
    s_loss.backward()
    diff = 0.0
    for k, layer in enumerate(layers):
        gW, gb = ps[2 * k].grad.numpy(), ps[2 * k + 1].grad.numpy()
        for j, neuron in enumerate(layer):
            diff = max(diff, abs(neuron[-1].grad - gb[j]),
                       *(abs(w.grad - gW[j, i]) for i, w in enumerate(neuron[:-1])))
    return t_loss.item(), s_loss.data, diff


def main() -> None:
    X, y = make_moons(400, noise=0.1, seed=0)
    X_test, y_test = make_moons(400, noise=0.1, seed=1)
    sizes, steps = [2, 32, 32, 1], 500
    t0 = time.perf_counter()
    r = train_tensor(X, y, sizes, steps=steps, lr=0.5)
    dt = time.perf_counter() - t0
    print("two moons, binary cross-entropy with logits, full-batch gradient descent\n")
    print(f"tensor engine  MLP {'-'.join(map(str, sizes))}, {len(X)} points, {steps} steps: "
          f"loss {r['first']:.3f} -> {r['last']:.3f}, accuracy {r['acc']:.1%} "
          f"(held-out: {accuracy_tensor(r['params'], X_test, y_test):.1%}), {dt:.2f} s")

    Xs, ys = X[:60], y[:60]
    s_sizes, s_steps = [2, 8, 8, 1], 80
    t0 = time.perf_counter()
    s = train_scalar(Xs, ys, s_sizes, steps=s_steps, lr=1.0)
    dt = time.perf_counter() - t0
    print(f"scalar engine  MLP {'-'.join(map(str, s_sizes))}, {len(Xs)} points, {s_steps} steps: "
          f"loss {s['first']:.3f} -> {s['last']:.3f}, accuracy {s['acc']:.1%}, {dt:.2f} s "
          f"({s['nodes']:,} Values in one loss graph)")

    t_loss, s_loss, diff = compare_gradients(init_mlp(s_sizes, seed=1), X[:8], y[:8])
    verdict = "the same" if diff < 1e-12 else "DIFFERENT"
    print(f"\nsame {'-'.join(map(str, s_sizes))} MLP at initialisation, 8 points, float64: "
          f"loss {t_loss:.12f} (tensor) vs {s_loss:.12f} (scalar);\n"
          f"largest gradient difference over all parameters {diff:.1e}: {verdict} gradients")


if __name__ == "__main__":
    main()
