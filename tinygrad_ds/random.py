"""The one random generator every factory and layer draws from; `manual_seed` resets it."""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Make every later random draw (randn, init, dropout, shuffling) repeatable."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    return _rng


def generator_tensor():
    """The generator as an op input (random masks take it explicitly), announced to a tracer as
    the state 'rng', so that a traced graph draws from the generator current when it runs."""
    from .autograd import announce_state, wrap

    return announce_state(wrap(_rng), "rng", generator_tensor)
