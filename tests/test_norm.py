"""batch/layer/group norm and fused softmax cross-entropy against float64 numpy references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds.errors import ShapeError

SETTINGS = settings(max_examples=20, deadline=None)


def t64(a, grad=False):
    return tds.Tensor(a, dtype="float64", requires_grad=grad)


def ref_normalize(x, axes, eps):
    m = x.mean(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


@SETTINGS
@given(st.integers(2, 3), st.integers(1, 3), st.sampled_from([(), (1,), (3, 2), (1, 5)]),
       st.integers(0, 2**31))
def test_batch_norm_train_matches_reference(n, c, spatial, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, c) + spatial), rng.standard_normal(c), rng.standard_normal(c)
    axes = (0,) + tuple(range(2, x.ndim))
    y = F.batch_norm(t64(x), None, None, t64(w), t64(b), training=True)
    bshape = (1, c) + (1,) * len(spatial)
    expect = ref_normalize(x, axes, 1e-5) * w.reshape(bshape) + b.reshape(bshape)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-9, atol=1e-9)


def test_batch_norm_running_stats_and_eval():
    rng = np.random.default_rng(0)
    rm, rv = t64(np.zeros(3)), t64(np.ones(3))
    erm, erv = np.zeros(3), np.ones(3)
    for step in range(5):
        x = rng.standard_normal((4, 3, 2, 5)) * (step + 1) + step
        F.batch_norm(t64(x), rm, rv, training=True, momentum=0.2)
        erm = 0.8 * erm + 0.2 * x.mean(axis=(0, 2, 3))
        erv = 0.8 * erv + 0.2 * x.var(axis=(0, 2, 3), ddof=1)  # unbiased, as PyTorch
    np.testing.assert_allclose(rm.numpy(), erm, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), erv, rtol=1e-12)
    x = rng.standard_normal((2, 3, 2, 2))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    y = F.batch_norm(t64(x), rm, rv, t64(w), t64(b), training=False)
    r = (1, 3, 1, 1)
    expect = (x - erm.reshape(r)) / np.sqrt(erv.reshape(r) + 1e-5) * w.reshape(r) + b.reshape(r)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-10)
    np.testing.assert_allclose(rm.numpy(), erm)  # eval leaves the running stats alone


def test_batch_norm_float32_running_stats():
    rm, rv = tds.zeros(2), tds.ones(2)
    x = tds.randn(8, 2, 3, 3)
    y = F.batch_norm(x, rm, rv, training=True)
    assert y.dtype == np.float32 and rm.dtype == np.float32
    np.testing.assert_allclose(y.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)


@pytest.mark.parametrize("shape,training", [((3, 2, 3, 2), True), ((5, 3), True),
                                             ((2, 2, 3), False)])
def test_batch_norm_gradcheck(shape, training):
    rng = np.random.default_rng(1)
    c = shape[1]
    x, w, b = t64(rng.standard_normal(shape), True), t64(rng.standard_normal(c), True), \
        t64(rng.standard_normal(c), True)
    rm, rv = t64(rng.standard_normal(c)), t64(rng.random(c) + 0.5)
    tds.gradcheck(lambda a, ww, bb: F.batch_norm(a, rm, rv, ww, bb, training=training), x, w, b,
                  atol=1e-6)


@SETTINGS
@given(st.sampled_from([((4, 3), (3,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)),
                        ((1, 2, 2, 3), (2, 2, 3)), ((5, 1), 1)]),
       st.booleans(), st.integers(0, 2**31))
def test_layer_norm_matches_reference(shapes, affine, seed):
    shape, ns = shapes
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    nshape = (ns,) if isinstance(ns, int) else ns
    w, b = rng.standard_normal(nshape), rng.standard_normal(nshape)
    y = F.layer_norm(t64(x), ns, t64(w) if affine else None, t64(b) if affine else None)
    expect = ref_normalize(x, tuple(range(x.ndim - len(nshape), x.ndim)), 1e-5)
    if affine:
        expect = expect * w + b
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(st.integers(1, 3), st.sampled_from([(1, 4), (2, 4), (4, 4), (3, 6), (1, 1)]),
       st.sampled_from([(), (3,), (2, 3)]), st.booleans(), st.integers(0, 2**31))
def test_group_norm_matches_reference(n, gc, spatial, affine, seed):
    g, c = gc
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + spatial)
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    y = F.group_norm(t64(x), g, t64(w) if affine else None, t64(b) if affine else None)
    xg = x.reshape(n, g, -1)
    expect = ref_normalize(xg, (2,), 1e-5).reshape(x.shape)
    if affine:
        r = (1, c) + (1,) * len(spatial)
        expect = expect * w.reshape(r) + b.reshape(r)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-9, atol=1e-9)


def test_layer_and_group_norm_gradcheck():
    rng = np.random.default_rng(2)
    x = t64(rng.standard_normal((2, 4, 3, 2)), True)
    w, b = t64(rng.standard_normal((3, 2)), True), t64(rng.standard_normal((3, 2)), True)
    tds.gradcheck(lambda a, ww, bb: F.layer_norm(a, (3, 2), ww, bb), x, w, b, atol=1e-6)
    tds.gradcheck(lambda a: F.layer_norm(a, 2), x, atol=1e-6)
    w, b = t64(rng.standard_normal(4), True), t64(rng.standard_normal(4), True)
    tds.gradcheck(lambda a, ww, bb: F.group_norm(a, 2, ww, bb), x, w, b, atol=1e-6)
    tds.gradcheck(lambda a: F.group_norm(a, 4), x, atol=1e-6)  # instance norm


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_fused_cross_entropy(smoothing):
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 5)) * 3, rng.integers(0, 5, 6)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    expect = -(1 - smoothing) * logp[np.arange(6), t] - smoothing * logp.mean(axis=1)
    xt, tt = t64(x, True), tds.Tensor(t)
    loss = F.cross_entropy(xt, tt, reduction="none", label_smoothing=smoothing)
    # the fused op, times the mask of counted targets (all 1 here)
    assert loss._node.inputs[0]._node.op.name == "softmax_cross_entropy"
    np.testing.assert_allclose(loss.numpy(), expect, rtol=1e-12)
    tds.gradcheck(lambda a: F.cross_entropy(a, tt, label_smoothing=smoothing), xt)
    big = F.cross_entropy(tds.Tensor([[1000.0, 0.0]]), tds.Tensor([1]))  # stable: no inf/nan
    assert np.isclose(big.item(), 1000.0)


def test_norm_bad_input(monkeypatch):
    import tinygrad_ds.ops.norm as norm_ops

    monkeypatch.setattr(norm_ops, "kernels_for", lambda _: pytest.fail("a kernel was called"))
    x = tds.zeros(2, 4, 3, 3)
    with pytest.raises(ShapeError, match=r"layer_norm: normalized_shape \(4, 3\) must match the "
                                         r"trailing axes of the input \(2, 4, 3, 3\)"):
        F.layer_norm(x, (4, 3))
    with pytest.raises(ShapeError, match=r"batch_norm: training mode needs more than one value "
                                         r"per channel.*\(1, 4\)"):
        F.batch_norm(tds.zeros(1, 4), tds.zeros(4), tds.ones(4), training=True)
    with pytest.raises(ShapeError, match=r"batch_norm: running_mean must have shape \(4,\)"):
        F.batch_norm(x, tds.zeros(3), tds.ones(4))
    with pytest.raises(ShapeError, match=r"group_norm: 4 channels of input \(2, 4, 3, 3\) are "
                                         r"not divisible by num_groups=3"):
        F.group_norm(x, 3)
    with pytest.raises(ShapeError, match=r"group_norm: weight must have shape \(4,\)"):
        F.group_norm(x, 2, tds.ones(2))


@pytest.mark.parametrize("name", ["batch train", "batch eval", "layer", "layer all", "group"])
def test_norm_second_derivatives(name):
    """d/dx of <v, d sum(norm(x)^3)/dx> through create_graph matches finite differences (the
    backward is then built from Tensor ops); the first derivative there matches the kernels'."""
    rng = np.random.default_rng(9)
    shape = (3, 4, 2, 3) if name != "layer all" else (4, 5)
    x0, v = rng.standard_normal(shape), t64(rng.standard_normal(shape))
    w = t64(rng.standard_normal(shape[1]) + 1.0, True)
    b = t64(rng.standard_normal(shape[1]), True)
    rm, rv = t64(rng.standard_normal(shape[1])), t64(rng.uniform(0.5, 2.0, shape[1]))
    lw = t64(rng.standard_normal(shape[-2:]) + 1.0, True)
    fns = {
        "batch train": lambda a: F.batch_norm(a, None, None, w, b, training=True),
        "batch eval": lambda a: F.batch_norm(a, rm, rv, w, b, training=False),
        "layer": lambda a: F.layer_norm(a, shape[-2:], lw),
        "layer all": lambda a: F.layer_norm(a, shape),
        "group": lambda a: F.group_norm(a, 2, w, b),
    }
    norm = fns[name]

    def first(a):
        with tds.enable_grad():
            (g,) = tds.autograd.grad((norm(a) ** 3.0).sum(), a, create_graph=True)
        return (g * v).sum()

    tds.gradcheck(first, t64(x0, True))
    weight = {"layer": lw, "layer all": None}.get(name, w)
    if weight is not None:
        weight.grad = None  # gradcheck's backward of `first` reached it too
    fused, graph = t64(x0, True), t64(x0, True)
    (norm(fused) ** 3.0).sum().backward()
    want = [fused.grad] + ([weight.grad] if weight is not None else [])
    with tds.enable_grad():
        got = tds.autograd.grad((norm(graph) ** 3.0).sum(),
                                [graph] + ([weight] if weight is not None else []),
                                create_graph=True)
    for a, q in zip(got, want):
        np.testing.assert_allclose(a.numpy(), q.numpy(), rtol=1e-9, atol=1e-9)


