"""Optimizers, learning-rate schedules and weight penalties, as torch.optim:
`from tinygrad_ds import optim; opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)`."""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .penalties import l1_penalty, l2_penalty
from .schedules import CosineAnnealingLR, LinearWarmup, LRScheduler, StepLR
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR",
           "LinearWarmup", "l1_penalty", "l2_penalty"]
