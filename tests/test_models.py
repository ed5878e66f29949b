"""The model zoo: every model builds, runs forward and backward at batch 2 (on small inputs where
the architecture allows), and has the parameter count its architecture implies."""
import numpy as np
import pytest

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import nn
from tinygrad_ds.errors import ShapeError, TdsError
from tinygrad_ds.nn import models


# ---- hand formulas ------------------------------------------------------------------------------
def conv(cin, cout, k, bias=False, groups=1):
    return cin // groups * cout * k * k + (cout if bias else 0)


def resnet_cifar_count(depth, shortcut="A", batch_norm=True, width=16, classes=10):
    """conv1 + bn1; per block two 3x3 convs (+2 BN); option B adds a 1x1 conv + BN where the
    shape changes; fc."""
    n, bn, bias = (depth - 2) // 6, (2 if batch_norm else 0), not batch_norm
    total, c = conv(3, width, 3, bias) + bn * width, width
    for s in range(3):
        p = width * 2 ** s
        for _ in range(n):
            total += conv(c, p, 3, bias) + conv(p, p, 3, bias) + 2 * bn * p
            if c != p and shortcut == "B":
                total += conv(c, p, 1, bias) + bn * p
            c = p
    return total + c * classes + classes


def test_resnet20_published_counts():
    # He et al.: ResNet-20 has 0.27M parameters. Option A (zero-padding shortcuts, as the
    # paper's CIFAR nets) has 269,722; option B's two projections add 16*32 + 64 + 32*64 + 128.
    assert models.resnet20().num_parameters() == 269_722 == resnet_cifar_count(20)
    assert models.resnet20(shortcut="B").num_parameters() == 272_474 \
        == resnet_cifar_count(20, "B")
    assert 272_474 - 269_722 == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


@pytest.mark.parametrize("fn, depth, millions", [
    (models.resnet32, 32, 0.46), (models.resnet44, 44, 0.66), (models.resnet56, 56, 0.85),
    (models.resnet110, 110, 1.7),
])
def test_resnet_depths_count(fn, depth, millions):
    m = fn()
    assert m.num_parameters() == resnet_cifar_count(depth)
    assert m.num_parameters() / 1e6 == pytest.approx(millions, abs=0.03)
    assert len([x for x in m.modules() if isinstance(x, nn.Residual)]) == 3 * (depth - 2) // 6


def test_resnet110_exact():
    assert models.resnet110().num_parameters() == 1_727_962


def test_plain_and_no_bn_counts():
    plain = models.plain_cifar(20)
    assert plain.num_parameters() == resnet_cifar_count(20)
    assert not any(isinstance(m, nn.Residual) for m in plain.modules())
    no_bn = models.resnet_cifar(20, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())
    assert no_bn.num_parameters() == resnet_cifar_count(20, batch_norm=False)


def test_resnet_state_dict_names_as_pytorch():
    keys = list(models.resnet20(shortcut="B").state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "bn1.num_batches_tracked"]
    for k in ["layer1.0.conv1.weight", "layer1.2.bn2.running_var", "layer2.0.shortcut.0.weight",
              "layer2.0.shortcut.1.weight", "layer3.2.conv2.weight", "fc.weight", "fc.bias"]:
        assert k in keys
    assert not any("residual" in k or ".f." in k for k in keys)


def test_every_skip_goes_through_residual_with_relu_outside():
    net = models.resnet20()
    blocks = [m for m in net.modules() if isinstance(m, models.BasicBlock)]
    assert len(blocks) == 9
    for b in blocks:
        r = b.residual
        assert type(r) is nn.Residual and r.shortcut is b.shortcut
        assert list(r.f) == [b.conv1, b.bn1, b.relu1, b.conv2, b.bn2]
        assert isinstance(b.relu1, nn.ReLU) and isinstance(b.relu, nn.ReLU)
        assert b.relu not in list(r.modules())  # the ReLU after the addition is outside
    kinds = [type(b.shortcut).__name__ for b in blocks]
    assert kinds.count("ZeroPadShortcut") == 2 and kinds.count("Identity") == 7
    names = dict((id(m), n) for n, m in net.named_modules())
    assert names[id(blocks[3].residual)] == "layer2.0.residual"
    assert names[id(blocks[3].conv1)] == "layer2.0.conv1"  # the layer's own name wins


