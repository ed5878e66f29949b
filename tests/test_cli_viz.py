"""`tds viz` and `tds summary` through CliRunner, and once as a real subprocess."""
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tinygrad_ds.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET = os.path.join(ROOT, "examples", "resnet.py")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")


def _run(*args):
    return CliRunner().invoke(main, list(args))


@needs_dot
def test_viz_writes_png_prints_summary_and_paths(tmp_path):
    out = tmp_path / "r.png"
    r = _run("viz", RESNET, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Total params: 269,722" in r.output and "Multiply-adds" in r.output
    last = r.output.strip().splitlines()[-1]
    assert last == "Input-to-output paths: 512 = 2^9: 9 residual blocks"


# every model file in examples/ (the two scripts aside) is one that tds summary and tds viz read
MODEL_EXAMPLES = ["alexnet", "bottleneck", "densenet", "inception", "lenet", "mlp", "mobilenet",
                  "plain", "resnet", "unet", "vgg", "vgg_grid"]


@pytest.mark.parametrize("name", MODEL_EXAMPLES)
def test_summary_of_every_example(name):
    r = _run("summary", os.path.join(ROOT, "examples", f"{name}.py"))
    assert r.exit_code == 0, r.output
    assert "Total params" in r.output and "Input-to-output paths" in r.output


@pytest.mark.parametrize("fmt", ["json", "dot"])
def test_viz_formats_without_rendering(tmp_path, fmt):
    out = tmp_path / f"g.{fmt}"
    r = _run("viz", os.path.join(ROOT, "examples", "lenet.py"), "-o", str(out))
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.startswith("{" if fmt == "json" else "digraph")


def test_summary_and_input_shape_override():
    r = _run("summary", os.path.join(ROOT, "examples", "lenet.py"), "--input-shape", "4,1,28,28")
    assert r.exit_code == 0, r.output
    assert "(4, 10)" in r.output and "Total params: 61,706" in r.output


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("name,text,expect", [
    ("syntax.py", "from tinygrad_ds import nn\nmodel = nn.Linear(3, 4\n", "syntax.py:2"),
    ("raises.py", "x = 1\nraise RuntimeError('boom')\n", "raises.py:2: RuntimeError: boom"),
    ("empty.py", "x = 1\n", "neither `model` nor `build_model()`"),
    ("shape.py", "from tinygrad_ds import nn\nmodel = nn.Sequential(nn.Flatten(), "
                 "nn.Linear(10, 2))\ninput_shape = (1, 3, 4, 4)\n",
     "shape error in module 1 (Linear)"),
])
def test_bad_model_files(tmp_path, name, text, expect):
    path = _write(tmp_path, name, text)
    r = _run("viz", path, "-o", str(tmp_path / "x.svg"))
    assert r.exit_code == 1
    assert expect in r.output and "Traceback" not in r.output
    if name == "shape.py":
        assert "(1, 48)" in r.output and "10" in r.output


@pytest.mark.parametrize("cmd", ["viz", "summary", "paths", "train"])
def test_folder_as_model_file_is_one_message_and_status_1(tmp_path, cmd):
    r = _run(cmd, str(tmp_path))
    assert r.exit_code == 1 and "is a folder, not a model file" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("text", ["1,3,x,2", "1,,3", "a,b", "0,3", ""])
def test_bad_input_shape_is_refused(text):
    r = _run("summary", os.path.join(ROOT, "examples", "lenet.py"), "--input-shape", text)
    assert r.exit_code == 1 and "give positive integers" in r.output


def test_input_shape_spellings():
    from tinygrad_ds.app.viz_report import parse_shape
    assert parse_shape("1,3,32,32") == parse_shape("1x3x32x32") == (1, 3, 32, 32)
    assert parse_shape("(1, 3, 32, 32)") == (1, 3, 32, 32) and parse_shape("(10,)") == (10,)


@needs_dot
def test_grads_drawing_is_the_same_on_every_run(tmp_path):
    # the model file's weights are drawn afresh by each run: seeded, the colours repeat
    plain = os.path.join(ROOT, "examples", "plain.py")
    a, b = tmp_path / "a.dot", tmp_path / "b.dot"
    assert _run("viz", plain, "--grads", "-o", str(a)).exit_code == 0
    assert _run("viz", plain, "--grads", "-o", str(b)).exit_code == 0
    assert "|grad|" in a.read_text() and a.read_text() == b.read_text()


def test_debug_shows_the_traceback(tmp_path):
    path = _write(tmp_path, "raises.py", "raise RuntimeError('boom')\n")
    r = _run("viz", path, "--debug")
    assert r.exit_code == 1 and r.exception is not None


def test_too_large_op_level(tmp_path):
    path = _write(tmp_path, "deep.py", "from tinygrad_ds.nn import models\n"
                  "model = models.resnet110()\ninput_shape = (1, 3, 32, 32)\n")
    r = _run("viz", path, "--level", "op", "-o", str(tmp_path / "x.svg"))
    assert r.exit_code == 1 and "--level module" in r.output and "--depth" in r.output


def test_missing_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    r = _run("viz", os.path.join(ROOT, "examples", "lenet.py"), "-o", str(tmp_path / "l.svg"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "l.dot").exists()
    assert "install Graphviz" in r.output and "dot -Tsvg" in r.output


@needs_dot
def test_real_subprocess(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "tds")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "tinygrad_ds.cli"]
    p = subprocess.run(cmd + ["viz", RESNET, "-o", str(tmp_path / "r.svg")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "<svg" in (tmp_path / "r.svg").read_text()
    assert p.stdout.strip().endswith("512 = 2^9: 9 residual blocks")


def test_output_suffix_and_format_must_agree(tmp_path):
    out = tmp_path / "g.svg"
    r = _run("viz", os.path.join(ROOT, "examples", "lenet.py"), "-o", str(out), "--format", "png")
    assert r.exit_code == 1 and "ends in .svg but --format is png" in r.output
    assert not out.exists()


def test_unknown_output_suffix_is_refused(tmp_path):
    r = _run("viz", RESNET, "-o", str(tmp_path / "x.bmp"))
    assert r.exit_code != 0 and ".bmp" in r.output and not (tmp_path / "x.bmp").exists()


def test_grads_print_per_layer_norms_and_load_a_checkpoint(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text("from tinygrad_ds import nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), "
                 "nn.Linear(8, 2))\ninput_shape = (1, 4)\n")
    ns: dict = {}
    exec(f.read_text(), ns)  # noqa: S102 - the same model, its weights scaled, as a checkpoint
    for p in ns["model"].parameters():
        p.data = p.data * 10
    ns["model"].save(str(tmp_path / "best.npz"))
    fresh = _run("viz", str(f), "--grads", "--format", "dot", "-o", str(tmp_path / "a.dot"))
    trained = _run("viz", str(f), "--grads", "--format", "dot", "-o", str(tmp_path / "b.dot"),
                   "--checkpoint", str(tmp_path / "best.npz"))
    assert fresh.exit_code == 0 and trained.exit_code == 0, trained.output
    assert "|d loss/d output|" in fresh.output and "weight" in fresh.output
    assert fresh.output != trained.output  # the trained weights give other gradients
    assert f"weights from {tmp_path / 'best.npz'}" in (tmp_path / "b.dot").read_text()
    r = _run("viz", str(f), "--grads", "--checkpoint", str(tmp_path / "none.npz"))
    assert r.exit_code != 0 and "no such file" in r.output


TINY_MLP = ("from tinygrad_ds import nn\nmodel = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), "
            "nn.Linear(2, 1))\ninput_shape = (1, 2)\n")


@needs_dot
def test_level_scalar_draws_values_and_frames(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY_MLP)
    r = _run("viz", str(f), "--level", "scalar", "-o", str(tmp_path / "s.svg"), "--frames",
             str(tmp_path / "frames"))
    assert r.exit_code == 0, r.output
    assert "Scalar graph: 25 Values" in r.output and "agree: largest difference" in r.output
    svg = (tmp_path / "s.svg").read_text()
    assert "0.weight[1,0]" in svg and "grad" in svg and "x[0,1]" in svg
    assert len(list((tmp_path / "frames").glob("step_*.svg"))) == 25


def test_level_scalar_too_large_says_the_count(tmp_path):
    r = _run("viz", "examples/mlp.py", "--level", "scalar", "-o", str(tmp_path / "s.svg"))
    assert r.exit_code != 0 and "about 3,492 Values, over the limit of 2,000" in r.output
    assert "--frames" in _run("viz", "examples/mlp.py", "--frames", str(tmp_path)).output


# ---- tds viz --compiled --------------------------------------------------------------------------
def _dot_nodes(source: str) -> tuple[list[list[str]], list[str]]:
    """The node names defined inside each cluster, and those outside any, of a .dot source."""
    import re

    clusters, outside, current = [], [], None
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("subgraph cluster_"):
            current = []
            clusters.append(current)
        elif line == "}" and current is not None:
            current = None
        elif m := re.match(r"^(n\d+) \[", line):
            (outside if current is None else current).append(m.group(1))
    return clusters, outside


def test_viz_compiled_draws_one_box_per_fused_group(tmp_path):
    import io
    import re

    from tinygrad_ds.app.viz_report import viz_model_file

    out = tmp_path / "c.dot"
    result = viz_model_file(RESNET, str(out), compiled=True)
    text = result.compiled.explain(file=io.StringIO())
    m = re.search(r"eager (\d+) ops; compiled (\d+) generated loops \+ (\d+) ops by their own "
                  "forward", text)
    ops, loops, forward = (int(v) for v in m.groups())
    source = out.read_text()
    assert f"compiled: {ops} ops -> {loops} generated loops + {forward} ops by their forward" \
        in source
    clusters, outside = _dot_nodes(source)
    plan = result.compiled.last.plan
    assert len(clusters) == loops == len(plan.kernels) > 0
    # every op is drawn once: in the box of its loop, or outside (with the input node)
    assert sorted(len(c) for c in clusters) == sorted(len(k.members) for k in plan.kernels)
    assert len(outside) == forward + 1
    assert "fused_batch_norm_add_relu: 3 ops in one loop over (1, 16, 32, 32)" in source
    assert any("compiled: " in line for line in result.notes)
    # buffer reuse: each loop output in the arena is labelled with its buffer, and the title
    # counts them
    buffers = plan.buffers_by_node()
    assert buffers and len(set(buffers.values())) < len(buffers)  # some memory is reused
    for nid, k in buffers.items():
        assert re.search(rf'n{nid} \[[^\]]*buffer {k}\b', source), nid
    assert f"share {len(set(buffers.values()))} buffers" in source


def test_viz_compiled_refuses_options_it_does_not_draw(tmp_path):
    r = _run("viz", RESNET, "--compiled", "--backward", "--depth", "2", "-o",
             str(tmp_path / "x.svg"))
    assert r.exit_code == 1 and "--compiled" in r.output and "--depth, --backward" in r.output
    assert "Traceback" not in r.output
