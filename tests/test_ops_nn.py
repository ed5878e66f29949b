"""matmul, softmax / log_softmax / logsumexp and the losses: forward against float64 numpy
written from PyTorch's definitions, backward through tds.gradcheck."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds.errors import ShapeError

SEEDS = st.integers(0, 2**16)
SHAPES = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def data(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def check(fn, ref, *arrays, grad=None, rtol=1e-5):
    """Forward in float32 and float64 against ref in float64; gradcheck over the inputs that
    `grad` names (default: all)."""
    for dtype, tol in (("float64", 1e-10), ("float32", rtol)):
        ts = [tds.Tensor(a, dtype=dtype) if a.dtype.kind == "f" else tds.Tensor(a) for a in arrays]
        out = fn(*ts)
        expected = ref(*[t.data.astype(np.float64) if t.dtype.kind == "f" else t.data
                         for t in ts])
        assert out.dtype == np.dtype(dtype) and out.shape == np.shape(expected)
        np.testing.assert_allclose(out.data, expected, rtol=tol, atol=tol)
    grad = range(len(arrays)) if grad is None else grad
    ts = [tds.Tensor(a, dtype="float64", requires_grad=i in grad) if a.dtype.kind == "f"
          else tds.Tensor(a) for i, a in enumerate(arrays)]
    assert tds.gradcheck(fn, *ts)


# ---- matmul ---------------------------------------------------------------------------------
@st.composite
def matmul_shapes(draw):
    kind = draw(st.sampled_from(["vv", "vm", "mv", "mm", "batched"]))
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    if kind == "vv":
        return (k,), (k,)
    if kind == "vm":
        return (k,), tuple(draw(st.lists(st.integers(1, 2), max_size=2))) + (k, m)
    if kind == "mv":
        return tuple(draw(st.lists(st.integers(1, 2), max_size=2))) + (n, k), (k,)
    if kind == "mm":
        return (n, k), (k, m)
    batch = draw(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    return ba + (n, k), bb + (k, m)


@given(shapes=matmul_shapes(), seed=SEEDS)
def test_matmul(shapes, seed):
    sa, sb = shapes
    check(lambda a, b: a @ b, np.matmul, data(seed, sa), data(seed + 1, sb), rtol=1e-4)


def test_matmul_one_side_needs_grad():
    w = tds.Tensor(data(1, (3, 2)), dtype="float64", requires_grad=True)
    x = tds.Tensor(data(2, (5, 4, 3)), dtype="float64")
    assert tds.gradcheck(lambda w: x.matmul(w).relu(), w)


# ---- softmax family -------------------------------------------------------------------------
def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_softmax_family(name, shape, seed, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    x = data(seed, shape) * 3
    if name == "softmax":
        check(lambda t: t.softmax(axis), lambda a: np.exp(_log_softmax(a, axis)), x)
    elif name == "log_softmax":
        check(lambda t: F.log_softmax(t, axis), lambda a: _log_softmax(a, axis), x)
    else:
        keep = data_.draw(st.booleans())
        check(lambda t: F.logsumexp(t, axis, keep),
              lambda a: np.log(np.exp(a).sum(axis=axis, keepdims=keep)), x)


def test_softmax_is_stable_for_huge_logits():
    x = tds.Tensor([[1000.0, 1001.0, -1000.0], [-np.inf, 0.0, 0.0]])
    np.testing.assert_allclose(x.softmax().data, [[0.2689414, 0.7310586, 0], [0, 0.5, 0.5]],
                               rtol=1e-6)
    np.testing.assert_allclose(x.logsumexp(axis=1).data, [1001.3132617, math.log(2)], rtol=1e-6)
    assert np.isfinite(x.log_softmax().data[0]).all()


# ---- losses ---------------------------------------------------------------------------------
def _reduce(loss, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss)


REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


@given(shape=SHAPES, seed=SEEDS, reduction=REDUCTIONS)
def test_mse_loss(shape, seed, reduction):
    check(lambda x, y: F.mse_loss(x, y, reduction=reduction),
          lambda x, y: _reduce((x - y) ** 2, reduction), data(seed, shape), data(seed + 1, shape))


@given(shape=SHAPES, seed=SEEDS, reduction=REDUCTIONS)
def test_bce_with_logits(shape, seed, reduction):
    x = data(seed, shape) * 3
    y = np.random.default_rng(seed + 1).random(shape)  # soft labels in [0, 1)

    def ref(x, y):  # PyTorch's definition, written directly
        s = 1 / (1 + np.exp(-x))
        return _reduce(-(y * np.log(s) + (1 - y) * np.log(1 - s)), reduction)

    check(lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction), ref, x, y)


def test_bce_with_logits_does_not_overflow():
    x = tds.Tensor([1000.0, -1000.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, tds.Tensor([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.data, [1000.0, 1000.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, -1.0])


@st.composite
def class_problem(draw):
    """(N, C) logits or (N, C, d) with class indices, sometimes with ignored targets."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=1)))
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, size=(n,) + spatial)
    if draw(st.booleans()):
        target.flat[0] = -100
    return data(seed, (n, c) + spatial) * 2, target


