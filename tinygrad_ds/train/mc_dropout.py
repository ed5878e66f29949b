"""Monte-Carlo dropout: predictions with dropout left on, as an estimate of uncertainty."""
from __future__ import annotations

import numpy as np

from .. import autograd
from ..errors import TdsError
from ..tensor import Tensor


def predict_mc_dropout(model, x: Tensor, samples: int = 20, softmax: bool = True
                       ) -> tuple[Tensor, Tensor]:
    """Run `model` on x `samples` times with dropout on and everything else (batch norm) in
    eval mode (Gal and Ghahramani, 2016). Returns (mean, std) over the samples, each shaped like
    one output: class probabilities when softmax=True, raw outputs otherwise."""
    from ..nn.dropout import DropConnect, Dropout

    if samples < 1:
        raise TdsError(f"predict_mc_dropout: samples must be >= 1, got {samples}")
    was_training = model.training
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, (Dropout, DropConnect))]
    if not drops:
        raise TdsError(f"predict_mc_dropout: {type(model).__name__} has no dropout layer, so "
                       "every sample would be the same")
    for m in drops:
        m.train()
    outs = []
    try:
        with autograd.no_grad():
            for _ in range(samples):
                out = model(x)
                outs.append((out.softmax(axis=1) if softmax else out).data)
    finally:
        model.train(was_training)
    stack = np.stack(outs)
    return Tensor._wrap(stack.mean(axis=0)), Tensor._wrap(stack.std(axis=0))
