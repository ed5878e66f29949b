"""The deep scalar chain (viz.vanishing): the scalar engine's dR/dw_1 against the lecture's closed
form, vanishing and exploding by depth, and the skip from input to output."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viz.vanishing import (DEFAULT_CASES, ChainCase, build_chain, chain_grad, closed_form_grad,
                           format_table, grad_by_depth, plot_grad_by_depth, vanishing_table)


def lecture_product(depth, ws, activation, x):
    """x f'(w_1 x) prod_{l=2}^{L+1} w_l f'(w_l y_{l-1}), written out here with numpy so that the
    test does not lean on closed_form_grad's own code."""
    f = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0.0),
         "tanh": np.tanh}[activation]
    df = {"sigmoid": lambda z: f(z) * (1 - f(z)), "relu": lambda z: float(z > 0),
          "tanh": lambda z: 1 - np.tanh(z) ** 2}[activation]
    ys = [x]
    for w in ws:
        ys.append(f(w * ys[-1]))
    terms = [ws[l] * df(ws[l] * ys[l]) for l in range(1, depth + 1)]
    return x * df(ws[0] * x) * np.prod(terms)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("skip", [False, True])
@settings(max_examples=15, deadline=None)
@given(depth=st.integers(1, 30), seed=st.integers(0, 2**16), x=st.floats(0.1, 2.0))
def test_chain_gradient_equals_closed_form(activation, skip, depth, seed, x):
    ws = list(np.random.default_rng(seed).uniform(0.3, 1.6, depth + 1))
    engine = chain_grad(depth, ws, activation, x, skip)
    formula = closed_form_grad(depth, ws, activation, x, skip)
    by_hand = lecture_product(depth, ws, activation, x) + (x if skip else 0.0)
    assert engine == pytest.approx(formula, rel=1e-13, abs=1e-300)
    assert engine == pytest.approx(by_hand, rel=1e-12, abs=1e-300)


def test_relu_closed_form_is_a_product_of_weights():
    # x > 0 and weights > 1: every ReLU slope is 1, so dR/dw_1 = x w_2 ... w_{L+1} (+ x with skip)
    ws = [1.1, 1.2, 1.3, 1.4, 1.5]
    assert chain_grad(4, ws, "relu", 2.0) == pytest.approx(2.0 * 1.2 * 1.3 * 1.4 * 1.5, rel=1e-15)
    assert chain_grad(4, ws, "relu", 2.0, skip=True) == pytest.approx(
        2.0 * 1.2 * 1.3 * 1.4 * 1.5 + 2.0, rel=1e-15)


def test_chain_gradient_against_finite_differences():
    cases = [("sigmoid", 0.8, False), ("sigmoid", 0.8, True), ("tanh", 1.2, True)]
    for activation, w, skip in cases:
        def theta(w1, depth=6):
            t, _ = build_chain(depth, [w1] + [w] * depth, activation, 0.7, skip)
            return t.data

        eps = 1e-6
        numeric = (theta(w + eps) - theta(w - eps)) / (2 * eps)
        # theta is O(1), so the difference quotient is good to about 1e-10 absolute
        assert chain_grad(6, w, activation, 0.7, skip) == pytest.approx(numeric, rel=1e-6,
                                                                        abs=1e-9)


def test_skip_keeps_the_gradient_from_vanishing():
    depths = list(range(1, 61))
    plain = grad_by_depth(depths, ChainCase("sigmoid", 0.8, False))
    skip = grad_by_depth(depths, ChainCase("sigmoid", 0.8, True))
    assert np.all(np.diff(plain) < 0) and plain[-1] < 1e-40  # vanishes, geometrically
    assert np.all(skip >= 1.0) and skip[-1] == pytest.approx(1.0)  # stays at x = 1
    ratio = plain[1:] / plain[:-1]
    assert np.all(ratio < 0.8 * 0.25 + 1e-12)  # each layer multiplies by w f' <= 0.8 / 4


def test_relu_with_weights_above_one_explodes_skip_or_not():
    depths = [1, 10, 20, 40]
    plain = grad_by_depth(depths, ChainCase("relu", 1.5, False))
    skip = grad_by_depth(depths, ChainCase("relu", 1.5, True))
    np.testing.assert_allclose(plain, 1.5 ** np.array(depths), rtol=1e-13)
    np.testing.assert_allclose(skip, plain + 1.0, rtol=1e-13)


def test_chain_nodes_are_labelled():
    theta, ws = build_chain(2, 0.5, "sigmoid", skip=True)
    labels = {n.label for n in theta.graph().nodes}
    assert {"x", "w1", "w2", "w3", "z1", "y1", "y3", "w1 x", "theta"} <= labels
    assert [w.label for w in ws] == ["w1", "w2", "w3"]


def test_table_and_plot(tmp_path):
    depths = list(range(1, 11))
    table = vanishing_table(depths)
    assert list(table) == [c.name for c in DEFAULT_CASES]
    text = format_table(depths, table, show=(1, 10))
    assert len(text.splitlines()) == 3 and "with skip" in text
    png = tmp_path / "vanishing.png"
    fig = plot_grad_by_depth(depths, path=png)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == len(DEFAULT_CASES)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_input():
    with pytest.raises(ValueError, match="depth L >= 1"):
        chain_grad(0)
    with pytest.raises(ValueError, match=r"L \+ 1 = 4 weights .* got 3"):
        chain_grad(3, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        closed_form_grad(3, 0.5, "gelu")
    assert math.isfinite(chain_grad(300, 0.8, "sigmoid"))  # underflows to 0.0, no error
