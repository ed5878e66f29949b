"""The training loop: fit() with a per-epoch progress bar, validation, callbacks (EarlyStopping,
ModelCheckpoint) and a History of per-epoch metrics.

    history = fit(model, train_loader, val_loader, optim.SGD(model.parameters(), lr=0.1),
                  epochs=20, callbacks=[EarlyStopping(patience=3)], checkpoint="best.npz")
    history.to_csv("history.csv"); history.plot("curves.png")

A loss that turns NaN or infinite stops training with a message naming the epoch and the step;
the best checkpoint written so far is left as it was. Ctrl-C (SIGINT) stops at the next step:
the epochs already recorded are complete, history.interrupted is set, and fit returns normally
(a second Ctrl-C raises KeyboardInterrupt at once). fit(..., history=h, initial_epoch=k)
continues a run after its epoch k.

fit(..., compile=True) compiles the whole training step (forward, loss, backward, optimizer
update) with tds.compile, once per batch shape (the last, smaller batch gets a plan of its own);
validation runs eagerly under no_grad. fit(..., device='cuda') moves the model, the optimizer's
state and each batch to the GPU.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable, TextIO

from .. import autograd
from ..errors import TdsError, fmt_shape
from ..ops.loss import cross_entropy
from ..tensor import Tensor
from .callbacks import Callback, ModelCheckpoint
from .history import History


class NonFiniteLossError(TdsError, FloatingPointError):
    """The loss became NaN or infinite during fit (raised only with on_nan='raise')."""


# ---- progress ----------------------------------------------------------------------------------
def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") \
        else None
    return shell is not None and hasattr(shell, "kernel")


class ProgressBar:
    """Per-epoch progress with tqdm.auto: a bar on a terminal, a widget in Jupyter, each
    replaced by the epoch's summary line when the epoch ends; where the output is a file or a
    pipe, only the summary lines (no bar characters in a log).

        epoch 3/10:  45%|####      | 210/468 [00:05<00:06, 38.9batch/s, loss=0.1230, acc=0.9610]
        epoch 3/10: loss 0.1187 acc 0.9624 4980 img/s | val_loss 0.0712 val_acc 0.9790
    """

    def __init__(self, stream: TextIO, total: int, head: str, quiet: bool = False):
        self.stream, self.head, self.total = stream, head, total
        self.bar = None
        if quiet:
            self.stream = None
            return
        tty = hasattr(stream, "isatty") and stream.isatty()
        notebook = stream is sys.stdout and _in_notebook()
        if tty or notebook:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total or None, desc=head, unit="batch", leave=False,
                            file=None if notebook else stream, dynamic_ncols=True,
                            mininterval=0.2)

    def update(self, metrics: dict[str, str]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(metrics, refresh=False)
            self.bar.update(1)

    def close(self, text: str) -> None:
        """End the epoch with its summary line."""
        self.discard()
        if self.stream is not None:
            self.stream.write(f"{self.head}: {text}\n")
            self.stream.flush()

    def discard(self) -> None:
        """Remove the bar of an epoch that did not finish."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, text: str) -> None:
        if self.stream is None:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.bar.fp)  # above the bar, which stays
        else:
            self.stream.write(text + "\n")
            self.stream.flush()


class _CtrlC:
    """While fit runs in the main thread: the first SIGINT sets `pressed` (the loop stops at
    its next step, so no kernel is cut off halfway); a second raises KeyboardInterrupt."""

    def __init__(self):
        self.pressed = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# ---- fit -------------------------------------------------------------------------------------
def _correct(out: Tensor, y: Tensor) -> int:
    """How many argmax predictions match the labels (the argmax of soft targets). On 'cuda',
    the logits are copied to the host (y is the batch as the loader gave it)."""
    if out.ndim != 2:
        return -1  # not a classifier: no accuracy
    pred = out.numpy().argmax(axis=1)
    y = y.numpy()
    target = y.argmax(axis=1) if y.ndim == 2 else y
    return int((pred == target).sum())


DEVICES = ("cpu", "cuda", "cuda:0")


def _model_device(model) -> str:
    """The device of the model's parameters ('cpu' for a model without any)."""
    params = model.parameters() if hasattr(model, "parameters") else []
    return next((p.device for p in params), "cpu")


def check_device(device: str) -> str:
    """'cpu' or 'cuda' for a device name that can be used; else an error: an unknown name, or
    'cuda' without numba-cuda or without a GPU (cuda.require says which and how to check)."""
    if device not in DEVICES:
        raise TdsError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    device = "cpu" if device == "cpu" else "cuda"
    if device == "cuda":
        from .. import cuda

        cuda.require()  # CudaUnavailableError: no numba-cuda, or no GPU (before any training)
    return device


