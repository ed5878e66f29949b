"""`tds experiment`: the registry, the CLI, and every experiment's --quick run (its PNGs, the
structure of its CSVs: the expected columns and one row per configuration, and summary.md)."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tinygrad_ds.cli import main
from tinygrad_ds.experiments import EXPERIMENTS, ExperimentError, run_experiment

NAMES = list(EXPERIMENTS)


def _rows(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames), list(r)


def _one_row_per(rows: list[dict], keys: tuple[str, ...], expected: int) -> None:
    """Exactly `expected` rows, no two with the same values of `keys` (the configuration)."""
    configs = [tuple(r[k] for k in keys) for r in rows]
    assert len(configs) == expected, (keys, len(configs), expected)
    assert len(set(configs)) == expected, f"duplicate configurations of {keys}"


# file -> (columns, configuration keys, rows expected in the quick run)
QUICK_CSVS = {
    "vgg-depth-grid": {
        "grid.csv": (["blocks", "convs_per_block", "repetition", "params", "train_loss",
                      "train_acc", "test_acc", "test_loss"],
                     ("blocks", "convs_per_block", "repetition"), 4 * 3)},
    "plain-vs-residual": {
        "curves.csv": (["network", "depth", "epoch", "train_error", "test_error",
                        "train_loss"], ("network", "depth", "epoch"), 2 * 2 * 2)},
    "vanishing-gradients": {
        "layer_grad_norms.csv": (["variant", "step", "layer", "grad_norm", "loss"],
                                 ("variant", "step", "layer"), 4 * 21 * 20),
        "scalar_chain.csv": (["case", "activation", "weight", "skip", "depth", "grad_w1"],
                             ("case", "depth"), 4 * 50)},
    "residual-paths": {
        "path_counts.csv": (["depth", "blocks", "paths"], ("depth",), 3),
        "grad_by_length.csv": (["network", "length", "paths", "measured", "mean_grad",
                                "std_grad", "total"], ("network", "length"), 2 * 7),
        "lesion.csv": (["network", "block", "acc", "delta", "intact_acc"],
                       ("network", "block"), 6 + 4)},
    "bn-variance": {
        "variance.csv": (["batch_norm", "init", "block", "variance"],
                         ("batch_norm", "init", "block"), 2 * 2 * 28)},
    "shattered-gradients": {
        "gradients.csv": (["network", "init", "x", "grad"], ("network", "init", "x"),
                          3 * 3 * 256),
        "autocorrelation.csv": (["network", "init", "lag", "autocorrelation"],
                                ("network", "init", "lag"), 3 * 3 * 41)},
    "regularization": {
        "curves.csv": (["method", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"],
                       ("method", "epoch"), None)},
    "augmentation": {
        "curves.csv": (["method", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"],
                       ("method", "epoch"), 6 * 2)},
    "mc-dropout": {
        "uncertainty.csv": (["noise_std", "images", "samples", "accuracy", "confidence",
                             "spread", "entropy"], ("noise_std",), 4)},
    "normalizations": {
        "results.csv": (["norm", "batch_size", "epochs", "steps", "train_loss", "train_acc",
                         "val_loss", "val_acc"], ("norm", "batch_size"), 4 * 3)},
    "random-labels": {
        "curves.csv": (["case", "epoch", "train_loss", "train_acc", "val_acc"],
                       ("case", "epoch"), 3 * 20)},
    "double-descent": {
        "error_by_width.csv": (["width", "repetition", "params", "train_error", "test_error",
                                "train_loss", "test_loss"], ("width", "repetition"), 7)},
}
PNGS = {"vgg-depth-grid": ["grid.png"], "plain-vs-residual": ["curves.png"],
        "vanishing-gradients": ["vanishing.png"],
        "residual-paths": ["path_counts.png", "grad_by_length.png", "lesion.png"],
        "bn-variance": ["variance.png"], "shattered-gradients": ["shattered.png"],
        "regularization": ["curves.png"], "augmentation": ["samples.png", "accuracy.png"],
        "mc-dropout": ["uncertainty.png"], "normalizations": ["accuracy.png"],
        "random-labels": ["curves.png"], "double-descent": ["double_descent.png"]}


def test_every_experiment_is_checked():
    assert sorted(QUICK_CSVS) == sorted(NAMES) == sorted(PNGS)


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_writes_figures_csvs_and_summary(name, tmp_path):
    out = tmp_path / name
    log = io.StringIO()
    result = run_experiment(name, quick=True, out=str(out), stream=log)
    for png in PNGS[name]:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    for filename, (columns, keys, expected) in QUICK_CSVS[name].items():
        header, rows = _rows(out / filename)
        assert header == columns, filename
        if expected is None:  # regularization: early stopping may end early
            expected = len({tuple(r[k] for k in keys) for r in rows})
        _one_row_per(rows, keys, expected)
    summary = (out / "summary.md").read_text()
    assert summary.startswith(f"# {name}:")
    assert f"**Verdict: {result.verdict.agreement}.**" in summary
    assert "Source: `lectures/0" in summary and "> " in summary  # the quoted claim
    assert f"`tds experiment {name} --quick`" in summary
    assert "wrote" in log.getvalue() and str(out) in log.getvalue()  # progress and where


def test_residual_paths_counts_are_powers_of_two():
    from tinygrad_ds.experiments.residual_paths import path_table

    rows, dists = path_table((20, 56))
    assert [(r["blocks"], r["paths"]) for r in rows] == [(9, 2 ** 9), (27, 2 ** 27)]
    assert dists[20] == {k: c for k, c in enumerate([1, 9, 36, 84, 126, 126, 84, 36, 9, 1])}


def test_list_names_every_experiment():
    r = CliRunner().invoke(main, ["experiment", "list"])
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.output.strip().splitlines()] == NAMES


def test_unknown_name_lists_the_known_ones():
    r = CliRunner().invoke(main, ["experiment", "vgg-depth"])
    assert r.exit_code == 1
    assert "unknown experiment 'vgg-depth'" in r.output
    for name in NAMES:
        assert name in r.output
    with pytest.raises(ExperimentError, match="bn-variance"):
        run_experiment("nope")


def test_missing_cifar_folder_gets_the_readers_error(tmp_path):
    missing = tmp_path / "no-such-folder"
    r = CliRunner().invoke(main, ["experiment", "mc-dropout", "--quick", "--out",
                                  str(tmp_path / "o"), "--data", f"cifar10:{missing}"])
    assert r.exit_code == 1
    assert f"--data cifar10:{missing}: {missing} is not a folder" in r.output
    assert "Traceback" not in r.output


def test_empty_cifar_folder_names_the_missing_file(tmp_path):
    r = CliRunner().invoke(main, ["experiment", "augmentation", "--quick", "--out",
                                  str(tmp_path / "o"), "--data", f"cifar10:{tmp_path}"])
    assert r.exit_code == 1
    assert "data_batch_1.bin, which is missing" in r.output


def test_bad_options_are_one_line_errors(tmp_path):
    r = CliRunner().invoke(main, ["experiment", "bn-variance", "--data", "imagenet:/x"])
    assert r.exit_code == 1 and "use builtin, cifar10:DIR, mnist:DIR" in r.output
    r = CliRunner().invoke(main, ["experiment", "bn-variance", "--checkpoint", "w.npz"])
    assert r.exit_code == 1 and "only residual-paths" in r.output
    r = CliRunner().invoke(main, ["experiment", "bn-variance", "--epochs", "0"])
    assert r.exit_code == 2 and "--epochs" in r.output


def test_cli_run_prints_verdict_and_folder(tmp_path):
    out = tmp_path / "bn"
    r = CliRunner().invoke(main, ["experiment", "bn-variance", "--quick", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-2].startswith("bn-variance: agrees.")
    assert f"to {out} (read {out}/summary.md)" in r.output


def test_list_as_a_real_subprocess():
    exe = os.path.join(os.path.dirname(sys.executable), "tds")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "tinygrad_ds.cli"]
    p = subprocess.run(cmd + ["experiment", "list"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "double-descent" in p.stdout


def test_import_does_not_load_matplotlib_or_experiments():
    code = ("import sys, tinygrad_ds, tinygrad_ds.experiments; "
            "print('matplotlib' in sys.modules, 'tinygrad_ds.experiments.vgg_depth_grid' in "
            "sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["False", "False"], p.stderr


def _fake_cifar(folder, n: int = 24) -> None:
    """CIFAR-10's binary format: records of one label byte and 3072 pixel bytes."""
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, n)
        rec.tofile(folder / name)


