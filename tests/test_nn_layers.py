"""Each layer against a float64 numpy reference, and its gradients by gradcheck."""
import math

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn
from tinygrad_ds.errors import ShapeError, TdsError

RNG = np.random.default_rng(0)


def arr(*shape):
    return RNG.standard_normal(shape)


def t64(a, grad=True):
    return tds.Tensor(a, dtype="float64", requires_grad=grad)


def _set(module, path, value):
    *parents, leaf = path.split(".")
    for p in parents:
        module = getattr(module, p)
    object.__setattr__(module, leaf, value)


def gradcheck_module(m, *xs):
    """gradcheck with respect to the inputs and every parameter of m (in float64)."""
    m.double()
    names, params = zip(*m.named_parameters()) if m.parameters() else ((), ())

    def fn(*args):
        for n, p in zip(names, args[len(xs):]):
            _set(m, n, p)
        return m(*args[:len(xs)])

    try:
        ins = [t64(x.data if isinstance(x, tds.Tensor) else x) for x in xs]
        tds.gradcheck(fn, *ins, *[t64(p.data) for p in params])
    finally:
        for n, p in zip(names, params):
            _set(m, n, p)


# ---- numpy references ---------------------------------------------------------------------------
def conv2d_ref(x, w, b, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        xs, ws = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dil:i * dil + stride * (ho - 1) + 1:stride,
                           j * dil:j * dil + stride * (wo - 1) + 1:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def conv_transpose2d_ref(x, w, b, stride, pad, out_pad, groups, dil):
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    fh = (h - 1) * stride + dil * (kh - 1) + 1 + out_pad
    fw = (wd - 1) * stride + dil * (kw - 1) + 1 + out_pad
    full = np.zeros((n, og * groups, fh, fw))
    for g in range(groups):
        xs, ws = x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                full[:, g * og:(g + 1) * og, i * dil:i * dil + stride * (h - 1) + 1:stride,
                     j * dil:j * dil + stride * (wd - 1) + 1:stride] += \
                    np.einsum("nchw,co->nohw", xs, ws[:, :, i, j])
    out = full[:, :, pad:fh - pad, pad:fw - pad]
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def pool_ref(x, k, s, p, reduce):
    n, c, h, w = x.shape
    fill = -np.inf if reduce is np.max else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = reduce(xp[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


# ---- Linear, Identity, Flatten, activations -------------------------------------------------
def test_linear_matches_numpy_and_gradcheck():
    lin = nn.Linear(4, 3).double()
    x = arr(5, 4)
    np.testing.assert_allclose(lin(t64(x)).data, x @ lin.weight.data.T + lin.bias.data)
    gradcheck_module(nn.Linear(4, 3), arr(2, 4))
    assert nn.Linear(4, 3)(tds.randn(2, 7, 4)).shape == (2, 7, 3)


def test_linear_without_bias_and_shape_error():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None and lin.num_parameters() == 6
    with pytest.raises(ShapeError, match="end in 3 features"):
        lin(tds.ones(2, 4))


def test_identity_and_flatten():
    x = tds.randn(2, 3, 4, 5)
    assert nn.Identity(7, foo=1)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)


@pytest.mark.parametrize("layer, ref", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.GELU("tanh"), lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                        * (x + 0.044715 * x ** 3)))),
])
def test_activations(layer, ref):
    x = arr(3, 4)
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from ReLU's kink
    np.testing.assert_allclose(layer(t64(x)).data, ref(x), rtol=1e-10, atol=1e-12)
    gradcheck_module(layer, x)


