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


# ---- issue 14: drawings that teach the right thing ---------------------------------------------
def _plain_blocks(t=3):
    layers = [nn.Linear(4, 8)]
    layers += [nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)) for _ in range(t)]
    return nn.Sequential(*layers, nn.Linear(8, 2))


def test_a_collapsed_residual_block_keeps_its_skip():
    res = D.draw(tds.trace(_blocks(3), (2, 4)), depth=1).source
    plain = D.draw(tds.trace(_plain_blocks(3), (2, 4)), depth=1).source
    assert res.count("2 paths inside") == 3 and "2 paths inside" not in plain
    assert res.count('class=skip') == 3 and "skip" not in plain
    # the drawings differ in what is drawn, not only in tooltips
    strip = re.compile(r'tooltip="[^"]*"')
    assert strip.sub("", res) != strip.sub("", plain)


def test_fold_draws_identical_blocks_once():
    g = tds.trace(models.resnet20(), (1, 3, 32, 32))
    src = D.draw(g, depth=2, fold=True).source
    assert "layer1.0 .. layer1.2\nBasicBlock x 3" in src
    assert "layer2.1 .. layer2.2\nBasicBlock x 2" in src and "layer2.0\nBasicBlock" in src
    assert "2 paths inside each" in src
    # the 3 folded runs and the 2 downsampling blocks: 5 nodes where there were 9
    assert len(re.findall(r'label="[^"]*BasicBlock', src)) == 5


def test_grad_legend_range_is_the_range_drawn():
    g = tds.trace(models.plain_cifar(8, batch_norm=False), (1, 3, 8, 8))
    norms = gradient_norms(g)
    src = D.draw(g, grads=norms).source
    drawn = [float(v) for v in re.findall(r"\|grad\| ([0-9.]+e[+-][0-9]+)", src)]
    lo, hi = re.search(r"log colour scale: ([0-9.e+-]+) \(dark\) to ([0-9.e+-]+)", src).groups()
    assert float(lo) == pytest.approx(min(drawn), rel=1e-2)
    assert float(hi) == pytest.approx(max(drawn), rel=1e-2)
    back = D.draw(g, backward=True, grads=norms).source
    assert "|grad| " in back and "rule receives" in back


def test_backward_outputs_are_named_and_saved_values_have_a_legend():
    g = tds.trace(_blocks(1), (2, 4))
    src = D.draw(g, backward=True).source
    assert "grad of 2.weight" in src and "grad of input" in src
    assert "a value the forward pass saved" in src
    op = D.draw(g, backward=True, level="op").source
    assert "grad of 0.weight" in op and "(output)" not in op


def test_edge_shapes_and_concatenation_order():
    g = tds.trace(nn.Sequential(models.Inception(8, 2, 2, 2, 2, 2, 2)), (1, 8, 8, 8))
    src = D.draw(g, edge_shapes=True).source
    assert "label=\"(1, 8, 8, 8)\"" in src
    # the four branches left to right in the order the concatenation takes them
    svg = _svg(D.draw(g))
    xs = [float(re.search(r'<text[^>]*x="([0-9.-]+)"[^>]*>0\.branch%d \(' % k, svg).group(1))
          for k in (1, 2, 3, 4)]  # each branch's cluster title
    assert xs == sorted(xs)