def _fake_mnist(folder, n: int = 40) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, count in (("train", n), ("t10k", n // 2)):
        imgs = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + np.array([count, 28, 28], ">u4").tobytes() + imgs.tobytes())
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + np.array([count], ">u4").tobytes() + labels.tobytes())


def test_runs_on_cifar10_and_mnist_folders(tmp_path):
    _fake_cifar(tmp_path / "cifar")
    r = run_experiment("mc-dropout", quick=True, out=str(tmp_path / "mc"),
                       data=f"cifar10:{tmp_path / 'cifar'}", stream=io.StringIO())
    assert "cifar10" in (tmp_path / "mc" / "summary.md").read_text()
    assert r.verdict.agreement in ("agrees", "partly agrees", "disagrees")
    _fake_mnist(tmp_path / "mnist")
    log = io.StringIO()
    run_experiment("double-descent", quick=True, out=str(tmp_path / "dd"),
                   data=f"mnist:{tmp_path / 'mnist'}", stream=log)
    assert "shape (1, 28, 28)" in log.getvalue()
    _, rows = _rows(tmp_path / "dd" / "error_by_width.csv")
    assert int(rows[0]["params"]) == 28 * 28 * 1 + 1 + 10 + 10  # width 1 on 784 inputs


def test_early_and_late_dropout_switch_after_the_given_epoch():
    from tinygrad_ds.experiments.regularization import _DropoutSchedule
    from tinygrad_ds.experiments.training import small_cnn
    from tinygrad_ds.nn import Dropout

    model = small_cnn(3, 4, dropout=0.3, hidden=8)
    drop = [m for m in model.modules() if isinstance(m, Dropout)]
    early = _DropoutSchedule(model, 0.3, 0.0, switch=2)
    assert [m.p for m in drop] == [0.3]
    early.on_epoch_end(None, 1, {})
    assert drop[0].p == 0.3          # epoch 2 still has dropout
    early.on_epoch_end(None, 2, {})
    assert drop[0].p == 0.0          # from epoch 3 on, none
    _DropoutSchedule(model, 0.0, 0.3, switch=2)
    assert drop[0].p == 0.0          # late dropout starts without


def test_checkpoint_of_another_network_says_which_one_fits(tmp_path):
    from tinygrad_ds.nn import models

    models.resnet_cifar(8, width=4).save(str(tmp_path / "r8.npz"))
    r = CliRunner().invoke(main, ["experiment", "residual-paths", "--quick", "--out",
                                  str(tmp_path / "o"), "--checkpoint", str(tmp_path / "r8.npz")])
    assert r.exit_code == 1
    assert "this run analyses resnet_cifar(14, width=4)" in r.output
    assert "missing keys" in r.output
