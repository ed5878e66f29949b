"""tds train's run folders, --resume, Ctrl-C, tds eval and tds.load_checkpoint, on small slices
of the built-in digits with tiny models (LeNet itself on one small slice)."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinygrad_ds as tds
from tinygrad_ds.app import train_run
from tinygrad_ds.app.train_run import resume_run, train_model_file
from tinygrad_ds.cli import main
from tinygrad_ds.train import read_checkpoint

ROOT = Path(__file__).resolve().parent.parent

# dropout draws from the global generator, the crops from the loader's: resume restores both
TINY = """\
from tinygrad_ds import nn
model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 24), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(24, 10))
input_shape = (1, 1, 28, 28)
"""
SMALL = dict(train_size=300, val_size=100, batch_size=50)
SMALL_ARGS = ["--train-size", "300", "--val-size", "100", "--batch-size", "50"]


def run_cli(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture
def tiny(tmp_path):
    mf = tmp_path / "tiny.py"
    mf.write_text(TINY)
    return mf


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def interrupt_after(monkeypatch, epoch):
    """Press Ctrl-C (a real SIGINT to this process) when epoch `epoch` has been written."""
    write = train_run.RunFolder.on_epoch_end

    def on_epoch_end(self, trainer, e, logs):
        write(self, trainer, e, logs)
        if e == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(train_run.RunFolder, "on_epoch_end", on_epoch_end)


def test_resumed_run_ends_on_the_weights_of_an_unbroken_one(tmp_path, tiny, monkeypatch):
    full = train_model_file(str(tiny), epochs=3, out=str(tmp_path / "full"), quiet=True,
                            **SMALL)
    assert not full.interrupted and len(full.history) == 3

    interrupt_after(monkeypatch, 1)
    cut = train_model_file(str(tiny), epochs=3, out=str(tmp_path / "cut"), quiet=True, **SMALL)
    assert cut.interrupted and cut.epochs_done == 1
    assert len(rows(tmp_path / "cut" / "history.csv")) == 1
    assert read_checkpoint(str(tmp_path / "cut" / "last.npz")).epoch == 1
    monkeypatch.undo()

    resumed = resume_run(str(tmp_path / "cut"), str(tiny), quiet=True)
    assert not resumed.interrupted and len(resumed.history) == 3
    a = read_checkpoint(str(tmp_path / "full" / "last.npz"))
    b = read_checkpoint(str(tmp_path / "cut" / "last.npz"))
    assert a.state.keys() == b.state.keys()
    for k in a.state:
        np.testing.assert_array_equal(a.state[k], b.state[k], err_msg=k)
    for k in a.optim_arrays:
        np.testing.assert_array_equal(a.optim_arrays[k], b.optim_arrays[k], err_msg=k)
    ra, rb = rows(tmp_path / "full" / "history.csv"), rows(tmp_path / "cut" / "history.csv")
    for col in ("epoch", "loss", "acc", "val_loss", "val_acc", "lr"):
        assert [r[col] for r in ra] == [r[col] for r in rb]
    assert not [f for f in os.listdir(tmp_path / "cut") if f.startswith(".tmp")]

    with pytest.raises(tds.TdsError, match="finished its 3 epochs"):
        resume_run(str(tmp_path / "cut"), str(tiny), quiet=True)
    with pytest.raises(tds.TdsError, match="no .*last.npz"):
        resume_run(str(tmp_path / "nothing"), str(tiny), quiet=True)


def test_a_compiled_run_resumes_onto_the_weights_of_an_unbroken_eager_one(tmp_path):
    """--compile changes how the steps run, not what they compute: an eager run of 2 epochs,
    and a compiled run of 1 resumed (compiled: the setting is the run's) for a second, end on
    the same weights, momentum buffers and history (the resumed plan reads the restored
    optimizer state and the cosine schedule's learning rate)."""
    mf = tmp_path / "mlp.py"  # no dropout: a compiled step reads the generator by shape (a bug)
    mf.write_text(TINY.replace("nn.Dropout(0.2),\n                      ", ""))
    train_model_file(str(mf), epochs=2, out=str(tmp_path / "eager"), quiet=True, **SMALL)
    train_model_file(str(mf), epochs=1, out=str(tmp_path / "cut"), quiet=True, compile=True,
                     **SMALL)
    resumed = resume_run(str(tmp_path / "cut"), epochs=2, quiet=True)
    assert len(resumed.history) == 2
    a = read_checkpoint(str(tmp_path / "eager" / "last.npz"))
    b = read_checkpoint(str(tmp_path / "cut" / "last.npz"))
    assert b.meta["run"]["compile"] and not a.meta["run"]["compile"]
    for k in a.state:
        np.testing.assert_allclose(b.state[k], a.state[k], rtol=1e-5, atol=1e-7, err_msg=k)
    for k in a.optim_arrays:
        np.testing.assert_allclose(b.optim_arrays[k], a.optim_arrays[k], rtol=1e-5, atol=1e-7)
    for col in ("loss", "val_loss", "lr"):
        np.testing.assert_allclose(resumed.history[col], [float(r[col]) for r in
                                                          rows(tmp_path / "eager" /
                                                               "history.csv")], rtol=1e-5)


def test_the_default_run_folder_is_runs_slash_the_model_name(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(["train", str(tiny), "--epochs", "1", "--quiet"] + SMALL_ARGS)
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path / "runs" / "tiny")) == ["best.npz", "curves.png",
                                                               "history.csv", "last.npz"]


def test_a_non_empty_run_folder_is_refused(tmp_path, tiny):
    out = tmp_path / "run"
    args = ["train", str(tiny), "--epochs", "1", "--out", str(out), "--quiet"] + SMALL_ARGS
    assert run_cli(args).exit_code == 0
    r = run_cli(args)
    assert r.exit_code == 1 and "not empty" in r.output and f"--resume {out}" in r.output
    assert "--overwrite" in r.output
    broken = tmp_path / "broken.py"
    broken.write_text(TINY.replace("nn.Linear(24, 10)", "nn.Linear(25, 10)"))
    r = run_cli(["train", str(broken), "--out", str(out), "--overwrite"] + SMALL_ARGS)
    assert r.exit_code == 1 and (out / "last.npz").exists()  # a failed set-up deletes nothing
    r = run_cli(args + ["--overwrite"])
    assert r.exit_code == 0 and len(rows(out / "history.csv")) == 1
    r = run_cli(["train", str(tiny), "--resume", str(out), "--lr", "0.5"])
    assert r.exit_code == 1 and "drop --lr" in r.output
    r = run_cli(["train", "--resume", str(out), "--epochs", "2", "--quiet"])  # its own model
    assert r.exit_code == 0, r.output
    assert [r["epoch"] for r in rows(out / "history.csv")] == ["1", "2"]
    r = run_cli(["train"])
    assert r.exit_code == 1 and "give the MODEL_FILE" in r.output


def test_ctrl_c_in_a_real_process_leaves_a_folder_that_resumes(tmp_path, tiny):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tinygrad_ds.cli", "train", str(tiny), "--epochs", "200",
           "--out", str(out), "--train-size", "1000", "--val-size", "100", "--batch-size", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (out / "history.csv").exists() and len(rows(out / "history.csv")) >= 1:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    done = read_checkpoint(str(out / "last.npz")).epoch
    assert f"interrupted after epoch {done}; resume with: tds train {tiny} --resume {out}" \
        in stderr
    assert len(rows(out / "history.csv")) == done
    assert (out / "best.npz").exists() and (out / "curves.png").exists()
    r = run_cli(["train", str(tiny), "--resume", str(out), "--epochs", str(done + 1),
                 "--quiet"])
    assert r.exit_code == 0, r.output
    assert len(rows(out / "history.csv")) == done + 1


def test_tds_eval_and_load_checkpoint_reproduce_training(tmp_path, tiny):
    out = tmp_path / "run"
    r = run_cli(["train", str(tiny), "--epochs", "2", "--out", str(out), "--quiet"]
                + SMALL_ARGS)
    assert r.exit_code == 0, r.output
    best = max(rows(out / "history.csv"), key=lambda r: float(r["val_acc"]))
    r = run_cli(["eval", str(tiny), str(out / "best.npz")])
    assert r.exit_code == 0, r.output
    assert f"val_acc {float(best['val_acc']):.4f}" in r.output.splitlines()[0]
    assert f"val_loss {float(best['val_loss']):.4f}" in r.output.splitlines()[0]

    ck = tds.load_checkpoint(str(out / "best.npz"))
    assert ck.meta["data"]["spec"] == "digits" and ck.meta["epoch"] == int(best["epoch"])
    assert ck.meta["model"]["sha256"] and ck.meta["versions"]["tinygrad_ds"]
    assert ck.transform is not None and not ck.model.training
    images, labels = tds.data.make_digits(100, seed=1)  # the validation stream of seed 0
    acc = float((ck.predict(images) == labels).mean())
    assert acc == pytest.approx(float(best["val_acc"]))  # the same 100 images, normalised

    np.testing.assert_allclose(ck.transform.mean.ravel(), tds.data.digits.MEAN)

    with pytest.raises(tds.TdsError, match=r"images must be \(N, 1, 28, 28\), got \(2, 28, 28\)"):
        ck.predict(images[:2, 0])

    plain = tmp_path / "plain.npz"
    ck.model.save(str(plain))  # weights only: no data, no normalisation recorded
    r = run_cli(["eval", str(tiny), str(plain)])
    assert r.exit_code == 1 and "records no dataset" in r.output and "--data" in r.output
    r = run_cli(["eval", str(tiny), str(plain), "--data", "digits"])
    assert r.exit_code == 0 and "records no normalisation" in r.output
    assert "10,000 validation images" in r.output

    tiny.write_text(TINY + "# edited\n")
    r = run_cli(["eval", str(tiny), str(out / "best.npz")])
    assert r.exit_code == 0 and "has changed" in r.output
    r = run_cli(["eval", str(tiny), str(tmp_path / "none.npz")])
    assert r.exit_code == 1 and "none.npz" in r.output and "Traceback" not in r.output


def test_lenet_learns_the_digits_on_a_small_slice(tmp_path):
    # the full claim (>= 95% after 2 epochs of 60,000) is benchmarks/lenet_digits.py
    # (seeded: 0.73 here; chance is 0.1)
    result = train_model_file(str(ROOT / "examples" / "lenet.py"), epochs=2, batch_size=32,
                              train_size=1500, val_size=300, out=str(tmp_path / "lenet"),
                              quiet=True)
    assert result.history["val_acc"][-1] > 0.5


# ---- defect 7: tds train gives one message, never a traceback --------------------------------
def test_model_returning_a_tuple(tmp_path):
    mf = tmp_path / "pair.py"
    mf.write_text(TINY + """
class Pair(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x), x

model = Pair(model)
""")
    r = run_cli(["train", str(mf), "--out", str(tmp_path / "o")] + SMALL_ARGS)
    assert r.exit_code == 1 and "returns a tuple" in r.output and "pair.py" in r.output
    assert "Traceback" not in r.output


def test_exception_raised_inside_training_names_file_line_and_epoch(tmp_path):
    mf = tmp_path / "flaky.py"
    mf.write_text(TINY + """
calls = [0]

class Flaky(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        calls[0] += 1
        if self.training and calls[0] > 8:
            raise RuntimeError("my layer broke")
        return self.inner(x)

model = Flaky(model)
""")
    r = run_cli(["train", str(mf), "--epochs", "3", "--out", str(tmp_path / "o")] + SMALL_ARGS)
    assert r.exit_code == 1, r.output
    line = mf.read_text().splitlines().index('            raise RuntimeError("my layer broke")') + 1
    assert f"flaky.py:{line}: RuntimeError: my layer broke" in r.output
    assert "training, epoch 2" in r.output and "Traceback" not in r.output


def test_model_file_encodings(tmp_path):
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\n# r\xe9seau minuscule\n" + TINY.encode())
    r = run_cli(["train", str(latin), "--epochs", "1", "--out", str(tmp_path / "l"), "--quiet"]
                + SMALL_ARGS)
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"# r\xe9seau\n" + TINY.encode())
    r = run_cli(["train", str(bad), "--out", str(tmp_path / "b")] + SMALL_ARGS)
    assert r.exit_code == 1 and "bad.py" in r.output and "coding" in r.output
    assert "Traceback" not in r.output
