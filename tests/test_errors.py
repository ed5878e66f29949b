"""Bad input raises a tinygrad_ds error whose message names the op and both shapes (or the
offending value), never a bare numpy traceback."""
import re

import numpy as np
import pytest

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds.errors import DTypeError, GradError, ShapeError, TdsError


def raises(cls, fn, *fragments):
    """fn() raises `cls`, and its message contains every fragment."""
    with pytest.raises(cls) as info:
        fn()
    message = str(info.value)
    for f in fragments:
        assert f in message, f"{f!r} not in {message!r}"
    return message


A, B = tds.ones(2, 3), tds.ones(4)


@pytest.mark.parametrize("op, fn", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b),
    ("maximum", lambda a, b: a.maximum(b)), ("minimum", lambda a, b: a.minimum(b)),
    ("less", lambda a, b: a < b), ("less_equal", lambda a, b: a <= b),
    ("greater", lambda a, b: a > b), ("greater_equal", lambda a, b: a >= b),
    ("equal", lambda a, b: a == b), ("not_equal", lambda a, b: a != b),
])
def test_broadcasting_mismatch_names_the_op_and_both_shapes(op, fn):
    message = raises(ShapeError, lambda: fn(A, B), "(2, 3)", "(4,)", "broadcast")
    assert message.startswith(op + ":")
    raises(ShapeError, lambda: fn(B, A), op, "(4,)", "(2, 3)")


def test_where_mismatch_names_every_shape():
    raises(ShapeError, lambda: tds.where(A > 0, A, B), "where", "(2, 3)", "(4,)")


@pytest.mark.parametrize("sa, sb, extra", [
    ((2, 3), (4, 5), "3 columns on the left, 4 rows on the right"),
    ((3,), (2,), ""),
    ((5, 3), (2,), ""),
    ((2, 2, 3), (3, 3, 4), "batch dims"),
    ((), (2, 3), "at least 1 dim"),
])
def test_matmul_mismatch_names_both_shapes(sa, sb, extra):
    from tinygrad_ds.errors import fmt_shape

    raises(ShapeError, lambda: tds.ones(*sa) @ tds.ones(*sb), "matmul", fmt_shape(sa),
           fmt_shape(sb), extra)


@pytest.mark.parametrize("make", [
    lambda: tds.Tensor([1.0], dtype="float17"),
    lambda: tds.zeros(2, dtype="float17"),
    lambda: tds.ones(2).astype("float17"),
    lambda: tds.randn(2, dtype="float17"),
])
def test_unknown_dtype_names_the_value(make):
    message = raises(DTypeError, make, "unknown dtype", "'float17'")
    assert "float32" in message  # and says what would work


def test_unsupported_dtypes():
    raises(DTypeError, lambda: tds.ones(2).astype(np.float16), "float16", "not supported")
    raises(DTypeError, lambda: tds.Tensor(["a", "b"]), "cannot hold", "<U1")
    raises(DTypeError, lambda: tds.Tensor([1 + 2j]), "complex")


def test_backward_on_a_tensor_that_does_not_require_grad():
    raises(GradError, lambda: tds.ones(2, 3).sum().backward(), "does not require grad", "()")
    raises(GradError, lambda: tds.ones(2, 3).backward(tds.ones(2, 3)), "(2, 3)",
           "requires_grad=True")


def test_backward_without_gradient_on_a_non_scalar():
    x = tds.ones(2, 3, requires_grad=True)
    raises(GradError, lambda: (x * 2).backward(), "scalar", "(2, 3)")
    raises(ShapeError, lambda: (x * 2).backward(tds.ones(3)), "(3,)", "(2, 3)")


def test_item_on_a_non_scalar_names_the_shape():
    raises(ShapeError, lambda: tds.ones(2, 3).item(), "item()", "(2, 3)")
    raises(TdsError, lambda: bool(tds.ones(2)), "ambiguous", "(2,)")


