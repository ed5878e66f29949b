"""Drawings rendered with the real `dot` and checked for their structure."""
import re
import shutil

import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn
from tinygrad_ds.nn import models
from viz import draw as D
from viz.grads import gradient_norms
from viz.render import write

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")


def _svg(dot):
    return dot.pipe(format="svg").decode()


def _blocks(t=3):
    layers = [nn.Linear(4, 8)]
    layers += [nn.Residual(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)))
               for _ in range(t)]
    return nn.Sequential(*layers, nn.Linear(8, 2))


@needs_dot
def test_module_level_structure():
    g = tds.trace(_blocks(3), (2, 4))
    svg = _svg(D.draw(g))
    # input, 2 linears, 3 x (linear, relu, linear, add) = 15 nodes; 14 chain edges + 3 skips
    assert svg.count('class="node"') == 15
    assert svg.count('class="edge') == 17
    assert svg.count('class="cluster"') == 3 * 2  # each Residual and its f
    assert svg.count(D.SKIP_COLOR) >= 3 and svg.count('stroke-dasharray') >= 3
    assert len(re.findall(r'class="edge skip"', svg)) == 3


@needs_dot
def test_op_level_depth_params_and_backward():
    g = tds.trace(_blocks(2), (2, 4))
    op = _svg(D.draw(g, level="op"))
    mod = _svg(D.draw(g))
    assert op.count('class="node"') > mod.count('class="node"')
    top = _svg(D.draw(g, depth=1))
    assert top.count('class="node"') == 1 + 4  # input and the four top-level calls
    with_params = _svg(D.draw(g, params=True))
    assert with_params.count('class="node"') == mod.count('class="node"') + 2 * (2 + 4)
    back = _svg(D.draw(g, backward=True))
    assert "backward graph" in back and back.count('class="node"') > 5


@needs_dot
def test_grads_colour_plain_deep_net():
    model = models.plain_cifar(8, batch_norm=False)
    g = tds.trace(model, (1, 3, 8, 8))
    norms = gradient_norms(g)
    assert norms and all(v >= 0 for v in norms.values())
    assert all(p.grad is None for p in model.parameters())
    svg = _svg(D.draw(g, grads=norms))
    assert "|grad|" in svg and "gradient norm" in svg


def test_too_large_op_level_drawing_says_what_to_do():
    g = tds.trace(models.resnet110(), (1, 3, 32, 32))
    with pytest.raises(D.DrawingTooLarge, match="--level module"):
        D.draw(g, level="op")
    D.draw(g)  # module level fits


def test_missing_dot_writes_the_dot_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    g = tds.trace(_blocks(1), (2, 4))
    w = write(D.draw(g), str(tmp_path / "net.png"), "png")
    assert w.path.endswith("net.dot") and (tmp_path / "net.dot").read_text().startswith("digraph")
    assert "apt-get install graphviz" in w.note and "dot -Tpng" in w.note


@needs_dot
def test_jupyter_display():
    g = tds.trace(_blocks(1), (2, 4))
    bundle = g._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith(("<?xml", "<svg"))
    assert "forward Graph" in bundle["text/plain"]
