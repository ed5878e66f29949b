"""trace(): shapes as eager, parameter and multiply-add counts, paths, replay, backward graph."""
import json

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn
from tinygrad_ds.app.tracefile import trace_file
from tinygrad_ds.graph import multiply_adds
from tinygrad_ds.backend.meta import MetaValueError
from tinygrad_ds.nn import models
from tinygrad_ds.graph.paths import count_paths

ZOO = {
    "lenet": (lambda: models.lenet5(), (2, 1, 28, 28)),
    "alexnet": (lambda: models.alexnet_small(hidden=64), (2, 3, 32, 32)),
    "vgg11": (lambda: models.vgg11(batch_norm=True), (1, 3, 32, 32)),
    "vgg_grid": (lambda: models.vgg_grid(2, 2, 8), (2, 3, 32, 32)),
    "plain": (lambda: models.plain_cifar(8), (2, 3, 16, 16)),
    "resnet": (lambda: models.resnet_cifar(8), (2, 3, 16, 16)),
    "resnet_b": (lambda: models.resnet_cifar(8, shortcut="B"), (2, 3, 16, 16)),
    "bottleneck": (lambda: models.resnet_bottleneck_cifar(11), (1, 3, 16, 16)),
    "resnext": (lambda: models.resnext_cifar(11), (1, 3, 16, 16)),
    "densenet": (lambda: models.densenet_cifar(block_config=(2, 2, 2)), (1, 3, 16, 16)),
    "inception": (lambda: models.inception_net(), (1, 3, 16, 16)),
    "mobilenet": (lambda: models.mobilenet(width_mult=0.25), (1, 3, 32, 32)),
    "unet": (lambda: models.unet_small(base_width=4), (1, 3, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_traced_shapes_equal_eager(name):
    build, shape = ZOO[name]
    tds.manual_seed(0)
    model = build().eval()
    g = tds.trace(model, shape)
    assert g.num_parameters() == model.num_parameters() == g.summary().total_params
    x = tds.randn(*shape)
    with tds.no_grad():
        eager = model(x)
        out, vals = g.run(x, return_all=True)
    for n in g.nodes:  # every traced value has the shape and dtype of the real one
        if n.id in vals:
            assert tuple(vals[n.id].shape) == n.shape, (n.module, n.op)
            assert vals[n.id].dtype == n.dtype, (n.module, n.op)
    np.testing.assert_allclose(out.numpy(), eager.numpy(), rtol=1e-5, atol=1e-5)


def test_ops_carry_module_paths_params_and_attrs():
    model = models.resnet_cifar(8)
    g = tds.trace(model, (1, 3, 16, 16))
    convs = [n for n in g.op_nodes() if n.op == "conv2d"]
    assert convs[0].module == "conv1"
    assert any(n.module == "layer2.0.conv1" for n in convs)
    names = {g.nodes[p].name for n in convs for p in n.params}
    assert "layer2.0.conv1.weight" in names
    assert convs[0].attrs["stride"] == (1, 1)
    assert all(n.fn is not None and n.shape for n in g.op_nodes())


def test_multiply_adds_by_hand():
    lin = tds.trace(nn.Linear(4, 8), (2, 4))
    assert lin.summary().mult_adds == 2 * 4 * 8
    conv = tds.trace(nn.Conv2d(3, 16, 3, padding=1), (1, 3, 32, 32))
    assert conv.summary().mult_adds == 16 * 32 * 32 * 3 * 3 * 3  # 442,368
    dw = tds.trace(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (1, 8, 8, 8))
    assert sum(multiply_adds(dw, n) for n in dw.nodes) == 8 * 8 * 8 * 1 * 3 * 3
    strided = tds.trace(nn.Conv2d(4, 6, 3, stride=2, padding=1), (1, 4, 8, 8))
    assert strided.summary().mult_adds == 6 * 4 * 4 * 4 * 9


def _chain(t, residual):
    layers = [nn.Linear(4, 8)]
    for _ in range(t):
        f = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
        layers.append(nn.Residual(f) if residual else f)
    return nn.Sequential(*layers, nn.Linear(8, 2))


@pytest.mark.parametrize("t", [1, 3, 7])
def test_path_counts(t):
    assert count_paths(tds.trace(_chain(t, False), (2, 4))) == 1
    g = tds.trace(_chain(t, True), (2, 4))
    assert count_paths(g) == 2 ** t
    adds = g.residual_adds()
    assert len(adds) == t
    for a in adds:  # the skip input is the block's input, the branch input made inside f
        assert g.nodes[a.residual["branch"]].module.endswith(".f.2")
        assert a.residual["skip"] != a.residual["branch"]


def test_resnet110_paths_exact():
    g = tds.trace(models.resnet110(), (1, 3, 32, 32))
    assert count_paths(g) == 2 ** 54
    assert len(g.residual_adds()) == 54


class HandBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return (self.bn(self.conv(x)) + x).relu()


def test_hand_written_residual_is_found():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), HandBlock(), HandBlock())
    g = tds.trace(model, (1, 3, 8, 8))
    assert len(g.residual_adds()) == 2 and count_paths(g) == 4
    a = g.residual_adds()[0]
    assert g.nodes[a.residual["branch"]].module == "1.bn"


def test_trace_does_not_change_the_model():
    tds.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    rng_before = tds.random.generator().bit_generator.state
    for mode in ("train", "eval"):
        g = tds.trace(model, (2, 3, 8, 8), mode=mode)
        assert g.mode == mode
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert tds.random.generator().bit_generator.state == rng_before
    assert all(p.grad is None for p in model.parameters())


def test_backward_graph():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Residual(nn.Linear(8, 8)),
                          nn.Linear(8, 3))
    g = tds.trace(model, (2, 4))
    b = g.backward()
    assert b.kind == "backward" and len(b.op_nodes()) > 0
    grads = {b.nodes[o].name: b.nodes[o].shape for o in b.outputs}
    for name, p in model.named_parameters():
        assert grads[f"grad:{name}"] == p.shape
    assert grads["grad:input"] == (2, 4)
    assert {n.module for n in b.op_nodes()} >= {"0", "2.f", "3"}
    assert len(b.residual_adds()) == 1  # the skip's gradient joins the branch's
    assert b is g.backward()


