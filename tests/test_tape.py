"""The tape: accumulation, no_grad, detach, retain_grad, freed graphs, non-scalar backward,
higher derivatives, op hooks, and a chain of 100,000 ops."""
import gc

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import autograd


def leaf(values, dtype=None):
    return tds.Tensor(values, dtype=dtype, requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0, 6.0])
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, [5.0, 7.0, 9.0])
    x.zero_grad()
    assert x.grad is None


def test_shared_subexpressions_add_their_gradients():
    x = leaf([1.0, -2.0])
    y = x * x
    (y + y * x + x).sum().backward()  # d/dx (x^2 + x^3 + x) = 2x + 3x^2 + 1
    np.testing.assert_allclose(x.grad.data, [6.0, 9.0])


def test_no_grad_context_and_decorators():
    x = leaf([1.0])
    with tds.no_grad():
        assert not tds.is_grad_enabled()
        y = x * 2.0
        with tds.enable_grad():
            z = x * 2.0
    assert tds.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf

    @tds.no_grad()
    def f(t):
        return t * 2.0

    @tds.no_grad
    def g(t):
        return t * 2.0

    assert not f(x).requires_grad and not g(x).requires_grad
    assert f.__name__ == "f"
    assert tds.is_grad_enabled()


def test_no_grad_restores_the_mode_after_an_error():
    with pytest.raises(ZeroDivisionError):
        with tds.no_grad():
            1 / 0
    assert tds.is_grad_enabled()


def test_detach_cuts_the_tape_and_shares_memory():
    x = leaf([1.0, 2.0])
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0])  # d counts as a constant
    e = x.detach()
    assert np.shares_memory(e.data, x.data)


def test_retain_grad_keeps_an_intermediate_gradient():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    z = x * 2.0
    y.retain_grad()
    (y * z).sum().backward()
    np.testing.assert_allclose(y.grad.data, z.data)
    assert z.grad is None  # not retained, as in PyTorch


def test_second_backward_through_freed_graph_says_retain_graph():
    x = leaf([1.0, 2.0])
    loss = (x.exp() * x).sum()
    loss.backward()
    with pytest.raises(tds.GradError, match=r"retain_graph=True") as e:
        loss.backward()
    assert "second time" in str(e.value)


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    loss = (x.exp() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.data.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-6)


def test_non_scalar_backward_with_a_gradient():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    y.backward(tds.Tensor([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.data, [[2.0, 0.0], [3.0, 16.0]])
    x2 = leaf([1.0, 2.0])
    (x2 * 2.0).backward(np.array([1.0, 1.0]))  # a numpy gradient works too
    np.testing.assert_allclose(x2.grad.data, [2.0, 2.0])


def test_backward_on_a_leaf():
    x = leaf([1.0, 2.0])
    g = tds.Tensor([3.0, 4.0])
    x.backward(g)
    np.testing.assert_allclose(x.grad.data, [3.0, 4.0])
    assert not np.shares_memory(x.grad.data, g.data)


def test_leaf_gradients_own_writable_memory():
    # an add hands the same gradient to both inputs and a sum's backward is a broadcast view:
    # an in-place update of one .grad (an optimizer, gradient clipping) must not reach another
    a, b, w = leaf([1.0, 2.0]), leaf([3.0, 4.0]), leaf(np.ones((2, 3)))
    ((a + b).sum() + w.sum()).backward()
    a.grad.data *= 10
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])
    w.grad.data[0, 0] = 5.0
    assert w.grad.data.sum() == 10.0


def test_requires_grad_propagates_only_from_inputs_that_need_it():
    x, c = leaf([1.0]), tds.Tensor([2.0])
    assert (x * c).requires_grad
    assert not (c * c).requires_grad
    assert not x.astype("int64").requires_grad  # no gradient through an integer cast
    assert x.double().requires_grad


def test_gradient_dtype_follows_the_input():
    x32, x64 = leaf([1.0, 2.0]), leaf([1.0, 2.0], dtype="float64")
    (x32 * x64).sum().backward()
    assert x32.grad.dtype == tds.float32 and x64.grad.dtype == tds.float64