# ---- convolutions -------------------------------------------------------------------------------
@pytest.mark.parametrize("cin, cout, k, stride, pad, dil, groups", [
    (2, 3, 3, 1, 1, 1, 1),
    (4, 4, 3, 2, 1, 1, 2),
    (3, 3, 3, 1, 1, 1, 3),   # depthwise
    (2, 2, 2, 1, 2, 2, 1),   # dilation
])
def test_conv2d(cin, cout, k, stride, pad, dil, groups):
    conv = nn.Conv2d(cin, cout, k, stride, pad, dil, groups).double()
    assert conv.weight.shape == (cout, cin // groups, k, k)
    x = arr(2, cin, 5, 5)
    want = conv2d_ref(x, conv.weight.data, conv.bias.data, stride, pad, dil, groups)
    np.testing.assert_allclose(conv(t64(x)).data, want, rtol=1e-10, atol=1e-12)
    gradcheck_module(conv, arr(1, cin, 4, 4))


def test_conv2d_same_padding_and_errors():
    conv = nn.Conv2d(2, 4, 5, padding="same")
    assert conv.padding == (2, 2) and conv(tds.randn(1, 2, 7, 6)).shape == (1, 4, 7, 6)
    assert nn.Conv2d(2, 4, 3, padding="valid", bias=False).bias is None
    with pytest.raises(TdsError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ShapeError, match=r"expected input \(N, 2, H, W\)"):
        nn.Conv2d(2, 4, 3)(tds.randn(1, 3, 5, 5))


@pytest.mark.parametrize("cin, cout, k, stride, pad, out_pad, groups, dil", [
    (2, 3, 2, 2, 0, 0, 1, 1),
    (2, 2, 3, 2, 1, 1, 1, 1),
    (4, 2, 3, 1, 1, 0, 2, 1),
])
def test_conv_transpose2d(cin, cout, k, stride, pad, out_pad, groups, dil):
    conv = nn.ConvTranspose2d(cin, cout, k, stride, pad, out_pad, groups, dilation=dil).double()
    assert conv.weight.shape == (cin, cout // groups, k, k)
    x = arr(2, cin, 3, 3)
    want = conv_transpose2d_ref(x, conv.weight.data, conv.bias.data, stride, pad, out_pad,
                                groups, dil)
    np.testing.assert_allclose(conv(t64(x)).data, want, rtol=1e-10, atol=1e-12)
    gradcheck_module(conv, arr(1, cin, 2, 3))


# ---- pooling ------------------------------------------------------------------------------------
def test_max_and_avg_pool():
    x = arr(2, 3, 6, 6)
    np.testing.assert_allclose(nn.MaxPool2d(2)(t64(x)).data, pool_ref(x, 2, 2, 0, np.max))
    np.testing.assert_allclose(nn.MaxPool2d(3, 2, 1)(t64(x)).data, pool_ref(x, 3, 2, 1, np.max))
    np.testing.assert_allclose(nn.AvgPool2d(2)(t64(x)).data, pool_ref(x, 2, 2, 0, np.mean))
    np.testing.assert_allclose(nn.AvgPool2d(3, 1, 1)(t64(x)).data,
                               pool_ref(x, 3, 1, 1, np.mean))
    gradcheck_module(nn.MaxPool2d(2), arr(1, 2, 4, 4))
    gradcheck_module(nn.AvgPool2d(3, 2, 1), arr(1, 2, 5, 5))


def test_adaptive_avg_pool():
    x = arr(2, 3, 5, 7)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(t64(x)).data,
                               x.mean(axis=(2, 3), keepdims=True))
    out = nn.AdaptiveAvgPool2d((2, 3))(t64(x)).data
    # PyTorch's bins: start floor(i H / out), end ceil((i + 1) H / out)
    for i in range(2):
        for j in range(3):
            r0, r1 = i * 5 // 2, -(-(i + 1) * 5 // 2)
            c0, c1 = j * 7 // 3, -(-(j + 1) * 7 // 3)
            np.testing.assert_allclose(out[:, :, i, j], x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)))
    gradcheck_module(nn.AdaptiveAvgPool2d(2), arr(1, 2, 3, 5))


def test_pool_needs_4d():
    with pytest.raises(ShapeError, match="MaxPool2d"):
        nn.MaxPool2d(2)(tds.ones(3, 4, 4))


# ---- dropout ------------------------------------------------------------------------------------
def test_dropout_inverted_train_and_identity_eval():
    tds.manual_seed(0)
    d = nn.Dropout(0.25)
    x = tds.ones(200, 100, requires_grad=True)
    y = d(x)
    kept = y.data != 0
    assert 0.72 < kept.mean() < 0.78
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data)  # the gradient is the scaled mask
    d.eval()
    assert d(x) is x


