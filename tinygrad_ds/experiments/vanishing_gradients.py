"""vanishing-gradients: per-layer gradient norms of a deep fully connected network at
initialisation and over its first training steps, with sigmoid, with ReLU, with batch norm and
with residual connections; and the lecture's scalar chain y_l = f(w_l y_(l-1)) with and without
the skip (viz.vanishing, as examples/vanishing_gradients.py).
"""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import color, figure, integer_ticks

NAME = "vanishing-gradients"
TITLE = "per-layer gradient norms in a deep network: sigmoid, ReLU, batch norm, residual"
USES_DATA = True
CLAIM = """Case I: We have a sigmoid activation and all weight are smaller than 1 ...
Gradient with respect to first layer vanishes as the network gets too deep ...
In practice, we can use different approaches to control this behavior
- We use better activations in deep NNs - this is why in deep CNNs we use mostly ReLU
- We apply batch-normalization
- We use skip connection - this helps us go even deeper!"""
SOURCE = ("lectures/003_4c2b7c306c3d8efe.txt, 'Exploding-Vanishing Gradients' and "
          "'Exploding-Vanishing Gradients: Solution' (lines 455-553)")
VARIANTS = ("sigmoid", "relu", "batch norm", "residual")
DESCRIBE = {
    "sigmoid": "Linear-sigmoid layers, Xavier-normal weights",
    "relu": "Linear-ReLU layers, He-normal weights",
    "batch norm": "Linear-BatchNorm-ReLU layers, He-normal weights",
    "residual": "the sigmoid network with a skip around every layer: h + sigmoid(W h + b)",
}


def build(variant: str, n_in: int, width: int, depth: int, n_out: int):
    """A network of `depth` hidden layers of `width` units; returns (model, hidden Linears in
    order from the input)."""
    from .. import nn

    def lin(i, o, he):
        m = nn.Linear(i, o)
        (nn.init.kaiming_normal_(m.weight, nonlinearity="relu") if he
         else nn.init.xavier_normal_(m.weight))
        nn.init.zeros_(m.bias)
        return m

    he = variant in ("relu", "batch norm")
    hidden = [lin(n_in, width, he)] + [lin(width, width, he) for _ in range(depth - 1)]
    layers = [nn.Flatten()]
    for i, h in enumerate(hidden):
        if variant == "sigmoid":
            layers += [h, nn.Sigmoid()]
        elif variant == "relu":
            layers += [h, nn.ReLU()]
        elif variant == "batch norm":
            layers += [h, nn.BatchNorm1d(width), nn.ReLU()]
        elif i == 0:  # residual: the first layer changes the width, so it has no skip
            layers += [h, nn.Sigmoid()]
        else:
            layers.append(nn.Residual(nn.Sequential(h, nn.Sigmoid())))
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers), hidden