def test_higher_derivatives_with_create_graph():
    x = leaf([0.5, 2.0], dtype="float64")
    (x ** 3.0).sum().backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)
    # exp saves its output: the second derivative must still see the output's dependence on x
    y = leaf([0.3, -1.0], dtype="float64")
    y.exp().sum().backward(create_graph=True)
    gy = y.grad
    y.grad = None
    gy.sum().backward()
    np.testing.assert_allclose(y.grad.data, np.exp(y.data))


def test_op_hooks_see_every_op_with_its_context():
    seen = []

    def hook(ctx, out):
        seen.append((ctx.op.name, tuple(t.shape for t in ctx.inputs), out.shape))

    autograd.op_hooks.append(hook)
    try:
        x = tds.ones(2, 3)
        with tds.no_grad():
            (x @ tds.ones(3)).relu()
    finally:
        autograd.op_hooks.remove(hook)
    # the vector becomes a (3, 1) column, the (2, 1) result loses that axis again
    assert seen == [("reshape", ((3,),), (3, 1)), ("matmul", ((2, 3), (3, 1)), (2, 1)),
                    ("reshape", ((2, 1),), (2,)), ("relu", ((2,),), (2,))]


def test_context_describes_its_node():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    assert y._node.op.name == "mul" and y._node.inputs[0] is x
    assert "mul" in repr(y._node) and "grad_fn=mul" in repr(y)
    assert y._node.needs_input_grad == (True, False)


def test_long_chain_runs_without_recursion():
    x = leaf([1.0, 2.0, 3.0])
    h = x
    for _ in range(100_000):
        h = h * 1.0
    h.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, 1.0, 1.0])
    del h
    gc.collect()


def test_deleting_a_long_chain_that_never_ran_backward():
    x = leaf([1.0])
    h = x
    for _ in range(100_000):
        h = h * 1.0
    del h  # frees 100,000 nodes, each holding the previous one
    gc.collect()
    assert x.grad is None


def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, -1.0])
    h = x * w
    y = (h * h).sum()
    gx, gh = autograd.grad(y, [x, h], retain_graph=True)
    np.testing.assert_allclose(gx.data, 2 * (x.data * w.data) * w.data)
    np.testing.assert_allclose(gh.data, 2 * h.data)
    assert x.grad is None and w.grad is None and not gx.requires_grad
    with pytest.raises(tds.GradError, match="allow_unused"):
        autograd.grad(y, [x, leaf([0.0])])
    assert autograd.grad(x.sum(), [x, leaf([0.0])], allow_unused=True)[1] is None


def _first_derivative(f):
    """x -> d sum(f(x)) / dx, on the tape (create_graph=True) so that it can be differentiated
    again: gradcheck of this function checks every op's backward is itself differentiable."""

    def df(x):
        with tds.enable_grad():  # gradcheck's finite differences run under no_grad
            (g,) = autograd.grad(f(x).sum(), x, create_graph=True)
        return g

    return df


W = np.random.default_rng(0).standard_normal((3, 4))


@pytest.mark.parametrize("name, f", [
    ("cube", lambda x: x * x * x),
    ("div", lambda x: 1.0 / x),
    ("pow", lambda x: x ** 3.0),
    ("exp", lambda x: x.exp()),
    ("log", lambda x: x.log()),
    ("sqrt", lambda x: x.sqrt()),
    ("tanh", lambda x: x.tanh()),
    ("sigmoid", lambda x: x.sigmoid()),
    ("gelu", lambda x: x.gelu()),
    ("softmax", lambda x: x.softmax(-1) * tds.Tensor(W[0], dtype="float64")),
    ("log_softmax", lambda x: x.log_softmax(0) * tds.Tensor(W[1], dtype="float64")),
    ("logsumexp", lambda x: x.logsumexp(-1) ** 2.0),
    ("matmul", lambda x: (x.reshape(1, 4) @ tds.Tensor(W.T, dtype="float64")).tanh()),
    ("var", lambda x: x.var() * x.mean()),
    ("maximum", lambda x: x.maximum(x * x)),
    ("relu", lambda x: (x - 1.0).relu() ** 2.0 + (1.0 - x).relu() * x),
])
def test_second_derivatives(name, f):
    x = tds.Tensor([0.7, 1.3, 0.4, 2.1], dtype="float64", requires_grad=True)
    assert tds.gradcheck(_first_derivative(f), x)
