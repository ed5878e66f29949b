"""One look for every experiment's figures: a fixed colour per method (the same in every
figure), titles, labelled axes, integer ticks where an axis counts, a chance line where accuracy
is plotted. matplotlib is imported only when a figure is made."""
from __future__ import annotations

import zlib

# One colour per method, used by every figure that shows it.
COLORS = {
    # architectures
    "plain": "#d9480f", "residual": "#1c7ed6", "shallow": "#2b8a3e",
    "deep plain": "#d9480f", "deep residual": "#1c7ed6",
    "sigmoid": "#ae3ec9", "relu": "#d9480f", "batch norm": "#f08c00",
    "residual (no norm)": "#0b7285",
    "with batch norm": "#1c7ed6", "without batch norm": "#d9480f",
    # normalisations
    "layer norm": "#2b8a3e", "group norm": "#1098ad", "instance norm": "#ae3ec9",
    # regularisers
    "none": "#495057", "L2 penalty": "#1c7ed6", "AdamW decay": "#0b7285",
    "L1 penalty": "#5f3dc4", "dropout": "#d9480f", "spatial dropout": "#e8590c",
    "DropConnect": "#c2255c", "early dropout": "#2b8a3e", "late dropout": "#66a80f",
    "early stopping": "#f08c00",
    # augmentation
    "flips+crops": "#1c7ed6", "Cutout": "#2b8a3e", "MixUp": "#ae3ec9", "CutMix": "#c2255c",
    "RandAugment": "#f08c00",
    # data
    "true labels": "#1c7ed6", "random labels": "#d9480f", "random pixels": "#ae3ec9",
    # measurements
    "train": "#1c7ed6", "validation": "#d9480f", "test": "#d9480f",
    "chain": "#495057",
}
CHANCE_COLOR = "#868e96"


def color(method: str) -> str:
    """The method's colour; an unknown method gets a fixed colour from its name."""
    if method in COLORS:
        return COLORS[method]
    palette = ["#364fc7", "#a61e4d", "#087f5b", "#e67700", "#5c940d", "#862e9c"]
    return palette[zlib.crc32(method.encode()) % len(palette)]


def plt():
    """matplotlib.pyplot with the Agg backend (no window), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.grid": True,
                            "grid.alpha": 0.3, "legend.fontsize": 8, "figure.dpi": 100})
    return pyplot


def figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6,
           title: str | None = None, **kw):
    """(fig, axes): a figure of ncols x nrows panels, each about width x height inches."""
    p = plt()
    fig, axes = p.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                           **kw)
    if title:  # wrapped to the figure's width (about 11 bold characters per inch)
        import textwrap

        fig.suptitle(textwrap.fill(title, max(30, int(width * ncols * 11))), fontsize=11,
                     fontweight="bold")
    flat = [a for row in axes for a in row]
    return fig, (flat[0] if len(flat) == 1 else flat)


def integer_ticks(ax, axis: str = "x") -> None:
    """Integer ticks on an axis that counts (epochs, layers, blocks)."""
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def chance_line(ax, chance: float, error: bool = False) -> None:
    """A dashed line at chance accuracy (or chance error, 1 - chance), labelled."""
    y = 1 - chance if error else chance
    ax.axhline(y, color=CHANCE_COLOR, ls="--", lw=1, label=f"chance ({y:.0%})", zorder=0)


def accuracy_axis(ax, chance: float, error: bool = False, label: str | None = None) -> None:
    """A 0-100% accuracy (or error) axis with the chance line: no zoom into noise."""
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel(label or ("error (%)" if error else "accuracy (%)"))
    chance_line(ax, chance, error)


def save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt().close(fig)
