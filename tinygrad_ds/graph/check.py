"""check_graph: verify that a Graph is a well-formed program.

- topological order: every node's inputs come before it, and exist;
- kinds: an op has its Function, an aux node points at an op, state has a source, no value was
  made outside the ops ('opaque');
- shapes and dtypes: each op's forward, run on shape-only arrays (the meta backend's shape
  rules), gives the shape and dtype recorded for it; an aux node's is that op's saved value's.
"""
from __future__ import annotations

from ..autograd import Context
from ..backend.meta import MetaArray
from ..errors import TdsError, fmt_shape


class GraphError(TdsError):
    """A graph that is not a well-formed program; the message lists each problem."""


def _describe(n) -> str:
    where = f" in module {n.module}" if n.module else ""
    return f"node #{n.id} ({n.kind} '{n.name or n.op}'{where})"


def check_graph(graph) -> None:
    problems: list[str] = []
    ids = {n.id for n in graph.nodes}
    metas: dict[int, MetaArray] = {}
    saved: dict[int, tuple] = {}
    for pos, n in enumerate(graph.nodes):
        if n.id != pos:
            problems.append(f"{_describe(n)} is at position {pos}: ids must be positions")
        bad = [i for i in n.inputs if i not in ids or i >= n.id]
        if bad:
            problems.append(f"{_describe(n)} reads node(s) {bad} that are not defined before it")
            continue
        if n.kind == "op":
            if n.fn is None:
                problems.append(f"{_describe(n)} has no op to run")
                continue
            ctx = Context(n.fn, (), n.attrs)
            try:
                out = n.fn.forward(ctx, *[metas[i] for i in n.inputs], **n.attrs)
            except Exception as e:  # noqa: BLE001 - reported with the node
                problems.append(f"{_describe(n)}: its shape rule fails on inputs "
                                f"{', '.join(fmt_shape(metas[i].shape) for i in n.inputs)}: {e}")
                metas[n.id] = MetaArray(n.shape, n.dtype)
                continue
            if not isinstance(out, MetaArray):
                problems.append(f"{_describe(n)}: its forward did not go through the kernel "
                                f"table (it gave {type(out).__name__} on shape-only inputs)")
                out = MetaArray(n.shape, n.dtype)
            _compare(n, out, problems)
            metas[n.id], saved[n.id] = out, ctx.saved
        elif n.kind == "aux":
            if not n.inputs or graph.nodes[n.inputs[0]].kind != "op":
                problems.append(f"{_describe(n)} is not the output of an op")
                continue
            values = saved.get(n.inputs[0], ())
            k = n.attrs.get("index", -1)
            if not 0 <= k < len(values) or not isinstance(values[k], MetaArray):
                problems.append(f"{_describe(n)}: its op saves no array at index {k}")
                metas[n.id] = MetaArray(n.shape, n.dtype)
                continue
            _compare(n, values[k], problems)
            metas[n.id] = values[k]
        elif n.kind == "opaque":
            problems.append(f"{_describe(n)} ({fmt_shape(n.shape)}) was made outside the ops "
                            "while tracing: the graph cannot compute it")
            metas[n.id] = MetaArray(n.shape, n.dtype)
        else:
            if n.kind in ("param", "buffer", "state") and n.source is None:
                problems.append(f"{_describe(n)} has no source to read it from")
            metas[n.id] = MetaArray(n.shape, n.dtype) if n.dtype.kind != "O" else n.value.data
    for i in graph.outputs:
        if i not in ids:
            problems.append(f"output {i} is not a node of the graph")
    for kind, pid, vid in getattr(graph, "effects", ()):
        if pid not in ids or vid not in ids or graph.nodes[pid].kind != "param":
            problems.append(f"effect {kind} ({pid} <- {vid}) does not name a parameter and a "
                            "value of the graph")
    if problems:
        raise GraphError(f"{len(problems)} problem(s) in the graph:\n  " + "\n  ".join(problems))


def _compare(n, out: MetaArray, problems: list[str]) -> None:
    if tuple(out.shape) != tuple(n.shape) or out.dtype != n.dtype:
        problems.append(f"{_describe(n)} records {fmt_shape(n.shape)} {n.dtype}, its shape rule "
                        f"gives {fmt_shape(out.shape)} {out.dtype}")
