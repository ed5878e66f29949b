"""Errors a user sees. Each names the op and the shapes or the value that was wrong."""


class TdsError(Exception):
    """Base class of every error tinygrad_ds raises on purpose."""


class ShapeError(TdsError, ValueError):
    """Shapes that do not fit an op: the message names the op and every shape involved."""


class DTypeError(TdsError, TypeError):
    """An unknown dtype, or a dtype an op cannot take."""


class GradError(TdsError, RuntimeError):
    """A backward pass that cannot run: no grad required, freed graph, wrong grad shape."""


def fmt_shape(shape) -> str:
    """(2, 3) -> '(2, 3)'; () -> '()' (a scalar)."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"
