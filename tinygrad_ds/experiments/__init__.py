"""The lectures' experiments, reproduced: `tds experiment NAME` (one module per experiment).

    from tinygrad_ds.experiments import list_experiments, run_experiment
    run_experiment("residual-paths", quick=True, out="runs/paths")

Each run writes PNG figures, a CSV of every number behind them and summary.md (the lecture's
claim, what was run, what was measured, and whether they agree) into its folder. This package
sits above nn, optim, data and train, and may use viz's path analysis; nothing below imports it.
"""
from .registry import (EXPERIMENTS, ExperimentError, ExperimentResult, list_experiments,
                       run_experiment)
from .run import Data, RunContext, Verdict

__all__ = ["EXPERIMENTS", "ExperimentError", "ExperimentResult", "list_experiments",
           "run_experiment", "RunContext", "Verdict", "Data"]