def _nll(logp, target, reduction, smoothing=0.0):
    """PyTorch: loss_i = -(1 - e) logp[i, y_i] - e/C sum_c logp[i, c], 0 where y_i is ignored;
    'mean' divides by the number of targets not ignored."""
    valid = target != -100
    picked = np.take_along_axis(logp, np.expand_dims(np.where(valid, target, 0), 1), 1)[:, 0]
    loss = -(1 - smoothing) * picked - smoothing * logp.mean(axis=1)
    loss = np.where(valid, loss, 0.0)
    if reduction == "mean":
        return loss.sum() / valid.sum()
    return _reduce(loss, reduction)


@given(problem=class_problem(), reduction=REDUCTIONS)
def test_nll_loss(problem, reduction):
    x, target = problem
    if reduction == "mean" and (target == -100).all():
        return
    check(lambda x, t: F.nll_loss(x.log_softmax(1), t, reduction=reduction),
          lambda x, t: _nll(_log_softmax(x, 1), t, reduction), x, target, grad=[0])


@given(problem=class_problem(), reduction=REDUCTIONS,
       smoothing=st.sampled_from([0.0, 0.1, 0.5]))
def test_cross_entropy_class_indices(problem, reduction, smoothing):
    x, target = problem
    if reduction == "mean" and (target == -100).all():
        return
    check(lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing),
          lambda x, t: _nll(_log_softmax(x, 1), t, reduction, smoothing), x, target, grad=[0])


@given(seed=SEEDS, n=st.integers(1, 4), c=st.integers(1, 4), reduction=REDUCTIONS,
       smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_soft_targets(seed, n, c, reduction, smoothing):
    x = data(seed, (n, c)) * 2
    p = np.random.default_rng(seed + 1).random((n, c)) + 0.1
    p /= p.sum(axis=1, keepdims=True)

    def ref(x, p):  # PyTorch: -sum_c ((1 - e) p_c + e / C) log_softmax(x)_c, mean over N
        return _reduce(-(((1 - smoothing) * p + smoothing / c) * _log_softmax(x, 1)).sum(1),
                       reduction)

    check(lambda x, p: F.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing),
          ref, x, p)


