"""Paths through a network: counting, path lengths, enumeration (Veit, Wilber and Belongie 2016:
a stack of T residual blocks has 2^T input-to-output paths and behaves like an ensemble of them).

    from tinygrad_ds.graph.paths import PathGraph, count_paths
    pg = PathGraph.from_graph(tds.trace(model, (1, 3, 32, 32)))   # or PathGraph.chain(4)
    pg.count()                   # 512 for ResNet-20 (exact Python int: 2^54 for ResNet-110)
    pg.length_distribution()     # {0: 1, 1: 9, 2: 36, ...}: Binomial(9, 1/2) times 2^9
    pg.enumerate(limit=20, through="f1")   # x -> f1 -> y, x -> f1 -> f2 -> y, ...

Everything is counted by dynamic programming over a topological order; nothing is enumerated to
count. A path's *length* is the number of residual branches it goes through (Veit's definition);
`length='layers'` counts the layers with parameters on it instead, which is what varies along
the paths of a DenseNet block, an inception block or a U-Net, where no residual add exists.

Paths run through the graph with each leaf module (Conv2d, BatchNorm2d, ReLU, ...) as one node
(`level='module'`, the default): the branches inside a layer (batch norm's statistics, a GELU's
two uses of x) are not paths of the network. `level='op'` counts through every op.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from ..errors import TdsError
from .ir import Graph


# The op names (or module types) that the analysis treats specially, in one place: compared after
# _norm, so 'leaky_relu', 'leakyrelu' and 'LeakyReLU' are one name.
ACTIVATIONS = {"relu", "leakyrelu", "gelu", "elu", "selu", "silu", "sigmoid", "tanh", "hardtanh",
               "relu6", "softplus", "mish", "hardswish"}
CONCATS = {"concat", "cat", "stack"}
SUMS = {"add", "sum"}


def _norm(op: str) -> str:
    return op.lower().replace("_", "")


# ---- the plain counts on a traced Graph (used by `tds viz` and `tds summary`) -----------------
def path_counts(graph: Graph) -> dict[int, int]:
    """node id -> number of paths from any graph input to that node (0 where none)."""
    inputs = set(graph.inputs)
    count: dict[int, int] = {}
    for n in graph.nodes:  # execution order is a topological order
        count[n.id] = 1 if n.id in inputs else sum(count[i] for i in n.inputs)
    return count


def _view(graph: Graph, level: str) -> Graph:
    if level not in ("module", "op"):
        raise ValueError(f"paths: level must be 'module' or 'op', got {level!r}")
    return graph.module_graph() if level == "module" and graph.kind != "module" else graph


def count_paths(graph: Graph, level: str = "module") -> int:
    """The number of distinct input-to-output paths: 1 for a plain chain, 2^T for T stacked
    residual blocks. level: 'module' (leaf modules as single nodes) or 'op'."""
    g = _view(graph, level)
    count = path_counts(g)
    return sum(count[o] for o in g.outputs)


# ---- the path graph ----------------------------------------------------------------------------
@dataclass
class PNode:
    id: int
    label: str
    kind: str              # 'input' | 'output' | 'layer' (has parameters) | 'add' | 'other'
    ref: int | None = None  # the node id in the traced (module-level) Graph
    op: str = ""           # the op name, or the module's type for a collapsed module


@dataclass(frozen=True)
class Edge:
    src: int
    dst: int
    block: int | None = None  # index into PathGraph.blocks: this edge enters a residual add
                              # from that block's branch f (the other input is the skip)


@dataclass
class Path:
    """One input-to-output path. nodes: PathGraph node ids; blocks: indices of the residual
    branches it goes through; steps: the choices it makes at joins, in order, for printing."""

    nodes: tuple[int, ...]
    edges: tuple[int, ...]  # indices into PathGraph.edges
    blocks: tuple[int, ...]
    steps: tuple[str, ...]
    length: int             # in the unit the enumeration was asked in ('blocks' or 'layers')

    def __str__(self) -> str:
        return " -> ".join(("x",) + self.steps + ("y",))


@dataclass
class Enumeration:
    """The paths listed (at most `limit`), how many match the filters, how many were left out."""

    paths: list[Path]
    total: int
    limit: int
    filters: str = ""

    @property
    def left_out(self) -> int:
        return self.total - len(self.paths)

    def __str__(self) -> str:
        what = ("path" if self.total == 1 else "paths") + (f" {self.filters}" if self.filters
                                                           else "")
        lines = [f"{fmt_count(self.total)} {what}" + (f", the first {len(self.paths)}:"
                                            if self.left_out else ":")]
        lines += [f"  {p}" for p in self.paths]
        if self.left_out:
            more = fmt_count(self.left_out)
            lines.append(f"  ... stopped at the limit of {self.limit}: {more} more "
                         "left out (raise the limit, or filter by length or block)")
        return "\n".join(lines)


@dataclass
class PathGraph:
    """A DAG whose input-to-output paths are the network's paths: made from a traced Graph
    (`from_graph`) or for an abstract chain of T residual blocks (`chain`)."""

    nodes: list[PNode]
    edges: list[Edge]
    inputs: list[int]
    outputs: list[int]
    blocks: list[str] = field(default_factory=list)  # residual blocks, in execution order
    # per block: what follows its addition when it is an activation ('relu'), else ''
    after_add: list[str] = field(default_factory=list)
    chain_of: int | None = None  # T for PathGraph.chain(T): counts come in closed form

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def chain(cls, T: int) -> PathGraph:
        """x = h_0, h_t = h_{t-1} + f_t(h_{t-1}) for t = 1..T, y = h_T: blocks 'f1'..'fT'."""
        if T < 0:
            raise TdsError(f"a chain of {T} blocks: give T >= 0")
        nodes = [PNode(0, "x", "input")]
        edges: list[Edge] = []
        h = 0
        for t in range(1, T + 1):
            f = len(nodes)
            nodes.append(PNode(f, f"f{t}", "layer"))
            a = len(nodes)
            nodes.append(PNode(a, f"h{t}", "add"))
            edges += [Edge(h, f), Edge(f, a, t - 1), Edge(h, a)]
            h = a
        nodes[h].label = "y"
        if T:
            nodes[h].kind = "add"
        return cls(nodes, edges, [0], [h], [f"f{t}" for t in range(1, T + 1)], [""] * T, T)

    @classmethod
    def from_graph(cls, graph: Graph, level: str = "module") -> PathGraph:
        """The nodes of `graph` (leaf modules as one node at level 'module') that lie on some
        input-to-output path, with an edge per input use; residual adds mark their branch edge."""
        g = _view(graph, level)
        n_all = len(g.nodes)
        fwd = [False] * n_all
        for n in g.nodes:
            fwd[n.id] = n.id in g.inputs or any(fwd[i] for i in n.inputs)
        bwd = [False] * n_all
        for o in g.outputs:
            bwd[o] = True
        for n in reversed(g.nodes):
            if bwd[n.id]:
                for i in n.inputs:
                    bwd[i] = True
        keep = [n for n in g.nodes if fwd[n.id] and bwd[n.id]]
        new = {n.id: k for k, n in enumerate(keep)}
        blocks: list[str] = []
        nodes, edges = [], []
        for n in keep:
            if n.id in g.inputs:
                kind = "input"
            elif n.residual:
                kind = "add"
            elif n.params or n.kind == "module" and any(
                    g.nodes[p].kind == "param" for p in n.params):
                kind = "layer"
            else:
                kind = "other"
            label = n.name if n.id in g.inputs else (n.module or n.op)
            if n.residual:
                label = f"+ {n.residual['block']}"
            nodes.append(PNode(new[n.id], label, kind, n.id, n.op))
            block = None
            if n.residual:
                blocks.append(n.residual["block"])
                block = len(blocks) - 1
            for i in n.inputs:
                if i in new:
                    is_branch = n.residual is not None and i == n.residual["branch"]
                    edges.append(Edge(new[i], new[n.id], block if is_branch else None))
        outs = [new[o] for o in g.outputs if o in new]
        for o in outs:
            if nodes[o].kind == "other":
                nodes[o].kind = "output"
        consumers = g.consumers()
        after = []
        for n in keep:
            if n.residual:
                nxt = [g.nodes[c] for c in consumers[n.id]]
                act = len(nxt) == 1 and _norm(nxt[0].op) in ACTIVATIONS
                after.append(nxt[0].op if act else "")
        return cls(nodes, edges, [new[i] for i in g.inputs if i in new], outs, blocks, after)

    # ---- basic facts ----------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def short_name(self, b: int) -> str:
        """'f3' for the third residual block (the lecture's names)."""
        return f"f{b + 1}"

    def legend(self) -> list[str]:
        """'f1 = layer1.0.residual', ... (empty for an abstract chain)."""
        return [f"f{b + 1} = {name}" for b, name in enumerate(self.blocks) if name != f"f{b + 1}"]

    def block_index(self, name: str | int) -> int:
        """A block by 'f3', by 3 (1-based, as f3), by its module path or a unique prefix of it."""
        if isinstance(name, int) or str(name).isdigit():
            k = int(name) - 1
        elif str(name)[:1] == "f" and str(name)[1:].isdigit() and str(name) not in self.blocks:
            k = int(str(name)[1:]) - 1
        else:
            hits = [b for b, full in enumerate(self.blocks) if full == name]
            hits = hits or [b for b, full in enumerate(self.blocks) if full.startswith(f"{name}.")]
            if len(hits) != 1:
                known = ", ".join(self.blocks[:4]) + (", ..." if len(self.blocks) > 4 else "")
                raise TdsError(f"no residual block {name!r}: name one as f1..f{self.num_blocks}"
                               + (f" or by module path ({known})" if self.blocks else ""))
            k = hits[0]
        if not 0 <= k < self.num_blocks:
            raise TdsError(f"no residual block {name!r}: this network has {self.num_blocks} "
                           f"(f1..f{self.num_blocks})" if self.num_blocks else
                           f"no residual block {name!r}: this network has no residual blocks")
        return k

    def _out_edges(self) -> list[list[Edge]]:
        out: list[list[Edge]] = [[] for _ in self.nodes]
        for e in self.edges:
            out[e.src].append(e)
        return out

    def _weights(self, length: str) -> list[int]:
        if length == "blocks":
            return [int(e.block is not None) for e in self.edges]
        if length == "layers":
            return [int(self.nodes[e.dst].kind == "layer") for e in self.edges]
        raise ValueError(f"length must be 'blocks' or 'layers', got {length!r}")

    # ---- counting -----------------------------------------------------------------------
    def _forward(self) -> list[int]:
        count = [0] * len(self.nodes)
        for i in self.inputs:
            count[i] = 1
        for e in self.edges:  # edges are listed in the topological order of their targets
            count[e.dst] += count[e.src]
        return count

    def _backward(self) -> list[int]:
        count = [0] * len(self.nodes)
        for o in self.outputs:
            count[o] = 1
        for e in reversed(self.edges):
            count[e.src] += count[e.dst]
        return count

    def count(self) -> int:
        """The number of input-to-output paths."""
        if self.chain_of is not None:
            return 1 << self.chain_of
        fwd = self._forward()
        return sum(fwd[o] for o in self.outputs)

    def node_counts(self) -> list[int]:
        """Paths through each node (index = PathGraph node id)."""
        return [a * b for a, b in zip(self._forward(), self._backward())]

    def edge_counts(self) -> list[int]:
        """Paths through each edge (in the order of `edges`)."""
        fwd, bwd = self._forward(), self._backward()
        return [fwd[e.src] * bwd[e.dst] for e in self.edges]

    def block_counts(self) -> list[int]:
        """Paths through each residual block's branch: 2^(T-1) each in a chain of T."""
        T = self.chain_of
        if T is not None:  # no DP over 100,000-bit products for an abstract chain
            return [1 << (T - 1)] * T
        out = [0] * self.num_blocks
        for e, c in zip(self.edges, self.edge_counts()):
            if e.block is not None:
                out[e.block] += c
        return out

    def factorize(self) -> PathCount:
        """How the count comes about: the network cut at the nodes every path passes through,
        each section between two cuts multiplying the count by its number of ways through
        (2 for a residual block, k for k parallel branches). See PathCount."""
        total = self.count()
        T = self.chain_of
        if T is not None:
            return PathCount(total, [(RESIDUAL, T)] if T else [])
        if len(self.inputs) != 1 or len(self.outputs) != 1 or total <= 1:
            return PathCount(total, [])
        fwd, bwd = self._forward(), self._backward()
        spine = [v for v in range(len(self.nodes)) if fwd[v] and fwd[v] * bwd[v] == total]
        indeg: dict[int, list[Edge]] = {}
        for e in self.edges:
            indeg.setdefault(e.dst, []).append(e)
        groups: dict[Section, int] = {}
        for a, b in zip(spine, spine[1:]):
            factor = fwd[b] // fwd[a]
            if factor == 1:
                continue
            joins = [v for v in range(a + 1, b + 1) if len(indeg.get(v, ())) > 1]
            sec = self._section(a, b, factor, joins, indeg)
            groups[sec] = groups.get(sec, 0) + 1
        return PathCount(total, list(groups.items()))

    def _section(self, a: int, b: int, factor: int, joins: list[int], indeg) -> Section:
        """What the part between cut nodes a and b is: a residual block (one residual add), k
        parallel branches (they leave a and meet again without forking on the way, joined by
        one kind of op), or nested joins."""
        if joins == [b] and self.nodes[b].kind == "add" and factor == 2:
            return RESIDUAL
        outdeg = [0] * (b - a)
        for v in range(a + 1, b + 1):
            for e in indeg.get(v, ()):
                outdeg[e.src - a] += 1
        ops = {_norm(self.nodes[j].op) for j in joins}
        if len(ops) == 1 and all(d <= 1 for d in outdeg[1:]) and outdeg[0] == factor and \
                not any(self.nodes[j].kind == "add" for j in joins):
            op = ops.pop()
            name = self.nodes[joins[0]].op
            direct = any(e.src == a for j in joins for e in indeg.get(j, ()))
            if op in CONCATS and factor == 2 and direct:
                return Section(2, "concatenation skip", "concatenation skips",
                               f"x joined with f(x) by {name}")
            how = "concatenated" if op in CONCATS else "summed" if op in SUMS else \
                f"joined by {name}"
            return Section(factor, f"block of {factor} parallel branches",
                           f"blocks of {factor} parallel branches", how)
        kinds = "/".join(sorted({self.nodes[j].op or "join" for j in joins}))
        return Section(factor, f"section of {len(joins)} nested {kinds} joins",
                       f"sections of {len(joins)} nested {kinds} joins, {factor} paths each")

    def _suffix_polys(self, length: str, through: tuple[int, ...]) -> list[dict[int, list[int]]]:
        """poly[u][mask][L]: paths from u to an output of length L passing the required blocks
        not in mask (mask: which of `through` were passed before u)."""
        w = self._weights(length)
        full = (1 << len(through)) - 1
        bit = {b: 1 << k for k, b in enumerate(through)}
        out_set = set(self.outputs)
        poly: list[dict[int, list[int]]] = [{} for _ in self.nodes]
        for u in out_set:
            poly[u][full] = [1]
        # edges are listed in the order of their targets, so going backwards every edge out of
        # e.dst is added to poly[e.dst] before e reads it
        for k in reversed(range(len(self.edges))):
            e = self.edges[k]
            eb = bit.get(e.block, 0) if e.block is not None else 0
            for m in range(full + 1):
                src = poly[e.dst].get(m | eb)
                if src:
                    dst = poly[e.src].setdefault(m, [])
                    need = len(src) + w[k]
                    if len(dst) < need:
                        dst.extend([0] * (need - len(dst)))
                    for L, c in enumerate(src):
                        dst[L + w[k]] += c
        return poly

    def length_distribution(self, length: str = "blocks",
                            through: tuple[str | int, ...] | str | int = ()) -> dict[int, int]:
        """{path length: number of paths}, exact. length 'blocks' (residual branches passed,
        Binomial(T, 1/2) times 2^T for a chain) or 'layers' (layers with parameters passed).
        through: only paths through these blocks."""
        return self._dist(self._suffix_polys(length, self._required(through)))

    def _dist(self, poly) -> dict[int, int]:
        total: list[int] = []
        for i in self.inputs:
            p = poly[i].get(0, [])
            total.extend([0] * (len(p) - len(total)))
            for L, c in enumerate(p):
                total[L] += c
        return {L: c for L, c in enumerate(total) if c}

    def _required(self, through) -> tuple[int, ...]:
        if isinstance(through, (str, int)):
            through = (through,)
        return tuple(sorted({self.block_index(b) for b in through}))

    # ---- enumeration ---------------------------------------------------------------------
    def enumerate(self, limit: int = 20, length: int | None = None,
                  through: tuple[str | int, ...] | str | int = (),
                  unit: str = "blocks") -> Enumeration:
        """Up to `limit` paths, shortest first (then in the order of the blocks they pass),
        with the number that match: only those of `length` (in `unit`: 'blocks' or 'layers')
        and through every block in `through` ('f1', 1, or a module path)."""
        if limit < 0:
            raise TdsError(f"enumerate: limit must be >= 0, got {limit}")
        req = self._required(through)
        poly = self._suffix_polys(unit, req)
        dist = self._dist(poly)
        lengths = sorted(dist) if length is None else [length]
        total = sum(dist.values()) if length is None else dist.get(length, 0)
        filters = []
        if length is not None:
            filters.append(f"of length {length}" + (" (layers)" if unit == "layers" else ""))
        if req:
            filters.append("through " + " and ".join(self.short_name(b) for b in req))
        found: list[Path] = []
        for L in lengths:
            for p in self._walk(poly, L, req, unit):
                if len(found) >= limit:
                    break
                found.append(p)
            if len(found) >= limit:
                break
        return Enumeration(found, total, limit, " ".join(filters))

    def _walk(self, poly, L: int, req: tuple[int, ...], unit: str):
        """Paths of length L through the required blocks, depth first, pruned by `poly` so that
        every step taken leads to at least one matching path."""
        w = self._weights(unit)
        out = [[] for _ in self.nodes]
        for k, e in enumerate(self.edges):
            out[e.src].append(k)
        bit = {b: 1 << k for k, b in enumerate(req)}
        full = (1 << len(req)) - 1
        joins = self._join_nodes()
        out_set = set(self.outputs)

        def ok(v: int, m: int, r: int) -> bool:
            p = poly[v].get(m)
            return p is not None and 0 <= r < len(p) and p[r] > 0

        for i in self.inputs:
            if not ok(i, 0, L):
                continue
            # stack of (node, mask, remaining, edges taken so far, next out-edge index)
            stack = [(i, 0, L, [], 0)]
            while stack:
                u, m, r, taken, j = stack.pop()
                if j == 0 and u in out_set and m == full and r == 0:
                    yield self._path(i, taken, joins, L)
                for jj in range(j, len(out[u])):
                    k = out[u][jj]
                    e = self.edges[k]
                    m2 = m | bit.get(e.block, 0) if e.block is not None else m
                    if ok(e.dst, m2, r - w[k]):
                        stack.append((u, m, r, taken, jj + 1))
                        stack.append((e.dst, m2, r - w[k], taken + [k], 0))
                        break

    def _join_nodes(self) -> set[int]:
        seen: dict[int, int] = {}
        for e in self.edges:
            seen[e.dst] = seen.get(e.dst, 0) + 1
        return {v for v, c in seen.items() if c > 1}

    def _path(self, start: int, taken: list[int], joins: set[int], length: int) -> Path:
        nodes = [start] + [self.edges[k].dst for k in taken]
        blocks, steps = [], []
        for k in taken:
            e = self.edges[k]
            if e.block is not None:
                blocks.append(e.block)
                steps.append(self.short_name(e.block))
            elif e.dst in joins and self.nodes[e.dst].kind != "add":
                steps.append(f"[{self.nodes[e.src].label}]")  # a concat's or a sum's input
        return Path(tuple(nodes), tuple(taken), tuple(blocks), tuple(steps), length)


# ---- how a count factorises ---------------------------------------------------------------------
@dataclass(frozen=True)
class Section:
    """A part of the network between two nodes that every path passes through, which multiplies
    the number of paths by `factor`: a residual block (2), a block of k parallel branches (k)."""

    factor: int
    one: str       # 'residual block'
    many: str      # 'residual blocks'
    how: str = ""  # 'concatenated', 'summed', ...


RESIDUAL = Section(2, "residual block", "residual blocks")


@dataclass
class PathCount:
    """A path count with how it factorises: `groups` lists (section, how many) in the order the
    sections first appear, and the total is the product of factor^n over the groups.

    str(): '512 = 2^9: 9 residual blocks', '1,024 = 4^5: 5 blocks of 4 parallel branches
    (concatenated)'. Only a count made of residual blocks alone is written 2^T."""

    total: int
    groups: list[tuple[Section, int]]

    def __int__(self) -> int:
        return self.total

    @property
    def residual_only(self) -> bool:
        return bool(self.groups) and all(s == RESIDUAL for s, _ in self.groups)

    def expression(self) -> str:
        """'2^9', '4^5', '2^9 x 4' (several kinds of section), '' when nothing factorises."""
        terms = [f"{s.factor}^{n}" if n > 1 else f"{s.factor}" for s, n in self.groups]
        return " x ".join(terms)

    def explanation(self) -> str:
        parts = []
        for s, n in self.groups:
            what = s.one if n == 1 else s.many
            parts.append(f"{n:,} {what}" + (f" ({s.how})" if s.how else ""))
        return ", ".join(parts)

    def __str__(self) -> str:
        total = fmt_count(self.total)
        if not self.groups:
            return total + (" (a plain chain: no joins)" if self.total == 1 else "")
        expr = self.expression()
        shown = total if expr in total else f"{total} = {expr}"
        return f"{shown}: {self.explanation()}"


def fmt_count(n: int) -> str:
    """An exact count with thousands separators; past 24 digits, 2^k (or d.ddd x 10^e) with
    its number of digits. Never goes through a float, and never asks Python for a decimal
    string of a huge int (which it refuses past 4,300 digits)."""
    if n < 10 ** 24:
        return f"{n:,}"
    digits = num_digits(n)
    if n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1} ({digits:,} digits)"
    lead = n // _pow10(digits - 4)  # the first four digits, exactly
    return f"{lead // 1000}.{lead % 1000:03d} x 10^{digits - 1} ({digits:,} digits)"


