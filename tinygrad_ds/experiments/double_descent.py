"""double-descent: test error against model width, with label noise, around the interpolation
threshold (Nakkiran et al. 2019, "Deep double descent"; the lecture's Fig. 8), at a scale that
fits the time limit: one-hidden-layer networks of growing width, each trained long enough to
(nearly) interpolate a small training set whose labels are partly wrong."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure
from .training import train_classifier

NAME = "double-descent"
TITLE = "test error against width, with label noise (model-wise double descent)"
USES_DATA = True
CLAIM = """Deep learning models are strangely resilient to classical overfitting, but they have
shown some peculiar characteristics, e.g.: ... 2. Models can start improving after a period of
apparent overfitting (double descent).
Figure 8: Deep Double Descent (OpenAI Blog)."""
SOURCE = "lectures/000_43c7a7ae94714b12.txt, lines 114-133 (Fig. 8)"


def run(ctx: RunContext) -> Verdict:
    from .random_labels import mlp

    size = ctx.pick(8, 16)
    n_train, n_val = ctx.pick((200, 500), (1000, 2000))
    widths = ctx.pick((1, 2, 4, 8, 16, 64, 256), (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128,
                                                   256, 512))
    reps = ctx.pick(1, 2)
    epochs = ctx.epochs(60, 300)
    noise = 0.2
    d = ctx.data(n_train, n_val, size=size, grey=True)
    rng = np.random.default_rng(ctx.seed + 11)
    flip = rng.random(len(d.train_y)) < noise
    noisy = d.train_y.copy()
    noisy[flip] = (noisy[flip] + rng.integers(1, d.num_classes, flip.sum())) % d.num_classes
    from dataclasses import replace

    dn = replace(d, train_y=noisy)
    n_in = int(np.prod(d.image_shape))
    rows = []
    total, n = len(widths) * reps, 0
    for w in widths:
        for r in range(reps):
            n += 1
            ctx.step(n, total, f"width {w}, repetition {r + 1}")
            manual_seed(ctx.seed * 100 + r)
            model = mlp(n_in, w, d.num_classes)
            h = train_classifier(ctx, model, dn, epochs, f"width {w}", optimizer="adam",
                                 lr=3e-3, schedule=False, batch_size=100, seed=r)
            last = h.epochs[-1]
            rows.append(dict(width=w, repetition=r + 1, params=n_in * w + w + w * 10 + 10,
                             train_error=1 - last["acc"], test_error=1 - last["val_acc"],
                             train_loss=last["loss"], test_loss=last["val_loss"]))
    ctx.write_csv("error_by_width.csv", rows, ["width", "repetition", "params", "train_error",
                                               "test_error", "train_loss", "test_loss"])
    W = np.array(widths)
    te = np.array([[r["test_error"] for r in rows if r["width"] == w] for w in widths]).mean(1)
    tr = np.array([[r["train_error"] for r in rows if r["width"] == w] for w in widths]).mean(1)
    params = np.array([n_in * w + w + w * 10 + 10 for w in widths])
    thresh = n_train * d.num_classes  # parameters ~ n K: where interpolation becomes possible

    fig, a = figure(1, width=9.5, height=4.2,
                    title=f"Test error against width: {n_train} {d.name} images, "
                          f"{noise:.0%} of the training labels wrong")
    a.plot(W, te, marker="o", color=color("test"), lw=2, label="test error (clean labels)")
    a.plot(W, tr, marker="s", color=color("train"), ls="--",
           label="training error (on the noisy labels)")
    a.axhline(noise, color="#adb5bd", ls=":", label=f"label noise ({noise:.0%})")
    w_star = thresh / (n_in + 11)
    a.axvline(w_star, color="#343a40", ls="-.", lw=1,
              label=f"parameters = n x classes ({thresh:,}) at width {w_star:.1f}")
    a.set_xscale("log", base=2)
    a.set_xticks(W)
    a.set_xticklabels([str(w) for w in W])
    a.set_xlabel("hidden units (width of the one hidden layer)")
    accuracy_axis(a, d.chance, error=True, label="error (%)")
    a.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ctx.save_figure(fig, "double_descent.png")

    interp = next((int(w) for w, e in zip(W, tr) if e <= 0.01), None)
    peak_i = int(np.argmax(te[1:])) + 1  # width 1 is underfit, not the peak we look for
    after = te[peak_i + 1:]
    descent_again = len(after) > 0 and after.min() < te[peak_i] - 0.02
    before = te[:peak_i]
    rise = len(before) > 0 and te[peak_i] > before.min() + 0.02
    agree = rise and descent_again
    agreement = "agrees" if agree else ("partly agrees" if rise else "disagrees")
    measured = ("| width | parameters | training error (noisy labels) | test error |\n"
                "|---|---|---|---|\n"
                + "\n".join(f"| {w} | {p:,} | {a_:.1%} | {b:.1%} |"
                            for w, p, a_, b in zip(W, params, tr, te))
                + f"\n\n- The training error first reaches 1% or less at width "
                  f"{interp if interp is not None else '(never)'} (the interpolation "
                  f"threshold); parameters = n x classes = {thresh:,} at width {w_star:.1f}.\n"
                + f"- Test error: lowest before the peak {before.min():.1%}, peak {te[peak_i]:.1%}"
                  f" at width {W[peak_i]}, lowest after it "
                  + (f"{after.min():.1%}" if len(after) else "(no wider model)") + "."
                + (f"\n- The best test error, {te.min():.1%}, is within 10 points of chance "
                   f"({1 - d.chance:.0%}): these networks barely learn the task from raw pixels, "
                   f"so there is little for a peak to stand out from. The run is inconclusive "
                   f"about double descent rather than evidence against it; a task the model "
                   f"family can learn (a convolutional network, or an easier dataset such as "
                   f"MNIST with --data mnist:DIR) is needed to see it."
                   if te.min() > 1 - d.chance - 0.10 else ""))
    line = (f"test error {te[0]:.1%} at width {W[0]}, "
            + (f"rising to {te[peak_i]:.1%} at width {W[peak_i]} and falling again to "
               f"{after.min():.1%} by width {W[-1]}" if agree else
               f"peak {te[peak_i]:.1%} at width {W[peak_i]}, {te[-1]:.1%} at width {W[-1]}: "
               + ("no second descent" if rise else "no peak") + " at this scale"
               + (f"; every width stays within 10 points of chance error "
                  f"({1 - d.chance:.0%}), so the run is inconclusive"
                  if te.min() > 1 - d.chance - 0.10 else "")))
    setup = (f"MLPs with one hidden layer of {', '.join(map(str, widths))} ReLU units on "
             f"{n_train} {d.name} images {d.image_shape} ({n_in} inputs), "
             f"{noise:.0%} of whose training labels are replaced by a wrong class; Adam (lr "
             f"3e-3, batch 100, no schedule, no regularisation) for {epochs} epochs, "
             f"{reps} repetition(s) per width; test error on {len(d.val_x)} held-out images "
             f"with their true labels. Nakkiran et al. trained ResNet-18s of growing width for "
             f"4,000 epochs on CIFAR-10; this is a much smaller stand-in.")
    return Verdict(agreement, line, setup, measured)
