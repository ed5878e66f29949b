"""The scalar engine (tinygrad_ds.scalar.Value) and its drawing (viz.scalar_graph).

Each op: forward against math, derivative against a closed form and central finite differences.
Tape semantics: accumulation, zero_grad, shared nodes, a 100,000-op chain. The graph record.
The key check: the scalar engine and the tensor engine give the same gradients for the same MLP.
"""
from __future__ import annotations

import re
import importlib.util
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_ds as tds
from tinygrad_ds.scalar import ScalarGraph, Value, zero_grad
from viz.scalar_graph import ACTIVE, backward_frames, draw_scalar_graph, write_backward_frames, \
    write_scalar_graph

ROOT = Path(__file__).resolve().parents[1]
finite = st.floats(-3.0, 3.0, allow_nan=False)
positive = st.floats(0.05, 5.0)
nonzero = finite.filter(lambda v: abs(v) > 0.1)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def numeric_grad(f, x: float, eps: float = 1e-6) -> float:
    return (f(x + eps) - f(x - eps)) / (2 * eps)


def grad_of(f, x: float) -> tuple[float, float]:
    """(f(x), df/dx) through the scalar engine."""
    v = Value(x, label="x")
    out = f(v)
    out.backward()
    return out.data, v.grad


# name: (op on a Value, the same op on a float, closed-form derivative, input strategy)
UNARY = {
    "exp": (lambda v: v.exp(), math.exp, math.exp, finite),
    "log": (lambda v: v.log(), math.log, lambda x: 1 / x, positive),
    "tanh": (lambda v: v.tanh(), math.tanh, lambda x: 1 - math.tanh(x) ** 2, finite),
    "sigmoid": (lambda v: v.sigmoid(), sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x)), finite),
    "relu": (lambda v: v.relu(), lambda x: max(x, 0.0), lambda x: float(x > 0),
             finite.filter(lambda v: abs(v) > 1e-3)),
    "neg": (lambda v: -v, lambda x: -x, lambda x: -1.0, finite),
    "pow2": (lambda v: v ** 2, lambda x: x ** 2, lambda x: 2 * x, finite),
    "pow3": (lambda v: v ** 3, lambda x: x ** 3, lambda x: 3 * x ** 2, finite),
    "pow-1": (lambda v: v ** -1, lambda x: 1 / x, lambda x: -1 / x ** 2, nonzero),
    "pow0.5": (lambda v: v ** 0.5, math.sqrt, lambda x: 0.5 / math.sqrt(x), positive),
    "rpow": (lambda v: 2.0 ** v, lambda x: 2.0 ** x, lambda x: 2.0 ** x * math.log(2), finite),
    "radd": (lambda v: 1.5 + v, lambda x: 1.5 + x, lambda x: 1.0, finite),
    "rsub": (lambda v: 1.5 - v, lambda x: 1.5 - x, lambda x: -1.0, finite),
    "rmul": (lambda v: 1.5 * v, lambda x: 1.5 * x, lambda x: 1.5, finite),
    "rtruediv": (lambda v: 1.5 / v, lambda x: 1.5 / x, lambda x: -1.5 / x ** 2, nonzero),
    "sub_number": (lambda v: v - 1.5, lambda x: x - 1.5, lambda x: 1.0, finite),
    "div_number": (lambda v: v / 4.0, lambda x: x / 4.0, lambda x: 0.25, finite),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_forward_and_derivative(name):
    op, ref, deriv, xs = UNARY[name]

    @settings(max_examples=25, deadline=None)
    @given(xs)
    def check(x):
        out, g = grad_of(op, x)
        assert out == pytest.approx(ref(x), rel=1e-12, abs=1e-12)
        assert g == pytest.approx(deriv(x), rel=1e-12, abs=1e-12)
        assert g == pytest.approx(numeric_grad(ref, x), rel=1e-5, abs=1e-6)

    check()


