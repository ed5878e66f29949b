"""L1 and L2 penalties, added to the loss by hand (loss + 1e-4 * l2_penalty(model)).

With plain SGD, adding lam * l2_penalty is the same as weight_decay = 2 * lam; with Adam it is
not (the penalty's gradient gets rescaled), which is why AdamW exists.
"""
from __future__ import annotations

from typing import Iterable

from ..errors import TdsError


def _params(model_or_params) -> list:
    ps = model_or_params
    ps = list(ps.parameters() if hasattr(ps, "parameters") else ps)
    if not ps:
        raise TdsError("penalty: no parameters given")
    return ps


def l2_penalty(model_or_params: Iterable, weight: float = 1.0):
    """weight * sum of w^2 over every parameter: a scalar Tensor the loss can add.
    To spare biases: l2_penalty([p for n, p in model.named_parameters() if n.endswith('weight')])."""
    ps = _params(model_or_params)
    total = (ps[0] * ps[0]).sum()
    for p in ps[1:]:
        total = total + (p * p).sum()
    return total * weight if weight != 1.0 else total


def l1_penalty(model_or_params: Iterable, weight: float = 1.0):
    """weight * sum of |w| over every parameter: pushes weights to exactly zero (sparsity)."""
    ps = _params(model_or_params)
    total = ps[0].abs().sum()
    for p in ps[1:]:
        total = total + p.abs().sum()
    return total * weight if weight != 1.0 else total
