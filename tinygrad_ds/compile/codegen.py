"""Code generation: a fused group becomes the Python source of one numba kernel.

The kernel has the group's shapes as constants (loop bounds), reads each outside operand once
per element (broadcast operands at index 0 along their size-1 axes), keeps every intermediate in
a local variable, writes the values needed outside into the output arrays it is given (the plan
owns them) and the folded assigns into their targets. 0-d constants are literals in the source.

    src = group_source(graph, group)      # readable: a comment names the graph nodes
    kernel = load_kernel(src)             # compiled once; cached on disk by a hash of the source

The cache folder is $TDS_CACHE, else ~/.cache/tinygrad_ds, subfolder kernels/. Each kernel is a
module file named after its ops and the hash of its code; importing it lets numba's own cache
(cache=True, beside the file) skip compiling in the next process. The comment naming the graph
nodes is kept out of the hashed code, so equal loops in different layers share one kernel.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..backend import threads
from ..graph.ir import Graph
from .fusion import Group

_loaded: dict[str, object] = {}  # hash -> kernel (this process)
TILE = 32
stats = {"written": 0, "loaded": 0}


def cache_dir() -> Path:
    base = os.environ.get("TDS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "tinygrad_ds")
    return Path(base) / "kernels"


def _np(dtype) -> str:
    return {"float32": "np.float32", "float64": "np.float64", "int64": "np.int64",
            "bool": "np.bool_"}[str(np.dtype(dtype))]


def _literal(value: np.ndarray) -> str:
    v = value.item()
    t = _np(value.dtype)
    if isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return f"{t}({v})"
    if math.isnan(v):
        return f"{t}(np.nan)"
    if math.isinf(v):
        return f"{t}({'-' if v < 0 else ''}np.inf)"
    return f"{t}({v!r})"


def kernel_name(graph: Graph, group: Group) -> str:
    ops: list[str] = []
    for m in group.members:
        op = graph.nodes[m].op
        if op not in ops:
            ops.append(op)
    name = "_".join(ops[:4]) + ("_etc" if len(ops) > 4 else "")
    return f"fused_{name}"


def _index(shape: tuple, out_shape: tuple) -> str:
    """The subscript that reads an operand of `shape` at the loop's indices."""
    if not shape:
        return "[()]"
    lead = len(out_shape) - len(shape)
    parts = [f"i{lead + k}" if s != 1 else "0" for k, s in enumerate(shape)]
    return "[" + ", ".join(parts) + "]"


def group_source(graph: Graph, group: Group) -> tuple[str, str]:
    """(code, header): the kernel's code (what is hashed and compiled) and a comment naming
    the graph nodes it computes."""
    shape = group.shape
    name = kernel_name(graph, group)
    # an operand read through a permutation is read across rows: walk the last two axes in
    # TILE x TILE blocks, so that its reads and the writes of the outputs both stay in cache
    tiled = len(shape) >= 2 and min(shape[-2:]) > TILE and bool(group.views)
    ind = "    " * (len(shape) + 1 + 2 * tiled)
    body, params, outs, header = group_body(graph, group, ind)
    nodes = graph.nodes
    # batch_norm's apply rounds as the cpu kernel does only with its flags (fused multiply-add)
    fast = ", fastmath={'contract'}" if any(nodes[m].op == "batch_norm" for m in group.members) \
        else ""
    r = len(shape)
    # the outer loop runs over [lo, hi): SplitKernel shares its range out among threads
    split = r >= 1 and not (tiled and r == 2)
    if split:
        params = params + ["lo", "hi"]
    lines = ["import numpy as np", "from numba import njit", ""]
    if split:  # load_kernel reads it: the plan calls the kernel with the arrays alone
        lines += [f"OUTER = {shape[0]}  # i0 runs over [lo, hi) of range(OUTER)", ""]
    lines += ["", f"@njit(cache=True, nogil=True, error_model='numpy'{fast})",
              f"def {name}({', '.join(params)}):"]
    for m, o in outs.items():
        lines.append(f"    # {o}: {shape!r} {nodes[m].dtype}, written here")
    # untiled, each line goes in the outermost loop that binds its indices (_hoist)
    placed = _hoist(body, r) if r and not tiled else None
    for k, s in enumerate(shape[:r - 2] if tiled else shape):
        bounds = "lo, hi" if k == 0 and split else f"{s}"
        lines.append("    " * (k + 1) + f"for i{k} in range({bounds}):")
        if placed is not None:
            lines += ["    " * (k + 2) + line for line in placed[k]]
    if placed is not None:
        return "\n".join(lines) + "\n", header
    if tiled:
        a, b = r - 2, r - 1
        pad = "    " * (r - 1)
        lines += [f"{pad}for j{a} in range(0, {shape[a]}, {TILE}):",
                  f"{pad}    for j{b} in range(0, {shape[b]}, {TILE}):",
                  f"{pad}        for i{a} in range(j{a}, min(j{a} + {TILE}, {shape[a]})):",
                  f"{pad}            for i{b} in range(j{b}, min(j{b} + {TILE}, {shape[b]})):"]
    lines += body
    return "\n".join(lines) + "\n", header