def test_batch_norm_kernels_on_threads_equal_serial(monkeypatch):
    """Batch norm's kernels share channels (sums) and samples (elementwise passes) among the
    threads: stats, apply, and both backward kernels are bit-identical to one thread."""
    from tinygrad_ds.backend import threads
    from tinygrad_ds.backend.cpu import norm as cpu_norm

    monkeypatch.setattr(cpu_norm, "PARALLEL_ELEMENTS", 1)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 5, 7)) * 3 + 1).astype(np.float32)
    gy = rng.standard_normal((6, 5, 7)).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    out = {}
    monkeypatch.setitem(threads._state, "explicit", True)  # (restored after the test)
    for n in (1, 3):
        monkeypatch.setitem(threads._state, "n", n)
        st = cpu_norm.batch_norm_stats(x)
        mean, invstd = st[0], (1 / np.sqrt(st[1] + 1e-5)).astype(np.float32)
        sums = cpu_norm.batch_norm_backward_reduce(gy, x, mean, invstd)
        out[n] = (st, cpu_norm.batch_norm_apply(x, mean, invstd, w, b), sums,
                  cpu_norm.batch_norm_backward_input(gy, x, mean, invstd, w, sums))
    for a, c in zip(out[1], out[3]):
        np.testing.assert_array_equal(a, c)
    m = x.shape[0] * x.shape[2]
    np.testing.assert_allclose(out[3][0][0], x.mean(axis=(0, 2)), rtol=1e-5)
    xhat = (x - out[3][0][0][None, :, None]) * invstd[None, :, None]
    gx = w[None, :, None] * invstd[None, :, None] * (
        gy - gy.sum(axis=(0, 2), keepdims=True) / m
        - xhat * (gy * xhat).sum(axis=(0, 2), keepdims=True) / m)
    np.testing.assert_allclose(out[3][3], gx, rtol=1e-4, atol=1e-5)
