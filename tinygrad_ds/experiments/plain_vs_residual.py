"""plain-vs-residual: plain and residual CIFAR networks at two depths (20 and 56 layers; 8 and
14 with --quick), trained the same way: training-error curves (He et al. 2016, Fig. 1, as the
lecture shows it). The deeper plain network should train worse; the deeper residual one not."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure, integer_ticks
from .training import train_classifier

NAME = "plain-vs-residual"
TITLE = "training error of plain and residual networks at two depths"
USES_DATA = True
CLAIM = """Consider a neural network h(x) which is performing relatively well. If we train a deeper
network f(x) = g(h(x)), we would still expect a good accuracy, since at the very least we should
have f(x) ≈ h(x) with g(x) ≈ x.
Figure 1. Training error (left) and test error (right) on CIFAR-10 with 20-layer and 56-layer
"plain" networks. The deeper network has higher training error, and thus test error."""
SOURCE = "lectures/000_43c7a7ae94714b12.txt, residual connections (lines 503-510)"


def run(ctx: RunContext) -> Verdict:
    from ..nn import models

    depths = ctx.pick((8, 14), (20, 56))
    width, size = ctx.pick((4, 16), (8, 32))
    n_train, n_val = ctx.pick((256, 128), (4000, 1000))
    epochs = ctx.epochs(2, 8)
    d = ctx.data(n_train, n_val, size=size)
    rows, hist = [], {}
    total, n = 2 * len(depths), 0
    for kind in ("plain", "residual"):
        for depth in depths:
            n += 1
            ctx.step(n, total, f"{kind}-{depth}")
            manual_seed(ctx.seed)
            model = models.resnet_cifar(depth, d.num_classes, residual=kind == "residual",
                                        width=width, in_channels=d.image_shape[0])
            h = train_classifier(ctx, model, d, epochs, f"{kind}-{depth}", optimizer="sgd",
                                 lr=0.05, weight_decay=1e-4)
            hist[(kind, depth)] = h
            for e in h.epochs:
                rows.append(dict(network=kind, depth=depth, epoch=int(e["epoch"]),
                                 train_error=1 - e["acc"], test_error=1 - e["val_acc"],
                                 train_loss=e["loss"]))
    ctx.write_csv("curves.csv", rows, ["network", "depth", "epoch", "train_error",
                                       "test_error", "train_loss"])

    fig, axes = figure(2, 2, width=4.6, height=3.2,
                       title=f"Plain vs residual networks on {d.name} ({len(d.train_x)} "
                             f"training images, width {width})")
    for col, kind in enumerate(("plain", "residual")):
        for row, key in enumerate(("acc", "val_acc")):
            a = axes[row * 2 + col]
            for depth, ls in zip(depths, ("--", "-")):
                h = hist[(kind, depth)]
                a.plot(h["epoch"], [1 - v for v in h[key]], ls=ls, marker=".",
                       color=color(kind), lw=1 if depth == depths[0] else 2,
                       label=f"{kind}-{depth}")
            accuracy_axis(a, d.chance, error=True,
                          label="training error (%)" if key == "acc" else "test error (%)")
            a.set_xlabel("epoch")
            a.set_title(f"{kind} networks: {'training' if key == 'acc' else 'test'} error")
            integer_ticks(a)
            a.legend(loc="lower left")
    ctx.save_figure(fig, "curves.png")

    err = {k: 1 - h.epochs[-1]["acc"] for k, h in hist.items()}
    shallow, deep = depths
    plain_gap = err[("plain", deep)] - err[("plain", shallow)]
    res_gap = err[("residual", deep)] - err[("residual", shallow)]
    plain_ok, res_ok = plain_gap > 0.01, res_gap < plain_gap
    agreement = ("agrees" if plain_ok and res_ok else "partly agrees" if plain_ok or res_ok
                 else "disagrees")
    chance_loss = float(np.log(d.num_classes))
    blew_up = [k for k, h in hist.items() if h.epochs[0]["loss"] > chance_loss + 0.1
               and 1 - h.epochs[-1]["acc"] > 1 - d.chance - 0.1]
    diagnosis = "".join(
        f"\n\n{k[0]}-{k[1]} never left chance: its training loss in the first epoch, "
        f"{hist[k].epochs[0]['loss']:.2f}, is above the loss of a uniform guess (ln "
        f"{d.num_classes} = {chance_loss:.2f}), the sign of steps too large for the start of "
        f"training, after which it stayed stuck. He et al. start their deepest (110-layer) "
        f"network at lr 0.01 for its first 400 iterations for this reason; this run uses no "
        f"warm-up, and was not tuned to make the network train." for k in blew_up)
    measured = ("Training error in the last epoch (running average over that epoch):\n\n"
                "| network | " + " | ".join(f"{dp} layers" for dp in depths)
                + " | deeper minus shallower |\n|---|---|---|---|\n"
                + f"| plain | {err[('plain', shallow)]:.1%} | {err[('plain', deep)]:.1%} | "
                  f"{plain_gap:+.1%} |\n"
                + f"| residual | {err[('residual', shallow)]:.1%} | "
                  f"{err[('residual', deep)]:.1%} | {res_gap:+.1%} |\n\n"
                + "Test error in the last epoch: " + ", ".join(
                    f"{k[0]}-{k[1]} {1 - h.epochs[-1]['val_acc']:.1%}" for k, h in hist.items())
                + f" (chance: {1 - d.chance:.0%} error)." + diagnosis)
    line = (f"going from {shallow} to {deep} layers changes the final training error by "
            f"{plain_gap:+.1%} for the plain networks and {res_gap:+.1%} for the residual ones")
    setup = (f"models.resnet_cifar(depth, width={width}) with and without its skip connections "
             f"(the plain network has the same layers, batch norm included), depths "
             f"{shallow} and {deep}; SGD (momentum 0.9, lr 0.05, weight decay 1e-4, cosine "
             f"schedule, batch 64), {epochs} epochs on {len(d.train_x)} {d.name} images "
             f"{d.image_shape}, tested on {len(d.val_x)}. He et al. trained 64,000 "
             f"iterations on 50,000 CIFAR-10 images; this is far shorter.")
    if blew_up:
        line += "; " + ", ".join(f"{k[0]}-{k[1]}" for k in blew_up) + " stayed at chance"
    return Verdict(agreement, line, setup, measured)
