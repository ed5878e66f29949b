"""Dropout (inverted), Dropout2d (whole channels) and DropConnect (dropped weights).

Inverted dropout scales the kept values by 1/(1-p) while training, so evaluation needs no
rescaling: in eval mode each layer is the identity (DropConnect: a plain Linear). Masks come from
`tinygrad_ds.random.generator()` (seeded by `tds.manual_seed`)."""
from __future__ import annotations

from ..errors import ShapeError, TdsError, fmt_shape
from ..ops.state import bernoulli_mask
from ..tensor import Tensor
from .linear import Linear
from .module import Module


def _check_p(name: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise TdsError(f"{name}: dropout probability must be in [0, 1], got {p}")
    return float(p)


def dropout_mask(like: Tensor, shape: tuple, p: float) -> Tensor:
    """1/(1-p) with probability 1-p, else 0 (all zeros for p=1), in like's dtype: a random op
    (no gradient) that draws from the generator `tds.manual_seed` seeds."""
    return bernoulli_mask(like, shape, p)


class Dropout(Module):
    """Zero each element with probability p while training, scale the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = _check_p("Dropout", p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x, x.shape, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Spatial dropout: zero whole channels. x: (N, C, H, W) or (C, H, W); one draw per (n, c)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4):
            raise ShapeError(f"Dropout2d: expected (N, C, H, W) or (C, H, W), got "
                             f"{fmt_shape(x.shape)}")
        if not self.training or self.p == 0.0:
            return x
        return x * dropout_mask(x, x.shape[:-2] + (1, 1), self.p)


class DropConnect(Linear):
    """A Linear layer that drops weights instead of activations (Wan et al. 2013): while
    training, each weight is zeroed with probability p (one mask per forward call, shared by the
    batch) and the rest are scaled by 1/(1-p); in eval mode it is the plain Linear. x: (N, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.5,
                 dtype=None):
        super().__init__(in_features, out_features, bias=bias, dtype=dtype)
        self.p = _check_p("DropConnect", p)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        if self.training and self.p > 0.0:
            w = w * dropout_mask(w, w.shape, self.p)
        return self._linear(x, w)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"
