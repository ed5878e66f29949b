"""mc-dropout: Monte-Carlo dropout (Gal and Ghahramani 2016): the mean and spread of a dropout
network's predictions, sampled with dropout on, for validation images and for the same images
shifted step by step away from the training distribution (Gaussian noise of growing strength).
The lecture: the samples give an uncertainty estimate; it should grow with the shift."""
from __future__ import annotations

import numpy as np

from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure
from .training import small_cnn, train_classifier

NAME = "mc-dropout"
TITLE = "Monte-Carlo dropout: predictive mean and spread as the inputs shift"
USES_DATA = True
CLAIM = """Consider a NN f(x; M) with a single layer of dropout. The output is a random variable
w.r.t. the distribution of the mask M. At inference time, a sensible approach would be to take
the expected value: ŷ = E_p(M)[f(x; M)] ≈ (1/N) Σ f(x; M_i), where M_i ∼ p(M) are draws of the
mask, and the second step is a Monte-carlo approximation. We call this Montecarlo dropout, and
we can use the different samples to gather an uncertainty estimate on the output."""
SOURCE = "lectures/000_43c7a7ae94714b12.txt, Monte-Carlo dropout (lines 356-362)"


def run(ctx: RunContext) -> Verdict:
    from ..tensor import Tensor
    from ..train import predict_mc_dropout

    width, size, hidden = ctx.pick((8, 16, 64), (16, 32, 128))
    n_train, n_val = ctx.pick((512, 128), (5000, 500))
    epochs, samples = ctx.epochs(2, 12), ctx.pick(10, 30)
    p = 0.3
    shifts = ctx.pick((0.0, 0.5, 1.0, 2.0), (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0))
    d = ctx.data(n_train, n_val, size=size)
    manual_seed(ctx.seed)
    model = small_cnn(d.image_shape[0], width, d.num_classes, dropout=p, hidden=hidden)
    train_classifier(ctx, model, d, epochs, "dropout network", optimizer="adam", lr=2e-3)
    rng = np.random.default_rng(ctx.seed + 1)
    noise = rng.standard_normal(d.val_x.shape).astype(np.float32)
    rows = []
    for i, s in enumerate(shifts):
        x = Tensor(d.val_x + s * noise)
        mean, std = predict_mc_dropout(model, x, samples=samples)
        mean, std = mean.data.astype(np.float64), std.data.astype(np.float64)
        pred = mean.argmax(axis=1)
        entropy = -(mean * np.log(np.clip(mean, 1e-12, 1))).sum(axis=1)
        rows.append(dict(noise_std=s, accuracy=float((pred == d.val_y).mean()),
                         confidence=float(mean.max(axis=1).mean()),
                         spread=float(std[np.arange(len(pred)), pred].mean()),
                         entropy=float(entropy.mean()), images=len(pred), samples=samples))
        ctx.step(i + 1, len(shifts), f"noise {s}: accuracy {rows[-1]['accuracy']:.1%}, spread "
                 f"{rows[-1]['spread']:.3f}, entropy {rows[-1]['entropy']:.3f}")
    ctx.write_csv("uncertainty.csv", rows, ["noise_std", "images", "samples", "accuracy",
                                            "confidence", "spread", "entropy"])

    xs = [r["noise_std"] for r in rows]
    fig, (a1, a2, a3) = figure(3, width=3.8, height=3.4,
                               title=f"Monte-Carlo dropout ({samples} samples, p = {p}) on "
                                     f"{d.name} images with added Gaussian noise")
    a1.plot(xs, [r["accuracy"] for r in rows], marker="o", color=color("dropout"),
            label="accuracy of the mean prediction")
    a1.plot(xs, [r["confidence"] for r in rows], marker="s", ls="--", color=color("dropout"),
            label="mean top-class probability")
    accuracy_axis(a1, d.chance, label="accuracy / probability (%)")
    a1.set_title("the mean prediction")
    a1.legend(fontsize=7, loc="upper right")
    a2.plot(xs, [r["spread"] for r in rows], marker="o", color=color("dropout"))
    a2.set_ylim(0, max(0.05, 1.2 * max(r["spread"] for r in rows)))
    a2.set_ylabel("std over samples of p(predicted class)")
    a2.set_title("spread of the samples")
    a3.plot(xs, [r["entropy"] for r in rows], marker="o", color=color("dropout"))
    a3.axhline(np.log(d.num_classes), color="#868e96", ls="--",
               label=f"maximum, ln {d.num_classes} = {np.log(d.num_classes):.2f}")
    a3.set_ylim(0, np.log(d.num_classes) * 1.05)
    a3.set_ylabel("entropy of the mean prediction (nats)")
    a3.set_title("predictive entropy")
    a3.legend(fontsize=7, loc="lower right")
    for a in (a1, a2, a3):
        a.set_xlabel("added noise (std, in units of the normalised pixels)")
    ctx.save_figure(fig, "uncertainty.png")

    sp = [r["spread"] for r in rows]
    en = [r["entropy"] for r in rows]
    rises = sum(b > a for a, b in zip(sp, sp[1:]))
    agree_spread = sp[-1] > sp[0] and rises >= len(sp) // 2
    agree_entropy = en[-1] > en[0]
    low = min(range(1, len(rows)), key=lambda i: sp[i])
    dip = ""
    if sp[low] < sp[0]:
        r = rows[low]
        dip = (f" But at noise std {r['noise_std']:g} the spread ({sp[low]:.4f}) is *smaller* "
               f"than on clean inputs ({sp[0]:.4f}), while the accuracy is {r['accuracy']:.1%} "
               f"and the mean top-class probability {r['confidence']:.3f}: the network sends "
               f"those noisy images to one class with near certainty, every dropout sample "
               f"agrees, and Monte-Carlo dropout does not flag the shift there. The uncertainty "
               f"grows with the shift only beyond it.")
        agree_spread = False
    measured = ("| noise std | accuracy | mean top-class prob | spread (std) | entropy |\n"
                "|---|---|---|---|---|\n"
                + "\n".join(f"| {r['noise_std']:g} | {r['accuracy']:.1%} | "
                            f"{r['confidence']:.3f} | {r['spread']:.4f} | {r['entropy']:.3f} |"
                            for r in rows)
                + f"\n\nThe spread rises in {rises} of the {len(sp) - 1} steps." + dip)
    agreement = "agrees" if agree_spread and agree_entropy else (
        "partly agrees" if sp[-1] > sp[0] or agree_entropy else "disagrees")
    line = (f"from clean inputs to noise std {xs[-1]:g}: the samples' spread goes "
            f"{sp[0]:.3f} -> {sp[-1]:.3f}, the entropy of the mean prediction {en[0]:.2f} -> "
            f"{en[-1]:.2f} nats, accuracy {rows[0]['accuracy']:.1%} -> {rows[-1]['accuracy']:.1%}"
            + (f"; but at noise std {rows[low]['noise_std']:g} the spread drops to "
               f"{sp[low]:.3f} while the network is {rows[low]['confidence']:.0%} sure and "
               f"{rows[low]['accuracy']:.0%} right" if dip else ""))
    setup = (f"small_cnn with a hidden Linear({4 * width}, {hidden}) and Dropout(p = {p}) "
             f"before the output layer, trained {epochs} epochs with Adam (lr 2e-3, cosine "
             f"schedule) on {len(d.train_x)} {d.name} images {d.image_shape}. Then "
             f"train.predict_mc_dropout: {samples} forward passes with dropout on, on "
             f"{len(d.val_x)} validation images plus Gaussian noise of std {xs} (the same "
             f"noise pattern, scaled). Spread: the std over the samples of the probability of "
             f"the class the mean prediction picks, averaged over images.")
    return Verdict(agreement, line, setup, measured)