def _prepare_device(model, optimizer, device: str | None) -> str:
    """Move the model and the optimizer's state to `device` (None: where the model is), after
    checking that the device can be used (check_device); the device."""
    device = check_device(_model_device(model) if device is None else device)
    if hasattr(model, "to"):
        model.to(device)
    for buffers in getattr(optimizer, "state", {}).values():
        for key, v in buffers.items():  # a resumed run's state, loaded on the host
            if isinstance(v, Tensor) and v.device != device:
                buffers[key] = v.to(device)
    return device


def _to(x: Tensor, device: str) -> Tensor:
    return x if device == "cpu" and x.device == "cpu" else x.to(device)


def _set_mode(loader, training: bool) -> None:
    if hasattr(loader, "train"):
        loader.train(training)


class Trainer:
    """The state one fit() call shares with its callbacks: model, optimizer, history, stop."""

    def __init__(self, model, optimizer, loss_fn, history: History, device: str = "cpu"):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.history = history
        self.device = device
        self.compiled = None  # with fit(compile=True): the tds.compile'd training step
        self.stop: str | None = None


def evaluate(model, loader: Iterable, loss_fn: Callable = cross_entropy,
             device: str | None = None) -> dict[str, float]:
    """Mean loss and accuracy of `model` over `loader`, in eval mode and without the tape.
    Batches go to `device` (default: the device of the model's parameters)."""
    device = _model_device(model) if device is None else device
    was_training = model.training
    model.eval()
    _set_mode(loader, False)
    total, loss_sum, correct = 0, 0.0, 0
    try:
        with autograd.no_grad():
            for x, y in loader:
                out = model(_to(x, device))
                n = x.shape[0]
                loss_sum += float(loss_fn(out, _to(y, device)).item()) * n
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
        on_nan: str = "stop", quiet: bool = False, stream: TextIO | None = None,
        history: History | None = None, initial_epoch: int = 0, compile: bool = False,
        device: str | None = None) -> History:
    """Train `model` until epoch `epochs`; returns a History.

    train_loader / val_loader: iterables of (x, y) Tensor batches (data.DataLoader). optimizer:
    from tinygrad_ds.optim. loss_fn(output, target) -> scalar Tensor (cross-entropy by default;
    soft (N, C) targets from MixUp work). scheduler: stepped once per epoch. checkpoint: a path
    for the best model by `monitor` (an .npz). on_nan: 'stop' (record why in
    history.stop_reason and return) or 'raise' (NonFiniteLossError). quiet: no progress output.
    history, initial_epoch: continue a run whose first `initial_epoch` epochs `history` holds
    (the model, optimizer, schedule and loaders already restored to that point).
    compile: run each training step as one plan of tds.compile (forward, loss, backward and
    update; one plan per batch shape, compiled on its first batch); the step must then be
    traceable (no Python decision on a tensor's value in the model or loss_fn), and a step
    whose loss is not finite has already updated the weights when it is seen. Validation runs
    eagerly. device: 'cpu' or 'cuda' (default: where the model's parameters are); the model,
    the optimizer's state and every batch are moved there.
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
    device = _prepare_device(model, optimizer, device)
    history = history if history is not None else History()
    history.loss_name = getattr(loss_fn, "__name__", None)
    trainer = Trainer(model, optimizer, loss_fn, history, device)
    step_fn = None
    if compile:
        step_fn = _CompiledStep(model, optimizer, loss_fn)
        trainer.compiled = step_fn.compiled
    for cb in callbacks:
        cb.on_train_begin(trainer)
    n_batches = len(train_loader) if hasattr(train_loader, "__len__") else 0

    with _CtrlC() as ctrl_c:
        for epoch in range(initial_epoch + 1, epochs + 1):
            bar = ProgressBar(stream, n_batches, f"epoch {epoch}/{epochs}", quiet)
            try:
                logs = _train_epoch(trainer, train_loader, bar, epoch, checkpoint, on_nan,
                                    ctrl_c, step_fn)
            except BaseException:
                bar.discard()  # the error's message must not land in the middle of a bar
                raise
            if logs is None:  # diverged or interrupted: this epoch is not recorded
                bar.discard()
                break
            if val_loader is not None:
                # NOTE: eager, not compiled: a forward under no_grad is a small part of an
                # epoch, and a compiled one would cost two more plans (eval mode, the last batch)
                val = {"val_" + k: v for k, v in
                       evaluate(model, val_loader, loss_fn, device).items()}
                tail = {k: logs.pop(k) for k in ("lr", "images_per_s", "time_s")}
                logs.update(val)
                logs.update(tail)  # columns: epoch, loss, acc, val_loss, val_acc, lr, ...
            history.append(logs)
            bar.close(_epoch_text(logs))
            if scheduler is not None:
                scheduler.step()
            for cb in callbacks:
                cb.on_epoch_end(trainer, epoch, logs)
            if trainer.stop:
                history.stop_reason = trainer.stop
                bar.write(trainer.stop)
                break
            if ctrl_c.pressed:
                break
        if ctrl_c.pressed:
            done = len(history) and int(history.epochs[-1]["epoch"])
            history.interrupted = True
            history.stop_reason = f"interrupted after epoch {done}"
    for cb in callbacks:
        cb.on_train_end(trainer)
    return history


def _train_epoch(trainer: Trainer, loader, bar: ProgressBar, epoch: int, checkpoint,
                 on_nan: str, ctrl_c: _CtrlC, step_fn=None) -> dict | None:
    """One pass over the training loader; its logs, or None when it stopped early."""
    model, optimizer, loss_fn, history = (trainer.model, trainer.optimizer, trainer.loss_fn,
                                          trainer.history)
    model.train()
    _set_mode(loader, True)
    seen, loss_sum, correct = 0, 0.0, 0
    start = time.perf_counter()
    step = 0
    device, compiled = trainer.device, step_fn
    for step, (x, y) in enumerate(loader, 1):
        if ctrl_c.pressed:
            return None
        xd, yd = _to(x, device), _to(y, device)
        if compiled is not None:
            loss, out = compiled(xd, yd, bar)
        else:
            out = model(xd)
            loss = loss_fn(out, yd)
        if history.num_classes is None and getattr(out, "ndim", 0) == 2:
            history.num_classes = int(out.shape[1])
        value = float(loss.item())
        if not math.isfinite(value):
            msg = (f"loss became {value} at epoch {epoch}, step {step} (after {seen} images "
                   "this epoch); stopped"
                   + ("; the compiled step had already applied this step's update" if compiled
                      is not None else "") + ". Try a smaller learning rate"
                   + (f"; the best checkpoint so far is kept in {checkpoint}"
                      if checkpoint and os.path.exists(checkpoint) else ""))
            if on_nan == "raise":
                raise NonFiniteLossError(msg)
            history.stop_reason, history.diverged = msg, True
            bar.write(msg)
            return None
        if compiled is None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        n = x.shape[0]
        seen += n
        loss_sum += value * n
        c = _correct(out, y)
        correct = -1 if c < 0 or correct < 0 else correct + c
        bar.update({"loss": f"{loss_sum / seen:.4f}"} |
                   ({"acc": f"{correct / seen:.4f}"} if correct >= 0 else {}))
    if ctrl_c.pressed:
        return None
    elapsed = time.perf_counter() - start
    if seen == 0:
        raise TdsError("fit: the training loader gave no batches")
    logs = {"epoch": epoch, "loss": loss_sum / seen}
    if correct >= 0:
        logs["acc"] = correct / seen
    logs["lr"] = optimizer.param_groups[0]["lr"] if hasattr(optimizer, "param_groups") \
        else math.nan
    logs["images_per_s"] = seen / max(elapsed, 1e-9)
    logs["time_s"] = elapsed
    return logs


class _CompiledStep:
    """The training step as one tds.compile'd function (x, y) -> (loss, logits); a plan per
    batch shape, compiled on its first batch (said above the progress bar)."""

    def __init__(self, model, optimizer, loss_fn):
        from ..compile import compile as tds_compile

        def train_step(x, y):
            out = model(x)
            loss = loss_fn(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss, out

        self.compiled = tds_compile(train_step)
        self.shapes: set[tuple] = set()

    def __call__(self, x: Tensor, y: Tensor, bar: ProgressBar) -> tuple[Tensor, Tensor]:
        shape = (x.shape, str(x.dtype), y.shape, str(y.dtype))
        if shape in self.shapes:
            return self.compiled(x, y)
        try:
            loss, out = self.compiled(x, y)
        except Exception as e:  # noqa: BLE001 - the compiler's own failures too: say what to do
            what = str(e) if isinstance(e, TdsError) else f"{type(e).__name__}: {e}"
            raise TdsError(f"fit(compile=True): the training step for a batch of shape "
                           f"{fmt_shape(x.shape)} could not be compiled: {what} (fit without "
                           "compile runs it eagerly)") from e
        self.shapes.add(shape)
        e = self.compiled.last
        bar.write(f"compiled the training step for batches of {fmt_shape(x.shape)}: "
                  f"{len(e.graph.op_nodes())} ops -> {len(e.plan.kernels)} generated loops + "
                  f"{sum(e.plan.fallback.values())} ops by their forward, "
                  f"{sum(e.times.values()):.1f} s")
        return loss, out


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
