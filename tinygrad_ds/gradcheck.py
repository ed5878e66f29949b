"""Check the tape's gradients against central finite differences, in float64."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .autograd import no_grad
from .errors import GradError
from .tensor import Tensor


@dataclass
class GradcheckResult:
    ok: bool
    max_abs_err: float
    worst_input: int  # which input holds the worst element
    worst_index: tuple  # where in that input
    analytic: float
    numeric: float

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return (f"gradcheck {'passed' if self.ok else 'FAILED'}: worst element is input "
                f"{self.worst_input} at {self.worst_index}: tape {self.analytic:.6g} vs finite "
                f"differences {self.numeric:.6g} (abs err {self.max_abs_err:.3g})")


def gradcheck(fn, *inputs: Tensor, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_on_fail: bool = True) -> GradcheckResult:
    """fn(*inputs) -> Tensor. Inputs that require grad are checked element by element: the tape's
    d(sum(fn * v))/dx, v a fixed random projection, against (f(x + eps) - f(x - eps)) / 2 eps.
    Inputs are converted to float64 first. Raises (or returns, with raise_on_fail=False) a result
    naming the worst element."""
    xs = [Tensor(x.data, dtype="float64", requires_grad=x.requires_grad)
          if x.dtype.kind == "f" else x for x in inputs]
    out = fn(*xs)
    rng = np.random.default_rng(0)
    v = rng.standard_normal(out.shape)

    def f() -> float:
        with no_grad():  # the finite differences need values only, not a tape
            return float(np.sum(fn(*xs).data.astype(np.float64) * v))

    if not any(x.requires_grad for x in xs):
        raise GradError("gradcheck: no input requires grad, so there is nothing to check")
    if out.requires_grad:  # else fn does not depend on the inputs: every gradient is 0
        (out * Tensor(v, dtype="float64")).sum().backward()
    # The worst element is the one furthest past its tolerance (score > 1 fails).
    worst, worst_score = GradcheckResult(True, 0.0, -1, (), 0.0, 0.0), -1.0
    for i, x in enumerate(xs):
        if not x.requires_grad:
            continue
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.data.reshape(x.shape)
        flat = x.data.reshape(-1)  # a view: writing it changes x.data
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            hi = f()
            flat[j] = old - eps
            lo = f()
            flat[j] = old
            numeric = (hi - lo) / (2 * eps)
            a = float(analytic.reshape(-1)[j])
            err = abs(a - numeric)
            score = err / (atol + rtol * abs(numeric))
            if score > worst_score:
                worst_score = score
                where = tuple(int(k) for k in np.unravel_index(j, x.shape))
                worst = GradcheckResult(score <= 1, err, i, where, a,
                                        numeric)
    if not worst.ok and raise_on_fail:
        raise GradError(str(worst))
    return worst