def test_requires_grad_needs_floats():
    raises(GradError, lambda: tds.Tensor([1, 2], requires_grad=True), "floating", "int64")
    raises(GradError, lambda: (tds.ones(2, requires_grad=True) * 2).requires_grad_(False),
           "detach")


@pytest.mark.parametrize("fn, fragments", [
    (lambda: A.reshape(4), ("reshape", "(2, 3)", "(4,)")),
    (lambda: A.reshape(-1, 4), ("reshape", "(2, 3)")),
    (lambda: A.permute(0, 0), ("permute", "(2, 3)")),
    (lambda: A.transpose(0, 3), ("transpose", "axis 3")),
    (lambda: A.expand(3, 3), ("expand", "(2, 3)", "(3, 3)")),
    (lambda: A[5], ("getitem", "5", "(2, 3)")),
    (lambda: A[:, [0, 7]], ("getitem", "(2, 3)", "7")),
    (lambda: A[0, 0, 0], ("getitem", "(2, 3)")),
    (lambda: tds.concat([A, B]), ("concat", "(2, 3)", "(4,)")),
    (lambda: tds.stack([A, tds.ones(3, 2)]), ("stack", "(2, 3)", "(3, 2)")),
    (lambda: A.pad((1,)), ("pad", "(2, 3)")),
    (lambda: A.split([1, 2]), ("split", "(2, 3)", "[1, 2]")),
    (lambda: A.sum(axis=2), ("sum", "axis 2")),
    (lambda: A.mean(axis=(0, 0)), ("mean", "repeats")),
    (lambda: A.softmax(5), ("softmax", "axis 5")),
    (lambda: A.flatten(1, 0), ("flatten",)),
    (lambda: F.mse_loss(A, B), ("mse_loss", "(2, 3)", "(4,)")),
    (lambda: F.cross_entropy(A, tds.Tensor([0, 5])), ("cross_entropy", "5", "3 classes")),
    (lambda: F.cross_entropy(A, tds.Tensor([0, 1, 2])), ("cross_entropy", "(2, 3)", "(3,)")),
    (lambda: F.cross_entropy(A, tds.Tensor([0.0, 1.0])), ("cross_entropy", "(2, 3)", "(2,)")),
    (lambda: F.nll_loss(A, tds.Tensor([[0], [1]])), ("nll_loss", "(2, 3)", "(2, 1)")),
    (lambda: F.binary_cross_entropy_with_logits(A, B), ("binary_cross_entropy", "(2, 3)")),
])
def test_shape_errors_name_the_op_and_shapes(fn, fragments):
    raises(ShapeError, fn, *fragments)


def test_other_bad_input():
    raises(DTypeError, lambda: F.cross_entropy(A, tds.Tensor([[0, 1, 2], [0, 1, 2]], dtype="bool")),
           "cross_entropy")
    raises(ValueError, lambda: F.cross_entropy(A, tds.Tensor([0, 1]), reduction="avg"),
           "reduction", "'avg'")
    raises(ValueError, lambda: F.cross_entropy(A, tds.Tensor([0, 1]), label_smoothing=2.0),
           "label_smoothing")
    raises(ValueError, lambda: A.gelu(approximate="fast"), "gelu", "'fast'")
    raises(TdsError, lambda: tds.Tensor([[1, 2], [3]]), "rectangular")
    raises(TdsError, lambda: tds.ones(2).to("cuda"), "cuda", "cpu")
    raises(TdsError, lambda: tds.ones(2, device="tpu"), "'tpu'")
    raises(TdsError, lambda: tds.zeros_like(A, device="cuda"), "cuda")


def test_error_classes_are_also_the_builtin_ones():
    # code written for PyTorch that catches ValueError / TypeError / RuntimeError still works
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(GradError, RuntimeError)
    for cls in (ShapeError, DTypeError, GradError):
        assert issubclass(cls, TdsError)


def test_messages_are_one_readable_line():
    with pytest.raises(ShapeError) as info:
        A + B
    assert "\n" not in str(info.value) and not re.search(r"operands could not be", str(info.value))
