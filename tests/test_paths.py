"""Residual paths: counts against hand-derived values, length tables, enumeration, the gradient
expansion, the unraveled drawing (rendered with dot), bad input."""
from __future__ import annotations

import re
import shutil
from math import comb

import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn
from tinygrad_ds.errors import TdsError
from tinygrad_ds.nn import models
from viz.decomposition import gradient_expansion
from tinygrad_ds.graph.paths import PathGraph, count_paths, length_table
from viz.unravel import draw_aggregated, draw_unraveled


def _chain(t: int, residual: bool, d: int = 4):
    layers = [nn.Residual(nn.Linear(d, d)) if residual else nn.Linear(d, d) for _ in range(t)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("t", range(1, 61))
def test_chain_of_t_blocks_has_2_to_the_t_paths(t):
    pg = PathGraph.chain(t)
    assert pg.count() == 2 ** t
    assert pg.block_counts() == [2 ** (t - 1)] * t
    assert pg.length_distribution() == {k: comb(t, k) for k in range(t + 1)}


@pytest.mark.parametrize("t", [1, 5, 60])
def test_traced_residual_chain_matches(t):
    pg = PathGraph.from_graph(tds.trace(_chain(t, True), (1, 4)))
    assert pg.num_blocks == t and pg.count() == 2 ** t
    assert pg.length_distribution() == {k: comb(t, k) for k in range(t + 1)}


def test_plain_chain_has_one_path_and_no_blocks():
    pg = PathGraph.from_graph(tds.trace(_chain(6, False), (1, 4)))
    assert pg.count() == 1 and pg.num_blocks == 0
    assert pg.length_distribution() == {0: 1}
    assert str(pg.enumerate()) == "1 path:\n  x -> y"
    assert PathGraph.from_graph(tds.trace(models.plain_cifar(20), (1, 3, 32, 32))).count() == 1


def test_resnets_identity_projection_and_bottleneck():
    for m in (models.resnet20(shortcut="A"), models.resnet20(shortcut="B"),
              models.resnet_bottleneck_cifar(29)):
        pg = PathGraph.from_graph(tds.trace(m, (1, 3, 32, 32)))
        assert pg.num_blocks == 9 and pg.count() == 512
        assert pg.block_index("layer2.0") == 3 and pg.block_index("f4") == 3


def test_densenet_block_counted_by_hand():
    # each dense layer outputs concat([x, g(x)]): two ways from x to its output, so a block of
    # n layers doubles the count n times; transitions and the head are chains
    m = models.densenet_cifar(growth_rate=4, block_config=(2, 3))
    pg = PathGraph.from_graph(tds.trace(m, (1, 3, 32, 32)))
    assert pg.count() == 2 ** 2 * 2 ** 3
    assert pg.num_blocks == 0


def test_inception_block_counted_by_hand():
    one = nn.Sequential(models.Inception(8, 2, 2, 2, 2, 2, 2))
    assert PathGraph.from_graph(tds.trace(one, (1, 8, 8, 8))).count() == 4  # four branches
    two = nn.Sequential(models.Inception(8, 2, 2, 2, 2, 2, 2), models.Inception(8, 2, 2, 2, 2, 2, 2))
    pg = PathGraph.from_graph(tds.trace(two, (1, 8, 8, 8)))
    assert pg.count() == 16
    # layers per path: branch1 has 1 conv+bn (2 layers), branches 2 and 3 have 4, branch 4 has 2
    assert pg.length_distribution("layers") == {4: 4, 6: 8, 8: 4}


def test_unet_long_skips():
    # depth d: the decoder level i is reached from encoder level i directly and through
    # every deeper level: d + 1 paths
    for d in (1, 2, 3):
        m = models.unet_small(base_width=4, depth=d)
        assert PathGraph.from_graph(tds.trace(m, (1, 3, 16, 16))).count() == d + 1


def test_node_and_edge_counts():
    pg = PathGraph.chain(3)
    nodes = pg.node_counts()
    assert nodes[0] == 8 and nodes[pg.outputs[0]] == 8
    assert [nodes[n.id] for n in pg.nodes if n.kind == "layer"] == [4, 4, 4]
    edges = pg.edge_counts()
    assert sum(c for e, c in zip(pg.edges, edges) if e.dst == pg.outputs[0]) == 8
    g = tds.trace(_chain(3, True), (1, 4))
    assert count_paths(g) == 8 and count_paths(g, level="op") == 8


def test_length_table_is_the_binomial_coefficients():
    text = length_table(PathGraph.chain(6).length_distribution(), 6)
    rows = [line.split() for line in text.splitlines()[1:8]]
    assert [int(r[1].replace(",", "")) for r in rows] == [comb(6, k) for k in range(7)]
    assert [int(r[3].replace(",", "")) for r in rows] == [comb(6, k) for k in range(7)]
    assert "mean length 3.00" in text


def test_enumeration_of_four_blocks():
    pg = PathGraph.chain(4)
    e = pg.enumerate(limit=100)
    assert e.total == 16 and len(e.paths) == 16 and e.left_out == 0
    assert len({p.blocks for p in e.paths}) == 16
    assert str(e.paths[0]) == "x -> y" and str(e.paths[-1]) == "x -> f1 -> f2 -> f3 -> f4 -> y"
    f1 = pg.enumerate(limit=100, through="f1")
    assert f1.total == 8 and len(f1.paths) == 8
    assert all(0 in p.blocks for p in f1.paths)
    assert pg.enumerate(through=1).total == 8
    two = pg.enumerate(length=2)
    assert [str(p) for p in two.paths][:2] == ["x -> f1 -> f2 -> y", "x -> f1 -> f3 -> y"]
    assert two.total == 6
    assert pg.enumerate(length=2, through=("f1", "f4")).total == 1


def test_enumeration_stops_at_the_limit_and_says_how_many_were_left_out():
    e = PathGraph.chain(54).enumerate(limit=5)
    assert len(e.paths) == 5 and e.left_out == 2 ** 54 - 5
    assert f"{2 ** 54 - 5:,} more left out" in str(e)
    e = PathGraph.chain(30).enumerate(limit=3, length=15, through="f30")
    assert e.total == comb(29, 14) and all(29 in p.blocks for p in e.paths)


def test_unknown_block_is_a_clear_error():
    with pytest.raises(TdsError, match="f1..f3"):
        PathGraph.chain(3).enumerate(through="f7")
    with pytest.raises(TdsError, match="no residual blocks"):
        PathGraph.chain(0).enumerate(through="f1")


def test_gradient_expansion_four_blocks_from_h1():
    d = gradient_expansion(4, 1)
    assert len(d) == 8
    assert d.terms[0] == ()  # the identity: the path that skips every block
    assert set(d.terms) == {(), (2,), (3,), (3, 2), (4,), (4, 2), (4, 3), (4, 3, 2)}
    assert d.text().splitlines()[0] == \
        "dy/dh1 = I + J2 + (J3 + J3 J2) + (J4 + J4 J2 + J4 J3 + J4 J3 J2)"
    latex = d.latex()
    assert latex.count("\\frac") == 1 + sum(len(t) for t in d.terms)
    assert "\\mathbf{I}" in latex
    assert "\\frac{\\partial \\mathbf{f}_{3}}{\\partial \\mathbf{f}_{1}}" in d.latex("lecture")
    assert len(gradient_expansion(6, 0)) == 64
    with pytest.raises(TdsError):
        gradient_expansion(3, 5)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_unraveled_drawing_renders(tmp_path):
    dot = draw_unraveled(4, highlight="f1")
    src = dot.source
    assert src.count("label=\"path ") == 16
    assert "8 of the 16 paths go through f1" in src
    # 32 block boxes: each of the 4 blocks is on 8 paths
    assert len(re.findall(r"label=f[1-4] ", src)) == 32
    svg = dot.pipe(format="svg").decode()
    assert svg.count("<g id=\"node") >= 16 + 32 + 2
    agg = draw_aggregated(54).source
    assert "grouped by length" in agg and "C(54,27)" in agg


def test_unraveled_view_of_a_traced_network_without_blocks():
    m = nn.Sequential(models.Inception(8, 2, 2, 2, 2, 2, 2))
    src = draw_unraveled(PathGraph.from_graph(tds.trace(m, (1, 8, 8, 8)))).source
    assert src.count("label=\"path ") == 4 and "layers" in src


# ---- how the count factorises: 2^T only for residual blocks (issue 14) ----------------------------
def _count(model, shape=(1, 3, 32, 32)):
    return PathGraph.from_graph(tds.trace(model, shape)).factorize()


def test_concatenation_blocks_are_not_powers_of_two():
    one = _count(nn.Sequential(models.Inception(8, 2, 2, 2, 2, 2, 2)), (1, 8, 8, 8))
    assert str(one) == "4: 1 block of 4 parallel branches (concatenated)"
    five = _count(models.inception_net(num_classes=10))
    assert str(five) == "1,024 = 4^5: 5 blocks of 4 parallel branches (concatenated)"
    assert "2^" not in str(five) and not five.residual_only


def test_residual_blocks_are_written_as_powers_of_two():
    r = _count(models.resnet20())
    assert str(r) == "512 = 2^9: 9 residual blocks" and r.residual_only
    assert str(PathGraph.chain(3).factorize()) == "8 = 2^3: 3 residual blocks"
    assert str(PathGraph.chain(0).factorize()) == "1 (a plain chain: no joins)"


def test_unet_and_densenet_say_what_joins_they_have():
    u = _count(models.unet_small(base_width=4, depth=3), (1, 3, 16, 16))
    assert u.total == 4 and "2^" not in str(u) and "nested" in str(u)
    d = _count(models.densenet_cifar(growth_rate=4, block_config=(2, 3)))
    assert str(d).startswith("32 = 2^5: 5 concatenation skips")


def test_mixed_sections_multiply():
    m = nn.Sequential(nn.Residual(nn.Linear(4, 4)), nn.Residual(nn.Linear(4, 4)),
                      _Parallel(3))
    c = _count(m, (1, 4))
    assert c.total == 12 and str(c) == \
        "12 = 2^2 x 3: 2 residual blocks, 1 block of 3 parallel branches (concatenated)"


class _Parallel(nn.Module):
    """y = [f1(x), f2(x), ...] concatenated: k parallel branches."""

    def __init__(self, k: int):
        super().__init__()
        self.fs = nn.ModuleList([nn.Linear(4, 4) for _ in range(k)])

    def forward(self, x):
        return tds.concat([f(x) for f in self.fs], 1)


def test_huge_counts_are_exact_and_printable():
    from tinygrad_ds.graph.paths import central_range, fmt_count, num_digits

    assert fmt_count(2 ** 54) == "18,014,398,509,481,984"
    assert fmt_count(2 ** 100_000) == "2^100000 (30,103 digits)"
    assert fmt_count(3 ** 100) == "5.153 x 10^47 (48 digits)"
    assert num_digits(10 ** 5000) == 5001 and num_digits(10 ** 5000 - 1) == 5000
    dist = {k: comb(1100, k) for k in range(1101)}  # past a float's range
    text = length_table(dist, 1100)
    assert "mean length 550.00, std 16.58" in text
    assert central_range(dist) == central_range({k: v / 2 ** 1100 for k, v in dist.items()})


def test_unraveled_concatenation_draws_branches_not_a_sum():
    m = nn.Sequential(models.Inception(8, 2, 2, 2, 2, 2, 2))
    src = draw_unraveled(PathGraph.from_graph(tds.trace(m, (1, 8, 8, 8)))).source
    assert "sum of" not in src and "y is not a sum" in src
    # each branch is one box listing its layers, the four in the concatenation's order
    boxes = re.findall(r'label="(0\.branch\d)\n([^"]*)"', src)
    assert [b for b, _ in boxes] == ["0.branch1", "0.branch2", "0.branch3", "0.branch4"]
    assert boxes[1][1].split("\n") == ["Conv2d", "BatchNorm2d", "ReLU"] * 2
    assert boxes[3][1].startswith("MaxPool2d")


def test_unraveled_residual_chain_says_what_the_sum_is():
    relu_after = nn.Sequential(*[m for _ in range(3) for m in
                                 (nn.Residual(nn.Linear(4, 4)), nn.ReLU())])
    src = draw_unraveled(PathGraph.from_graph(tds.trace(relu_after, (1, 4)))).source
    assert "y = the sum of the paths' terms" in src and "ReLU follows each addition" in src
    linear = draw_unraveled(PathGraph.from_graph(tds.trace(_chain(3, True), (1, 4)))).source
    assert "y = the sum of the paths' terms" in linear and "follows each addition" not in linear
