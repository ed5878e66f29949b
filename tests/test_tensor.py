"""Tensor construction, dtype rules, conversions, factories and manual_seed."""
import numpy as np
import pytest

import tinygrad_ds as tds


# ---- construction and dtype rules -------------------------------------------------------------
@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], tds.float32),
    (2.5, tds.float32),
    (np.array([1.0, 2.0]), tds.float32),  # float64 numpy data becomes float32 by default
    (np.array([1.0], dtype=np.float16), tds.float32),
    ([1, 2], tds.int64),
    (7, tds.int64),
    (np.array([1, 2], dtype=np.int32), tds.int32),
    (np.array([1, 2], dtype=np.uint8), tds.int64),
    ([True, False], tds.bool_),
])
def test_default_dtypes(data, dtype):
    t = tds.Tensor(data)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data).astype(dtype))


@pytest.mark.parametrize("spelling", ["float64", "double", tds.float64, np.float64, "f8"])
def test_float64_on_request(spelling):
    t = tds.tensor([1, 2], dtype=spelling)
    assert t.dtype == tds.float64


def test_tensor_from_tensor_copies_and_keeps_dtype():
    a = tds.Tensor([1.0, 2.0], dtype="float64")
    b = tds.Tensor(a)
    assert b.dtype == tds.float64 and not np.shares_memory(a.data, b.data)
    assert tds.Tensor(a, dtype="float32").dtype == tds.float32


def test_float64_propagates_and_python_numbers_adapt():
    f32, f64 = tds.ones(2), tds.ones(2, dtype="float64")
    assert (f32 + f64).dtype == tds.float64
    assert (f64 * f32).dtype == tds.float64
    assert (f32 * 2.5).dtype == tds.float32 and (2 ** f32).dtype == tds.float32
    assert (f64 * np.float32(2)).dtype == tds.float64


def test_integers_stay_integers_and_mix_with_floats_as_pytorch():
    i = tds.Tensor([1, 2, 3])
    assert (i * 2).dtype == tds.int64 and (i + i).dtype == tds.int64
    assert (i * tds.ones(3)).dtype == tds.float32  # numpy alone would give float64
    assert (tds.ones(3, dtype="float64") - i).dtype == tds.float64
    assert (i * 0.5).dtype == tds.float32
    np.testing.assert_allclose((i * 0.5).data, [0.5, 1.0, 1.5])


def test_casts():
    x = tds.Tensor([1.7, -2.2])
    assert x.double().dtype == tds.float64 and x.double().float().dtype == tds.float32
    np.testing.assert_array_equal(x.long().data, [1, -2])
    assert x.astype("float32") is x


# ---- properties and conversions ---------------------------------------------------------------
def test_properties_and_conversions():
    t = tds.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2
    assert t.device == "cpu" and t.to("cpu") is t
    assert isinstance(t.numpy(), np.ndarray) and np.asarray(t).shape == (2, 3)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert t.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert t[1, 2].item() == 5.0 and float(t[0, 1]) == 1.0 and int(t[1, 0]) == 3
    assert tds.Tensor([[4.0]]).item() == 4.0
    assert bool(tds.Tensor([1.0]))
    assert (t > 2).any() and not (t > 9).any() and (t >= 0).all()


def test_iteration_abs_and_pytorch_spellings():
    t = tds.Tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(t)
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]
    sum(rows).sum().backward()
    np.testing.assert_allclose(t.grad.data, np.ones((2, 2)))
    assert abs(t).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert t.numel() == 4 and t.dim() == 2
    assert np.array(t, copy=True) is not t.data
    assert (t == None) is False and (t != None) is True  # noqa: E711, as PyTorch


def test_repr_is_readable():
    assert repr(tds.Tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert "dtype=int64" in repr(tds.Tensor([1, 2]))
    assert "requires_grad=True" in repr(tds.ones(2, requires_grad=True))
    assert "grad_fn=mul" in repr(tds.ones(2, requires_grad=True) * 2)


def test_requires_grad_and_leaves():
    t = tds.Tensor([1.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None
    assert not t.requires_grad_(False).requires_grad


def test_scalar_results_are_arrays():
    s = tds.Tensor([1.0, 2.0]).sum()
    assert s.shape == () and isinstance(s.data, np.ndarray) and s.dtype == tds.float32


# ---- factories --------------------------------------------------------------------------------
def test_factories_shapes_and_dtypes():
    assert tds.zeros(2, 3).shape == (2, 3) and tds.zeros((2, 3)).dtype == tds.float32
    assert tds.ones([4]).data.sum() == 4
    assert tds.zeros(()).shape == () and tds.zeros().shape == ()
    assert tds.full((2,), 1.5).dtype == tds.float32
    assert tds.full(3, 7).dtype == tds.int64 and tds.full(2, True).dtype == tds.bool_
    np.testing.assert_array_equal(tds.arange(4).data, [0, 1, 2, 3])
    assert tds.arange(4).dtype == tds.int64
    assert tds.arange(0, 1, 0.25).dtype == tds.float32 and tds.arange(0, 1, 0.25).shape == (4,)
    np.testing.assert_array_equal(tds.arange(2, 8, 3).data, [2, 5])
    np.testing.assert_array_equal(tds.eye(2, 3).data, np.eye(2, 3))
    assert tds.randn(3, 4, dtype="float64").dtype == tds.float64
    r = tds.rand(1000)
    assert r.shape == (1000,) and 0 <= r.data.min() and r.data.max() < 1
    x = tds.randn(2, 5, requires_grad=True)
    assert x.requires_grad and x.is_leaf


def test_like_factories_follow_the_template():
    t = tds.ones(2, 3, dtype="float64")
    for f in (tds.zeros_like, tds.ones_like, tds.randn_like, tds.rand_like):
        out = f(t)
        assert out.shape == (2, 3) and out.dtype == tds.float64
    assert tds.full_like(t, 2.0).data.sum() == 12.0
    assert tds.zeros_like(t, dtype="float32").dtype == tds.float32
    assert tds.ones_like(t, requires_grad=True).requires_grad


def test_manual_seed_makes_draws_repeatable():
    tds.manual_seed(123)
    a, b = tds.randn(3, 4), tds.rand(5)
    tds.manual_seed(123)
    c, d = tds.randn(3, 4), tds.rand(5)
    np.testing.assert_array_equal(a.data, c.data)
    np.testing.assert_array_equal(b.data, d.data)
    tds.manual_seed(124)
    assert not np.array_equal(tds.randn(3, 4).data, a.data)


def test_standard_normal_statistics():
    tds.manual_seed(0)
    x = tds.randn(20000, dtype="float64").data
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05


def test_gradcheck_reports_the_worst_element():
    x = tds.Tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64", requires_grad=True)

    class Wrong(tds.autograd.Function):  # a deliberately wrong derivative: 3 x instead of 2 x
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * a * 3.0

    result = tds.gradcheck(Wrong.apply, x, raise_on_fail=False)
    assert not result.ok and result.worst_input == 0 and len(result.worst_index) == 2
    assert "FAILED" in str(result) and "worst element" in str(result)
    with pytest.raises(tds.GradError, match="worst element"):
        tds.gradcheck(Wrong.apply, x)
    assert tds.gradcheck(lambda a: a * a, x).ok
