"""Vanishing and exploding gradients in a deep scalar chain, and the skip connection.

    python examples/vanishing_gradients.py [OUT_DIR]      # default: out/ (git ignores it)

Builds the lecture's chain y_l = f(w_l y_{l-1}) with the scalar engine for depths L = 1..50:
sigmoid with w = 0.8 (the gradient at w_1 vanishes), ReLU with w = 1.5 (it explodes), each with
and without a skip from the input to the output (theta = y_{L+1} + w_1 x). Prints |dR/dw_1| for
a few depths, checks the engine against the closed form, and writes OUT_DIR/vanishing_gradients.png
(and, when Graphviz's `dot` is installed, a drawing of the L = 2 chain with its gradients).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from viz.vanishing import (DEFAULT_CASES, build_chain, chain_grad, closed_form_grad,
                           format_table, plot_grad_by_depth, vanishing_table)


def main(out_dir: str = "out") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    depths = list(range(1, 51))
    table = vanishing_table(depths)
    print("|dR/dw_1| in the chain y_l = f(w_l y_{l-1}), x = 1, R = theta:\n")
    print(format_table(depths, table))

    worst = max(abs(chain_grad(L, c.weight, c.activation, 1.0, c.skip)
                    / closed_form_grad(L, c.weight, c.activation, 1.0, c.skip) - 1.0)
                for c in DEFAULT_CASES for L in depths)
    print(f"\nscalar engine vs closed form x f'(w_1 x) prod w_l f'(w_l y_(l-1)): worst relative "
          f"difference {worst:.1e}")

    png = out / "vanishing_gradients.png"
    plot_grad_by_depth(depths, path=png)
    print(f"wrote {png}")

    if shutil.which("dot"):
        from viz.scalar_graph import write_scalar_graph

        theta, _ = build_chain(2, 0.8, "sigmoid", skip=True)
        theta.backward()
        print(f"wrote {write_scalar_graph(theta, out / 'chain_L2_skip.png', True)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
