"""bn-variance: the variance of the activations after each block of a residual network at
initialisation, with and without batch norm (lecture 002, "Benefits of BatchNorm").

Without batch norm each block adds a branch whose variance is about that of its input (He
initialisation keeps the variance through conv-ReLU-conv), so the variance about doubles per
block: it grows exponentially with depth. With batch norm at the end of each branch, the branch
has unit variance, so each block adds about one unit: linear growth.
"""
from __future__ import annotations

import numpy as np

from .. import autograd
from ..random import manual_seed
from .run import RunContext, Verdict
from .style import color, figure, integer_ticks

NAME = "bn-variance"
TITLE = "activation variance per residual block at initialisation, with and without batch norm"
USES_DATA = True
CLAIM = """Benefits of BatchNorm: Stable forward propagation
- Initialize offsets δ to zero and scales γ to 1
- Variance now increases linearly
- k^{th} block adds *one unit of variance* to variance of k
(and, before it, "Exploding Gradients in Residual Networks ... More common to apply batch
normalization")"""
SOURCE = "lectures/002_224146b65b05455f.txt, 'Benefits of BatchNorm' (lines 362-370)"


def block_variances(model, x) -> list[float]:
    """Variance of the activations after the stem and after every block of a zoo ResNet,
    measured in training mode (batch statistics, as at the first training step)."""
    model.train()
    with autograd.no_grad():
        h = model.relu(model.bn1(model.conv1(x)))
        out = [float(np.var(h.data.astype(np.float64)))]
        for s in range(model.num_stages):
            for block in getattr(model, f"layer{s + 1}"):
                h = block(h)
                out.append(float(np.var(h.data.astype(np.float64))))
    return out


def run(ctx: RunContext) -> Verdict:
    from ..nn import models
    from ..tensor import Tensor

    depth, width, size, batch = ctx.pick((56, 4, 16, 32), (110, 16, 32, 64))
    inits = ctx.pick(2, 3)
    d = ctx.data(n_train=batch, n_val=16, size=size)
    x = Tensor(d.train_x[:batch])
    rows, curves = [], {}
    for bn in (True, False):
        label = "with batch norm" if bn else "without batch norm"
        runs = []
        for i in range(inits):
            manual_seed(ctx.seed * 100 + i)
            model = models.resnet_cifar(depth, batch_norm=bn, width=width,
                                        in_channels=d.image_shape[0])
            v = block_variances(model, x)
            runs.append(v)
            for k, val in enumerate(v):
                rows.append(dict(batch_norm=int(bn), init=i, block=k, variance=val))
        curves[label] = np.array(runs)
        ctx.step(2 if not bn else 1, 2, f"ResNet-{depth} {label}: variance after the last "
                 f"block {np.mean(runs, axis=0)[-1]:.3g}")
    ctx.write_csv("variance.csv", rows, ["batch_norm", "init", "block", "variance"])
    blocks = np.arange(curves["with batch norm"].shape[1])
    n = (depth - 2) // 6

    fig, (a1, a2) = figure(2, title=f"ResNet-{depth} at initialisation: variance of the "
                                    f"activations after each block ({inits} initialisations)")
    for label, arr in curves.items():
        m = arr.mean(axis=0)
        a1.plot(blocks, m, marker=".", color=color(label), label=label)
        a1.fill_between(blocks, arr.min(axis=0), arr.max(axis=0), color=color(label), alpha=0.2)
    a1.set_yscale("log")
    a1.set_title("log scale: without batch norm it grows exponentially")
    wb = curves["with batch norm"]
    a2.plot(blocks, wb.mean(axis=0), marker=".", color=color("with batch norm"),
            label="with batch norm")
    a2.set_title("with batch norm, linear scale")
    slopes, fits = [], []
    for s in range(3):
        kk = blocks[1 + s * n:1 + (s + 1) * n]
        slope, icpt = np.polyfit(kk, wb.mean(axis=0)[kk], 1)
        slopes.append(slope)
        fits.append(np.corrcoef(kk, wb.mean(axis=0)[kk])[0, 1])
        a2.plot(kk, icpt + slope * kk, ls=":", color="#343a40", lw=1.5,
                label="straight line fitted in each stage" if s == 0 else None)
    for a in (a1, a2):
        for s in (1, 2):
            a.axvline(s * n + 0.5, color="#adb5bd", lw=0.8, ls="--")
        a.set_xlabel("residual block (0 = after the first convolution)")
        a.set_ylabel("variance of the activations")
        integer_ticks(a)
        a.legend(loc="upper left")
    ctx.save_figure(fig, "variance.png")

    nb = curves["without batch norm"].mean(axis=0)
    stage1 = slice(1, n + 1)  # blocks of the first stage: same width, no padding
    growth = float(np.exp(np.mean(np.diff(np.log(nb[stage1])))))
    wb_m = wb.mean(axis=0)
    step_bn = float(np.mean(np.diff(wb_m[stage1])))
    lin = min(fits)
    agree = growth > 1.5 and nb[-1] > 100 * wb_m[-1] and lin > 0.9
    measured = (
        f"| | after block 0 | after block {n} | after the last block ({blocks[-1]}) |\n"
        f"|---|---|---|---|\n"
        f"| without batch norm | {nb[0]:.3g} | {nb[n]:.3g} | {nb[-1]:.3g} |\n"
        f"| with batch norm | {wb_m[0]:.3g} | {wb_m[n]:.3g} | {wb_m[-1]:.3g} |\n\n"
        f"- Without batch norm the variance is multiplied by {growth:.2f} per block in the "
        f"first stage (exponential growth).\n"
        f"- With batch norm it grows by {step_bn:.2f} per block in the first stage; straight "
        f"lines fitted stage by stage have slopes {', '.join(f'{v:.2f}' for v in slopes)} per "
        f"block (correlations {', '.join(f'{v:.3f}' for v in fits)}): linear growth, but "
        f"by less than the lecture's one unit per block, because the zoo's blocks apply a ReLU "
        f"after the addition (the lecture's block is x + f(x)), and a ReLU keeps only part of "
        f"the variance.\n"
        f"- The dashed vertical lines mark the stage boundaries, where a stride-2 block halves "
        f"the image and the zero-padded shortcut doubles the channels (the new channels start "
        f"from zero on the skip path), so the variance drops there.")
    line = (f"without batch norm the variance grows x{growth:.2f} per block, to {nb[-1]:.3g} "
            f"after {blocks[-1]} blocks; with it, about +{step_bn:.2f} per block, to "
            f"{wb_m[-1]:.3g}")
    setup = (f"The model zoo's CIFAR ResNet-{depth} (width {width}, {n} basic blocks per stage, "
             f"ReLU after each addition, He initialisation), with and without its BatchNorm2d "
             f"layers, on one batch of {batch} {d.name} images of size {d.image_shape}; "
             f"batch norm in training mode (batch statistics), {inits} random initialisations. "
             f"The variance is over every activation of the batch after each block.")
    return Verdict("agrees" if agree else "disagrees",
                   ("As the lecture says: " if agree else "Unlike the lecture: ") + line,
                   setup, measured)
