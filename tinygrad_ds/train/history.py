"""History: per-epoch metrics that fit() records, written to CSV and plotted to PNG."""
from __future__ import annotations

import csv
import math

import numpy as np

from ..errors import TdsError


class History:
    """Per-epoch metrics: history.epochs is a list of dicts {'epoch', 'loss', 'acc',
    'val_loss', 'val_acc', 'lr', 'images_per_s', 'time_s'}; history['val_acc'] is one column."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.stop_reason: str | None = None  # why fit stopped early (early stopping, NaN loss)
        self.diverged = False

    def append(self, logs: dict[str, float]) -> None:
        self.epochs.append(dict(logs))

    def __getitem__(self, key: str) -> list[float]:
        return [e.get(key, math.nan) for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def keys(self) -> list[str]:
        out: list[str] = []
        for e in self.epochs:
            out += [k for k in e if k not in out]
        return out

    def best(self, monitor: str = "val_loss") -> dict[str, float]:
        """The epoch whose `monitor` is best (lowest loss, highest accuracy)."""
        vals = np.array(self[monitor], dtype=float)
        if not len(vals) or np.all(np.isnan(vals)):
            raise TdsError(f"History.best: no epoch recorded {monitor!r}")
        i = np.nanargmax(vals) if _mode(monitor) == "max" else np.nanargmin(vals)
        return self.epochs[int(i)]

    def to_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.keys)
            w.writeheader()
            for e in self.epochs:
                w.writerow({k: e.get(k, "") for k in self.keys})

    @classmethod
    def from_csv(cls, path: str) -> History:
        h = cls()
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                h.append({k: float(v) for k, v in row.items() if v != ""})
        return h

    def plot(self, path: str, title: str | None = None) -> None:
        """Loss and accuracy curves (training and validation) side by side, to a PNG."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        ep = self["epoch"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
            for prefix, style in (("", "-o"), ("val_", "-s")):
                ys = self[prefix + key]
                if not all(math.isnan(v) for v in ys):
                    ax.plot(ep, ys, style, ms=3, label=("validation " if prefix else "training ")
                            + label)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, keys={self.keys})"


def _mode(monitor: str) -> str:
    return "max" if "acc" in monitor else "min"