BINARY = {
    "+": (lambda a, b: a + b, lambda a, b: (1.0, 1.0)),
    "-": (lambda a, b: a - b, lambda a, b: (1.0, -1.0)),
    "*": (lambda a, b: a * b, lambda a, b: (b, a)),
    "/": (lambda a, b: a / b, lambda a, b: (1 / b, -a / b ** 2)),
}


@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=25, deadline=None)
@given(a=finite, b=nonzero)
def test_binary_forward_and_derivatives(name, a, b):
    op, closed = BINARY[name]
    va, vb = Value(a), Value(b)
    out = op(va, vb)
    out.backward()
    assert out.data == pytest.approx(op(a, b), rel=1e-12, abs=1e-12)
    ga, gb = closed(a, b)
    assert (va.grad, vb.grad) == (pytest.approx(ga, rel=1e-12), pytest.approx(gb, rel=1e-12))
    assert va.grad == pytest.approx(numeric_grad(lambda x: op(x, b), a), rel=1e-5, abs=1e-6)
    assert vb.grad == pytest.approx(numeric_grad(lambda x: op(a, x), b), rel=1e-5, abs=1e-6)


def test_sigmoid_and_exp_extremes():
    assert Value(-800.0).sigmoid().data == 0.0  # no overflow in exp(800)
    assert Value(800.0).sigmoid().data == 1.0
    assert Value(0.0).relu().local_grads == (0.0,)  # PyTorch's choice at 0


def test_composite_against_finite_differences():
    def f(x):
        return ((x * 2 + 1).tanh() * x.sigmoid() + (x ** 2 + 1).log() - x.exp() / 3) ** 2

    def f_float(x):
        return ((math.tanh(2 * x + 1) * sigmoid(x) + math.log(x * x + 1) - math.exp(x) / 3)) ** 2

    for x in (-1.3, 0.2, 0.9):
        out, g = grad_of(f, x)
        assert out == pytest.approx(f_float(x), rel=1e-12)
        assert g == pytest.approx(numeric_grad(f_float, x), rel=1e-6)


# ---- tape semantics -----------------------------------------------------------------------------
def test_gradients_accumulate_and_zero_grad_resets():
    x, w = Value(2.0, "x"), Value(-3.0, "w")
    h = w * x
    y = h.tanh() + x
    y.backward()
    first = {v.id: v.grad for v in y.backward_order()}
    y.backward()  # as in PyTorch: the second backward adds to .grad on every node
    for v in y.backward_order():
        assert v.grad == pytest.approx(2 * first[v.id])
    y.zero_grad()
    assert all(v.grad == 0.0 for v in y.backward_order())
    y.backward()
    assert x.grad == pytest.approx(first[x.id])
    zero_grad([x, w])
    assert x.grad == w.grad == 0.0 and h.grad != 0.0


def test_shared_node_gets_the_sum_of_its_paths():
    x = Value(3.0)
    (x * x).backward()
    assert x.grad == 6.0
    x = Value(1.5)
    a = x.exp()
    y = a * a + a  # a feeds three operands
    y.backward()
    assert x.grad == pytest.approx((2 * math.exp(3.0)) + math.exp(1.5))


def test_backward_is_iterative_on_a_100000_op_chain():
    x = Value(1.0, "x")
    y = x
    for _ in range(100_000):
        y = y.relu()
    y.backward()
    assert x.grad == 1.0
    assert len(y.backward_order()) == 100_001


# ---- the graph record ---------------------------------------------------------------------------
def neuron() -> Value:
    """micrograd's neuron: o = tanh(x1 w1 + x2 w2 + b); 10 Values, 5 of them made by ops."""
    x1, x2 = Value(2.0, "x1"), Value(0.0, "x2")
    w1, w2 = Value(-3.0, "w1"), Value(1.0, "w2")
    b = Value(6.8813735870195432, "b")
    n = x1 * w1 + x2 * w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return o


