"""History: per-epoch metrics that fit() records, written to CSV and plotted to PNG."""
from __future__ import annotations

import csv
import math

import numpy as np

from ..errors import TdsError

TRAIN_COLOR = "#1f77b4"  # training curves, in every plot: blue
VAL_COLOR = "#ff7f0e"  # validation curves: orange


class History:
    """Per-epoch metrics: history.epochs is a list of dicts {'epoch', 'loss', 'acc',
    'val_loss', 'val_acc', 'lr', 'images_per_s', 'time_s'}; history['val_acc'] is one column."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.stop_reason: str | None = None  # why fit stopped early (early stopping, NaN loss)
        self.diverged = False
        self.interrupted = False  # Ctrl-C: the epochs recorded are complete, the next was not
        self.num_classes: int | None = None  # the model's output width (for the chance lines)
        self.loss_name: str | None = None  # the loss function's name (cross_entropy, ...)

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

    def plot(self, path: str | None = None, title: str | None = None,
             num_classes: int | None = None):
        """Loss and accuracy against epoch, training and validation, side by side.

        Written to `path` (a PNG) when given; otherwise shown inline in Jupyter (and None is
        returned), or returned as a matplotlib Figure. Accuracy is on a fixed 0-1 axis with a
        dashed line at chance (1 / num_classes, which fit records), the loss axis starts at 0
        (with the chance loss ln(num_classes) for cross-entropy), epochs are integer ticks, and
        each curve's last value is written beside it: a run at chance looks like one."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        num_classes = num_classes or self.num_classes
        ep = self["epoch"]
        has_acc = any(not math.isnan(v) for k in ("acc", "val_acc") for v in self[k])
        fig = Figure(figsize=(10 if has_acc else 5.5, 4), layout="constrained")
        axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
        panels = [("loss", axes[0])] + ([("acc", axes[1])] if has_acc else [])
        chance_text: list[str] = []
        for key, ax in panels:
            finals = []
            for prefix, colour, who, marker in (("", TRAIN_COLOR, "training", "o"),
                                                ("val_", VAL_COLOR, "validation", "s")):
                ys = self[prefix + key]
                pts = [(e, v) for e, v in zip(ep, ys) if not math.isnan(v)]
                if pts:
                    ax.plot(*zip(*pts), "-" + marker, color=colour, ms=4, label=who)
                    finals.append((pts[-1], colour))
            if key == "acc":
                ax.set_ylim(0, 1.02)
                ax.set_ylabel("accuracy (fraction of images correct)")
                ax.set_title("accuracy")
                if num_classes:
                    ax.axhline(1 / num_classes, color="grey", ls="--", lw=1)
                    chance_text.insert(0, f"accuracy 1/{num_classes}")
            else:
                top = max([v for k in ("loss", "val_loss") for v in self[k]
                           if math.isfinite(v)] or [1.0])
                if num_classes and self.loss_name == "cross_entropy":
                    chance = math.log(num_classes)
                    ax.axhline(chance, color="grey", ls="--", lw=1)
                    chance_text.append(f"loss ln {num_classes} = {chance:.2f}")
                    top = max(top, chance)
                ax.set_ylim(0, top * 1.1)
                name = self.loss_name.replace("_", "-") if self.loss_name else "loss"
                ax.set_ylabel(f"{name} (mean per image" +
                              (", nats)" if self.loss_name == "cross_entropy" else ")"))
                ax.set_title("loss")
            _annotate_finals(ax, finals, key)
            ax.set_xlabel("epoch")
            last = int(max(ep, default=1))
            if last <= 15:  # every epoch a tick (MaxNLocator puts 0.9, 1.05 around one epoch)
                ax.set_xticks(range(1, last + 1))
            else:  # no tick past the last epoch (the margin on the right is for the texts)
                ticks = MaxNLocator(integer=True).tick_values(1, last)
                ax.set_xticks([int(t) for t in ticks if 1 <= t <= last])
            ax.set_xlim(0.5, last + max(0.7, 0.12 * last))  # room for the final values
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        if chance_text:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="grey", ls="--", lw=1))
            labels.append("chance: " + ", ".join(chance_text))
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=9,
                   frameon=False)
        if title:
            fig.suptitle(title)
        if path is not None:
            fig.savefig(path, dpi=100)
            return None
        return _show(fig)

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, keys={self.keys})"


def _mode(monitor: str) -> str:
    return "max" if "acc" in monitor else "min"


def _annotate_finals(ax, finals, key: str) -> None:
    """Write each curve's last value just right of its last point; when the two values are
    close, the higher one a little above and the lower a little below, so they never overlap."""
    lo, hi = ax.get_ylim()
    close = len(finals) == 2 and abs(finals[0][0][1] - finals[1][0][1]) < 0.08 * (hi - lo or 1)
    finals = sorted(finals, key=lambda f: f[0][1], reverse=True)
    span = (hi - lo) or 1.0
    shift = 0  # keep the texts off the top and bottom edges of the axes
    if finals and (finals[0][0][1] - lo) / span > 0.95:
        shift = -7
    elif finals and (finals[-1][0][1] - lo) / span < 0.05:
        shift = 7
    for rank, ((x, y), colour) in enumerate(finals):
        text = f"{y:.1%}" if key == "acc" else f"{y:.3f}"
        dy = ((6 if rank == 0 else -6) if close else 0) + shift
        ax.annotate(text, (x, y), xytext=(8, dy), textcoords="offset points", color=colour,
                    fontsize=9, fontweight="bold", ha="left", va="center")


def _show(fig):
    """Display `fig` inline (as a PNG) in a Jupyter kernel and return None; else return it."""
    import io
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") \
        else None
    if shell is None or not hasattr(shell, "kernel"):
        return fig
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    display(Image(data=buf.getvalue(), format="png"))
    return None
