"""vgg-depth-grid: VGG-like networks with 1 to 4 blocks and 1 to 3 convolutions per block,
global average pooling and one Linear layer, trained with Adam, several repetitions each:
heatmaps of test accuracy (mean ± std) and of the number of parameters (lecture Figs. 4-5)."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import figure
from .training import train_classifier

NAME = "vgg-depth-grid"
TITLE = "VGG-like networks of 1-4 blocks x 1-3 convolutions: accuracy and parameters"
USES_DATA = True
CLAIM = """To see what happens when varying the depth, we experiment with a VGG-like architecture,
varying the number of blocks, and the number of convolutional layers inside each block. We use a
global average pooling at the end followed by a linear layer, with cross-entropy loss. We run 3
epochs, 3 repetitions each, with the Adam optimization algorithm.
- Some combinations do not even train (they get stuck at initialization). Other combinations
  appear much slower.
- Increasing the number of blocks looks good, but the original image is destroyed after a few
  max pooling operations.
- Increasing the number of layers in a block is also good, but the gains are more marginal.
- It is very easy to make the number of parameters go up."""
SOURCE = "lectures/000_43c7a7ae94714b12.txt, Figs. 4-5 (lines 75-92); also 001 and 004"
BLOCKS, CONVS = (1, 2, 3, 4), (1, 2, 3)


def run(ctx: RunContext) -> Verdict:
    from ..nn import models

    width, size = ctx.pick((4, 16), (16, 32))
    n_train, n_val = ctx.pick((256, 128), (5000, 1000))
    reps, epochs = ctx.pick(1, 3), ctx.epochs(1, 3)
    d = ctx.data(n_train, n_val, size=size)
    rows, n, total = [], 0, len(BLOCKS) * len(CONVS) * reps
    for b in BLOCKS:
        for c in CONVS:
            for r in range(reps):
                n += 1
                manual_seed(ctx.seed * 100 + r)
                model = models.vgg_grid(b, c, width, d.num_classes, in_channels=d.image_shape[0])
                params = sum(int(p.data.size) for p in model.parameters())
                ctx.step(n, total, f"{b} blocks x {c} convs, repetition {r + 1}")
                h = train_classifier(ctx, model, d, epochs, f"{b}x{c} rep {r + 1}",
                                     optimizer="adam", lr=1e-3, schedule=False, seed=r)
                last = h.epochs[-1]
                rows.append(dict(blocks=b, convs_per_block=c, repetition=r + 1, params=params,
                                 train_loss=last["loss"], train_acc=last["acc"],
                                 test_acc=last["val_acc"], test_loss=last["val_loss"]))
    ctx.write_csv("grid.csv", rows, ["blocks", "convs_per_block", "repetition", "params",
                                     "train_loss", "train_acc", "test_acc", "test_loss"])
    acc = np.zeros((len(BLOCKS), len(CONVS), reps))
    par = np.zeros((len(BLOCKS), len(CONVS)))
    for r in rows:
        i, j = BLOCKS.index(r["blocks"]), CONVS.index(r["convs_per_block"])
        acc[i, j, r["repetition"] - 1] = r["test_acc"]
        par[i, j] = r["params"]
    mean, std = acc.mean(axis=2), acc.std(axis=2)

    fig, (a1, a2) = figure(2, width=4.8, height=4.2,
                           title=f"VGG-like grid on {d.name}: {epochs} epoch(s) of Adam, "
                                 f"{reps} repetition(s), width {width}")
    im = a1.imshow(mean.T, origin="lower", cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(len(BLOCKS)):
        for j in range(len(CONVS)):
            txt = f"{mean[i, j]:.0%}" + (f"\n± {std[i, j]:.0%}" if reps > 1 else "")
            a1.text(i, j, txt, ha="center", va="center", fontsize=9,
                    color="white" if mean[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=a1, label=f"test accuracy (chance {d.chance:.0%})")
    a1.set_title("test accuracy" + (" (mean ± std)" if reps > 1 else ""))
    logp = np.log10(par)
    im2 = a2.imshow(logp.T, origin="lower", cmap="magma", aspect="auto")
    for i in range(len(BLOCKS)):
        for j in range(len(CONVS)):
            a2.text(i, j, f"{int(par[i, j]):,}", ha="center", va="center", fontsize=8,
                    color="white" if logp[i, j] < logp.mean() else "black")
    fig.colorbar(im2, ax=a2, label="log10(parameters)")
    a2.set_title("parameters")
    for a in (a1, a2):
        a.set_xticks(range(len(BLOCKS)))
        a.set_xticklabels(BLOCKS)
        a.set_yticks(range(len(CONVS)))
        a.set_yticklabels(CONVS)
        a.set_xlabel("blocks (each ends in a 2x2 max pool)")
        a.set_ylabel("convolutions per block")
        a.grid(False)
    ctx.save_figure(fig, "grid.png")

    stuck = [(BLOCKS[i], CONVS[j]) for i in range(len(BLOCKS)) for j in range(len(CONVS))
             if mean[i, j] < d.chance + 0.05]
    by_blocks = mean.mean(axis=1)
    by_convs = mean.mean(axis=0)
    gain_blocks = float(by_blocks.max() - by_blocks[0])
    gain_convs = float(by_convs.max() - by_convs[0])
    best = np.unravel_index(np.argmax(mean), mean.shape)
    params_ratio = par.max() / par.min()
    checks = [gain_blocks > 0.02, gain_blocks > gain_convs, params_ratio > 10]
    agreement = ("agrees" if all(checks) else "partly agrees" if any(checks[:2])
                 else "disagrees")
    measured = (
        "Test accuracy, mean" + (" ± std" if reps > 1 else "") + " over repetitions "
        "(rows: blocks, columns: convolutions per block):\n\n"
        "| blocks | " + " | ".join(f"{c} conv" for c in CONVS)
        + " | parameters (1 / 2 / 3 conv) |\n"
        "|---|" + "---|" * (len(CONVS) + 1) + "\n"
        + "\n".join(f"| {b} | " + " | ".join(
            f"{mean[i, j]:.1%}" + (f" ± {std[i, j]:.1%}" if reps > 1 else "")
            for j in range(len(CONVS))) + " | " + " / ".join(f"{int(p):,}" for p in par[i])
            + " |" for i, b in enumerate(BLOCKS))
        + f"\n\n- Best: {BLOCKS[best[0]]} blocks x {CONVS[best[1]]} convolutions, "
          f"{mean[best]:.1%}.\n"
        f"- Averaged over the convolutions per block, going from 1 block to the best number "
        f"of blocks gains {gain_blocks:+.1%}; averaged over blocks, going from 1 convolution "
        f"per block to the best gains {gain_convs:+.1%}.\n"
        f"- Stuck at chance (within 5 points of {d.chance:.0%}): "
        + (", ".join(f"{b}x{c}" for b, c in stuck) if stuck else "none") + ".\n"
        f"- The parameter count spans a factor {params_ratio:.0f} across the grid.")
    line = (f"more blocks gain {gain_blocks:+.1%}, more convolutions per block "
            f"{gain_convs:+.1%}; best {BLOCKS[best[0]]}x{CONVS[best[1]]} at {mean[best]:.1%}; "
            f"{len(stuck)} of {mean.size} configurations stuck near chance; parameters span "
            f"x{params_ratio:.0f}")
    setup = (f"models.vgg_grid(blocks, convs_per_block, width={width}) for blocks 1-4 and "
             f"1-3 convolutions per block (3x3 convolutions with ReLU, filters doubling per "
             f"block, 2x2 max pool after each block, global average pooling, one Linear "
             f"layer), {reps} repetition(s) with different initialisations and batch orders; "
             f"Adam (lr 1e-3, batch 64), {epochs} epoch(s) on {len(d.train_x)} {d.name} images "
             f"{d.image_shape}; tested on {len(d.val_x)} held-out images.")
    return Verdict(agreement, line, setup, measured)
