"""ONNX export: every zoo model round-trips through onnxruntime with eager's outputs, the
exported model checks, the batch axis is free, unsupported graphs and ops say what and where,
and `tds export` works."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import tinygrad_ds as tds  # noqa: E402
import tinygrad_ds.functional as F  # noqa: E402
from tinygrad_ds import nn  # noqa: E402
from tinygrad_ds.graph.onnx_export import OnnxExportError  # noqa: E402
from tinygrad_ds.nn import models  # noqa: E402
from tinygrad_ds.ops.movement import gather  # noqa: E402
from tinygrad_ds.ops.reduce import Any  # noqa: E402

ZOO = {  # name: (model factory, eval-mode input shape: batch 2, small spatial sizes)
    "lenet5": (lambda: models.lenet5(), (2, 1, 28, 28)),
    "lenet5_relu_max": (lambda: models.lenet5(activation="relu", pooling="max"), (2, 1, 28, 28)),
    "alexnet_small": (lambda: models.alexnet_small(hidden=64), (2, 3, 32, 32)),
    "vgg11_bn": (lambda: models.vgg11(batch_norm=True), (2, 3, 32, 32)),
    "vgg_grid": (lambda: models.vgg_grid(3, 2, 8), (2, 3, 16, 16)),
    "resnet20_A": (lambda: models.resnet20(), (2, 3, 16, 16)),
    "resnet20_B": (lambda: models.resnet_cifar(20, shortcut="B"), (2, 3, 16, 16)),
    "plain20": (lambda: models.plain_cifar(20), (2, 3, 16, 16)),
    "bottleneck": (lambda: models.resnet_bottleneck_cifar(29), (2, 3, 16, 16)),
    "resnext": (lambda: models.resnext_cifar(), (2, 3, 16, 16)),
    "mobilenet": (lambda: models.mobilenet(), (2, 3, 32, 32)),
    "inception": (lambda: models.inception_net(), (2, 3, 16, 16)),
    "densenet": (lambda: models.densenet_cifar(), (2, 3, 16, 16)),
    "unet": (lambda: models.unet_small(), (2, 3, 16, 16)),
}


def _perturb(model, shape=None, seed: int = 0):
    """Running statistics and affine parameters that are not the fresh ones (mean 0, var 1,
    weight 1, bias 0, which would hide a swapped or ignored input). Given an input shape, the
    statistics are those of a random batch (a deep stack such as MobileNet's otherwise shrinks
    the signal below float32's resolution at the output); then each is shifted a little."""
    rng = np.random.default_rng(seed)
    norms = [m for _, m in model.named_modules() if hasattr(m, "running_mean")]
    if shape is not None and norms:
        saved = [m.momentum for m in norms]
        for m in norms:
            m.momentum = 1.0
        model.train()
        model(tds.Tensor(rng.standard_normal(shape).astype(np.float32)))
        for m, mom in zip(norms, saved):
            m.momentum = mom
        model.eval()
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.data[...] += rng.normal(0, 0.1, buf.shape).astype(buf.dtype)
        elif name.endswith("running_var"):
            buf.data[...] *= rng.uniform(0.8, 1.2, buf.shape).astype(buf.dtype)
    for _, p in model.named_parameters():
        if p.ndim == 1:
            p.data[...] += rng.normal(0, 0.1, p.shape).astype(p.dtype)
    return model


def _ort(path, *inputs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, inputs)))