def test_dropout_is_seeded_and_edge_probabilities():
    x = tds.randn(10, 10)
    tds.manual_seed(5)
    a = nn.Dropout(0.5)(x).data
    tds.manual_seed(5)
    b = nn.Dropout(0.5)(x).data
    np.testing.assert_array_equal(a, b)
    assert nn.Dropout(0.0)(x) is x
    assert not nn.Dropout(1.0)(x).data.any()
    with pytest.raises(TdsError, match=r"\[0, 1\]"):
        nn.Dropout(1.5)


def test_dropout2d_drops_whole_channels():
    tds.manual_seed(1)
    d = nn.Dropout2d(0.5)
    y = d(tds.ones(8, 16, 3, 3)).data
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0 < (per_channel == 0).all(-1).mean() < 1
    assert d(tds.ones(4, 3, 3)).shape == (4, 3, 3)
    d.eval()
    np.testing.assert_array_equal(d(tds.ones(2, 2, 2, 2)).data, 1.0)
    with pytest.raises(ShapeError):
        d(tds.ones(2, 2))


def test_dropconnect_drops_weights():
    dc = nn.DropConnect(6, 4, p=0.5)
    x = tds.randn(3, 6)
    tds.manual_seed(7)
    y = dc(x).data
    tds.manual_seed(7)
    keep = tds.random.generator().random((4, 6)) >= 0.5
    w = dc.weight.data * keep / 0.5
    np.testing.assert_allclose(y, x.data @ w.T + dc.bias.data, rtol=1e-5, atol=1e-6)
    dc.eval()
    np.testing.assert_allclose(dc(x).data, x.data @ dc.weight.data.T + dc.bias.data, rtol=1e-6)
    assert list(dc.state_dict()) == ["weight", "bias"]


# ---- normalization ------------------------------------------------------------------------------
def bn_ref(x, axes, w, b, eps=1e-5):
    shape = [1] * x.ndim
    shape[1] = -1
    m, v = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("layer_cls, shape, axes", [
    (nn.BatchNorm2d, (4, 3, 2, 3), (0, 2, 3)),
    (nn.BatchNorm1d, (6, 3), (0,)),
    (nn.BatchNorm1d, (4, 3, 5), (0, 2)),
])
def test_batch_norm_train_then_eval(layer_cls, shape, axes):
    bn = layer_cls(3, momentum=0.1).double()
    bn.weight.data = arr(3)
    bn.bias.data = arr(3)
    x = arr(*shape) * 2 + 1
    np.testing.assert_allclose(bn(t64(x)).data, bn_ref(x, axes, bn.weight.data, bn.bias.data),
                               rtol=1e-9, atol=1e-10)
    n = x.size // 3
    mean, var_unbiased = x.mean(axis=axes), x.var(axis=axes) * n / (n - 1)
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * mean, rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * var_unbiased, rtol=1e-10)
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    rs = [1, 3] + [1] * (x.ndim - 2)
    want = ((x - bn.running_mean.data.reshape(rs)) / np.sqrt(bn.running_var.data.reshape(rs)
            + 1e-5) * bn.weight.data.reshape(rs) + bn.bias.data.reshape(rs))
    np.testing.assert_allclose(bn(t64(x)).data, want, rtol=1e-9)
    assert int(bn.num_batches_tracked.item()) == 1  # eval does not count batches


def test_batch_norm_gradcheck_train_and_eval():
    bn = nn.BatchNorm2d(2)
    gradcheck_module(bn, arr(3, 2, 2, 2))
    bn.eval()
    bn.running_mean.data = arr(2)
    bn.running_var.data = np.abs(arr(2)) + 0.5
    gradcheck_module(bn, arr(3, 2, 2, 2))


def test_batch_norm_cumulative_and_untracked():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    xs = [arr(5, 2) for _ in range(3)]
    for x in xs:
        bn(t64(x))
    np.testing.assert_allclose(bn.running_mean.data, np.mean([x.mean(0) for x in xs], axis=0))
    free = nn.BatchNorm1d(2, track_running_stats=False).double()
    assert free.running_mean is None and list(free.state_dict()) == ["weight", "bias"]
    free.eval()  # no running statistics: always the batch's
    x = arr(5, 2)
    np.testing.assert_allclose(free(t64(x)).data, bn_ref(x, (0,), np.ones(2), np.zeros(2)),
                               rtol=1e-9)