def run(ctx: RunContext) -> Verdict:
    from .. import optim
    from ..ops.loss import cross_entropy
    from ..tensor import Tensor

    depth, width, size, steps = ctx.pick((20, 64, 16, 20), (30, 128, 32, 100))
    batch, lr = 64, 0.05
    d = ctx.data(n_train=batch * steps, n_val=16, size=size)
    n_in = int(np.prod(d.image_shape))
    norms, losses, rows = {}, {}, []
    for j, v in enumerate(VARIANTS):
        manual_seed(ctx.seed)
        model, hidden = build(v, n_in, width, depth, d.num_classes)
        opt = optim.SGD(model.parameters(), lr=lr)
        per_step, ls = [], []
        for s in range(steps + 1):
            lo = (s * batch) % len(d.train_x)
            x, y = Tensor(d.train_x[lo:lo + batch]), Tensor(d.train_y[lo:lo + batch])
            loss = cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            g = [float(np.linalg.norm(h.weight.grad.data)) for h in hidden]
            per_step.append(g)
            ls.append(float(loss.item()))
            for k, val in enumerate(g):
                rows.append(dict(variant=v, step=s, layer=k + 1, grad_norm=val,
                                 loss=ls[-1]))
            if s < steps:
                opt.step()
        norms[v], losses[v] = np.array(per_step), np.array(ls)
        ctx.step(j + 1, len(VARIANTS), f"{v}: |grad| of layer 1 / layer {depth} at init "
                 f"{norms[v][0, 0] / norms[v][0, -1]:.3g}")
    ctx.write_csv("layer_grad_norms.csv", rows, ["variant", "step", "layer", "grad_norm",
                                                 "loss"])

    from viz.vanishing import DEFAULT_CASES, vanishing_table

    chain_depths = list(range(1, 51))
    table = vanishing_table(chain_depths)
    ctx.write_csv("scalar_chain.csv",
                  [dict(case=c.name, activation=c.activation, weight=c.weight, skip=int(c.skip),
                        depth=L, grad_w1=table[c.name][i])
                   for c in DEFAULT_CASES for i, L in enumerate(chain_depths)],
                  ["case", "activation", "weight", "skip", "depth", "grad_w1"])

    fig, (a1, a2, a3) = figure(3, width=4.3, height=3.6,
                               title=f"Vanishing gradients in a {depth}-layer network of width "
                                     f"{width}, and in the lecture's scalar chain")
    layers = np.arange(1, depth + 1)
    for v in VARIANTS:
        a1.plot(layers, norms[v][0], marker=".", color=color(v),
                label="residual (sigmoid + skips)" if v == "residual" else v)
        a2.plot(np.arange(steps + 1), norms[v][:, 0], color=color(v), label=v)
    a1.set_yscale("log")
    a1.set_xlabel("layer (1 = next to the input)")
    a1.set_ylabel("|dL/dW| of the layer's weights")
    a1.set_title("at initialisation, per layer")
    integer_ticks(a1)
    a1.legend()
    a2.set_yscale("log")
    a2.set_xlabel(f"training step (SGD, lr {lr}, batch {batch})")
    a2.set_ylabel("|dL/dW| of layer 1")
    a2.set_title("first layer, over the first steps")
    integer_ticks(a2)
    for c in DEFAULT_CASES:
        label = c.activation + (" + skip" if c.skip else "")
        a3.plot(chain_depths, np.maximum(table[c.name], 1e-300),
                color=color("residual" if c.skip else c.activation),
                ls="-" if c.activation == "sigmoid" else "--", lw=3 if c.skip else 1.2,
                alpha=0.6 if c.skip else 1.0, zorder=1 if c.skip else 2,
                label=f"{label}, w = {c.weight:g}")
    a3.set_yscale("log")
    a3.set_xlabel("depth L of the chain (layers)")
    a3.set_ylabel("|dR/dw_1|")
    a3.set_title("scalar chain y_l = f(w_l y_(l-1))")
    integer_ticks(a3)
    a3.legend(fontsize=7)
    ctx.save_figure(fig, "vanishing.png")

    ratio = {v: float(norms[v][0, 0] / norms[v][0, -1]) for v in VARIANTS}
    first_end = {v: float(norms[v][-1, 0] / norms[v][-1, -1]) for v in VARIANTS}
    sig_chain = table[DEFAULT_CASES[0].name][-1]
    skip_chain = table[DEFAULT_CASES[1].name][-1]
    agree = (ratio["sigmoid"] < 0.01 and all(ratio[v] > 0.1 for v in VARIANTS[1:])
             and sig_chain < 1e-10 < skip_chain)
    measured = ("| network | layer 1 / layer %d at init | after %d steps | loss at step 0 | "
                "loss after %d steps |\n|---|---|---|---|---|\n" % (depth, steps, steps)
                + "\n".join(f"| {v} | {ratio[v]:.3g} | {first_end[v]:.3g} | "
                            f"{losses[v][0]:.3f} | {losses[v][-1]:.3f} |" for v in VARIANTS)
                + f"\n\nThe ratio is |dL/dW| of the first hidden layer over that of the last "
                  f"({depth}th): 1 means the gradient reaches the input undiminished.\n\n"
                  f"Scalar chain at L = 50: sigmoid with w = 0.8 gives |dR/dw_1| = "
                  f"{sig_chain:.3g}; with the skip from the input to the output, "
                  f"{skip_chain:.3g}. (The ReLU chain with w = 1.5 explodes with or without the "
                  f"skip: its two curves lie on top of each other.)\n\n"
                  f"With batch norm the gradient does not vanish, but it grows towards the "
                  f"input (layer 1 gets {ratio['batch norm']:.3g} times layer {depth}'s): batch "
                  f"norm at initialisation makes gradients grow with depth in plain networks, "
                  f"which the lecture does not mention.")
    line = (f"at initialisation, layer 1's gradient is {ratio['sigmoid']:.2g} of layer "
            f"{depth}'s with sigmoid, {ratio['relu']:.2g} with ReLU, "
            f"{ratio['batch norm']:.2g} with batch norm and {ratio['residual']:.2g} with skips; "
            f"the 50-layer sigmoid chain's |dR/dw_1| is {sig_chain:.1e}, {skip_chain:.2g} with "
            f"the skip")
    setup = (f"A fully connected network on flattened {d.name} images ({n_in} inputs): "
             f"{depth} hidden layers of {width} units, then a Linear layer to "
             f"{d.num_classes} classes; biases zero. Variants: "
             + "; ".join(f"{v}: {DESCRIBE[v]}" for v in VARIANTS)
             + f". Cross-entropy on batches of {batch}, SGD with lr {lr}, {steps} steps; the "
               f"gradient norms are measured before each step. The scalar chain is "
               f"viz.vanishing's (x = 1, the same weight at every layer).")
    return Verdict("agrees" if agree else "disagrees", line, setup, measured)
