"""What every experiment shares: the run folder (PNGs, CSVs, summary.md), progress lines, the
data (built-in, CIFAR-10 or MNIST, normalised once) and the verdict.

    def run(ctx: RunContext) -> Verdict:
        d = ctx.data(n_train=512, n_val=256, size=16)
        ctx.write_csv("runs.csv", rows, ["config", "seed", "val_acc"])
        ctx.save_figure(fig, "accuracy.png")
        return Verdict("agrees", "...", measured="...")
"""
from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from ..errors import TdsError

AGREEMENT = ("agrees", "partly agrees", "disagrees")


@dataclass
class Verdict:
    """agreement: 'agrees', 'partly agrees' or 'disagrees'; line: the one-line verdict with its
    numbers; setup: what was run; measured: markdown (a list or a table) of what was measured."""
    agreement: str
    line: str
    setup: str = ""
    measured: str = ""

    def __post_init__(self):
        self.line = self.line[:1].upper() + self.line[1:]
        if self.agreement not in AGREEMENT:
            raise TdsError(f"Verdict: agreement must be one of {AGREEMENT}, got "
                           f"{self.agreement!r}")


@dataclass
class Data:
    """Images normalised per channel, float32 (N, C, H, W); labels int64 (N,). raw_*: the uint8
    or [0, 1] images before normalisation (for augmentation)."""
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    raw_train: np.ndarray
    raw_val: np.ndarray
    mean: tuple
    std: tuple
    num_classes: int = 10

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes


def parse_data_spec(spec: str) -> tuple[str, str]:
    """'builtin' | 'cifar10:DIR' | 'mnist:DIR' -> (kind, folder); anything else is an error."""
    kind, _, folder = spec.partition(":")
    kind = kind.lower()
    if kind not in ("builtin", "cifar10", "mnist", "fashion-mnist"):
        raise TdsError(f"--data {spec!r}: use builtin, cifar10:DIR, mnist:DIR or "
                       "fashion-mnist:DIR")
    return kind, folder


