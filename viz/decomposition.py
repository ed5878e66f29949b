"""The gradient of a residual chain as a sum over paths (the lecture's expansion of dy/df_1).

For h_t = h_{t-1} + f_t(h_{t-1}), t = 1..T, y = h_T, the chain rule gives

    dy/dh_k = prod_{t=T..k+1} (I + J_t),     J_t = df_t/dh_{t-1} (the Jacobian of block t)

and multiplying out gives one term per subset S of the blocks after k: the product of the J_t
for t in S, latest first. Each term is one path from h_k to y (through the blocks in S, skipping
the others), so there are 2^(T-k) terms: for T = 4, k = 1 the identity and 7 products.

    from viz.decomposition import gradient_expansion
    d = gradient_expansion(4, 1)
    len(d)       # 8
    print(d.text())    # dy/dh1 = I + J2 + (J3 + J3 J2) + (J4 + J4 J2 + J4 J3 + J4 J3 J2)
    print(d.latex())
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from tinygrad_ds.errors import TdsError

MAX_TERMS = 4096  # 2^12: beyond this the expansion is not something to read


@dataclass
class Expansion:
    """dy/dh_k for a chain of T blocks: terms[i] is the tuple of blocks whose Jacobians are
    multiplied (latest first); () is the identity, the path that skips every block."""

    T: int
    k: int
    terms: list[tuple[int, ...]]

    def __len__(self) -> int:
        return len(self.terms)

    def _groups(self) -> list[list[tuple[int, ...]]]:
        """Terms grouped by their latest block, as the lecture writes them."""
        groups: dict[int, list[tuple[int, ...]]] = {}
        for t in self.terms:
            groups.setdefault(t[0] if t else 0, []).append(t)
        return [groups[g] for g in sorted(groups)]

    def text(self) -> str:
        """'dy/dh1 = I + J2 + (J3 + J3 J2) + ...' followed by what J_t means."""
        parts = []
        for g in self._groups():
            inner = " + ".join(" ".join(f"J{t}" for t in term) if term else "I" for term in g)
            parts.append(f"({inner})" if len(g) > 1 else inner)
        wrt = "x" if self.k == 0 else f"h{self.k}"
        return (f"dy/d{wrt} = " + " + ".join(parts) + f"\n  {len(self)} terms, one per path "
                f"from {wrt} to y; J_t = df_t/dh_(t-1), the Jacobian of block t"
                + (", h_0 = x" if self.k == 0 else ""))

    def latex(self, notation: str = "jacobian") -> str:
        """The expansion as a LaTeX equation. notation 'jacobian': \\frac{\\partial f_t}
        {\\partial h_{t-1}}; 'lecture': \\frac{\\partial f_t}{\\partial f_{t-1}} as on the slide."""
        if notation not in ("jacobian", "lecture"):
            raise ValueError(f"notation must be 'jacobian' or 'lecture', got {notation!r}")

        def jac(t: int, prev: int) -> str:
            below = f"\\mathbf{{h}}_{{{prev}}}" if notation == "jacobian" else \
                (f"\\mathbf{{f}}_{{{prev}}}" if prev > 0 else "\\mathbf{x}")
            return f"\\frac{{\\partial \\mathbf{{f}}_{{{t}}}}}{{\\partial {below}}}"

        def term(ts: tuple[int, ...]) -> str:
            if not ts:
                return "\\mathbf{I}"
            if notation == "jacobian":
                return " ".join(jac(t, t - 1) for t in ts)
            # the slide's form: each factor relates a block to the one it reads from next on
            # the path (the last factor to h_k itself)
            nxt = ts[1:] + (self.k,)
            return " ".join(jac(t, n) for t, n in zip(ts, nxt))

        parts = []
        for g in self._groups():
            inner = " + ".join(term(t) for t in g)
            parts.append(f"\\left( {inner} \\right)" if len(g) > 1 else inner)
        wrt = ("\\mathbf{x}" if self.k == 0 else f"\\mathbf{{h}}_{{{self.k}}}") \
            if notation == "jacobian" else \
            ("\\mathbf{x}" if self.k == 0 else f"\\mathbf{{f}}_{{{self.k}}}")
        return (f"\\frac{{\\partial \\mathbf{{y}}}}{{\\partial {wrt}}} = " + " + ".join(parts))


def gradient_expansion(T: int, k: int = 0) -> Expansion:
    """dy/dh_k for T residual blocks as its 2^(T-k) path terms (0 <= k <= T; k = 0 is the
    input x). Terms are ordered as on the lecture's slide: by the latest block they pass,
    then by length."""
    if T < 0 or not 0 <= k <= T:
        raise TdsError(f"gradient_expansion: need 0 <= k <= T, got T={T}, k={k}")
    if 2 ** (T - k) > MAX_TERMS:
        raise TdsError(f"gradient_expansion: {T - k} blocks after h{k} give 2^{T - k} terms, "
                       f"too many to write out (at most {MAX_TERMS}); pick a larger k")
    after = list(range(k + 1, T + 1))
    terms: list[tuple[int, ...]] = [()]
    for last in after:  # terms whose latest block is `last`
        earlier = [t for t in after if t < last]
        for n in range(len(earlier) + 1):
            for c in combinations(earlier, n):
                # latest first; within a group, fewer factors first, then the lexicographic
                # order of the reversed tuple (J4 J2 before J4 J3, as on the slide)
                terms.append((last,) + tuple(reversed(c)))
    return Expansion(T, k, terms)