_NAME = re.compile(r"\b[a-z]\w*\b")


def _hoist(body: list[str], r: int) -> list[list[str]]:
    """The body's lines (one element's work, innermost) by the loop they belong in: a line
    computing a local from values that vary only with i0..ik goes into loop k. A per-channel
    operand's read (batch_norm's scale and shift: float64 work) then runs once per channel
    instead of once per element; LLVM cannot move it out itself, since a store to an output
    might, for all it knows, change the operand. Stores stay in the innermost loop."""
    level: dict[str, int] = {f"i{k}": k for k in range(r)}
    out: list[list[str]] = [[] for _ in range(r)]
    for line in body:
        text = line.strip()
        target, _, expr = text.partition(" = ")
        k = max((level[w] for w in _NAME.findall(expr) if w in level), default=0)
        if target.isidentifier():
            level[target] = k
        else:  # a store (output or folded assign)
            k = r - 1
        out[k].append(text)
    return out


# how the math functions are written in the generated source: numpy's on the cpu (numba.cuda
# has math's, see cuda_codegen.py)
NUMPY_FUNCS = {"exp": "np.exp({0})", "log": "np.log({0})", "sqrt": "np.sqrt({0})",
               "abs": "np.abs({0})", "sign": "np.sign({0})", "tanh": "np.tanh({0})"}


def group_body(graph: Graph, group: Group, ind: str, funcs: dict = NUMPY_FUNCS
               ) -> tuple[list[str], list[str], dict[int, str], str]:
    """The lines computing one element of the group at the indices i0, i1, ... (each indented
    by `ind`): reads of the outside operands, the members' values, the stores. Also the
    kernel's parameter names (inputs a0.., then outputs o0..), the outputs {node: name} and
    the header comment naming the graph nodes. cpu and cuda kernels differ only around it."""
    nodes = graph.nodes
    shape = group.shape
    name = kernel_name(graph, group)
    args = {i: f"a{k}" for k, i in enumerate(group.inputs)}
    var: dict[int, str] = {}
    # how each outside operand is read: at the loop's own (broadcast) index, or, for
    # batch_norm's per-channel operands, at the channel index i1
    loads: dict[tuple[int, str], str] = {}

    def use(m: int, pos: int) -> str:
        i = nodes[m].inputs[pos]
        if i in group.views:  # x.permute(axes) at index (j...) is x at (j[axes.index(k)]...)
            parts = _index(nodes[i].shape, shape)[1:-1].split(", ")
            axes = nodes[i].attrs["axes"]
            src = group.views[i]
            idx = "[" + ", ".join(parts[axes.index(k)] for k in range(len(axes))) + "]"
            return loads.setdefault((src, idx), f"x{len(loads)}")
        if i not in args:
            return var[i]
        idx = "[i1]" if nodes[m].op == "batch_norm" and pos > 0 else \
            _index(nodes[i].shape, shape)
        return loads.setdefault((i, idx), f"x{len(loads)}")

    for i in {i for m in group.members for i in nodes[m].inputs}:
        if i not in args and nodes[i].kind == "const":
            var[i] = _literal(np.asarray(nodes[i].value))
    outs = {m: f"o{k}" for k, m in enumerate(group.outputs)}
    local = {m: f"t{k}" for k, m in enumerate(group.members)}  # by position: equal loops of
    # different layers get equal code, hence one kernel
    body: list[str] = []
    stores: list[str] = []
    for m in group.members:
        n = nodes[m]
        if n.op == "assign":
            dst, src = n.inputs
            value = var[src] if src in var else use(m, 1)
            stores.append(f"{ind}{args[dst]}{_index(shape, shape)} = "
                          f"{_cast(value, nodes[src].dtype, nodes[dst].dtype)}")
            var[m] = value
            continue
        t = local[m]
        operands = [use(m, k) for k in range(len(n.inputs))]
        for line in _expr(n, t, operands, [nodes[i].dtype for i in n.inputs], funcs):
            body.append(ind + line)
        var[m] = t
        if m in outs:
            stores.append(f"{ind}{outs[m]}{_index(shape, shape)} = {t}")
    # loads first: every outside operand is read before anything is stored (a folded assign
    # may write the memory another operand reads, at the same element)
    body = [f"{ind}{x} = {args[i]}{idx}" for (i, idx), x in loads.items()] + body + stores
    params = [args[i] for i in group.inputs] + list(outs.values())
    header = [f"# {name}: {len(group.members)} graph nodes over shape {shape}"]
    for m in group.members:
        n = nodes[m]
        where = f" in {n.module}" if n.module else ""
        header.append(f"#   {local[m]} = #{m} {n.op}("
                      f"{', '.join(var.get(i, args.get(i, f'#{i}')) for i in n.inputs)}){where}")
    for i in group.inputs:
        header.append(f"#   {args[i]}: node #{i} ({nodes[i].name or nodes[i].op}, "
                      f"{nodes[i].shape}, {nodes[i].dtype})")
    return body, params, outs, "\n".join(header) + "\n"


