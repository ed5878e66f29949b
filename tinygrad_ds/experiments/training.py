"""Training helpers the experiments share: one call trains a classifier on a Data with fit()
and says one progress line."""
from __future__ import annotations

from .run import Data, RunContext


class _EpochLine:
    """Progress: one line per epoch (full runs only; a quick run says one line per training)."""

    def __init__(self, ctx: RunContext, label: str, epochs: int):
        self.ctx, self.label, self.epochs = ctx, label, epochs

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        if not self.ctx.quick:
            self.ctx.say(f"  {self.label}: epoch {epoch}/{self.epochs}, train loss "
                         f"{logs['loss']:.3f}, val acc {logs.get('val_acc', float('nan')):.1%}"
                         f", {logs['images_per_s']:.0f} images/s")

    def on_train_end(self, trainer) -> None: ...


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0):
    from .. import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(name)


CURVE_COLUMNS = ["method", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def curve_rows(method: str, hist) -> list[dict]:
    """One CSV row (CURVE_COLUMNS) per epoch of a History from train_classifier."""
    return [dict(method=method, epoch=int(e["epoch"]), train_loss=e["loss"], train_acc=e["acc"],
                 val_loss=e["val_loss"], val_acc=e["val_acc"]) for e in hist.epochs]


def train_classifier(ctx: RunContext, model, d: Data, epochs: int, label: str,
                     optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                     batch_size: int = 64, schedule: bool = True, loss_fn=None,
                     callbacks=(), train_loader=None, seed: int = 0):
    """fit(model) on d's training images for `epochs`, validating on d's validation images;
    cosine schedule when `schedule`. Returns the History."""
    from .. import optim
    from ..ops.loss import cross_entropy
    from ..train import fit

    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    sched = optim.CosineAnnealingLR(opt, T_max=epochs) if schedule else None
    tr = train_loader or ctx.loader(d.train_x, d.train_y, batch_size, shuffle=True, seed=seed)
    va = ctx.loader(d.val_x, d.val_y, 256)
    hist = fit(model, tr, va, opt, loss_fn=loss_fn or cross_entropy, epochs=epochs,
               callbacks=list(callbacks) + [_EpochLine(ctx, label, epochs)], scheduler=sched,
               quiet=True)
    last = hist.epochs[-1] if hist.epochs else {}
    ctx.say(f"  {label}: {len(hist)} epochs, train loss {last.get('loss', float('nan')):.3f}, "
            f"val acc {last.get('val_acc', float('nan')):.1%}"
            + (f" ({hist.stop_reason})" if hist.stop_reason else ""))
    return hist


def small_cnn(in_channels: int, width: int, num_classes: int = 10, norm: str | None = None,
              dropout: float = 0.0, spatial_dropout: float = 0.0, dropconnect: float = 0.0,
              hidden: int = 0):
    """conv(3x3) - [norm] - ReLU - [Dropout2d] - maxpool, three times (width, 2 width, 4 width
    channels), global average pooling, then [Dropout] - Linear (or, with hidden > 0,
    Linear(hidden) - ReLU - [Dropout] - Linear, the first one a DropConnect layer when
    dropconnect > 0). norm: None, 'batch', 'layer' (GroupNorm with one group: statistics per
    image over C, H, W), 'group' (GroupNorm, 4 groups) or 'instance'."""
    from .. import nn

    def norm_layer(c):
        if norm is None:
            return []
        return [{"batch": lambda: nn.BatchNorm2d(c), "layer": lambda: nn.GroupNorm(1, c),
                 "group": lambda: nn.GroupNorm(4, c),
                 "instance": lambda: nn.InstanceNorm2d(c, affine=True)}[norm]()]

    layers, c = [], in_channels
    for w in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=norm is None), *norm_layer(w), nn.ReLU()]
        if spatial_dropout:
            layers.append(nn.Dropout2d(spatial_dropout))
        layers.append(nn.MaxPool2d(2))
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if hidden:
        layers += [nn.DropConnect(c, hidden, p=dropconnect) if dropconnect else
                   nn.Linear(c, hidden), nn.ReLU()]
        c = hidden
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(c, num_classes))
    return nn.Sequential(*layers)