def test_cross_entropy_known_values():
    # numbers PyTorch gives: F.cross_entropy(torch.tensor([[1., 2., 3.]]), torch.tensor([0]))
    x = tds.Tensor([[1.0, 2.0, 3.0]])
    assert F.cross_entropy(x, tds.Tensor([0])).item() == pytest.approx(2.4076059644, rel=1e-6)
    # ... with label_smoothing=0.1: 0.9 * 2.40760596 + 0.1 * mean(2.40760596, 1.40760596,
    # 0.40760596)
    assert F.cross_entropy(x, tds.Tensor([0]), label_smoothing=0.1).item() == \
        pytest.approx(2.3076059644, rel=1e-6)
    # one sample without the batch axis, as PyTorch allows
    assert F.cross_entropy(x[0], tds.Tensor(0)).item() == pytest.approx(2.4076059644, rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_second_derivatives(smoothing):
    """Through create_graph the fused softmax-cross-entropy's gradient is Tensor ops: it equals
    the kernel's, and its own gradient matches finite differences."""
    rng = np.random.default_rng(4)
    x0, t = rng.standard_normal((4, 5)), tds.Tensor(np.array([0, 4, 2, 2]))
    v = tds.Tensor(rng.standard_normal((4, 5)), dtype="float64")

    def first(a):
        with tds.enable_grad():
            (g,) = tds.autograd.grad(F.cross_entropy(a, t, label_smoothing=smoothing), a,
                                     create_graph=True)
        return g

    tds.gradcheck(lambda a: (first(a) * v).sum(), tds.Tensor(x0, "float64", requires_grad=True))
    fused = tds.Tensor(x0, "float64", requires_grad=True)
    F.cross_entropy(fused, t, label_smoothing=smoothing).backward()
    graph = first(tds.Tensor(x0, "float64", requires_grad=True))
    np.testing.assert_allclose(graph.numpy(), fused.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_weighted_losses_known_values():
    # numbers PyTorch 2.13 gives for the same calls
    x = tds.Tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype="float64")
    t, w = tds.Tensor([0, 2]), [0.2, 1.0, 3.0]
    assert F.cross_entropy(x, t, weight=w).item() == pytest.approx(0.37670475244522095)
    assert F.cross_entropy(x, t, weight=w, label_smoothing=0.1).item() == \
        pytest.approx(0.41638273000717163)
    y = tds.Tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5]], dtype="float64")
    assert F.binary_cross_entropy_with_logits(x, y, pos_weight=[1.0, 2.0, 0.5]).item() == \
        pytest.approx(0.5789909958839417)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_weighted_cross_entropy_and_nll(reduction, smoothing):
    """Class weights: -w[t] logp[n, t] (plus the smoothing term -e/C sum_c w[c] logp[n, c]), an
    ignored target adds 0, and the mean divides by the counted targets' total weight."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((5, 4, 2)), rng.uniform(0.2, 2.0, 4)
    t = rng.integers(0, 4, (5, 2))
    t[1, 0] = -100
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    valid = t != -100
    tw = np.where(valid, w[np.where(valid, t, 0)], 0.0)
    picked = np.take_along_axis(logp, np.where(valid, t, 0)[:, None], axis=1)[:, 0]
    ref = -tw * picked * (1 - smoothing) \
        - smoothing / 4 * (w[None, :, None] * logp).sum(axis=1) * valid
    ref = {"mean": ref.sum() / tw.sum(), "sum": ref.sum(), "none": ref}[reduction]
    xt = tds.Tensor(x, dtype="float64", requires_grad=True)
    got = F.cross_entropy(xt, tds.Tensor(t), weight=tds.Tensor(w, dtype="float64"),
                          reduction=reduction, label_smoothing=smoothing)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    if smoothing == 0:
        nll = F.nll_loss(tds.Tensor(logp, dtype="float64"), tds.Tensor(t), weight=w,
                         reduction=reduction)
        np.testing.assert_allclose(nll.numpy(), ref, rtol=1e-12)
    tds.gradcheck(lambda a: F.cross_entropy(a, tds.Tensor(t), weight=w, reduction=reduction,
                                            label_smoothing=smoothing), xt)


def test_weighted_soft_targets_and_bce():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((3, 4)), rng.uniform(0.2, 2.0, 4)
    p = rng.dirichlet(np.ones(4), size=3)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    got = F.cross_entropy(tds.Tensor(x, dtype="float64"), tds.Tensor(p, dtype="float64"),
                          weight=w)
    assert got.item() == pytest.approx(-(w * p * logp).sum() / 3, rel=1e-12)  # mean over N
    y, bw, pw = rng.uniform(0, 1, (3, 4)), rng.uniform(0, 2, (3, 1)), rng.uniform(0.2, 3, 4)
    sig = 1 / (1 + np.exp(-x))
    ref = -bw * (pw * y * np.log(sig) + (1 - y) * np.log(1 - sig))
    xt = tds.Tensor(x, dtype="float64", requires_grad=True)
    got = F.binary_cross_entropy_with_logits(xt, tds.Tensor(y, dtype="float64"), weight=bw,
                                             reduction="none", pos_weight=pw)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    tds.gradcheck(lambda a: F.binary_cross_entropy_with_logits(
        a, tds.Tensor(y, dtype="float64"), weight=bw, pos_weight=pw), xt)


def test_loss_weights_bad_shapes():
    x = tds.randn(2, 3)
    with pytest.raises(ShapeError, match=r"cross_entropy: weight must have shape \(3,\) \(one "
                                         r"per class of input \(2, 3\)\), got \(4,\)"):
        F.cross_entropy(x, tds.Tensor([0, 1]), weight=[1.0] * 4)
    with pytest.raises(ShapeError, match=r"pos_weight \(2,\) must broadcast to the input's "
                                         r"shape \(2, 3\)"):
        F.binary_cross_entropy_with_logits(x, tds.zeros(2, 3), pos_weight=[1.0, 2.0])


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    x = tds.Tensor(data(3, (4, 5)), requires_grad=True)
    t = np.array([0, 4, 2, 2])
    F.cross_entropy(x, tds.Tensor(t)).backward()
    expected = (np.exp(_log_softmax(x.data.astype(np.float64), 1)) - np.eye(5)[t]) / 4
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-5, atol=1e-7)