def test_zero_pad_shortcut_matches_numpy():
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6))
    y = models.ZeroPadShortcut(4, 8, 2)(tds.Tensor(x, dtype="float64")).data
    want = np.zeros((2, 8, 3, 3))
    want[:, 2:6] = x[:, :, ::2, ::2]
    np.testing.assert_array_equal(y, want)
    with pytest.raises(TdsError, match="projection"):
        models.ZeroPadShortcut(8, 4)
    with pytest.raises(TdsError, match="6n \\+ 2"):
        models.resnet_cifar(21)
    with pytest.raises(TdsError, match="'A'"):
        models.resnet_cifar(8, shortcut="C")


def test_other_published_counts():
    assert models.lenet5().num_parameters() == 61_706 == (
        conv(1, 6, 5, True) + conv(6, 16, 5, True) + 400 * 120 + 120 + 120 * 84 + 84 + 850)
    assert models.lenet5(input_size=32).num_parameters() == 61_706
    # kuangliu's CIFAR VGG-11 with batch norm: 9,231,114; without BN 2 * 2752 fewer.
    assert models.vgg11(batch_norm=True).num_parameters() == 9_231_114
    assert models.vgg11().num_parameters() == 9_231_114 - 2 * (64 + 128 + 256 * 2 + 512 * 4)
    assert models.mobilenet().num_parameters() == 3_217_226
    # He et al. 2016: bottleneck ResNet-164 1.7M; Huang et al.: DenseNet-BC (k=12, L=100) 0.8M.
    assert models.resnet_bottleneck_cifar(164).num_parameters() / 1e6 == pytest.approx(1.7, abs=.01)
    assert models.densenet_cifar(block_config=(16, 16, 16)).num_parameters() / 1e6 == \
        pytest.approx(0.8, abs=0.04)


@pytest.mark.parametrize("fn, convs", [(models.vgg13, 10), (models.vgg16, 13),
                                       (models.vgg19, 16)])
def test_vgg_configs(fn, convs):
    m = fn()
    conv_layers = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(conv_layers) == convs
    assert m.num_parameters() == sum(c.num_parameters() for c in conv_layers) + 512 * 10 + 10


def test_vgg_grid_structure_and_count():
    m = models.vgg_grid(3, 2, 8, num_classes=5)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(x, nn.MaxPool2d) for x in m.modules()) == 3
    assert isinstance(m.pool, nn.AdaptiveAvgPool2d) and m.classifier.in_features == 32
    want = (conv(3, 8, 3, True) + conv(8, 8, 3, True) + conv(8, 16, 3, True)
            + conv(16, 16, 3, True) + conv(16, 32, 3, True) + conv(32, 32, 3, True) + 32 * 5 + 5)
    assert m.num_parameters() == want
    assert "features.0.weight" in m.state_dict() and "classifier.weight" in m.state_dict()
    with pytest.raises(TdsError):
        models.vgg_grid(0, 2, 8)


def test_bottleneck_and_resnext_blocks():
    b = models.Bottleneck(16, 8, 32, stride=2, groups=4)
    assert b.conv2.groups == 4 and isinstance(b.shortcut, nn.Sequential)
    assert b.num_parameters() == (conv(16, 8, 1) + conv(8, 8, 3, groups=4) + conv(8, 32, 1)
                                  + 2 * (8 + 8 + 32) + conv(16, 32, 1) + 2 * 32)
    net = models.resnext_cifar(11, cardinality=4, bottleneck_width=2)
    assert len([m for m in net.modules() if isinstance(m, nn.Residual)]) == 3
    assert [m.conv2.groups for m in net.modules() if isinstance(m, models.Bottleneck)] == [4] * 3