def test_graph_record():
    o = neuron()
    o.backward()
    g = o.graph()
    assert isinstance(g, ScalarGraph) and g.root == o.id
    assert len(g.nodes) == 10 and len(g.edges) == 9
    by_label = {n.label: n for n in g.nodes if n.label}
    assert by_label["o"].op == "tanh" and by_label["o"].grad == 1.0
    assert by_label["x1"].op == "" and by_label["x1"].grad == pytest.approx(-1.5)
    assert by_label["w1"].grad == pytest.approx(1.0)
    assert sorted(n.op for n in g.nodes if n.op) == ["*", "*", "+", "+", "tanh"]
    # topological: every edge goes from a node listed earlier to one listed later
    pos = {n.id: i for i, n in enumerate(g.nodes)}
    assert all(pos[e.src] < pos[e.dst] for e in g.edges)
    # local derivatives on the edges: d(x1 * w1)/d(x1) = w1
    e = next(e for e in g.edges if e.src == by_label["x1"].id)
    assert e.local_grad == -3.0
    assert "tanh" in str(g) and "x1" in str(g)


def test_backward_order_visits_each_node_before_its_inputs():
    o = neuron()
    order = o.backward_order()
    assert order[0] is o and len(order) == 10
    pos = {v.id: i for i, v in enumerate(order)}
    assert all(pos[v.id] < pos[c.id] for v in order for c in v.children)
    x = Value(1.0)
    assert len((x * x).graph().edges) == 2  # one edge per operand


# ---- bad input ----------------------------------------------------------------------------------
def test_errors_name_the_value():
    with pytest.raises(ValueError, match=r"log of a non-positive number: Value 'a' is -2"):
        Value(-2.0, "a").log()
    with pytest.raises(ValueError, match=r"Value #\d+ \(made by '\+'\) is 0"):
        (Value(1.0) + Value(-1.0)).log()
    with pytest.raises(TypeError, match=r"Value \*\* Value is not supported.*Value 'k'"):
        Value(2.0) ** Value(3.0, "k")
    with pytest.raises(ZeroDivisionError, match="divisor is 0"):
        Value(1.0, "p") / Value(0.0, "q")
    with pytest.raises(ZeroDivisionError, match="Value 'z' is 0"):
        Value(0.0, "z") ** -1
    with pytest.raises(ValueError, match="negative base needs an integer exponent"):
        Value(-4.0, "n") ** 0.5
    with pytest.raises(OverflowError, match="exp of Value 'big'"):
        Value(1000.0, "big").exp()
    with pytest.raises(TypeError, match="one real number; got str"):
        Value("3")
    with pytest.raises(TypeError, match="other operand must be a Value or a number"):
        Value(1.0) + "a"
    with pytest.raises(ValueError, match="positive number base"):
        (-2.0) ** Value(1.0)


# ---- the scalar engine against the tensor engine ------------------------------------------------
def test_scalar_and_tensor_engines_agree_on_an_mlp():
    """A 3-4-3-1 MLP (tanh, relu, sigmoid layers, squared error plus a log term), same float64
    weights and inputs in both engines: the same loss and the same gradient on every weight."""
    rng = np.random.default_rng(7)
    sizes = [3, 4, 3, 1]
    Ws = [rng.normal(0, 0.8, (o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.3, o) for o in sizes[1:]]
    X, Y = rng.normal(0, 1, (5, 3)), rng.uniform(0, 1, 5)
    acts = ["tanh", "relu", "sigmoid"]

    tW = [tds.Tensor(W, dtype="float64", requires_grad=True) for W in Ws]
    tb = [tds.Tensor(b, dtype="float64", requires_grad=True) for b in bs]
    h = tds.Tensor(X, dtype="float64")
    for W, b, act in zip(tW, tb, acts):
        h = getattr(h @ W.T + b, act)()
    p = h.reshape(-1)
    t_loss = ((p - tds.Tensor(Y, dtype="float64")) ** 2).mean() - (p + 1.0).log().mean() * 0.1
    t_loss.backward()

    sW = [[[Value(w) for w in row] for row in W] for W in Ws]
    sb = [[Value(v) for v in b] for b in bs]
    total = Value(0.0)
    for x, y in zip(X, Y):
        h = [Value(v) for v in x]
        for W, b, act in zip(sW, sb, acts):
            h = [getattr(sum((w * hi for w, hi in zip(row, h)), bj), act)()
                 for row, bj in zip(W, b)]
        total = total + (h[0] - y) ** 2 - 0.1 * (h[0] + 1.0).log()
    s_loss = total / len(X)
    s_loss.backward()

    assert s_loss.data == pytest.approx(t_loss.item(), rel=1e-13)
    for k in range(3):
        gW = np.array([[w.grad for w in row] for row in sW[k]])
        gb = np.array([v.grad for v in sb[k]])
        np.testing.assert_allclose(gW, tW[k].grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, tb[k].grad.numpy(), rtol=1e-12, atol=1e-15)
    assert np.abs(tW[0].grad.numpy()).max() > 1e-3  # the check is not vacuous


def test_mlp_example_engines_agree():
    spec = importlib.util.spec_from_file_location("mlp_example", ROOT / "examples" / "mlp.py")
    mlp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mlp)
    X, y = mlp.make_moons(8, seed=3)
    t_loss, s_loss, diff = mlp.compare_gradients(mlp.init_mlp([2, 4, 1], seed=2), X, y)
    assert s_loss == pytest.approx(t_loss, rel=1e-13) and diff < 1e-13


