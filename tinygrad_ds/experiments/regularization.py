"""regularization: train and validation curves side by side for ten ways to regularise the same
small network on a small training set (lecture 000, "Regularization" to "Dropout"): none, an L2
penalty, AdamW's decoupled weight decay, an L1 penalty, dropout, spatial dropout, DropConnect,
early dropout, late dropout and early stopping."""
from __future__ import annotations


from ..random import manual_seed
from .run import RunContext, Verdict
from .style import accuracy_axis, color, figure, integer_ticks
from .training import CURVE_COLUMNS, curve_rows, small_cnn, train_classifier

NAME = "regularization"
TITLE = "train and validation curves for ten regularisers"
USES_DATA = True
CLAIM = """Overfitting happens when the performance of a model on the training set is improving,
while the performance on a separate validation set is worsening. ...
Early stopping is extremely common in training with small datasets; it highlights the difference
between pure optimization and learning. ... In pure SGD, this form of regularization is also
called weight decay. In other optimization algorithms, weight decay and regularization are
different strategies and must be implemented differently. ... Dropout can also be switched on or
off during training. Early dropout can be useful to counteract gradient variance in SGD during
the initial stages of training; late dropout, instead, can be useful against overfitting."""
SOURCE = ("lectures/000_43c7a7ae94714b12.txt, 'Overfitting' (line 112), early stopping and "
          "weight decay (lines 248-290), dropout variants (lines 378-389)")
METHODS = ("none", "L2 penalty", "AdamW decay", "L1 penalty", "dropout", "spatial dropout",
           "DropConnect", "early dropout", "late dropout", "early stopping")


class _DropoutSchedule:
    """A callback that sets every dropout layer's p: `p` before epoch `switch`, `after` from
    then on (early dropout: p then 0; late dropout: 0 then p)."""

    def __init__(self, model, p_before: float, p_after: float, switch: int):
        from ..nn import Dropout

        self.drops = [m for m in model.modules() if isinstance(m, Dropout)]
        self.after, self.switch = p_after, switch
        for m in self.drops:
            m.p = p_before

    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.switch:  # takes effect from the next epoch
            for m in self.drops:
                m.p = self.after

    def on_train_end(self, trainer):
        pass