def _rel(out, ref) -> float:
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_round_trip(name, tmp_path):
    make, shape = ZOO[name]
    model = make().eval()
    graph = tds.trace(model, shape)
    _perturb(model, shape)  # after tracing: the export reads the weights as they are now
    path = tmp_path / f"{name}.onnx"
    written = graph.to_onnx(str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert written.opset == 17 and written.nodes > 0
    assert written.parameters == model.num_parameters()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    ref = model(tds.Tensor(x)).numpy()
    x2 = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    assert np.abs(model(tds.Tensor(x2)).numpy() - ref).max() > 1e-3 * np.abs(ref).max()
    (out,) = _ort(path, x)
    assert out.shape == ref.shape and out.dtype == np.float32
    assert _rel(out, ref) < 1e-5, name


def test_resnet_runs_at_another_batch_size(tmp_path):
    model = _perturb(models.resnet20().eval(), (2, 3, 16, 16))
    path = tmp_path / "r20.onnx"
    written = tds.trace(model, (2, 3, 16, 16)).to_onnx(str(path), dynamic_batch=True)
    assert written.fixed_batch is None
    assert written.inputs == [("input", ("N", 3, 16, 16))]
    assert written.outputs == [("output", ("N", 10))]
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "N"
    x = np.random.default_rng(2).standard_normal((5, 3, 16, 16)).astype(np.float32)
    (out,) = _ort(path, x)
    ref = model(tds.Tensor(x)).numpy()
    assert out.shape == (5, 10) and _rel(out, ref) < 1e-5


class _Ops(nn.Module):
    """Ops the zoo does not reach, or reaches with one setting only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.ln = nn.LayerNorm((4, 10, 10))
        self.gn = nn.GroupNorm(2, 4)
        self.bn1 = nn.BatchNorm1d(6)
        self.fc = nn.Linear(20, 6)

    def forward(self, x):
        y = self.up(self.conv(x))                                  # (N, 4, 10, 10)
        y = F.leaky_relu(self.gn(self.ln(y[:, :, 10:0:-1, ::-1][..., 1:-1])), 0.2)  # (N, 4, 10, 10)
        a = F.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False)   # (N, 4, 6, 6)
        b = F.avg_pool2d(y, 3, 2, 0, ceil_mode=True)               # (N, 4, 5, 5)
        c = F.max_pool2d(y, 3, 2, ceil_mode=True)                  # (N, 4, 5, 5)
        d = F.adaptive_avg_pool2d(y, (3, 4))                       # (N, 4, 3, 4)
        e = F.concat([b, c], axis=1).mean(axis=(2, 3))             # (N, 8)
        h = self.fc(F.concat([e, d.sum(axis=3).reshape(x.shape[0], -1).pad((0, 2))[:, 2:]], 1))
        h = self.bn1(h)                                           # (N, 6)
        g = F.where(h > 0, h.exp().sqrt(), h.abs().log() - h.sigmoid().tanh())
        g = g.maximum(h.gelu()).minimum(h * 3.0) + (h != 0.5).float() + (h <= 0).float()
        g = g / (h.max(axis=1, keepdims=True).abs() + 1.0) ** 1.5 - h.min(axis=0) \
            + a.max(axis=(2, 3))[:, 1:2] + a.min() - (-a[:, 0, 1, None, :2]).sum((1, 2))[:, None]
        g = g + (h == h.max(axis=1, keepdims=True)).float() * h.sign() + h.clone().ones_like()
        g = g.unsqueeze(1).expand(x.shape[0], 3, 6).permute(0, 2, 1).reshape(-1, 18)
        top = g.argmax(1, keepdims=True)
        return F.log_softmax(g, 1) + F.softmax(g, -1) + F.logsumexp(g, 1, keepdims=True) \
            + top.float() + h.logsumexp(axis=1)[:, None] + gather(g, top, 1)


@pytest.mark.parametrize("opset", [17, 18])
def test_ops_round_trip(opset, tmp_path):
    model = _perturb(_Ops().eval(), (2, 4, 6, 6), seed=3)
    graph = tds.trace(model, (2, 4, 6, 6))
    path = tmp_path / "ops.onnx"
    written = graph.to_onnx(str(path), opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = np.random.default_rng(4).standard_normal((2, 4, 6, 6)).astype(np.float32)
    ref = model(tds.Tensor(x)).numpy()
    (out,) = _ort(path, x)
    assert _rel(out, ref) < 1e-5
    assert written.fixed_batch is None  # reshape, expand and slicing keep the batch axis free
    x3 = np.random.default_rng(5).standard_normal((3, 4, 6, 6)).astype(np.float32)
    assert _rel(_ort(path, x3)[0], model(tds.Tensor(x3)).numpy()) < 1e-5


def test_float64_weights_with_a_float32_input(tmp_path):
    """numpy promotes float32 @ float64; ONNX wants one type: the export casts."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double().eval()
    path = tmp_path / "mlp64.onnx"
    tds.trace(model, (2, 3)).to_onnx(str(path))
    x = np.random.default_rng(7).standard_normal((5, 3)).astype(np.float32)
    (out,) = _ort(path, x)
    ref = model(tds.Tensor(x)).numpy()
    assert out.dtype == ref.dtype == np.float64 and _rel(out, ref) < 1e-12


class _TwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.output = nn.Linear(3, 2)  # its parameters: output.weight, output.bias

    def forward(self, x):
        h = self.output(x)
        return h, h.relu(), h, x


def test_several_outputs_and_names(tmp_path):
    model = _TwoOut()
    path = tmp_path / "two.onnx"
    written = tds.trace(model, (2, 3)).to_onnx(str(path))
    assert [name for name, _ in written.outputs] == ["output", "output1", "output2", "output3"]
    x = np.random.default_rng(8).standard_normal((4, 3)).astype(np.float32)
    outs = _ort(path, x)
    for out, ref in zip(outs, model(tds.Tensor(x))):
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6)
    inits = {i.name for i in onnx.load(str(path)).graph.initializer}
    assert {"output.weight", "output.bias"} <= inits


class _FlattenAll(nn.Module):
    def forward(self, x):
        return x.reshape(1, -1).relu()  # the batch folded into one row


def test_batch_fixed_by_an_op_is_named(tmp_path):
    graph = tds.trace(nn.Sequential(nn.Linear(3, 4), _FlattenAll()), (2, 3))
    written = graph.to_onnx(str(tmp_path / "f.onnx"))
    assert written.inputs == [("input", (2, 3))]
    assert "'reshape'" in written.fixed_batch and "module 1" in written.fixed_batch
    with pytest.raises(OnnxExportError, match=r"op #\d+ 'reshape' in module 1 fixes the batch"):
        graph.to_onnx(str(tmp_path / "g.onnx"), dynamic_batch=True)


