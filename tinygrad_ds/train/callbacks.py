"""Callbacks fit() calls after each epoch: EarlyStopping and ModelCheckpoint."""
from __future__ import annotations

import math
from typing import Any

from ..errors import TdsError
from .history import _mode

# the loop (loop.py) calls the callbacks and imports this module; here it is only a name
Trainer = Any


class Callback:
    """Hooks fit calls; set `trainer.stop = 'reason'` to end training after this epoch."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...


class _Monitor:
    def __init__(self, monitor: str, mode: str, min_delta: float):
        self.monitor = monitor
        self.mode = _mode(monitor) if mode == "auto" else mode
        if self.mode not in ("min", "max"):
            raise TdsError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def resume(self, history) -> int | None:
        """Take the best value so far from a continued run's history; the best epoch."""
        vals = [(e[self.monitor], int(e["epoch"])) for e in history.epochs
                if math.isfinite(e.get(self.monitor, math.nan))]
        if not vals:
            return None
        value, epoch = (min if self.mode == "min" else max)(vals, key=lambda v: v[0])
        self.best = value
        return epoch

    def improved(self, logs: dict[str, float]) -> bool:
        if self.monitor not in logs:
            raise TdsError(f"{type(self).__name__} monitors {self.monitor!r}, but the epoch logs "
                           f"only have {sorted(logs)} (no validation loader?)")
        v = logs[self.monitor]
        if not math.isfinite(v):
            return False
        better = v < self.best - self.min_delta if self.mode == "min" else \
            v > self.best + self.min_delta
        if better:
            self.best = v
        return better


class EarlyStopping(Callback, _Monitor):
    """Stop when `monitor` ('val_loss', 'val_acc', ...) has not improved by more than
    `min_delta` for `patience` epochs. restore_best_weights: put back the best epoch's weights
    at the end."""

    def __init__(self, patience: int = 5, monitor: str = "val_loss", mode: str = "auto",
                 min_delta: float = 0.0, restore_best_weights: bool = False):
        _Monitor.__init__(self, monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.best_epoch, self._weights = 0, None, None

    def on_train_begin(self, trainer):
        best = self.resume(trainer.history)
        if best is not None:
            self.best_epoch = best
            self.wait = int(trainer.history.epochs[-1]["epoch"]) - best

    def on_epoch_end(self, trainer, epoch, logs):
        if self.improved(logs):
            self.wait, self.best_epoch = 0, epoch
            if self.restore_best_weights:
                self._weights = trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop = (f"early stopping: {self.monitor} has not improved for {self.patience} "
                            f"epochs (best {self.best:.4f} at epoch {self.best_epoch})")

    def on_train_end(self, trainer):
        if self.restore_best_weights and self._weights is not None:
            trainer.model.load_state_dict(self._weights)


class ModelCheckpoint(Callback, _Monitor):
    """Write a self-describing checkpoint of the model (train.save_checkpoint: its state_dict,
    and as JSON the epoch, its metrics and `meta`) to `path` whenever `monitor` improves
    (save_best_only) or after every epoch. The write is atomic: a temporary file, then a
    rename."""

    def __init__(self, path: str, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = True, meta: dict | None = None):
        _Monitor.__init__(self, monitor, mode, 0.0)
        self.path, self.save_best_only, self.meta = path, save_best_only, dict(meta or {})
        self.saved_epoch: int | None = None

    def on_train_begin(self, trainer):
        self.resume(trainer.history)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.improved(logs) or not self.save_best_only:
            from .checkpoint import save_checkpoint

            save_checkpoint(self.path, trainer.model,
                            meta={**self.meta, "epoch": epoch, "metrics": dict(logs)})
            self.saved_epoch = epoch
