"""The built-in handwritten digits: what `tds train examples/lenet.py` learns from.

    python examples/digits.py [OUT_DIR]      # writes OUT_DIR/digits.png (default: out/)

Draws 12 training images of each digit (seed 0), one row per class, and prints how long the
whole dataset (60,000 training and 10,000 validation images) takes to draw.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from tinygrad_ds.data import load_digits, make_digits


def main(out_dir: str = "out") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    train, val = load_digits()
    print(f"drew {len(train):,} training and {len(val):,} validation digits in "
          f"{time.perf_counter() - start:.1f} s")
    images, labels = make_digits(600, seed=0)
    per_row = 12
    fig, axes = plt.subplots(10, per_row, figsize=(per_row * 0.7, 10 * 0.75))
    for d in range(10):
        for k, i in enumerate([i for i in range(len(labels)) if labels[i] == d][:per_row]):
            ax = axes[d, k]
            ax.imshow(images[i, 0], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[d, 0].set_ylabel(str(d), rotation=0, labelpad=12, fontsize=12, va="center")
    fig.suptitle("Built-in digits: 12 of each class, 28x28 grey (tinygrad_ds.data.load_digits)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "digits.png"
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
