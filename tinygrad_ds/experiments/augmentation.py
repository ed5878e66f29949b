"""augmentation: validation accuracy of one network trained with no augmentation, flips and
crops, Cutout, MixUp, CutMix and RandAugment (each of the last four on top of flips and crops,
as usual), plus a grid of augmented samples (lecture 000, "Data augmentation")."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure, integer_ticks
from .training import CURVE_COLUMNS, curve_rows, small_cnn, train_classifier

NAME = "augmentation"
TITLE = "validation accuracy with flips and crops, Cutout, MixUp, CutMix, RandAugment"
USES_DATA = True
CLAIM = """The core idea is that we can make the network more robust by adding slight
perturbations to the input. We can prove this to be a form of regularization. ...
Devising data augmentation strategies is especially easy with images, e.g., cropping, shearing,
shifting ... For example, MixUp combines two examples (x1, y1) and (x2, y2) by taking convex
combinations with a random λ ... In CutMix, we first sample a random patch from the second image
x2 ... RandAugment is a popular way of defining data augmentation, by selecting randomly N data
augmentation steps, all of a predefined magnitude M."""
SOURCE = "lectures/000_43c7a7ae94714b12.txt, 'Data augmentation' (lines 140-210, 330)"
METHODS = ("none", "flips+crops", "Cutout", "MixUp", "CutMix", "RandAugment")


def pipeline(method: str, d, flip: bool):
    """(per-image transform ending in Normalize, batch transform or None) for `method`."""
    from .. import data as D

    size = d.image_shape[-1]
    steps = []
    if method != "none":
        steps.append(D.RandomCrop(padding=max(1, size // 8)))
        if flip:
            steps.append(D.RandomHorizontalFlip())
    if method == "Cutout":
        steps.append(D.Cutout(max(2, size // 4)))
    if method == "RandAugment":
        steps.insert(0, D.RandAugment(2, 9))
    batch = {"MixUp": D.MixUp(d.num_classes), "CutMix": D.CutMix(d.num_classes)}.get(method)
    return D.Compose(steps), D.Compose(steps + [D.Normalize(d.mean, d.std)]), batch


def sample_grid(ctx: RunContext, d, flip: bool, n: int = 6):
    """A figure: one row per method, the same n training images augmented."""
    from ..data import to_float_image

    rng = np.random.default_rng(ctx.seed)
    imgs = to_float_image(d.raw_train[:n])
    labels = d.train_y[:n]
    fig, axes = figure(n, len(METHODS), width=1.25, height=1.35,
                       title="The same training images under each augmentation")
    for i, method in enumerate(METHODS):
        plain, _, batch = pipeline(method, d, flip)
        out = np.stack([plain(x, rng) for x in imgs])
        if batch is not None:
            out, _ = batch(out, labels, rng)
        for j in range(n):
            a = axes[i * n + j]
            im = np.clip(out[j], 0, 1)
            a.imshow(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0),
                     cmap="gray" if im.shape[0] == 1 else None, vmin=0, vmax=1)
            a.set_xticks([])
            a.set_yticks([])
            a.grid(False)
            if j == 0:
                a.set_ylabel(method, fontsize=9, color=color(method), fontweight="bold")
    return fig


def run(ctx: RunContext) -> Verdict:
    width, size = ctx.pick((8, 16), (16, 32))
    n_train, n_val = ctx.pick((256, 256), (4000, 1000))
    epochs = ctx.epochs(2, 15)
    d = ctx.data(n_train, n_val, size=size)
    flip = d.image_shape[0] == 3  # digits are not mirror images of each other
    ctx.save_figure(sample_grid(ctx, d, flip), "samples.png")
    hists, rows = {}, []
    for i, method in enumerate(METHODS):
        ctx.step(i + 1, len(METHODS), method)
        _, tf, batch = pipeline(method, d, flip)
        tr = ctx.loader(d.raw_train, d.train_y, 64, shuffle=True, transform=tf,
                        batch_transform=batch)
        manual_seed(ctx.seed)
        model = small_cnn(d.image_shape[0], width, d.num_classes)
        h = train_classifier(ctx, model, d, epochs, method, optimizer="adam", lr=2e-3,
                             train_loader=tr)
        hists[method] = h
        rows += curve_rows(method, h)
    ctx.write_csv("curves.csv", rows, CURVE_COLUMNS)

    fig, (a1, a2) = figure(2, width=5.0, height=3.8,
                           title=f"Augmentation on {len(d.train_x)} {d.name} images")
    for m in METHODS:
        h = hists[m]
        a1.plot(h["epoch"], h["val_acc"], marker=".", color=color(m), label=m,
                lw=2 if m == "none" else 1.2)
    accuracy_axis(a1, d.chance, label="validation accuracy (%)")
    a1.set_xlabel("epoch")
    a1.set_title("validation accuracy per epoch")
    integer_ticks(a1)
    a1.legend(fontsize=7)
    final = {m: hists[m].epochs[-1]["val_acc"] for m in METHODS}
    a2.bar(range(len(METHODS)), [final[m] for m in METHODS],
           color=[color(m) for m in METHODS])
    for i, m in enumerate(METHODS):
        a2.text(i, final[m] + 0.01, f"{final[m]:.1%}", ha="center", fontsize=8)
    a2.set_xticks(range(len(METHODS)))
    a2.set_xticklabels(METHODS, rotation=30, ha="right")
    accuracy_axis(a2, d.chance, label="final validation accuracy (%)")
    a2.set_title(f"after {epochs} epochs")
    a2.grid(axis="x", visible=False)
    ctx.save_figure(fig, "accuracy.png")

    better = [m for m in METHODS[1:] if final[m] > final["none"] + 0.005]
    gaps = {m: hists[m].epochs[-1]["acc"] - final[m] for m in METHODS}
    agreement = "agrees" if len(better) >= 3 else ("partly agrees" if better else "disagrees")
    measured = ("| augmentation | final validation acc | final training acc | train - val |\n"
                "|---|---|---|---|\n"
                + "\n".join(f"| {m} | {final[m]:.1%} | {hists[m].epochs[-1]['acc']:.1%} | "
                            f"{gaps[m]:+.1%} |" for m in METHODS)
                + "\n\nTraining accuracy is measured on the augmented images (with MixUp and "
                  "CutMix, against the argmax of the mixed target), so it is lower than on "
                  "clean images. Single runs: differences of a point or two are noise."
                + (f"\n\nWithout augmentation the network hardly overfits (training "
                   f"{hists['none'].epochs[-1]['acc']:.1%}, validation {final['none']:.1%}): "
                   f"after {epochs} epochs it is still underfitting, so there is no "
                   f"overfitting for augmentation to cure, and the harder augmented task only "
                   f"slows its learning. The lecture's gains come from long training, where "
                   f"the un-augmented network memorises its training set."
                   if gaps["none"] < 0.05 else ""))
    line = (f"final validation accuracy {final['none']:.1%} without augmentation; "
            + ", ".join(f"{m} {final[m]:.1%}" for m in METHODS[1:])
            + f"; {len(better)} of 5 beat no augmentation")
    setup = (f"small_cnn (three conv-ReLU-maxpool stages of {width}, {2 * width}, "
             f"{4 * width} filters, global average pooling, Linear), trained from the same "
             f"initialisation with Adam (lr 2e-3, cosine schedule, batch 64) for {epochs} "
             f"epochs on {len(d.train_x)} {d.name} images {d.image_shape}, validated on "
             f"{len(d.val_x)}. flips+crops: random crop with {max(1, size // 8)}-pixel padding"
             + (" and horizontal flip" if flip else " (no flip: grey digits)")
             + f"; Cutout: one {max(2, size // 4)}x{max(2, size // 4)} hole; MixUp and CutMix: "
               f"alpha = 1; RandAugment: N = 2, M = 9. The last four add to flips+crops.")
    return Verdict(agreement, line, setup, measured)
