"""The training loop: fit() with a per-epoch progress bar, validation, callbacks (EarlyStopping,
ModelCheckpoint) and a History of per-epoch metrics.

    history = fit(model, train_loader, val_loader, optim.SGD(model.parameters(), lr=0.1),
                  epochs=20, callbacks=[EarlyStopping(patience=3)], checkpoint="best.npz")
    history.to_csv("history.csv"); history.plot("curves.png")

A loss that turns NaN or infinite stops training with a message naming the epoch and the step;
the best checkpoint written so far is left as it was.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Callable, Iterable, TextIO

from .. import autograd
from ..errors import TdsError
from ..ops.loss import cross_entropy
from ..tensor import Tensor
from .callbacks import Callback, ModelCheckpoint
from .history import History


class NonFiniteLossError(TdsError, FloatingPointError):
    """The loss became NaN or infinite during fit (raised only with on_nan='raise')."""


# ---- progress bar ----------------------------------------------------------------------------
class ProgressBar:
    """`epoch 3/10 [#######.......] 120/391 loss 1.2345 acc 0.4567 812 img/s`. On a terminal it
    redraws in place; elsewhere (a log file, a test) it prints one line per epoch."""

    def __init__(self, stream: TextIO, width: int = 24):
        self.stream, self.width = stream, width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last = 0.0

    def update(self, head: str, done: int, total: int, text: str, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        self.stream.write("\r" + self._line(head, done, total, text) + "\x1b[K")
        self.stream.flush()

    def close(self, head: str, done: int, total: int, text: str) -> None:
        self.stream.write(("\r" if self.tty else "") + self._line(head, done, total, text)
                          + ("\x1b[K" if self.tty else "") + "\n")
        self.stream.flush()

    def _line(self, head, done, total, text) -> str:
        fill = int(self.width * done / max(total, 1))
        return f"{head} [{'#' * fill}{'.' * (self.width - fill)}] {done}/{total} {text}"


# ---- fit -------------------------------------------------------------------------------------
def _correct(out: Tensor, y: Tensor) -> int:
    """How many argmax predictions match the labels (the argmax of soft targets)."""
    if out.ndim != 2:
        return -1  # not a classifier: no accuracy
    pred = out.data.argmax(axis=1)
    target = y.data.argmax(axis=1) if y.ndim == 2 else y.data
    return int((pred == target).sum())


def _set_mode(loader, training: bool) -> None:
    if hasattr(loader, "train"):
        loader.train(training)


class Trainer:
    """The state one fit() call shares with its callbacks: model, optimizer, history, stop."""

    def __init__(self, model, optimizer, loss_fn, history: History):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.history = history
        self.stop: str | None = None


def evaluate(model, loader: Iterable, loss_fn: Callable = cross_entropy) -> dict[str, float]:
    """Mean loss and accuracy of `model` over `loader`, in eval mode and without the tape."""
    was_training = model.training
    model.eval()
    _set_mode(loader, False)
    total, loss_sum, correct = 0, 0.0, 0
    try:
        with autograd.no_grad():
            for x, y in loader:
                out = model(x)
                n = x.shape[0]
                loss_sum += float(loss_fn(out, y).item()) * n
                c = _correct(out, y)
                correct = -1 if c < 0 or correct < 0 else correct + c
                total += n
    finally:
        model.train(was_training)
    if total == 0:
        raise TdsError("evaluate: the loader gave no batches")
    out = {"loss": loss_sum / total}
    if correct >= 0:
        out["acc"] = correct / total
    return out


def fit(model, train_loader: Iterable, val_loader: Iterable | None = None, optimizer=None,
        loss_fn: Callable = cross_entropy, epochs: int = 1, callbacks: Iterable[Callback] = (),
        scheduler=None, checkpoint: str | None = None, monitor: str = "val_loss",
        on_nan: str = "stop", quiet: bool = False, stream: TextIO | None = None) -> History:
    """Train `model` for `epochs` epochs; returns a History.

    train_loader / val_loader: iterables of (x, y) Tensor batches (data.DataLoader). optimizer:
    from tinygrad_ds.optim. loss_fn(output, target) -> scalar Tensor (cross-entropy by default;
    soft (N, C) targets from MixUp work). scheduler: stepped once per epoch. checkpoint: a path
    for the best model by `monitor` (an .npz). on_nan: 'stop' (record why in
    history.stop_reason and return) or 'raise' (NonFiniteLossError). quiet: no progress output.
    """
    if optimizer is None:
        raise TdsError("fit: give an optimizer, e.g. optim.SGD(model.parameters(), lr=0.1)")
    if on_nan not in ("stop", "raise"):
        raise TdsError(f"fit: on_nan must be 'stop' or 'raise', got {on_nan!r}")
    stream = stream if stream is not None else sys.stdout
    callbacks = list(callbacks)
    if checkpoint is not None:
        if val_loader is None and monitor.startswith("val_"):
            monitor = monitor[4:]
        callbacks.append(ModelCheckpoint(checkpoint, monitor=monitor))
    history = History()
    trainer = Trainer(model, optimizer, loss_fn, history)
    bar = ProgressBar(stream)
    for cb in callbacks:
        cb.on_train_begin(trainer)
    n_batches = len(train_loader) if hasattr(train_loader, "__len__") else 0

    for epoch in range(1, epochs + 1):
        head = f"epoch {epoch}/{epochs}"
        model.train()
        _set_mode(train_loader, True)
        seen, loss_sum, correct = 0, 0.0, 0
        start = time.perf_counter()
        for step, (x, y) in enumerate(train_loader, 1):
            out = model(x)
            loss = loss_fn(out, y)
            value = float(loss.item())
            if not math.isfinite(value):
                msg = (f"loss became {value} at epoch {epoch}, step {step} (after {seen} images "
                       "this epoch); stopped. Try a smaller learning rate"
                       + (f"; the best checkpoint so far is kept in {checkpoint}"
                          if checkpoint and os.path.exists(checkpoint) else ""))
                if on_nan == "raise":
                    raise NonFiniteLossError(msg)
                history.stop_reason, history.diverged = msg, True
                if not quiet:
                    stream.write(f"\n{msg}\n" if bar.tty else f"{msg}\n")
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = x.shape[0]
            seen += n
            loss_sum += value * n
            c = _correct(out, y)
            correct = -1 if c < 0 or correct < 0 else correct + c
            if not quiet:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.update(head, step, n_batches or step, _metrics_text(
                    loss_sum / seen, correct / seen if correct >= 0 else None, rate))
        if history.diverged:
            break
        elapsed = time.perf_counter() - start
        if seen == 0:
            raise TdsError("fit: the training loader gave no batches")
        logs = {"epoch": epoch, "loss": loss_sum / seen}
        if correct >= 0:
            logs["acc"] = correct / seen
        if val_loader is not None:
            logs.update({"val_" + k: v for k, v in evaluate(model, val_loader, loss_fn).items()})
        logs["lr"] = optimizer.param_groups[0]["lr"] if hasattr(optimizer, "param_groups") \
            else math.nan
        logs["images_per_s"] = seen / max(elapsed, 1e-9)
        logs["time_s"] = elapsed
        history.append(logs)
        if not quiet:
            bar.close(head, n_batches or step, n_batches or step, _epoch_text(logs))
        if scheduler is not None:
            scheduler.step()
        for cb in callbacks:
            cb.on_epoch_end(trainer, epoch, logs)
        if trainer.stop:
            history.stop_reason = trainer.stop
            if not quiet:
                stream.write(trainer.stop + "\n")
            break
    for cb in callbacks:
        cb.on_train_end(trainer)
    return history


def _metrics_text(loss: float, acc: float | None, rate: float) -> str:
    return f"loss {loss:.4f}" + (f" acc {acc:.4f}" if acc is not None else "") + \
        f" {rate:.0f} img/s"


def _epoch_text(logs: dict) -> str:
    text = _metrics_text(logs["loss"], logs.get("acc"), logs["images_per_s"])
    if "val_loss" in logs:
        text += f" | val_loss {logs['val_loss']:.4f}"
    if "val_acc" in logs:
        text += f" val_acc {logs['val_acc']:.4f}"
    return text