# ---- drawing (viz.scalar_graph) ------------------------------------------------------------------
def test_drawing_structure():
    o = neuron()
    o.backward()
    src = draw_scalar_graph(o, show_local_grads=True).source
    assert src.count("shape=record") == 10  # one record per Value
    assert src.count("shape=circle") == 5  # one circle per op
    assert src.count("->") == 9 + 5  # one edge per operand, one from each op to its output
    assert "grad 1.0000" in src and "tanh" in src and "x1" in src


def test_drawing_escapes_record_characters():
    v = Value(1.0, "a|b{c}") * 2
    src = draw_scalar_graph(v).source
    assert r"a\|b\{c\}" in src


def test_backward_frames_highlight_each_step_in_order():
    o = neuron()
    o.backward()
    o.backward()  # frames start from zero grads, whatever was there
    frames = backward_frames(o)
    assert len(frames) == len(o.backward_order()) == 10
    for frame in frames:
        assert frame.source.count(ACTIVE) == 1
    assert "step 1 of 10: o (tanh)" in frames[0].source
    assert o.grad == 1.0  # left as one backward leaves it


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is not installed")
def test_render_with_dot(tmp_path):
    o = neuron()
    o.backward()
    png = write_scalar_graph(o, tmp_path / "neuron.png", show_local_grads=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    x = Value(0.5, "x")
    y = (x * 3).tanh()
    paths = write_backward_frames(y, tmp_path / "frames")
    assert [p.name for p in paths] == ["step_001.png", "step_002.png", "step_003.png",
                                       "step_004.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_backward_frames_show_each_gradient_term_as_it_is_added():
    # a is used twice: its grad must be seen as -3 first, then -3 + 0.25
    a, b, c = Value(1.5, "a"), Value(-3.0, "b"), Value(0.25, "c")
    ab, ac = a * b, a * c
    ab.label, ac.label = "ab", "ac"
    y = ab + ac
    y.label = "y"
    frames = [f.source for f in backward_frames(y)]
    # the first frame: y (+) has passed its grad on, so both its inputs already show grad 1
    assert re.search(r"ab \| data -4.5000 \| grad 1.0000", frames[0])
    assert re.search(r"ac \| data 0.3750 \| grad 1.0000", frames[0])
    assert "ab.grad += 1.0000 x 1.0000:  0.0000 + 1.0000 = 1.0000" in frames[0]
    titles = "\n".join(frames)
    first = next(i for i, f in enumerate(frames) if "a.grad += " in f)
    assert re.search(r"\{ a \| data 1.5000 \| grad -3.0000", frames[first]) or \
        re.search(r"\{ a \| data 1.5000 \| grad 0.2500", frames[first])
    assert ("a.grad += 1.0000 x -3.0000:  0.0000 + -3.0000 = -3.0000" in titles and
            "a.grad += 1.0000 x 0.2500:  -3.0000 + 0.2500 = -2.7500" in titles) or \
        ("a.grad += 1.0000 x 0.2500:  0.0000 + 0.2500 = 0.2500" in titles and
         "a.grad += 1.0000 x -3.0000:  0.2500 + -3.0000 = -2.7500" in titles)
    assert a.grad == -2.75


# ---- a tensor model lowered to scalars (tds.trace_scalar) ----------------------------------------
def _tensor_grads(model, x, loss_fn):
    for p in model.parameters():
        p.grad = None
    xt = tds.Tensor(x.astype(np.float32), requires_grad=True)
    loss = loss_fn(model(xt))
    loss.backward()
    return float(loss.data), {k: p.grad.data for k, p in model.named_parameters()}, xt.grad.data


def test_trace_scalar_mlp_gradients_equal_the_tensor_engine():
    import tinygrad_ds.functional as F

    tds.manual_seed(0)
    mlp = tds.nn.Sequential(tds.nn.Linear(3, 4), tds.nn.Tanh(), tds.nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((2, 3))
    t = np.array([1, 0])
    st = tds.trace_scalar(mlp, x, target=t, loss="cross_entropy")
    st.loss.backward()
    loss, grads, xg = _tensor_grads(mlp, x, lambda y: F.cross_entropy(y, tds.Tensor(t)))
    assert st.loss.data == pytest.approx(loss, rel=1e-6)
    assert set(st.grads()) == set(grads) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for k, g in grads.items():
        np.testing.assert_allclose(st.grads()[k], g, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(st.input_grad(), xg, rtol=1e-5, atol=1e-7)
    # every multiply and add is a node: the first layer alone makes 2 x 4 x (3 + 3) of them
    assert st.count > 2 * 4 * 6 and st.params["0.weight"][1, 2].label == "0.weight[1,2]"


def test_trace_scalar_tiny_conv_net_gradients_equal_the_tensor_engine():
    import tinygrad_ds.functional as F

    tds.manual_seed(1)
    nn = tds.nn
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8, 3), nn.Sigmoid())
    x = np.random.default_rng(1).standard_normal((1, 1, 4, 4))
    target = np.full((1, 3), 0.5)
    st = tds.trace_scalar(conv, x, target=target, loss="mse")
    st.loss.backward()
    loss, grads, xg = _tensor_grads(
        conv, x, lambda y: F.mse_loss(y, tds.Tensor(target.astype(np.float32))))
    assert st.loss.data == pytest.approx(loss, rel=1e-5)
    for k, g in grads.items():
        np.testing.assert_allclose(st.grads()[k], g, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(st.input_grad(), xg, rtol=1e-4, atol=1e-7)


def test_trace_scalar_refuses_a_model_too_large_with_its_count():
    from tinygrad_ds.graph.scalar_lower import ScalarTooLarge

    with pytest.raises(ScalarTooLarge, match=r"about 30,300 Values, over the limit of 2,000.*"
                                             r"fewer units"):
        tds.trace_scalar(tds.nn.Linear(100, 100), np.zeros((1, 100)))
    with pytest.raises(tds.TdsError, match="no scalar form"):
        tds.trace_scalar(tds.nn.Sequential(tds.nn.Linear(2, 2), tds.nn.GELU()), np.ones((1, 2)))


def test_trace_scalar_names_layer_outputs_and_the_output():
    mlp = tds.nn.Sequential(tds.nn.Linear(2, 2), tds.nn.Tanh(), tds.nn.Linear(2, 1))
    st = tds.trace_scalar(mlp, np.ones((1, 2)))
    labels = {n.label for n in st.loss.graph().nodes}
    assert {"0.out[0,1]", "1.out[0,0]", "y[0,0]", "x[0,1]", "2.bias[0]"} <= labels
    assert st.loss.label == "y[0,0]" and st.loss_name == "y[0,0]"