class RunContext:
    """One run of one experiment: its options, its output folder and the files written there."""

    def __init__(self, name: str, out: str, quick: bool, data_spec: str = "builtin",
                 seed: int = 0, epochs: int | None = None, stream: TextIO | None = None,
                 checkpoint: str | None = None):
        self.name, self.quick, self.data_spec, self.seed = name, quick, data_spec, seed
        self.epochs_override, self.checkpoint = epochs, checkpoint
        self.stream = stream
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []
        self._t0 = time.perf_counter()
        self._data_cache: dict = {}

    # ---- options -------------------------------------------------------------------------
    def epochs(self, quick: int, full: int) -> int:
        """The experiment's number of epochs, unless --epochs overrides it."""
        if self.epochs_override is not None:
            return self.epochs_override
        return quick if self.quick else full

    def pick(self, quick, full):
        return quick if self.quick else full

    # ---- progress ------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(f"[{time.perf_counter() - self._t0:6.1f} s] {text}\n")
            self.stream.flush()

    def step(self, i: int, n: int, text: str) -> None:
        """A progress line: `[  12.3 s] 3/12 text`."""
        self.say(f"{i}/{n} {text}")

    # ---- data ----------------------------------------------------------------------------
    def data(self, n_train: int, n_val: int, size: int = 32, grey: bool = False) -> Data:
        """The dataset of --data: the built-in shapes drawn at size x size (grey: one channel),
        or n_train / n_val images drawn at random (seeded) from CIFAR-10's or MNIST's training
        and test files, at their own size. Raises the readers' DatasetError for a bad folder."""
        from ..data import open_dataset

        key = (n_train, n_val, size, grey)
        if key in self._data_cache:
            return self._data_cache[key]
        kind, _ = parse_data_spec(self.data_spec)
        shape = (1 if grey else 3, size, size)
        ds = open_dataset(self.data_spec, n_train=n_train, n_val=n_val, seed=self.seed,
                          image_shape=shape if kind == "builtin" else None)
        tr, va = ds["train"], ds["val"]
        rng = np.random.default_rng(self.seed)
        itr = rng.permutation(len(tr))[:n_train] if len(tr) > n_train else np.arange(len(tr))
        iva = rng.permutation(len(va))[:n_val] if len(va) > n_val else np.arange(len(va))
        raw_tr, raw_va = tr.images[itr], va.images[iva]
        mean = np.asarray(ds["mean"], np.float32).reshape(-1, 1, 1)
        std = np.asarray(ds["std"], np.float32).reshape(-1, 1, 1)

        def norm(a):
            a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
            return np.ascontiguousarray((a - mean) / std, dtype=np.float32)

        d = Data(ds["name"], norm(raw_tr), tr.labels[itr].astype(np.int64), norm(raw_va),
                 va.labels[iva].astype(np.int64), raw_tr, raw_va, tuple(ds["mean"]),
                 tuple(ds["std"]), int(ds["num_classes"]))
        self._data_cache[key] = d
        self.say(f"data: {d.name}, {len(d.train_x)} training and {len(d.val_x)} validation "
                 f"images of shape {d.image_shape}")
        return d

    def loader(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False,
               seed: int | None = None, transform=None, batch_transform=None):
        """A DataLoader over arrays, seeded from --seed (plus `seed`) so runs repeat."""
        from ..data import DataLoader, TensorDataset

        return DataLoader(TensorDataset(x, y, transform), batch_size, shuffle=shuffle,
                          seed=self.seed * 1000 + (seed or 0),
                          batch_transform=batch_transform)

    # ---- files ---------------------------------------------------------------------------
    def path(self, filename: str) -> Path:
        return self.out / filename

    def write_csv(self, filename: str, rows: list[dict], columns: list[str]) -> Path:
        """One row per dict; floats written with 6 significant digits."""
        p = self.path(filename)
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in rows:
                w.writerow([_cell(r.get(c, "")) for c in columns])
        self._wrote(p)
        return p

    def save_figure(self, fig, filename: str) -> Path:
        from .style import save

        p = self.path(filename)
        save(fig, p)
        self._wrote(p)
        return p

    def _wrote(self, p: Path) -> None:
        if str(p) not in self.files:
            self.files.append(str(p))
        self.say(f"wrote {p}")

    def command(self) -> str:
        parts = ["tds experiment", self.name]
        if self.quick:
            parts.append("--quick")
        if self.data_spec != "builtin":
            parts.append(f"--data {self.data_spec}")
        if self.seed:
            parts.append(f"--seed {self.seed}")
        if self.epochs_override is not None:
            parts.append(f"--epochs {self.epochs_override}")
        if self.checkpoint:
            parts.append(f"--checkpoint {self.checkpoint}")
        return " ".join(parts)

    def write_summary(self, mod, verdict: Verdict, seconds: float) -> Path:
        """summary.md: the lecture's claim (quoted, with its file), what was run, what was
        measured, and whether they agree."""
        p = self.path("summary.md")
        figures = [os.path.basename(f) for f in self.files if f.endswith(".png")]
        tables = [os.path.basename(f) for f in self.files if f.endswith(".csv")]
        lines = [
            f"# {mod.NAME}: {mod.TITLE}", "",
            f"**Verdict: {verdict.agreement}.** {verdict.line}", "",
            "## The lecture's claim", "",
            *[f"> {q}" for q in mod.CLAIM.strip().splitlines()], "",
            f"Source: `{mod.SOURCE}`", "",
            "## What was run", "",
            f"`{self.command()}` ({'quick' if self.quick else 'full'} version, "
            f"{'data: ' + self.data_spec if mod.USES_DATA else 'no dataset: generated inputs'}"
            f", seed {self.seed}; {seconds:.0f} s).", "",
            verdict.setup.strip(), "",
            "## What was measured", "",
            verdict.measured.strip(), "",
            "## Files", "",
            *[f"- `{f}`" for f in figures + tables], "",
        ]
        if self.quick:
            lines += ["The quick version is small (few images, narrow networks, few epochs): "
                      "it checks that the experiment runs, and its numbers are noisy. The "
                      "full version is the one to read.", ""]
        p.write_text("\n".join(lines))
        self._wrote(p)
        return p


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return v
