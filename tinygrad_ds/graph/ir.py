"""The Graph IR: a closed program that `trace` records, the visualizer draws and `run` replays.

A Graph is a list of `Node`s in execution order (so the list is a topological order). A node is
one op (its `Function` class, attributes, input node ids, output shape and dtype, and the module
call that ran it), a second output of an op that its backward reads ('aux'), or a value that no
op made: the inputs, and the named state read when the graph runs (parameters, buffers, an
optimizer's buffers and learning rate, the random generator), and constants. Writes into state
are op nodes ('assign'); the gradients a traced step leaves in `.grad` are `effects`. `calls`
describes the module calls (`layer2.0.conv1`, a Conv2d, called inside `layer2.0`), so the graph
can be looked at any depth of the module tree (`module_graph`).

This module holds the data; running (`run.py`), checking (`check.py`), summaries, collapsing,
path analysis and export live beside it and read it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import TdsError, fmt_shape

# What reads a Graph lives beside this module (backward.py, collapse.py, summary.py, run.py,
# check.py) and imports it; graph/__init__.py plugs those functions in here, so that the Graph's
# methods reach them without this module importing any of them.
_beside: dict[str, Callable] = {}

# Jupyter display: the library does not import viz (viz imports the library), so viz registers
# its drawer here (register_display) when it is imported.
_display: list[Callable[[Graph], str]] = []


def register_display(draw_svg: Callable[[Graph], str]) -> None:
    """Make `draw_svg(graph) -> SVG text` what a Graph shows in Jupyter."""
    _display[:] = [draw_svg]


@dataclass
class Node:
    """One value of the graph.

    kind: 'input' | 'param' | 'buffer' | 'state' (optimizer state, hyperparameters, the random
    generator) | 'const' | 'op' | 'aux' (value `attrs['index']` an op saved for its backward:
    inputs = (that op,)) | 'module' (a collapsed module call) | 'ref' (backward graph: a value of
    the forward graph; `ref` is its forward node id) | 'opaque' (a value made outside any op: it
    cannot be replayed).
    """

    id: int
    kind: str
    op: str                      # op name ('conv2d', 'add'), or the kind for values
    shape: tuple[int, ...]
    dtype: np.dtype
    inputs: tuple[int, ...] = ()
    attrs: dict = field(default_factory=dict)
    fn: Any = None               # the autograd Function class (op nodes)
    module: str = ""             # dotted path of the innermost module call ('' = top level)
    scope: tuple[int, ...] = ()  # call ids, outermost first (Graph.calls)
    name: str = ""               # params/buffers: state_dict key; inputs: 'input'
    value: Any = None            # const: the array; param/buffer/state: the Tensor traced
    source: Any = None           # param/buffer/state: () -> the Tensor to read when it runs
    params: tuple[int, ...] = ()  # the param/buffer node ids among the inputs (or inside a module)
    residual: dict | None = None  # residual add: {'skip': node id, 'branch': node id, 'block': path}
    ref: int | None = None       # backward graph: the forward node this value (or grad) is of
    members: tuple[int, ...] = ()  # module nodes: the op node ids inside

    @property
    def label(self) -> str:
        return self.name or self.module or self.op


@dataclass
class Call:
    """One call of a module's forward: path `layer2.0.conv1`, type 'Conv2d', parent call id."""

    id: int
    path: str
    type: str
    parent: int | None
    depth: int
    leaf: bool                   # a module with no sub-modules (Conv2d, ReLU, BatchNorm2d)


