"""`tds paths` through click's CliRunner: counts, tables, enumeration, files, bad input."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from tinygrad_ds.cli import main

TINY = '''from tinygrad_ds import nn
model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1),
                      nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())),
                      nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
input_shape = (1, 3, 32, 32)
'''
PLAIN = '''from tinygrad_ds import nn
model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
input_shape = (1, 4)
'''


def _run(args):
    r = CliRunner().invoke(main, args)
    return r


def test_blocks_four(tmp_path):
    r = _run(["paths", "--blocks", "4", "--through", "f1", "--out", str(tmp_path),
              "--format", "dot", "--decompose", "1"])
    assert r.exit_code == 0, r.output
    assert "Input-to-output paths: 16 = 2^4: 4 residual blocks" in r.output
    assert "8 paths through f1:" in r.output and "x -> f1 -> f2 -> f3 -> f4 -> y" in r.output
    assert "dy/dh1 = I + J2 + (J3 + J3 J2) + (J4 + J4 J2 + J4 J3 + J4 J3 J2)" in r.output
    assert (tmp_path / "chain4_unraveled.dot").exists()
    assert (tmp_path / "chain4_lengths.png").stat().st_size > 1000


def test_blocks_too_many_to_draw_are_counted_and_aggregated(tmp_path):
    r = _run(["paths", "--blocks", "54", "--limit", "3", "--out", str(tmp_path),
              "--format", "dot"])
    assert r.exit_code == 0, r.output
    assert f"{2 ** 54:,}" in r.output
    assert "groups them by length" in r.output
    assert f"{2 ** 54 - 3:,} more left out" in r.output
    assert "grouped by length" in (tmp_path / "chain54_unraveled.dot").read_text()


def test_model_file_plain_says_one_path(tmp_path):
    f = tmp_path / "plain.py"
    f.write_text(PLAIN)
    r = _run(["paths", str(f), "--no-draw"])
    assert r.exit_code == 0, r.output
    assert "Input-to-output paths: 1" in r.output and "No residual blocks" in r.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_model_file_residual_with_grad_and_lesion(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    ns: dict = {}
    exec(TINY, ns)  # noqa: S102 - the same model, to write a checkpoint of it
    ck = tmp_path / "tiny.npz"
    ns["model"].save(str(ck))
    r = _run(["paths", str(f), "--out", str(tmp_path), "--grad", "--grad-samples", "2",
              "--lesion", str(ck), "--val-size", "20", "--format", "png"])
    assert r.exit_code == 0, r.output
    assert "Input-to-output paths: 4 = 2^2: 2 residual blocks" in r.output
    assert "f1 = 1" in r.output  # the legend names the module
    assert "paths x mean" in r.output
    assert "lesion study of a residual network" in r.output
    assert (tmp_path / "tiny_unraveled.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "tiny_grad_by_length.png").exists()


def test_bad_input():
    r = _run(["paths"])
    assert r.exit_code != 0 and "give a model file or --blocks" in r.output
    r = _run(["paths", "--blocks", "3", "--through", "f9"])
    assert r.exit_code != 0 and "f1..f3" in r.output
    r = _run(["paths", "--blocks", "3", "--grad"])
    assert r.exit_code != 0 and "give a model file" in r.output
    r = _run(["paths", "--help"])
    assert "Example:" in r.output


def test_long_gradient_expansion_is_wrapped_between_terms():
    r = _run(["paths", "--blocks", "7", "--decompose", "1", "--no-draw"])
    assert r.exit_code == 0, r.output
    body = r.output.split("sum over paths:\n", 1)[1].split("\nLaTeX:", 1)[0].splitlines()
    assert len(body) > 3 and all(len(line) <= 100 for line in body)
    assert all(line.startswith("    + ") for line in body[1:-1])  # breaks only at + signs


@pytest.mark.parametrize("blocks", [1024, 14_400])
def test_huge_chains_keep_exact_integers(blocks, tmp_path):
    # 2^1024 overflows a float; 2^14400 has more digits than Python prints by default (4,300)
    r = _run(["paths", "--blocks", str(blocks), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    digits = len(str(2 ** blocks)) if blocks < 4000 else 4335
    assert f"Input-to-output paths: 2^{blocks} ({digits:,} digits): {blocks:,} residual blocks" \
        in r.output
    assert "95% of paths have length" in r.output and "std " in r.output
    assert (tmp_path / f"chain{blocks}_lengths.png").stat().st_size > 1000


def test_blocks_range_is_checked():
    r = _run(["paths", "--blocks", "100001", "--no-draw"])
    assert r.exit_code != 0 and "give 0 to 100,000" in r.output


def test_through_also_highlights_the_drawing(tmp_path):
    r = _run(["paths", "--blocks", "3", "--through", "f2", "--out", str(tmp_path), "--format",
              "dot"])
    assert r.exit_code == 0, r.output
    assert "4 of the 8 paths go through f2" in (tmp_path / "chain3_unraveled.dot").read_text()
