"""to_onnx: write a traced forward Graph as an ONNX inference model (opset 17 or later).

    g = tds.trace(model, (1, 3, 32, 32))     # eval mode
    g.to_onnx("model.onnx")                  # onnxruntime then runs it with eager's outputs

The graph's inputs become the model's inputs ('input', 'input1', ...); its outputs 'output',
'output1', ...; the parameters and buffers it reads become initializers named by their
`state_dict` keys, with their values as they are now (not at trace time); constants become
initializers too. Each op node becomes one or a few ONNX nodes (`onnx_ops.py`), named
`module/op#id` so that a viewer such as Netron shows which layer each came from. Only the nodes
the outputs depend on are written (an eval-mode forward's values saved for backward are not).

The batch axis is left free ('N') when every op lets it be (`onnx_batch.py`); otherwise the
model is written for the traced batch size, and the result says which op fixed it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import fmt_shape
from .ir import Graph, Node
from .onnx_ops import OnnxExportError

DEFAULT_OPSET = 17
MIN_OPSET = 17




@dataclass
class OnnxExport:
    """What to_onnx wrote: the file, the opset, ONNX node count, parameter elements, and
    whether the batch axis is free (`batch` None) or which op fixed it."""

    path: str
    opset: int
    nodes: int
    parameters: int
    initializers: int
    inputs: list[tuple[str, tuple]]    # (name, shape: 'N' for a free batch axis)
    outputs: list[tuple[str, tuple]]
    fixed_batch: str | None            # None: the batch axis is free; else which op fixed it
    model: Any = None                  # the onnx.ModelProto

    def __str__(self) -> str:
        def sig(vals):
            return ", ".join(f"{name} ({', '.join(str(s) for s in shape)})"
                             for name, shape in vals)
        batch = self.fixed_batch or "batch axis free (N)"
        return (f"wrote {self.path}: ONNX opset {self.opset}, {self.nodes} nodes, "
                f"{self.parameters:,} parameters ({self.initializers} initializers)\n"
                f"  inputs {sig(self.inputs)} -> outputs {sig(self.outputs)}; {batch}")


def import_onnx():
    try:
        import onnx
    except ImportError:
        raise OnnxExportError("ONNX export needs the onnx package: pip install "
                              "tinygrad-ds[onnx] (or pip install onnx onnxruntime)") from None
    return onnx


def where(n: Node) -> str:
    return f"op #{n.id} '{n.op}' in module {n.module or '(top level)'}"


def _output_name(k: int) -> str:
    return "output" if k == 0 else f"output{k}"


def _live(graph: Graph) -> list[Node]:
    """The nodes the outputs depend on, in graph order."""
    need = set(graph.outputs)
    for n in reversed(graph.nodes):
        if n.id in need:
            need.update(n.inputs)
    return [n for n in graph.nodes if n.id in need]


def _host(n: Node) -> np.ndarray:
    """The array a param/buffer node reads now, on the host."""
    data = n.source().data
    if tuple(data.shape) != tuple(n.shape):
        raise OnnxExportError(f"to_onnx: {n.kind} '{n.name}' has shape {fmt_shape(data.shape)} "
                              f"now, {fmt_shape(n.shape)} when traced: trace again")
    if hasattr(data, "copy_to_host"):  # a device array
        data = data.copy_to_host()
    return np.ascontiguousarray(np.asarray(data))


# ops whose ONNX form needs one dtype on its (data) operands, where numpy promotes
# (the value: the first such operand; where's mask is bool)
_PROMOTE = {op: 0 for op in ("add", "mul", "div", "pow", "maximum", "minimum", "less",
                             "less_equal", "equal", "not_equal", "matmul", "concat")}
_PROMOTE["where"] = 1


def _same_type(b, n: Node, ins: list[str], srcs: list[Node]) -> list[str]:
    """Cast the operands of an op that numpy would promote (float32 @ float64) to the common
    dtype, as ONNX requires one type."""
    if n.op not in _PROMOTE:
        return ins
    first = _PROMOTE[n.op]
    dtypes = [np.dtype(s.dtype) for s in srcs[first:]]
    common = np.result_type(*dtypes)
    if all(d == common for d in dtypes):
        return ins
    from .onnx_ops import _tensor_type

    out = list(ins)
    for k in range(first, len(ins)):
        if np.dtype(srcs[k].dtype) != common:
            out[k] = b.op("Cast", [ins[k]], to=_tensor_type(common))
    return out


def _check_graph(graph: Graph, opset: int, onnx) -> None:
    if graph.kind != "forward":
        what = {"program": "a traced function (a training step: loss, backward, optimizer)",
                "backward": "a backward graph", "module": "a collapsed module graph"}
        raise OnnxExportError(
            f"to_onnx: this is {what.get(graph.kind, f'a {graph.kind} graph')}; ONNX export "
            "writes an inference graph: trace the model's forward, tds.trace(model, "
            "input_shape), and export that")
    if graph.mode == "train":
        raise OnnxExportError(
            "to_onnx: the graph was traced in train mode (batch statistics, dropout masks, "
            "running-statistic updates); ONNX export writes an inference graph: trace in eval "
            "mode, tds.trace(model, input_shape) (the default)")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise OnnxExportError(f"to_onnx: opset {opset} is not supported: give {MIN_OPSET} to "
                              f"{newest} (the installed onnx package's newest)")


def export_onnx(graph: Graph, path: str, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool | None = None) -> OnnxExport:
    """Write `graph` (a forward graph traced in eval mode) to `path` as an ONNX model.

    dynamic_batch: None leaves the batch axis free when the ops allow it; True requires it (an
    error names the op that fixes it); False writes the traced batch size."""
    onnx = import_onnx()
    from onnx import helper

    from .onnx_batch import batch_axes
    from .onnx_ops import EMIT, Builder

    _check_graph(graph, opset, onnx)
    live = _live(graph)
    fixed = None
    axes: dict[int, int | None] = {}
    if dynamic_batch is not False:
        axes, fixed = batch_axes(graph, live)
        if fixed is not None and dynamic_batch:
            raise OnnxExportError(f"to_onnx: the batch axis cannot be left free: {fixed}")
    out_names: dict[int, str] = {}
    for k, oid in enumerate(graph.outputs):
        out_names.setdefault(oid, _output_name(k))
    b = Builder(onnx, opset, reserved=[_output_name(k) for k in range(len(graph.outputs))])
    names = {i: b.unique(graph.nodes[i].name or f"input{i}") for i in graph.inputs}
    n_params = 0
    for n in live:
        kind = n.kind
        if kind == "input":
            continue
        if kind in ("param", "buffer"):
            names[n.id] = b.initializer(_host(n), n.name or f"{kind}{n.id}")
            if kind == "param":
                n_params += int(np.prod(n.shape))
        elif kind == "const":
            names[n.id] = b.initializer(np.asarray(n.value), f"const{n.id}")
        elif kind == "op":
            emit = EMIT.get(n.op)
            if emit is None:
                cls = f" ({n.fn.__module__}.{n.fn.__qualname__})" if n.fn is not None else ""
                raise OnnxExportError(f"to_onnx: {where(n)}{cls} has no ONNX form in this "
                                      "exporter")
            b.begin(n, out_names.get(n.id, f"v{n.id}"))
            srcs = [graph.nodes[i] for i in n.inputs]
            try:
                out = emit(b, n, _same_type(b, n, [names[i] for i in n.inputs], srcs), srcs,
                           axes)
            except OnnxExportError as e:
                raise OnnxExportError(f"to_onnx: {where(n)}: {e}") from None
            names[n.id] = b.end(out)
        else:
            what = {"state": f"state '{n.name}' (an optimizer's or the random generator's)",
                    "opaque": "a value made outside tinygrad_ds ops while tracing",
                    "aux": "a value an op saved for its backward"}.get(kind, f"a {kind} node")
            raise OnnxExportError(f"to_onnx: the outputs depend on node #{n.id}, {what}, "
                                  "which has no ONNX form")

    def value_info(nid: int, name: str):
        node = graph.nodes[nid]
        dims = list(node.shape)
        if fixed is None and axes.get(nid) is not None:
            dims[axes[nid]] = "N"
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(node.dtype))
        return helper.make_tensor_value_info(name, elem, dims), tuple(dims)

    inputs = [value_info(i, names[i]) for i in graph.inputs]
    outputs = []
    for k, oid in enumerate(graph.outputs):
        name = _output_name(k)
        if names[oid] != name:  # an input, a parameter, or an output given twice
            b.nodes.append(helper.make_node("Identity", [names[oid]], [name], name=name))
        outputs.append(value_info(oid, name))
    doc = f"traced by tinygrad_ds: {graph!r}"
    og = helper.make_graph(b.nodes, "tinygrad_ds", [v for v, _ in inputs],
                           [v for v, _ in outputs], initializer=b.inits, doc_string=doc)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(og, opset_imports=opsets, producer_name="tinygrad_ds")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise OnnxExportError(f"to_onnx: internal: the written model does not check: {e}") \
            from None
    onnx.save(model, path)
    return OnnxExport(str(path), opset, len(model.graph.node), n_params, len(b.inits),
                      [(v.name, dims) for v, dims in inputs],
                      [(v.name, dims) for v, dims in outputs], fixed, model)
