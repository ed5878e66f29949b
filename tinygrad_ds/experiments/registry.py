"""The registry of the lectures' experiments: name -> module, and run_experiment().

Each experiment is one module of this package with NAME, TITLE, CLAIM, SOURCE, USES_DATA and
run(ctx: RunContext) -> Verdict. The modules are imported only when their experiment runs, so
`tds experiment list` stays instant.

    from tinygrad_ds.experiments import run_experiment
    result = run_experiment("bn-variance", quick=True, out="runs/bn")
    result.summary_path        # runs/bn/summary.md, beside the PNGs and the CSVs
"""
from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from ..errors import TdsError
from .run import RunContext, Verdict, parse_data_spec

# name -> (module in this package, one line)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "vgg-depth-grid": ("vgg_depth_grid", "VGG-like nets, 1-4 blocks x 1-3 convs: accuracy and "
                                         "parameters (Figs. 4-5)"),
    "plain-vs-residual": ("plain_vs_residual", "training error of plain and residual nets at two "
                                               "depths (He et al. Fig. 1)"),
    "vanishing-gradients": ("vanishing_gradients", "per-layer gradient norms: sigmoid, ReLU, "
                                                   "batch norm, residual; the scalar chain"),
    "residual-paths": ("residual_paths", "path counts and lengths, gradient by path length, "
                                         "lesion study (Veit et al. Figs. 3, 6)"),
    "bn-variance": ("bn_variance", "activation variance per residual block at init, with and "
                                   "without batch norm"),
    "shattered-gradients": ("shattered_gradients", "dy/dx over a 1-D input sweep: shallow, deep "
                                                   "plain, deep residual"),
    "regularization": ("regularization", "train/val curves for ten regularisers, from L2 to "
                                         "early stopping"),
    "augmentation": ("augmentation", "validation accuracy for flips+crops, Cutout, MixUp, "
                                     "CutMix, RandAugment"),
    "mc-dropout": ("mc_dropout", "Monte-Carlo dropout: predictive mean and spread as the "
                                 "inputs shift"),
    "normalizations": ("normalizations", "batch/layer/group/instance norm at batch sizes 128, "
                                         "8, 2 (Fig. 14)"),
    "random-labels": ("random_labels", "fitting true labels, random labels, random pixels "
                                       "(Zhang et al., Fig. 7)"),
    "double-descent": ("double_descent", "test error against width with label noise (Fig. 8)"),
}


class ExperimentError(TdsError):
    """An unknown experiment name or option, with what would have worked."""


@dataclass
class ExperimentResult:
    name: str
    out: str
    files: list[str]
    verdict: Verdict
    seconds: float

    @property
    def summary_path(self) -> str:
        return f"{self.out}/summary.md"


def list_experiments() -> list[tuple[str, str]]:
    """[(name, one-line description)] in the lectures' order."""
    return [(name, desc) for name, (_, desc) in EXPERIMENTS.items()]


def load(name: str):
    """The module of experiment `name`; an unknown name raises ExperimentError listing all."""
    key = name.strip().lower().replace("_", "-")
    if key not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; the experiments are: "
                              + ", ".join(EXPERIMENTS) + " (tds experiment list describes them)")
    return importlib.import_module(f".{EXPERIMENTS[key][0]}", __package__)


def run_experiment(name: str, quick: bool = False, out: str | None = None,
                   data: str = "builtin", seed: int = 0, epochs: int | None = None,
                   checkpoint: str | None = None, stream: TextIO | None = None
                   ) -> ExperimentResult:
    """Run experiment `name` into the folder `out` (default: runs/NAME, or runs/NAME-quick):
    PNG figures, CSVs of every number behind them, and summary.md. quick: the reduced version
    (under a minute on 2 cores). data: 'builtin', 'cifar10:DIR' or 'mnist:DIR'. epochs: overrides
    the experiment's own number of training epochs. checkpoint: a model file's trained weights
    (residual-paths only). Progress goes to `stream` (stdout)."""
    mod = load(name)
    if epochs is not None and epochs < 1:
        raise ExperimentError(f"--epochs must be >= 1, got {epochs}")
    parse_data_spec(data)
    if checkpoint is not None and not getattr(mod, "TAKES_CHECKPOINT", False):
        raise ExperimentError(f"{mod.NAME} takes no --checkpoint (only residual-paths does)")
    out = out or f"runs/{mod.NAME}{'-quick' if quick else ''}"
    ctx = RunContext(mod.NAME, out, quick, data, seed, epochs, stream or sys.stdout, checkpoint)
    if data != "builtin" and not mod.USES_DATA:
        ctx.say(f"note: {mod.NAME} uses no dataset (its inputs are generated), so --data "
                f"{data} is not read")
    start = time.perf_counter()
    ctx.say(f"{mod.NAME}: {mod.TITLE} ({'quick' if quick else 'full'} run, seed {seed}) "
            f"-> {ctx.out}")
    verdict = mod.run(ctx)
    seconds = time.perf_counter() - start
    ctx.write_summary(mod, verdict, seconds)
    return ExperimentResult(mod.NAME, str(ctx.out), list(ctx.files), verdict, seconds)
