"""fit, callbacks, History, NaN handling, MC dropout, and `tds train` through click's CliRunner.
Models here are tiny (a Linear layer on 2x2 images) so the whole file runs in seconds."""
import io
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import data, nn, optim
from tinygrad_ds.cli import main
from tinygrad_ds.train import (EarlyStopping, History, ModelCheckpoint, NonFiniteLossError,
                               evaluate, fit, predict_mc_dropout, read_checkpoint)


class Affine(nn.Module):
    """x (N, C, H, W) -> flatten -> x @ w + b: defined from Module and Parameter only."""

    def __init__(self, n_in=4, n_out=3, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = nn.Parameter((rng.standard_normal((n_in, n_out)) * 0.1).astype(np.float32))
        self.b = nn.Parameter(np.zeros(n_out, dtype=np.float32))

    def forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.w + self.b


def blobs(n=120, seed=0):
    """Three well separated Gaussian blobs, as (n, 1, 2, 2) 'images'."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.eye(3, 4) * 3
    x = (centres[y] + rng.standard_normal((n, 4)) * 0.5).astype(np.float32)
    return x.reshape(n, 1, 2, 2), y


def loaders(seed=0, batch=20):
    xtr, ytr = blobs(120, seed)
    xva, yva = blobs(60, seed + 1)
    return (data.DataLoader(data.TensorDataset(xtr, ytr), batch, shuffle=True, seed=seed),
            data.DataLoader(data.TensorDataset(xva, yva), batch))


def test_fit_lowers_loss_and_records_history(tmp_path):
    model = Affine()
    tr, va = loaders()
    before = evaluate(model, va)
    out = io.StringIO()
    h = fit(model, tr, va, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), epochs=4,
            stream=out)
    assert len(h) == 4 and h["epoch"] == [1, 2, 3, 4]
    assert h["loss"][-1] < h["loss"][0] and h["val_loss"][-1] < before["loss"]
    assert h["val_acc"][-1] > 0.9
    assert all(v > 0 for v in h["images_per_s"])
    text = out.getvalue()
    assert "epoch 4/4:" in text and "val_acc" in text and "img/s" in text
    h.to_csv(tmp_path / "h.csv")
    back = History.from_csv(tmp_path / "h.csv")
    np.testing.assert_allclose(back["val_loss"], h["val_loss"])
    h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert h.best("val_acc")["val_acc"] == max(h["val_acc"])


def test_quiet_and_progress_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    model = Affine()
    tr, va = loaders()
    quiet = io.StringIO()
    fit(model, tr, va, optim.SGD(model.parameters(), lr=0.1), epochs=1, quiet=True, stream=quiet)
    assert quiet.getvalue() == ""
    tty = Tty()
    fit(model, tr, None, optim.SGD(model.parameters(), lr=0.1), epochs=1, stream=tty)
    assert "\r" in tty.getvalue() and "val_loss" not in tty.getvalue()


def test_scheduler_steps_each_epoch():
    model = Affine()
    tr, va = loaders()
    opt = optim.SGD(model.parameters(), lr=1.0)
    h = fit(model, tr, va, opt, epochs=3, scheduler=optim.StepLR(opt, 1, gamma=0.5), quiet=True)
    assert h["lr"] == [1.0, 0.5, 0.25]


def test_early_stopping_and_restore_best():
    model = Affine()
    tr, va = loaders()
    stop = EarlyStopping(patience=2, monitor="val_loss")
    h = fit(model, tr, va, optim.SGD(model.parameters(), lr=0.0), epochs=10, callbacks=[stop],
            quiet=True)
    assert len(h) == 3 and "early stopping" in h.stop_reason  # epoch 1 best, 2 and 3 not better

    model = Affine()
    tr, va = loaders()
    es = EarlyStopping(patience=100, monitor="val_acc", restore_best_weights=True)
    h = fit(model, tr, va, optim.SGD(model.parameters(), lr=0.5), epochs=3, callbacks=[es],
            quiet=True)
    assert evaluate(model, va)["acc"] == pytest.approx(max(h["val_acc"]))
    with pytest.raises(tds.TdsError, match="no validation loader"):
        fit(Affine(), tr, None, optim.SGD(Affine().parameters(), lr=0.1), epochs=1,
            callbacks=[EarlyStopping()], quiet=True)


def test_best_checkpoint_is_the_best_epoch(tmp_path):
    model = Affine()
    tr, va = loaders()
    path = str(tmp_path / "best.npz")
    ck = ModelCheckpoint(path, monitor="val_loss")
    h = fit(model, tr, va, optim.SGD(model.parameters(), lr=0.2), epochs=3, callbacks=[ck],
            quiet=True)
    assert ck.saved_epoch == int(h.best("val_loss")["epoch"])
    fresh = Affine(seed=9)
    fresh.load(path)
    assert evaluate(fresh, va)["loss"] == pytest.approx(min(h["val_loss"]), rel=1e-5)


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_checkpoint(tmp_path):
    calls = {"n": 0}
    steps_per_epoch = 6  # 120 images / 20

    def poisoned(out, y):
        calls["n"] += 1
        loss = F.cross_entropy(out, y)
        if out.requires_grad and calls["n"] == steps_per_epoch + 3 + 3:  # epoch 2, step 3
            return loss * float("nan")
        return loss

    model = Affine()
    tr, va = loaders()
    path = str(tmp_path / "best.npz")
    out = io.StringIO()
    h = fit(model, tr, va, optim.SGD(model.parameters(), lr=0.1), loss_fn=poisoned, epochs=5,
            checkpoint=path, stream=out)
    assert h.diverged and len(h) == 1
    assert "epoch 2, step 3" in h.stop_reason and "epoch 2, step 3" in out.getvalue()
    assert "best.npz" in h.stop_reason
    saved = Affine(seed=5)
    saved.load(path)
    assert np.all(np.isfinite(saved.w.data))
    assert evaluate(saved, va)["loss"] == pytest.approx(h["val_loss"][0], rel=1e-5)
    assert np.all(np.isfinite(model.w.data))  # the NaN step was never applied

    calls["n"] = 0
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 3"):
        fit(Affine(), *loaders(), optim.SGD(Affine().parameters(), lr=0.1), loss_fn=poisoned,
            epochs=5, on_nan="raise", quiet=True)


def test_fit_with_mixup_soft_targets():
    xtr, ytr = blobs(120)
    tr = data.DataLoader(data.TensorDataset(xtr, ytr), 20, shuffle=True, seed=0,
                         batch_transform=data.MixUp(num_classes=3))
    model = Affine()
    _, va = loaders()
    h = fit(model, tr, va, optim.Adam(model.parameters(), lr=0.05), epochs=3, quiet=True)
    assert h["val_acc"][-1] > 0.8 and math.isfinite(h["loss"][-1])


class DropNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, x):
        return self.fc2(self.drop(self.bn(self.fc1(x.reshape(x.shape[0], -1)).relu())))


def test_predict_mc_dropout():
    tds.manual_seed(0)
    model = DropNet()
    x = tds.randn(5, 1, 2, 2)
    running = model.bn.running_mean.data.copy()
    mean, std = predict_mc_dropout(model, x, samples=30)
    assert mean.shape == (5, 3) and std.shape == (5, 3)
    np.testing.assert_allclose(mean.numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(std.numpy() > 0)
    assert model.training and model.drop.training  # modes put back
    np.testing.assert_array_equal(model.bn.running_mean.data, running)  # BN stayed in eval
    model.eval()
    raw_mean, _ = predict_mc_dropout(model, x, samples=3, softmax=False)
    assert not model.training and raw_mean.shape == (5, 3)
    with pytest.raises(tds.TdsError, match="no dropout layer"):
        predict_mc_dropout(Affine(), x)


# ---- fit(compile=True) ------------------------------------------------------------------------
class BNNet(nn.Module):
    """Linear, batch norm, ReLU, Linear: state (running statistics) the compiled step writes."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.bn(self.fc1(x.reshape(x.shape[0], -1))).relu())


def _fit_bnnet(compile, scheduler=True):
    tds.manual_seed(0)
    model = BNNet()
    tr, va = loaders(batch=25)  # 120 images: four batches of 25 and a last one of 20
    opt = optim.Adam(model.parameters(), lr=0.05)
    seen = {}

    class Grab(tds.train.Callback):
        def on_train_end(self, trainer):
            seen["compiled"] = trainer.compiled

    h = fit(model, tr, va, opt, epochs=2, compile=compile, callbacks=[Grab()], quiet=True,
            scheduler=optim.StepLR(opt, 1, gamma=0.1) if scheduler else None)
    return h, model.state_dict(), opt.state_dict(), seen["compiled"]


def test_fit_compiled_equals_eager_with_a_schedule_and_a_last_partial_batch():
    h1, s1, o1, c1 = _fit_bnnet(compile=False)
    h2, s2, o2, c2 = _fit_bnnet(compile=True)
    assert c1 is None and len(c2.plans) == 2  # batches of 25 and the last of 20
    assert sorted(e.calls for e in c2.plans.values()) == [2, 8]
    for k in ("loss", "acc", "val_loss", "val_acc"):
        np.testing.assert_allclose(h2[k], h1[k], rtol=1e-5)
    assert h2["lr"] == h1["lr"] == [0.05, pytest.approx(0.005)]
    for k in s1:  # parameters and running statistics
        np.testing.assert_allclose(s2[k], s1[k], rtol=1e-5, atol=1e-7, err_msg=k)
    for i, bufs in o1["state"].items():  # Adam's moments and step counts
        for k, v in bufs.items():
            np.testing.assert_allclose(o2["state"][i][k], v, rtol=1e-5, atol=1e-8)
    # the plan read the learning rate the schedule set for epoch 2: without it, other weights
    _, s3, _, _ = _fit_bnnet(compile=True, scheduler=False)
    assert not np.allclose(s3["fc1.weight"], s2["fc1.weight"], rtol=1e-4)


def test_fit_compile_says_when_the_step_cannot_be_compiled():
    def peeking(out, y):  # a decision on a value: tracing by shape cannot follow it
        loss = F.cross_entropy(out, y)
        return loss * 2.0 if float(loss.numpy()) > 1e9 else loss

    model = Affine()
    tr, _ = loaders()
    with pytest.raises(tds.TdsError, match=r"fit\(compile=True\).*\(20, 1, 2, 2\).*"
                                           r"test_train\.py:\d+"):
        fit(model, tr, None, optim.SGD(model.parameters(), lr=0.1), loss_fn=peeking,
            compile=True, quiet=True)


# ---- fit(device='cuda') under numba's CUDA simulator -----------------------------------------
FIT_CUDA = """
import json
import numpy as np
import tinygrad_ds as tds
from tinygrad_ds import data, nn, optim
from tinygrad_ds.train import fit
rng = np.random.default_rng(0)
x = rng.standard_normal((16, 1, 2, 2)).astype(np.float32)
y = np.arange(16) % 3
out = {}
for dev, comp in (("cpu", False), ("cuda", False), ("cuda", True)):
    tds.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    tr = data.DataLoader(data.TensorDataset(x, y), 8, shuffle=True, seed=0)
    va = data.DataLoader(data.TensorDataset(x[:6], y[:6]), 4)
    h = fit(m, tr, va, opt, epochs=1, device=dev, quiet=True, compile=comp)
    out[dev + (" compiled" if comp else "")] = {"history": {k: h[k] for k in ("loss", "acc", "val_loss", "val_acc")},
                "params": [p.numpy().tolist() for p in m.parameters()],
                "devices": sorted({p.device for p in m.parameters()}
                                  | {b.device for s in opt.state.values() for b in s.values()})}
print(json.dumps(out))
"""


def test_fit_on_cuda_equals_the_cpu_run_under_the_simulator():
    """The model, its optimizer state and every batch on 'cuda' (simulated): one epoch of two
    batches and a validation of two (the last partial) gives the cpu run's numbers, eager and
    with the step compiled (a plan of generated CUDA kernels)."""
    import importlib.util
    import json

    if importlib.util.find_spec("numba.cuda") is None:
        pytest.skip("numba.cuda is not importable (pip install numba-cuda)")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", FIT_CUDA], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["cpu"]["devices"] == ["cpu"]
    for run in ("cuda", "cuda compiled"):
        assert r[run]["devices"] == ["cuda"]
        for k, v in r["cpu"]["history"].items():
            np.testing.assert_allclose(r[run]["history"][k], v, rtol=1e-5, err_msg=k)
        for a, b in zip(r[run]["params"], r["cpu"]["params"]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ---- tds train ----------------------------------------------------------------------------------
MLP = """\
from tinygrad_ds import nn
model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.ReLU(), nn.Linear(16, 10))
input_shape = (1, 3, 32, 32)
"""


def run_cli(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("augment,optimizer", [("basic", "sgd"), ("cutmix", "adamw")])
def test_tds_train_writes_history_curves_and_checkpoint(tmp_path, augment, optimizer):
    mf = tmp_path / "mlp.py"
    mf.write_text(MLP)
    out = tmp_path / "run"
    r = run_cli(["train", str(mf), "--epochs", "2", "--batch-size", "50", "--train-size", "200",
                 "--val-size", "100", "--augment", augment, "--optimizer", optimizer,
                 "--lr", "0.01", "--out", str(out), "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "epoch 2/2" in r.output and "best val_acc" in r.output
    for f in ("history.csv", "curves.png", "best.npz"):
        assert (out / f).exists()
    h = History.from_csv(out / "history.csv")
    assert len(h) == 2
    with np.load(out / "best.npz", allow_pickle=False) as z:
        assert set(z.files) == {"1.weight", "1.bias", "3.weight", "3.bias", "__tds_meta__"}
    meta = read_checkpoint(str(out / "best.npz")).meta
    assert meta["model"]["file"] == "mlp.py" and meta["model"]["input_shape"] == [1, 3, 32, 32]
    assert meta["data"]["spec"] == "shapes" and meta["run"]["optimizer"] == optimizer
    assert meta["epoch"] == int(h.best("val_acc")["epoch"])


def test_tds_train_is_seeded(tmp_path):
    mf = tmp_path / "mlp.py"
    mf.write_text(MLP)
    args = ["train", str(mf), "--epochs", "1", "--batch-size", "50", "--train-size", "100",
            "--val-size", "50", "--augment", "randaugment", "--quiet"]
    run_cli(args + ["--out", str(tmp_path / "a")])
    run_cli(args + ["--out", str(tmp_path / "b")])
    a = History.from_csv(tmp_path / "a" / "history.csv")
    b = History.from_csv(tmp_path / "b" / "history.csv")
    assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]


def test_tds_train_bad_inputs(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(MLP.replace("nn.Linear(16, 10))", "nn.Linear(17, 10))"))
    r = run_cli(["train", str(bad), "--out", str(tmp_path / "o"), "--train-size", "20",
                 "--val-size", "10"])
    assert r.exit_code == 1 and "Error:" in r.output and "bad.py" in r.output
    assert "(2, 16)" in r.output and "Traceback" not in r.output

    # the built-in images follow input_shape, so a model that does not fit its own
    # input_shape fails on the model's shapes, naming the file and the line
    wrong = tmp_path / "wrong.py"
    wrong.write_text(MLP.replace("input_shape = (1, 3, 32, 32)", "input_shape = (1, 1, 28, 28)"))
    r = run_cli(["train", str(wrong), "--train-size", "20", "--val-size", "10", "--data",
                 "shapes", "--out", str(tmp_path / "w")])
    assert r.exit_code == 1 and "wrong.py:2" in r.output and "(2, 784)" in r.output

    mf = tmp_path / "mlp.py"
    mf.write_text(MLP)
    r = run_cli(["train", str(mf), "--data", f"mnist:{tmp_path}", "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and "train-images-idx3-ubyte" in r.output and "lecun" in r.output
    r = run_cli(["train", str(tmp_path / "none.py"), "--out", str(tmp_path / "n")])
    assert r.exit_code == 1 and "model file not found" in r.output


def test_tds_train_compile_gives_the_eager_history(tmp_path):
    mf = tmp_path / "mlp.py"
    mf.write_text(MLP)
    args = ["train", str(mf), "--epochs", "2", "--batch-size", "40", "--train-size", "100",
            "--val-size", "50", "--augment", "basic", "--optimizer", "sgd", "--lr", "0.05"]
    r = run_cli(args + ["--out", str(tmp_path / "eager")])
    assert r.exit_code == 0, r.output
    r = run_cli(args + ["--out", str(tmp_path / "compiled"), "--compile"])
    assert r.exit_code == 0, r.output
    # tds train drops the last partial batch: one plan, compiled once, said once
    assert r.output.count("compiled the training step for batches of (40, 3, 32, 32)") == 1
    assert "training step compiled" in r.output
    a = History.from_csv(tmp_path / "eager" / "history.csv")
    b = History.from_csv(tmp_path / "compiled" / "history.csv")
    for k in ("loss", "val_loss", "acc", "val_acc", "lr"):
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5)
    assert read_checkpoint(str(tmp_path / "compiled" / "last.npz")).meta["run"]["compile"]


def test_tds_train_cuda_without_a_gpu_fails_before_training(tmp_path, monkeypatch):
    from tinygrad_ds import cuda

    class NoGpu:
        @staticmethod
        def is_available():
            return False

    monkeypatch.setattr(cuda, "_registered", False)
    monkeypatch.setattr(cuda, "_numba_cuda", lambda: NoGpu)
    mf = tmp_path / "mlp.py"
    mf.write_text(MLP)
    r = run_cli(["train", str(mf), "--device", "cuda", "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "no usable NVIDIA GPU" in r.output and "nvidia-smi" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "run").exists()
    monkeypatch.setattr(cuda, "_numba_cuda", lambda: None)
    with pytest.raises(cuda.CudaUnavailableError, match=r"numba-cuda.*pip install"):
        fit(Affine(), loaders()[0], None, optim.SGD(Affine().parameters(), lr=0.1),
            device="cuda", quiet=True)
    with pytest.raises(tds.TdsError, match="unknown device 'gpu'"):
        fit(Affine(), loaders()[0], None, optim.SGD(Affine().parameters(), lr=0.1),
            device="gpu", quiet=True)


def test_tds_train_grey_28x28_model_defaults_to_digits(tmp_path):
    # examples/lenet.py takes (1, 28, 28): tds train picks the handwritten digits for it
    mf = tmp_path / "grey.py"
    mf.write_text("from tinygrad_ds import nn\nmodel = nn.Sequential(nn.Flatten(), "
                  "nn.Linear(28 * 28, 10))\ninput_shape = (1, 1, 28, 28)\n")
    r = run_cli(["train", str(mf), "--epochs", "1", "--batch-size", "20", "--train-size", "40",
                 "--val-size", "20", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "data: digits" in r.output and "(1, 28, 28)" in r.output
    assert (tmp_path / "run" / "best.npz").exists()
    r = run_cli(["train", str(mf), "--epochs", "1", "--batch-size", "20", "--train-size", "40",
                 "--val-size", "20", "--out", str(tmp_path / "grey"), "--data", "shapes"])
    assert r.exit_code == 0 and "grey 28x28" in r.output


def test_tds_train_help_as_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "tinygrad_ds.cli", "train", "--help"],
                       capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0 and "Example:" in r.stdout and "--augment" in r.stdout