def run(ctx: RunContext) -> Verdict:
    from ..ops.loss import cross_entropy
    from ..optim import l1_penalty, l2_penalty
    from ..train import EarlyStopping

    width, size, hidden = ctx.pick((8, 16, 64), (16, 32, 128))
    n_train, n_val = ctx.pick((192, 128), (1000, 1000))
    epochs = ctx.epochs(3, 40)
    switch = max(1, epochs // 4)
    lam2, lam1, wd, p = 1e-3, 1e-4, 0.05, 0.3
    d = ctx.data(n_train, n_val, size=size)
    c_in = d.image_shape[0]
    hists, rows = {}, []
    for i, method in enumerate(METHODS):
        ctx.step(i + 1, len(METHODS), method)
        manual_seed(ctx.seed)
        kw = dict(dropout={"dropout": p, "early dropout": p, "late dropout": p}.get(method, 0.0),
                  spatial_dropout=0.1 if method == "spatial dropout" else 0.0,
                  dropconnect=p if method == "DropConnect" else 0.0)
        model = small_cnn(c_in, width, d.num_classes, hidden=hidden, **kw)
        loss_fn, callbacks, opt, decay = None, [], "adam", 0.0
        if method == "L2 penalty":
            def loss_fn(out, y, m=model):
                return cross_entropy(out, y) + lam2 * l2_penalty(m)
        elif method == "L1 penalty":
            def loss_fn(out, y, m=model):
                return cross_entropy(out, y) + lam1 * l1_penalty(m)
        elif method == "AdamW decay":
            opt, decay = "adamw", wd
        elif method == "early dropout":
            callbacks.append(_DropoutSchedule(model, p, 0.0, switch))
        elif method == "late dropout":
            callbacks.append(_DropoutSchedule(model, 0.0, p, switch))
        elif method == "early stopping":
            callbacks.append(EarlyStopping(patience=max(2, epochs // 10), monitor="val_loss",
                                           restore_best_weights=True))
        h = train_classifier(ctx, model, d, epochs, method, optimizer=opt, lr=2e-3,
                             weight_decay=decay, schedule=False, loss_fn=loss_fn,
                             callbacks=callbacks)
        hists[method] = h
        rows += curve_rows(method, h)
    ctx.write_csv("curves.csv", rows, CURVE_COLUMNS)

    fig, axes = figure(5, 2, width=3.2, height=2.6,
                       title=f"Regularisers on {len(d.train_x)} {d.name} images: training "
                             f"(dashed) and validation (solid) accuracy")
    for a, method in zip(axes, METHODS):
        h = hists[method]
        a.plot(h["epoch"], h["acc"], ls="--", color=color(method), label="training")
        a.plot(h["epoch"], h["val_acc"], ls="-", color=color(method), lw=2, label="validation")
        if method == "none":
            pass
        else:
            base = hists["none"]
            a.plot(base["epoch"], base["val_acc"], color=color("none"), lw=0.8, alpha=0.6,
                   label="validation, none")
        accuracy_axis(a, d.chance)
        a.set_ylabel("accuracy (%)")
        a.set_xlim(0.5, epochs + 0.5)
        a.set_xlabel("epoch")
        a.set_title(method + (f" (stopped at {len(h)})" if h.stop_reason else ""))
        integer_ticks(a)
    axes[0].legend(loc="upper left", fontsize=7)
    axes[1].legend(loc="upper left", fontsize=7)
    ctx.save_figure(fig, "curves.png")

    def best_val(m):
        return max(hists[m]["val_acc"])

    def final(m, k):
        return hists[m].epochs[-1][k]

    gap = {m: final(m, "acc") - final(m, "val_acc") for m in METHODS}
    fin = {m: final(m, "val_acc") for m in METHODS}
    base_gap = gap["none"]
    overfit = max(hists["none"]["val_loss"]) > min(hists["none"]["val_loss"]) * 1.05 and \
        hists["none"]["val_loss"][-1] > min(hists["none"]["val_loss"])
    helped = [m for m in METHODS[1:] if gap[m] < base_gap - 0.01]
    better = [m for m in METHODS[1:] if fin[m] > fin["none"] + 0.005]
    table = ("| method | final training acc | final validation acc | gap | best validation "
             "acc | epochs run |\n|---|---|---|---|---|---|\n"
             + "\n".join(f"| {m} | {final(m, 'acc'):.1%} | {fin[m]:.1%} | {gap[m]:+.1%} | "
                         f"{best_val(m):.1%} | {len(hists[m])} |" for m in METHODS))
    measured = (table + "\n\n- Without regularisation the validation loss "
                + ("rises again after its minimum (overfitting): "
                   if overfit else "does not clearly rise again: ")
                + f"minimum {min(hists['none']['val_loss']):.3f}, last "
                  f"{hists['none']['val_loss'][-1]:.3f}.\n"
                + f"- A smaller train-validation gap than no regularisation ({base_gap:+.1%}): "
                + (", ".join(helped) or "none") + ".\n"
                + f"- A higher final validation accuracy than no regularisation "
                  f"({fin['none']:.1%}): " + (", ".join(better) or "none") + ".")
    # a smaller gap alone can mean underfitting: agreeing needs better validation too
    agree = overfit and len(helped) >= 5 and len(better) >= 3
    agreement = "agrees" if agree else ("partly agrees" if helped or better else "disagrees")
    line = (f"no regularisation ends {base_gap:+.1%} between training and validation "
            f"accuracy; {len(helped)} of 9 regularisers shrink that gap, but only "
            f"{len(better)} of 9 end with a higher validation accuracy ({fin['none']:.1%} "
            f"without)")
    setup = (f"small_cnn (three 3x3 conv-ReLU-maxpool stages of {width}, {2 * width}, "
             f"{4 * width} filters, global average pooling, Linear({4 * width}, {hidden}) - "
             f"ReLU - Linear) on only {len(d.train_x)} {d.name} images {d.image_shape}, "
             f"validated on {len(d.val_x)}; Adam (lr 2e-3, batch 64, no schedule) for "
             f"{epochs} epochs. L2: loss + {lam2:g} sum w^2; AdamW: decoupled decay {wd:g}; L1: "
             f"loss + {lam1:g} sum |w|; dropout p = {p} before the last Linear; spatial dropout "
             f"(Dropout2d) p = 0.1 after each conv stage; DropConnect p = {p} on the hidden "
             f"Linear's weights; early dropout: p = {p} for the first {switch} epochs, then 0; "
             f"late dropout: 0, then p = {p} from epoch {switch + 1}; early stopping: patience "
             f"{max(2, epochs // 10)} on validation loss, best weights restored.")
    return Verdict(agreement, line, setup, measured)