def _cast(v: str, src, dst) -> str:
    return v if np.dtype(src) == np.dtype(dst) else _convert(v, src, dst)


def _convert(v: str, src, dst) -> str:
    if np.dtype(dst) == np.bool_:
        return f"({v} != 0)"
    return f"{_np(dst)}({v})"


def _expr(n, t: str, a: list[str], dts: list, funcs: dict = NUMPY_FUNCS) -> list[str]:
    """Lines computing node n into local t from operand expressions a."""
    T = _np(n.dtype)
    op = n.op
    zero = f"{T}(0)"
    arith = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
    cmp = {"less": "<", "less_equal": "<=", "equal": "==", "not_equal": "!="}
    if op in arith:
        return [f"{t} = {T}({a[0]} {arith[op]} {a[1]})"]
    if op in cmp:
        return [f"{t} = {a[0]} {cmp[op]} {a[1]}"]
    if op == "neg":
        return [f"{t} = {T}(-{a[0]})"]
    if op in ("exp", "log", "sqrt", "abs", "sign", "tanh"):
        return [f"{t} = {T}({funcs[op].format(a[0])})"]
    if op == "relu":
        return [f"{t} = {a[0]} if ({a[0]} > {zero} or {a[0]} != {a[0]}) else {zero}"]
    if op == "maximum":  # nan wins, as in numpy
        return [f"{t} = {a[0]} if ({a[0]} > {a[1]} or {a[0]} != {a[0]}) else {a[1]}"]
    if op == "minimum":
        return [f"{t} = {a[0]} if ({a[0]} < {a[1]} or {a[0]} != {a[0]}) else {a[1]}"]
    if op == "sigmoid":  # exp of a non-positive number only, as the cpu kernel
        return [f"{t}e = {T}({funcs['exp'].format('-' + funcs['abs'].format(a[0]))})",
                (f"{t} = {T}({T}(1) / ({T}(1) + {t}e)) if {a[0]} >= {zero} else "
                 f"{T}({t}e / ({T}(1) + {t}e))")]
    if op == "leaky_relu":
        slope = _literal(np.asarray(n.attrs["negative_slope"], dtype=n.dtype))
        return [f"{t} = {a[0]} if {a[0]} > {zero} else {T}({a[0]} * {slope})"]
    if op == "where":
        return [f"{t} = {a[1]} if {a[0]} else {a[2]}"]
    if op == "batch_norm":  # as the cpu kernel: per-channel scale and shift, then x*scale+shift
        x, w, b, mean, inv = a
        return [f"{t}s = np.float64({inv}) * {w}",
                f"{t}b = {T}({b} - {mean} * {t}s)",
                f"{t} = {T}({x} * {T}({t}s) + {t}b)"]
    if op == "copy":
        return [f"{t} = {a[0]}"]
    if op == "cast":
        return [f"{t} = {_cast(a[0], dts[0], n.dtype)}"]
    raise NotImplementedError(op)


def load_kernel(code: str):
    """The compiled kernel of `code` (the function it defines): from this process's table, or
    the module file in the cache folder (written now if missing), numba loading its own cache."""
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    kernel = _loaded.get(digest)
    if kernel is not None:
        return kernel
    name = code.split("def ", 1)[1].split("(", 1)[0]
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    modname = f"tds_{name[:60]}_{digest}"
    path = folder / f"{modname}.py"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(code)
        os.replace(tmp, path)  # atomic: another process may be writing the same kernel
        stats["written"] += 1
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    kernel = getattr(module, name)
    outer = getattr(module, "OUTER", None)
    if outer is not None:  # an outer range to share out
        kernel = SplitKernel(kernel, outer)
    _loaded[digest] = kernel
    stats["loaded"] += 1
    return kernel


class SplitKernel:
    """A generated kernel whose outer loop runs over [lo, hi): called with the arrays alone, it
    computes all of [0, n), shared out among the CPU kernels' threads (backend/threads.py) in
    parts when the arrays are large (PARALLEL_ELEMENTS), else in one call. Elementwise loops
    write each element once from the same element's operands, so parts never overlap."""

    PARALLEL_ELEMENTS = 1 << 18

    def __init__(self, fn, n: int):
        self.fn = fn
        self.n = n
        self.size = None  # its largest array's size: fixed, as the source fixes the shapes
        self.__name__ = fn.__name__

    def __getattr__(self, name: str):  # the numba dispatcher's: stats, signatures, py_func
        return getattr(self.fn, name)

    def __call__(self, *arrays):
        fn = self.fn
        size = self.size
        if size is None:
            size = self.size = max((a.size for a in arrays if hasattr(a, "size")), default=0)
        if size < self.PARALLEL_ELEMENTS:
            # NOTE: called directly, not through map_ordered's one-part path, which costs 4 to
            # 5 us a call (its BLAS guard; these loops call no BLAS): a tenth of an MLP step
            fn(*arrays, 0, self.n)
            return
        threads.map_ordered(lambda r: fn(*arrays, *r),
                            threads.split(self.n, size, self.PARALLEL_ELEMENTS))