class Graph:
    """A traced computation. `nodes` in execution order; `inputs`, `outputs` are node ids."""

    def __init__(self, nodes: list[Node], inputs: list[int], outputs: list[int],
                 calls: dict[int, Call], *, kind: str = "forward", mode: str | None = "eval",
                 model: Any = None, forward: Graph | None = None,
                 effects: list[tuple] | None = None):
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.calls = calls
        # 'forward' (a model's), 'program' (any traced function: a training step), 'backward',
        # or 'module' (module_graph's result)
        self.kind = kind
        self.mode = mode            # 'eval' or 'train': the mode a model was traced in
        # ('grad', param node id, value node id): the gradient the traced call left in .grad
        self.effects = list(effects or ())
        self.model = model
        self.forward = forward      # backward graphs: the forward graph they differentiate
        self._tape: dict[int, Any] = {}      # op node id -> autograd Context (for backward())
        self._tensors: dict[int, Any] = {}   # node id -> the shape-only Tensor traced
        self._backward: Graph | None = None

    # ---- reading ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def __iter__(self):
        return iter(self.nodes)

    def op_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "op"]

    def edges(self) -> list[tuple[int, int]]:
        """(producer id, consumer id) for every input of every node (repeats kept)."""
        return [(i, n.id) for n in self.nodes for i in n.inputs]

    def consumers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.id)
        return out

    def residual_adds(self) -> list[Node]:
        return [n for n in self.nodes if n.residual]

    def num_parameters(self) -> int:
        """Elements in the parameters the graph reads (the model's own count when traced from
        a model: unused parameters included)."""
        if self.model is not None and hasattr(self.model, "num_parameters"):
            return int(self.model.num_parameters())
        return sum(int(np.prod(n.shape)) for n in self.nodes if n.kind == "param")

    def __repr__(self) -> str:
        ins = ", ".join(fmt_shape(self.nodes[i].shape) for i in self.inputs)
        outs = ", ".join(fmt_shape(self.nodes[i].shape) for i in self.outputs)
        return (f"<{self.kind} Graph: {len(self.op_nodes())} ops, {len(self.nodes)} nodes, "
                f"input {ins} -> output {outs}>")

    # ---- derived views -----------------------------------------------------------------------------
    def backward(self) -> Graph:
        """The backward pass as a graph, derived from the ops' gradient rules (run on
        shape-only arrays): inputs are the output gradients ('grad_output'), outputs the
        gradients of the parameters and of the input. Forward values it reads are 'ref' nodes."""
        if self.kind != "forward":
            raise TdsError(f"backward() of a {self.kind} graph: take it of the traced forward graph")
        if self._backward is None:
            self._backward = _beside["backward"](self)
        return self._backward

    def module_graph(self, depth: int | None = None) -> Graph:
        """The graph with module calls collapsed into single 'module' nodes: each call of a leaf
        module (Conv2d, BatchNorm2d, ReLU) when depth is None, else each call at that depth of
        the module tree (1: the model's children). Ops outside such calls stay op nodes."""
        return _beside["module_graph"](self, depth)

    def summary(self):
        """A table (module, type, output shape, parameters, multiply-adds) with totals, as
        Keras's model.summary(); `str()` it to print."""
        return _beside["summary"](self)

    # ---- running again -----------------------------------------------------------------------------
    def run(self, *inputs, return_all: bool = False):
        """Execute the recorded ops on real arrays, with the same effects as the traced call:
        `graph.run(x)` equals `model(x)`, and a traced training step's `graph.run(x, y)`
        returns the loss and updates the parameters, the optimizer's state and the batch-norm
        statistics in place. State is read as it is now. Inputs may have another batch size
        when no op fixed it. return_all: also return {node id: Tensor} of every value."""
        return _beside["run"](self, inputs, return_all)

    def check(self) -> Graph:
        """Verify the graph: topological order, every input defined, and each op's output shape
        and dtype what its shape rule gives for its inputs. Raises GraphError listing what is
        wrong; returns the graph."""
        _beside["check"](self)
        return self

    # ---- export ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "mode": self.mode,
            "inputs": list(self.inputs), "outputs": list(self.outputs),
            "nodes": [_node_dict(n) for n in self.nodes],
            "calls": [{"id": c.id, "path": c.path, "type": c.type, "parent": c.parent,
                       "depth": c.depth, "leaf": c.leaf} for c in self.calls.values()],
        }

    def to_json(self, indent: int | None = 1) -> str:
        """The graph as JSON: nodes (id, kind, op, attrs, inputs, shape, dtype, module, ...),
        the module calls, inputs and outputs. Arrays in attributes become shape summaries."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_onnx(self, path: str, opset: int = 17, dynamic_batch: bool | None = None):
        """Write this forward graph (traced in eval mode) as an ONNX inference model that
        onnxruntime runs with eager's outputs. Parameters and buffers become initializers with
        their values as they are now. The batch axis is left free ('N') when the ops allow it
        (dynamic_batch=True requires it, False fixes it). Returns what was written (an
        OnnxExport: path, opset, node and parameter counts, the ModelProto). Needs the onnx
        package (pip install tinygrad-ds[onnx])."""
        return _beside["to_onnx"](self, path, opset, dynamic_batch)

    # ---- Jupyter -------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": repr(self)}
        if _display:
            try:
                bundle["image/svg+xml"] = _display[0](self)
            except Exception:  # noqa: BLE001 - no dot: the text form still displays
                pass
        return bundle


def _jsonable(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.dtype):
        return str(v)
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, slice):
        return {"slice": [v.start, v.stop, v.step]}
    if isinstance(v, np.ndarray):
        if v.size <= 16:
            return {"array": v.tolist(), "dtype": str(v.dtype)}
        return {"array_shape": list(v.shape), "dtype": str(v.dtype)}
    if v is Ellipsis:
        return "..."
    return repr(v)


def _node_dict(n: Node) -> dict:
    d = {"id": n.id, "kind": n.kind, "op": n.op, "inputs": list(n.inputs),
         "shape": list(n.shape), "dtype": str(n.dtype), "module": n.module}
    if n.attrs:
        d["attrs"] = _jsonable(n.attrs)
    if n.name:
        d["name"] = n.name
    if n.params:
        d["params"] = list(n.params)
    if n.residual:
        d["residual"] = dict(n.residual)
    if n.ref is not None:
        d["ref"] = n.ref
    if n.members:
        d["members"] = list(n.members)
    if n.kind == "const" and isinstance(n.value, np.ndarray) and n.value.size <= 16:
        d["value"] = n.value.tolist()
    return d