def num_digits(n: int) -> int:
    """Decimal digits of n >= 1, from its bit length, corrected exactly."""
    d = int((n.bit_length() - 1) * 0.30102999566398120) + 1  # log10(2)
    while n >= _pow10(d):
        d += 1
    while d > 1 and n < _pow10(d - 1):
        d -= 1
    return d


@lru_cache(maxsize=64)
def _pow10(d: int) -> int:
    return 10 ** d


# ---- tables ----------------------------------------------------------------------------------
def central_range(dist: dict[int, int], share: float = 0.95) -> tuple[int, int]:
    """The shortest-from-both-ends range of lengths holding at least `share` of the paths
    (Veit et al.: 95% of ResNet-110's paths have length 19 to 35)."""
    total = sum(dist.values())
    keys = sorted(dist)
    # exact integer comparison: the counts may be far beyond a float's range (2^100000)
    num, den = Fraction(share).limit_denominator(10 ** 6).as_integer_ratio()
    lo, hi, inside = 0, len(keys) - 1, total
    while lo < hi:
        drop = dist[keys[lo]] if dist[keys[lo]] <= dist[keys[hi]] else dist[keys[hi]]
        if (inside - drop) * den < num * total:
            break
        inside -= drop
        if dist[keys[lo]] <= dist[keys[hi]]:
            lo += 1
        else:
            hi -= 1
    return keys[lo], keys[hi]


