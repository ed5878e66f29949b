"""normalizations: batch, layer, group and instance norm in the same network, trained at batch
sizes 128, 8 and 2 (lectures 001 and 004, Fig. 14 and "Batch normalization has multiple
issues"): batch norm's statistics become noisy at small batches, the others do not use the
batch at all."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure
from .training import small_cnn, train_classifier

NAME = "normalizations"
TITLE = "batch, layer, group and instance norm at batch sizes 128, 8 and 2"
USES_DATA = True
CLAIM = """Batch normalization has multiple issues in practice: ... The variance of the estimate
can be very high when the batch size is small, which is a problem with very large models. ...
[layer normalization] works also with small batch sizes (even 1) and it does not add any
inter-batch dependency. ... Figure 14: How statistics are computed with 2d data ... IN: instance
normalization, GN: group normalization."""
SOURCE = ("lectures/001_17a03c881cf67de0.txt, normalisation slides and Fig. 14 (lines 380-400); "
          "lectures/004_77d3c3a062fd6bca.txt, 'Even more normalizations!' (line 575)")
NORMS = ("batch", "layer", "group", "instance")


def run(ctx: RunContext) -> Verdict:
    width, size = ctx.pick((8, 16), (16, 32))
    n_train, n_val = ctx.pick((128, 256), (2000, 1000))
    batches = ctx.pick((32, 8, 2), (128, 8, 2))
    epochs = ctx.epochs(2, 6)
    d = ctx.data(n_train, n_val, size=size)
    rows, final = [], {}
    total, n = len(NORMS) * len(batches), 0
    for norm in NORMS:
        for bs in batches:
            n += 1
            ctx.step(n, total, f"{norm} norm, batch {bs}")
            manual_seed(ctx.seed)
            model = small_cnn(d.image_shape[0], width, d.num_classes, norm=norm)
            h = train_classifier(ctx, model, d, epochs, f"{norm} norm, batch {bs}",
                                 optimizer="adam", lr=1e-3, batch_size=bs)
            last = h.epochs[-1]
            final[(norm, bs)] = last["val_acc"]
            rows.append(dict(norm=norm, batch_size=bs, epochs=len(h), steps=len(h) *
                             -(-len(d.train_x) // bs), train_loss=last["loss"],
                             train_acc=last["acc"], val_loss=last["val_loss"],
                             val_acc=last["val_acc"]))
    ctx.write_csv("results.csv", rows, ["norm", "batch_size", "epochs", "steps", "train_loss",
                                        "train_acc", "val_loss", "val_acc"])

    fig, a = figure(1, width=8.5, height=4.0,
                    title=f"Normalisations against batch size ({epochs} epochs of "
                          f"{len(d.train_x)} {d.name} images)")
    w = 0.8 / len(NORMS)
    for i, norm in enumerate(NORMS):
        xs = np.arange(len(batches)) + (i - (len(NORMS) - 1) / 2) * w
        vals = [final[(norm, bs)] for bs in batches]
        a.bar(xs, vals, w, color=color(f"{norm} norm"), label=f"{norm} norm")
        for x, v in zip(xs, vals):
            a.text(x, v + 0.01, f"{v:.0%}", ha="center", fontsize=7)
    a.set_xticks(range(len(batches)))
    a.set_xticklabels([f"batch {bs}" for bs in batches])
    a.set_xlabel("batch size (training; the same number of epochs, so more steps at small "
                 "batches)")
    accuracy_axis(a, d.chance, label="validation accuracy (%)")
    a.grid(axis="x", visible=False)
    a.legend(loc="upper right", ncol=5, fontsize=7)
    ctx.save_figure(fig, "accuracy.png")

    big, small = batches[0], batches[-1]
    drop = {nm: final[(nm, big)] - final[(nm, small)] for nm in NORMS}
    # the same epochs give more steps at small batches, so every norm's accuracy moves with
    # the batch size; what the lecture says is about batch norm against the others
    edge = {bs: final[("batch", bs)] - float(np.mean([final[(nm, bs)] for nm in NORMS[1:]]))
            for bs in batches}
    agree = all(edge[small] < edge[bs] - 0.02 for bs in batches[:-1])
    agreement = "agrees" if agree else ("partly agrees" if edge[small] < edge[big] - 0.02
                                        else "disagrees")
    measured = ("Validation accuracy after the last epoch:\n\n| norm | "
                + " | ".join(f"batch {bs}" for bs in batches)
                + f" | batch {big} minus batch {small} |\n|---|"
                + "---|" * (len(batches) + 1) + "\n"
                + "\n".join(f"| {nm} | " + " | ".join(f"{final[(nm, bs)]:.1%}" for bs in batches)
                            + f" | {drop[nm]:+.1%} |" for nm in NORMS)
                + "\n\nBatch norm's lead over the mean of the other three: "
                + ", ".join(f"{edge[bs]:+.1%} at batch {bs}" for bs in batches) + ". "
                + "The same number of epochs means more optimisation steps at smaller batches "
                  "(see steps in results.csv), which moves every norm's accuracy; the lead "
                  "compares them at equal steps.\n\n"
                + "Batch norm is evaluated with its running statistics (as in deployment); "
                  "the other three normalise each image with its own statistics, in training "
                  "and at test time alike.")
    line = ("batch norm's validation accuracy minus the mean of layer, group and instance "
            "norm: " + ", ".join(f"{edge[bs]:+.1%} at batch {bs}" for bs in batches)
            + f"; from batch {big} to {small} each changes by "
            + ", ".join(f"{-drop[nm]:+.1%} ({nm})" for nm in NORMS))
    setup = (f"small_cnn (three conv-norm-ReLU-maxpool stages of {width}, {2 * width}, "
             f"{4 * width} filters, global average pooling, Linear) with BatchNorm2d; "
             f"GroupNorm(1, C) for layer norm (statistics per image over C, H and W, one "
             f"scale and shift per channel); GroupNorm(4, C); InstanceNorm2d(C, affine=True). "
             f"Adam (lr 1e-3, cosine schedule) for {epochs} epochs on {len(d.train_x)} "
             f"{d.name} images {d.image_shape} at each batch size, the same initialisation; "
             f"validated on {len(d.val_x)} images.")
    return Verdict(agreement, line, setup, measured)