def test_json_export():
    g = tds.trace(models.resnet_cifar(8), (1, 3, 16, 16))
    d = json.loads(g.to_json())
    assert len(d["nodes"]) == len(g.nodes) and d["outputs"] == g.outputs
    ops = [n for n in d["nodes"] if n["kind"] == "op"]
    assert all({"op", "inputs", "shape", "dtype", "module"} <= set(n) for n in ops)
    assert sum(1 for n in d["nodes"] if "residual" in n) == 3


def test_module_graph_depth():
    g = tds.trace(models.resnet_cifar(8), (1, 3, 16, 16))
    leaf = g.module_graph()
    top = g.module_graph(1)
    assert len(top.nodes) < len(leaf.nodes) < len(g.nodes)
    assert {n.module for n in top.nodes if n.kind == "module"} >= {"conv1", "layer1", "fc"}


def test_module_graph_depth_keeps_shallow_leaf_modules_whole():
    # at depth 2 the blocks collapse, and conv1 / fc (leaves at depth 1) stay one node each,
    # not their ops (matmul, permute, add)
    g = tds.trace(models.resnet_cifar(8), (1, 3, 16, 16)).module_graph(2)
    mods = {n.module: n.op for n in g.nodes if n.kind == "module"}
    assert mods["conv1"] == "Conv2d" and mods["fc"] == "Linear" and mods["layer1.0"] == "BasicBlock"
    assert not [n for n in g.nodes if n.kind == "op" and n.op in ("matmul", "conv2d")]


def test_data_dependent_forward_is_a_clear_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum().item() > 0 else -x

    with pytest.raises(MetaValueError, match="data-dependent"):
        tds.trace(Branchy(), (2, 3))


def test_function_and_tensor_example():
    w = tds.randn(3, 2, requires_grad=True)
    g = tds.trace(lambda x: (x @ w).tanh(), tds.zeros(5, 3, dtype="float64"))
    assert g.nodes[g.outputs[0]].shape == (5, 2)
    assert g.nodes[g.outputs[0]].dtype == np.float64


def test_shape_error_names_module_and_shapes(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("from tinygrad_ds import nn\n"
                 "model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10),\n"
                 "                      nn.Linear(20, 5))\n"
                 "input_shape = (1, 3, 32, 32)\n")
    with pytest.raises(tds.ShapeError) as e:
        trace_file(str(f))
    msg = str(e.value)
    assert "bad.py:2" in msg and "module 2 (Linear)" in msg
    assert "(1, 10)" in msg and "20" in msg