@lru_cache(maxsize=2)
def binomial_row(T: int) -> dict[int, int]:
    """{k: C(T, k)} for k = 0..T, each from the one before (exact; fast for T = 100,000).
    Cached: do not change the dict returned."""
    out, c = {}, 1
    for k in range(T + 1):
        out[k] = c
        c = c * (T - k) // (k + 1)
    return out


def length_table(dist: dict[int, int], binomial_T: int | None = None) -> str:
    """The length distribution as text: length, paths, share, a bar; and when binomial_T is
    given, the binomial coefficient C(T, k) beside each count (they are equal for a chain)."""
    total = sum(dist.values())
    if not total:
        return "no paths"
    top = max(dist.values())
    head = f"{'length':>6}  {'paths':>26}  {'share':>8}"
    if binomial_T is not None:
        head += f"  {'C(T,k)':>26}"
    lines = [head]
    row_T = binomial_row(binomial_T) if binomial_T is not None else {}
    shown = sorted(dist)
    if len(shown) > 40:  # long tails of tiny shares say nothing in a table
        shown = [k for k in shown if dist[k] / total >= 1e-4]
    for k in shown:
        c = dist[k]
        bar = "#" * max(1, round(30 * c / top)) if c else ""  # int / int: exact, no overflow
        row = f"{k:>6}  {fmt_count(c):>26}  {c / total:>8.2%}"
        if binomial_T is not None:
            row += f"  {fmt_count(row_T[k]):>26}"
        lines.append(f"{row}  {bar}")
    # moments from integer sums, divided once: (k - mean)^2 * c would turn c into a float
    s1 = sum(k * c for k, c in dist.items())
    s2 = sum(k * k * c for k, c in dist.items())
    mean = s1 / total
    var = max((s2 * total - s1 * s1) / (total * total), 0.0)
    a, b = central_range(dist)
    if len(shown) < len(dist):
        lines.append(f"({len(dist) - len(shown)} lengths outside {shown[0]}..{shown[-1]}, each "
                     "holding less than 0.01% of the paths, are not listed)")
    lines.append(f"total {fmt_count(total)} paths; mean length {mean:.2f}, std {var ** 0.5:.2f}; "
                 f"95% of paths have length {a} to {b}")
    return "\n".join(lines)


# ---- paths inside one module call (a collapsed block keeps its skip) --------------------------
def paths_within(graph: Graph, call: int, leaf: Graph | None = None) -> int:
    """The number of paths from a module call's inputs to its output through the leaf modules
    inside it: 2 for a residual block (branch and skip), 1 for a plain stack of layers.
    graph: the traced forward graph; call: a key of graph.calls; leaf: graph.module_graph(),
    when the caller already has it."""
    g = leaf if leaf is not None else graph.module_graph()
    values = ("param", "buffer", "const")
    inside = [n for n in g.nodes if call in n.scope and n.kind not in values]
    ids = {n.id for n in inside}
    count: dict[int, int] = {}
    for n in inside:
        outside = sum(1 for i in n.inputs if i not in ids and g.nodes[i].kind not in values)
        count[n.id] = outside + sum(count[i] for i in n.inputs if i in ids)
    consumers = g.consumers()
    outs = [n for n in inside if n.id in g.outputs or any(c not in ids for c in consumers[n.id])]
    return count[outs[-1].id] if outs else 1