def test_batch_norm_shape_errors():
    with pytest.raises(ShapeError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(tds.ones(2, 3))
    with pytest.raises(ShapeError, match="C = 3"):
        nn.BatchNorm1d(3)(tds.ones(2, 4))
    with pytest.raises(ShapeError, match="more than one value"):
        nn.BatchNorm1d(3)(tds.ones(1, 3))


def test_layer_norm():
    ln = nn.LayerNorm((3, 4)).double()
    ln.weight.data, ln.bias.data = arr(3, 4), arr(3, 4)
    x = arr(2, 5, 3, 4)
    m, v = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(ln(t64(x)).data, (x - m) / np.sqrt(v + 1e-5) * ln.weight.data
                               + ln.bias.data, rtol=1e-9, atol=1e-10)
    gradcheck_module(nn.LayerNorm(4), arr(2, 4))
    assert nn.LayerNorm(4, elementwise_affine=False).num_parameters() == 0
    with pytest.raises(ShapeError, match="LayerNorm"):
        nn.LayerNorm(4)(tds.ones(2, 5))


def test_group_norm_and_instance_norm():
    gn = nn.GroupNorm(2, 4).double()
    gn.weight.data, gn.bias.data = arr(4), arr(4)
    x = arr(3, 4, 2, 3)
    g = x.reshape(3, 2, -1)
    want = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    want = want.reshape(x.shape) * gn.weight.data.reshape(1, 4, 1, 1) \
        + gn.bias.data.reshape(1, 4, 1, 1)
    np.testing.assert_allclose(gn(t64(x)).data, want, rtol=1e-9, atol=1e-10)
    gradcheck_module(nn.GroupNorm(2, 4), arr(2, 4, 2, 2))
    with pytest.raises(TdsError, match="divisible"):
        nn.GroupNorm(3, 4)

    inorm = nn.InstanceNorm2d(4)
    assert inorm.num_parameters() == 0 and not list(inorm.state_dict())
    m, v = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(inorm(t64(x)).data, (x - m) / np.sqrt(v + 1e-5), rtol=1e-9,
                               atol=1e-10)
    gradcheck_module(nn.InstanceNorm2d(2, affine=True), arr(2, 2, 2, 3))


def test_norms_behave_the_same_in_train_and_eval():
    x = tds.randn(2, 4, 3, 3)
    for layer in (nn.LayerNorm((4, 3, 3)), nn.GroupNorm(2, 4), nn.InstanceNorm2d(4)):
        a = layer(x).data
        np.testing.assert_array_equal(layer.eval()(x).data, a)


# ---- upsample, residual -------------------------------------------------------------------------
def test_upsample_nearest():
    x = arr(2, 3, 2, 3)
    want = x.repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(nn.Upsample(scale_factor=2)(t64(x)).data, want)
    np.testing.assert_array_equal(nn.Upsample(size=(4, 6))(t64(x)).data, want)
    assert nn.Upsample(scale_factor=(1, 3))(t64(x)).shape == (2, 3, 2, 9)
    gradcheck_module(nn.Upsample(scale_factor=2), arr(1, 2, 2, 2))
    with pytest.raises(TdsError, match="nearest"):
        nn.Upsample(scale_factor=2, mode="bilinear")
    with pytest.raises(ShapeError, match="integer multiple"):
        nn.Upsample(size=5)(t64(x))


def test_residual_identity_and_projection():
    f = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
    r = nn.Residual(f)
    assert isinstance(r.shortcut, nn.Identity) and r.f is f
    x = arr(4, 3)
    np.testing.assert_allclose(r.double()(t64(x)).data, f(t64(x)).data + x)
    gradcheck_module(r, x)
    proj = nn.Residual(nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(2, 4, 1, bias=False))
    assert list(proj.state_dict()) == ["f.weight", "f.bias", "shortcut.weight"]
    xi = tds.randn(1, 2, 3, 3)
    np.testing.assert_allclose(proj(xi).data, (proj.f(xi) + proj.shortcut(xi)).data, rtol=1e-6)


def test_skip_connection_passes_the_gradient_unchanged():
    # d r(x)/dx = d f(x)/dx + I: with f's weights at zero the gradient is exactly the identity.
    lin = nn.Linear(3, 3)
    nn.init.zeros_(lin.weight)
    x = tds.randn(2, 3, requires_grad=True)
    nn.Residual(lin)(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 1.0)