class _AnyGate(nn.Module):
    def forward(self, x):  # the op 'any' (Tensor.any() gives a Python bool: not traceable)
        return x * Any.apply(x > 0).float()


class _Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.gate = _AnyGate()

    def forward(self, x):
        return self.gate(self.fc(x))


def test_unsupported_op_names_op_and_module(tmp_path):
    graph = tds.trace(_Gated(), (2, 3))
    with pytest.raises(OnnxExportError, match=r"op #\d+ 'any' in module gate .*no ONNX form"):
        graph.to_onnx(str(tmp_path / "a.onnx"))
    assert not (tmp_path / "a.onnx").exists()


def test_refuses_graphs_that_are_not_an_inference_forward(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    path = str(tmp_path / "x.onnx")
    with pytest.raises(OnnxExportError, match="train mode.*trace in eval mode"):
        tds.trace(model, (2, 3), mode="train").to_onnx(path)
    with pytest.raises(OnnxExportError, match="a backward graph.*forward"):
        tds.trace(model, (2, 3)).backward().to_onnx(path)

    def step(x):
        return model(x).sum()

    with pytest.raises(OnnxExportError, match="a traced function.*inference graph"):
        tds.trace(step, (2, 3)).to_onnx(path)
    with pytest.raises(OnnxExportError, match="opset 12 is not supported"):
        tds.trace(model, (2, 3)).to_onnx(path, opset=12)


def test_missing_onnx_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    with pytest.raises(OnnxExportError, match=r"pip install tinygrad-ds\[onnx\]"):
        tds.trace(nn.Linear(3, 2), (2, 3)).to_onnx(str(tmp_path / "x.onnx"))


# ---- the command line ---------------------------------------------------------------------------
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _cli(*args):
    from click.testing import CliRunner

    from tinygrad_ds.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_export_resnet_example(tmp_path):
    out = tmp_path / "resnet.onnx"
    res = _cli("export", EXAMPLES / "resnet.py", "-o", out)
    assert res.exit_code == 0, res.output
    assert f"wrote {out}: ONNX opset 17" in res.output
    assert "269,722 parameters" in res.output and "input (N, 3, 32, 32)" in res.output
    x = np.random.default_rng(6).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert _ort(out, x)[0].shape == (3, 10)


def test_tds_export_as_a_subprocess(tmp_path):
    """The installed command, as a user runs it from the repository root."""
    import shutil
    import subprocess

    tds_cmd = shutil.which("tds", path=str(Path(sys.executable).parent)) or shutil.which("tds")
    if tds_cmd is None:
        pytest.skip("the tds command is not installed (pip install -e .)")
    out = tmp_path / "resnet.onnx"
    proc = subprocess.run([tds_cmd, "export", "examples/resnet.py", "-o", str(out)],
                          cwd=EXAMPLES.parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: ONNX opset 17")
    onnx.checker.check_model(onnx.load(str(out)))


SEEDED = """import tinygrad_ds as tds
from tinygrad_ds.nn import models
tds.manual_seed(0)
model = models.lenet5(activation="relu", pooling="max")
input_shape = (1, 1, 28, 28)
"""


def test_cli_export_writes_the_files_model(tmp_path):
    from tinygrad_ds.app.modelfile import load_model_spec

    src, out = tmp_path / "lenet.py", tmp_path / "lenet.onnx"
    src.write_text(SEEDED)
    res = _cli("export", src, "-o", out, "--input-shape", "4,1,28,28", "--opset", "18")
    assert res.exit_code == 0, res.output
    assert "opset 18" in res.output and "input (N, 1, 28, 28)" in res.output
    assert onnx.load(str(out)).opset_import[0].version == 18
    model = load_model_spec(str(src)).model.eval()  # seeded: the same weights again
    for n in (4, 1):
        x = np.random.default_rng(n).standard_normal((n, 1, 28, 28)).astype(np.float32)
        assert _rel(_ort(out, x)[0], model(tds.Tensor(x)).numpy()) < 1e-5


GATED = """from tinygrad_ds import nn
from tinygrad_ds.ops.reduce import Any


class Gate(nn.Module):
    def forward(self, x):
        return x * Any.apply(x > 0).float()


model = nn.Sequential(nn.Linear(3, 3), Gate())
input_shape = (2, 3)
"""


def test_cli_export_errors(tmp_path, monkeypatch):
    out = tmp_path / "x.onnx"
    res = _cli("export", tmp_path / "missing.py", "-o", out)
    assert res.exit_code == 1 and "missing.py" in res.output and "Traceback" not in res.output
    gated = tmp_path / "gated.py"
    gated.write_text(GATED)
    res = _cli("export", gated, "-o", out)
    assert res.exit_code == 1, res.output
    assert f"Error: {gated}: op #" in res.output and "'any' in module 1" in res.output
    assert not out.exists()
    monkeypatch.setitem(sys.modules, "onnx", None)
    res = _cli("export", EXAMPLES / "resnet.py", "-o", out)
    assert res.exit_code == 1 and "pip install tinygrad-ds[onnx]" in res.output