# ---- forward and backward at batch 2 ------------------------------------------------------------
CASES = [
    ("lenet5_28", lambda: models.lenet5(), (1, 28, 28), (10,)),
    ("lenet5_32", lambda: models.lenet5(7, 3, 32, "relu", "max"), (3, 32, 32), (7,)),
    ("alexnet_small", lambda: models.alexnet_small(hidden=32), (3, 32, 32), (10,)),
    ("vgg11", lambda: models.vgg11(batch_norm=True), (3, 32, 32), (10,)),
    ("vgg_grid", lambda: models.vgg_grid(2, 2, 8, batch_norm=True), (3, 16, 16), (10,)),
    ("resnet20", lambda: models.resnet20(), (3, 16, 16), (10,)),
    ("resnet8_B", lambda: models.resnet_cifar(8, shortcut="B"), (3, 8, 8), (10,)),
    ("plain8_no_bn", lambda: models.plain_cifar(8, batch_norm=False), (3, 8, 8), (10,)),
    ("bottleneck11", lambda: models.resnet_bottleneck_cifar(11), (3, 8, 8), (10,)),
    ("resnext11", lambda: models.resnext_cifar(11), (3, 8, 8), (10,)),
    ("mobilenet", lambda: models.mobilenet(width_mult=0.25), (3, 16, 16), (10,)),
    ("inception", lambda: models.inception_net(), (3, 16, 16), (10,)),
    ("densenet", lambda: models.densenet_cifar(block_config=(2, 2, 2)), (3, 16, 16), (10,)),
    ("unet", lambda: models.unet_small(base_width=4), (3, 16, 16), (2, 16, 16)),
    ("unet_nearest", lambda: models.unet_small(1, 3, 4, 2, upsampling="nearest"), (1, 16, 16),
     (3, 16, 16)),
]


@pytest.mark.parametrize("name, make, in_shape, out_shape", CASES, ids=[c[0] for c in CASES])
def test_forward_backward_batch2(name, make, in_shape, out_shape):
    tds.manual_seed(0)
    m = make()
    x = tds.randn(2, *in_shape)
    y = m(x)
    assert y.shape == (2, *out_shape) and y.dtype == np.float32
    if y.ndim == 2:
        loss = F.cross_entropy(y, tds.Tensor([1, 0]))
    else:
        loss = (y * y).mean()
    loss.backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, n
        assert np.all(np.isfinite(p.grad.data)), n


def test_eval_mode_is_per_sample_and_round_trips(tmp_path):
    tds.manual_seed(0)
    net = models.resnet_cifar(8)
    x = tds.randn(3, 3, 8, 8)
    net(x)  # a training step moves the running statistics
    net.eval()
    y = net(x).data
    np.testing.assert_allclose(net(x[:1]).data, y[:1], rtol=1e-5, atol=1e-6)
    net.save(str(tmp_path / "r.npz"))
    other = models.resnet_cifar(8)
    other.load(str(tmp_path / "r.npz"))
    np.testing.assert_array_equal(other.eval()(x).data, y)
    with pytest.raises(TdsError, match="mismatched shapes"):
        models.resnet_cifar(8, width=8).load(str(tmp_path / "r.npz"))


def test_dense_and_inception_concatenate():
    layer = models.DenseLayer(6, growth_rate=4)
    x = tds.randn(2, 6, 4, 4)
    y = layer(x)
    assert y.shape == (2, 10, 4, 4)
    np.testing.assert_array_equal(y.data[:, :6], x.data)  # the input passes through unchanged
    block = models.Inception(8, 2, 3, 4, 1, 2, 3)
    assert block(tds.randn(2, 8, 4, 4)).shape == (2, 11, 4, 4) and block.out_channels == 11
    keys = models.densenet_cifar(block_config=(2, 2)).state_dict()
    assert "features.denseblock1.denselayer2.conv1.weight" in keys
    assert "features.transition1.conv.weight" in keys and "classifier.weight" in keys


def test_unet_needs_divisible_size():
    with pytest.raises(ShapeError, match="divisible by 8"):
        models.unet_small(base_width=2)(tds.randn(1, 3, 12, 12))


def test_lenet_rejects_other_sizes():
    with pytest.raises(TdsError, match="28"):
        models.lenet5(input_size=64)
