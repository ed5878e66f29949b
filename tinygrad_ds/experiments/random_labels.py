"""random-labels: the same network fitted to the true labels, to random labels and to random
pixels (Zhang et al. 2017, "Understanding deep learning requires rethinking generalization",
the lecture's Fig. 7): training-loss curves. A network large enough for its training set
memorises it whatever the labels; random labels just take longer."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure, integer_ticks
from .training import train_classifier

NAME = "random-labels"
TITLE = "fitting true labels, random labels and random pixels"
USES_DATA = True
CLAIM = """Deep learning models are strangely resilient to classical overfitting, but they have
shown some peculiar characteristics, e.g.: 1. Models trained for long enough on random data can
still memorize the entire dataset and achieve perfect accuracy. ...
Figure 7: Taken from (Zhang et al., 2016). A large CNN can fit data perfectly even with random
labels and/or random pixels."""
SOURCE = "lectures/000_43c7a7ae94714b12.txt, 'Visualization of overfitting' (lines 114-126)"
CASES = ("true labels", "random labels", "random pixels")


def mlp(n_in: int, hidden: int, n_out: int):
    """Zhang et al.'s MLP 1x512: Flatten - Linear(n_in, hidden) - ReLU - Linear(hidden, n_out)."""
    from .. import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


def run(ctx: RunContext) -> Verdict:
    size, hidden = ctx.pick((16, 256), (32, 512))
    n_train, n_val = ctx.pick((256, 128), (2000, 1000))
    epochs = ctx.epochs(20, 120)
    d = ctx.data(n_train, n_val, size=size)
    rng = np.random.default_rng(ctx.seed + 7)
    hists, rows = {}, []
    for i, case in enumerate(CASES):
        ctx.step(i + 1, len(CASES), case)
        dd = d
        if case == "random labels":
            dd = _replace(d, train_y=rng.integers(0, d.num_classes, len(d.train_y)))
        elif case == "random pixels":  # Gaussian pixels with the data's (normalised) moments
            dd = _replace(d, train_x=rng.standard_normal(d.train_x.shape).astype(np.float32))
        manual_seed(ctx.seed)
        model = mlp(int(np.prod(d.image_shape)), hidden, d.num_classes)
        h = train_classifier(ctx, model, dd, epochs, case, optimizer="adam", lr=1e-3,
                             schedule=False, batch_size=64)
        hists[case] = h
        for e in h.epochs:
            rows.append(dict(case=case, epoch=int(e["epoch"]), train_loss=e["loss"],
                             train_acc=e["acc"], val_acc=e["val_acc"]))
    ctx.write_csv("curves.csv", rows, ["case", "epoch", "train_loss", "train_acc", "val_acc"])

    fig, (a1, a2) = figure(2, width=5.0, height=3.8,
                           title=f"Memorising {len(d.train_x)} {d.name} images with an MLP "
                                 f"1x{hidden}")
    for c in CASES:
        h = hists[c]
        a1.plot(h["epoch"], h["loss"], color=color(c), label=c, lw=1.8)
        a2.plot(h["epoch"], h["acc"], color=color(c), label=c, lw=1.8)
    a1.set_yscale("log")
    a1.axhline(np.log(d.num_classes), color="#868e96", ls="--", lw=1,
               label=f"chance loss ln {d.num_classes}")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (cross-entropy, log scale)")
    a1.set_title("training loss")
    a1.legend()
    accuracy_axis(a2, d.chance, label="training accuracy (%)")
    a2.set_xlabel("epoch")
    a2.set_title("training accuracy")
    a2.legend(loc="center right")
    for a in (a1, a2):
        integer_ticks(a)
    ctx.save_figure(fig, "curves.png")

    fin = {c: hists[c].epochs[-1] for c in CASES}

    def epochs_to(c, acc=0.99):
        return next((int(e["epoch"]) for e in hists[c].epochs if e["acc"] >= acc), None)

    reach = {c: epochs_to(c) for c in CASES}
    memorised = [c for c in CASES if fin[c]["acc"] >= 0.99]
    slower = reach["random labels"] is None or (reach["true labels"] is not None and
                                                reach["random labels"] > reach["true labels"])
    agreement = "agrees" if len(memorised) == 3 and slower else (
        "partly agrees" if "random labels" in memorised or "random pixels" in memorised
        else "disagrees")
    measured = ("| data | final training loss | final training acc | first epoch with training "
                "acc >= 99% | validation acc (true labels) |\n|---|---|---|---|---|\n"
                + "\n".join(f"| {c} | {fin[c]['loss']:.4f} | {fin[c]['acc']:.1%} | "
                            f"{reach[c] if reach[c] is not None else 'not reached'} | "
                            f"{fin[c]['val_acc']:.1%} |" for c in CASES)
                + "\n\nThe validation accuracy is on held-out images with their true labels: "
                  "memorising random labels or pixels teaches nothing that generalises.")
    line = ("training accuracy after " + str(epochs) + " epochs: "
            + ", ".join(f"{c} {fin[c]['acc']:.1%}" for c in CASES)
            + "; first epoch at 99%: " + ", ".join(
                f"{c} {reach[c] if reach[c] is not None else 'never'}" for c in CASES)
            + ("" if slower else " (random labels are not slower to fit than true ones here, "
               "unlike Zhang et al.'s CIFAR-10 networks)"))
    setup = (f"An MLP with one hidden layer of {hidden} ReLU units (Zhang et al.'s MLP 1x512 "
             f"at full size) on {len(d.train_x)} {d.name} images {d.image_shape}: with their "
             f"labels; with labels drawn uniformly at random; and with the images replaced by "
             f"Gaussian noise (the normalised data's mean 0 and std 1) and the true labels. "
             f"Adam (lr 1e-3, batch 64, no schedule, no regularisation), {epochs} epochs.")
    return Verdict(agreement, line, setup, measured)


def _replace(d, **kw):
    from dataclasses import replace

    return replace(d, **kw)
