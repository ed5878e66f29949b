"""What `tds viz` and `tds summary` do, as functions that work from Python too."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from viz.draw import draw
from viz.grads import grad_table, gradient_norms
from tinygrad_ds.graph.paths import PathCount, PathGraph
from viz.render import FORMATS, Written, write

from ..errors import TdsError, fmt_shape
from ..graph.scalar_lower import MAX_SCALAR_NODES
from ..graph import Graph
from ..random import manual_seed
from .tracefile import trace_file


@dataclass
class VizResult:
    graph: Graph
    summary: str
    written: Written
    paths: PathCount
    grad_table: str = ""   # --grads: the per-layer gradient norms
    notes: list[str] = field(default_factory=list)
    compiled: object = None  # --compiled: the tds.compile'd model that was drawn

    @property
    def paths_line(self) -> str:
        return paths_line(self.paths)


def paths_line(count: PathCount) -> str:
    """'Input-to-output paths: 512 = 2^9: 9 residual blocks', or '1,024 = 4^5: 5 blocks of 4
    parallel branches (concatenated)': 2^T only where the count comes from T residual blocks."""
    return f"Input-to-output paths: {count}"


def path_count(graph: Graph) -> PathCount:
    """The graph's path count (leaf modules as nodes) with how it factorises."""
    return PathGraph.from_graph(graph).factorize()


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,32,32' (or '1x3x32x32', '(1, 3, 32, 32)') -> (1, 3, 32, 32)."""
    cleaned = text.strip().strip("()[]").replace("x", ",").replace(" ", "")
    parts = cleaned.split(",")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # '(10,)': a one-element tuple
    try:  # every part must be a number: '1,3,x,2' is not (1, 3, 2)
        shape = tuple(int(s) for s in parts)
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input shape {text!r}: give positive integers separated by commas, "
                         "batch first, such as 1,3,32,32")
    return shape


def output_path(model_file: str, output: str | None, fmt: str | None) -> tuple[str, str]:
    """The file to write and its format: --output's suffix decides when --format is not
    given; the default is <model file name>.svg in the current folder."""
    if output is not None:
        ext = os.path.splitext(output)[1].lstrip(".").lower()
        if ext and ext not in FORMATS:
            raise ValueError(f"--output {output}: tds viz does not write .{ext} files; name it "
                             f"with one of .{', .'.join(FORMATS)} (or leave out the suffix and "
                             "give --format)")
        if fmt and ext in FORMATS and ext != fmt:
            raise ValueError(f"--output {output} ends in .{ext} but --format is {fmt}: make them "
                             "agree, or give only one of the two")
        fmt = fmt or (ext if ext in FORMATS else "svg")
        return output, fmt
    fmt = fmt or "svg"
    stem = os.path.splitext(os.path.basename(model_file))[0]
    return f"{stem}.{fmt}", fmt


def viz_model_file(model_file: str, output: str | None = None, fmt: str | None = None,
                   level: str = "module", depth: int | None = None, backward: bool = False,
                   grads: bool = False, input_shape: tuple[int, ...] | None = None,
                   params: bool = False, mode: str = "eval", seed: int = 0, *,
                   fold: bool = False, edge_shapes: bool = False,
                   checkpoint: str | None = None, frames: str | None = None,
                   max_scalars: int = MAX_SCALAR_NODES, compiled: bool = False) -> VizResult:
    """Trace the model file's model, draw it, write the drawing; return the summary and the
    path count too. Raises ModelFileError (bad file), DrawingTooLarge (op level too big).
    `seed` seeds the generator before the file runs, so the model's initial weights, and the
    --grads colours computed from them, are the same on every run (as tds train does).
    checkpoint: an .npz of weights (tds train's best.npz) loaded before the --grads pass.
    fold: runs of identical blocks drawn as one node 'x N'; edge_shapes: shapes on edges.
    level 'scalar': the model lowered to scalar Values on a random input (tds.trace_scalar),
    drawn with data and grad on every node; frames: a folder for one drawing per backward step;
    max_scalars: the most Values lowered. compiled: draw the graph of the model's forward as
    tds.compile runs it (viz.compiled: each fused group a box, ops run by their own forward
    outside), in `mode`, after loading `checkpoint`."""
    manual_seed(seed)
    path, fmt = output_path(model_file, output, fmt)  # a bad -o is refused before any work
    if frames is not None and level != "scalar":
        raise TdsError("--frames draws the scalar backward step by step: add --level scalar")
    if compiled:
        _check_compiled_options(fmt, level, depth, backward, grads, params, fold, edge_shapes)
    graph = trace_file(model_file, input_shape=input_shape, mode=mode)
    if compiled:
        return _viz_compiled(graph, path, fmt, mode, checkpoint, seed)
    if level == "scalar":
        return _viz_scalar(graph, path, fmt, frames, max_scalars, seed)
    note = ""
    if checkpoint is not None:
        _load_checkpoint(graph, checkpoint)
        note = f"weights from {checkpoint}"
    table = ""
    if fmt == "html":
        from viz.html import write_html

        if grads or level == "op" or params:
            raise TdsError("--format html draws the graph at module level, with every module "
                           "expandable; --grads, --level op and --params are for the svg, png "
                           "and pdf drawings")
        if backward:
            graph.backward()  # an untraceable backward fails here, as for the other formats
        written = Written(write_html(graph, path, depth=depth if depth is not None else 2,
                                     show_backward=backward))
    elif fmt == "json":
        data = (graph.backward() if backward else graph).to_json()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(data)
        written = Written(path)
    else:
        norms = gradient_norms(graph) if grads else None
        if norms is not None:
            table = grad_table(graph, norms)
            note = note or "weights as initialised (seed 0); --checkpoint FILE for trained ones"
        dot = draw(graph, level=level, depth=depth, params=params, backward=backward, grads=norms,
                   fold=fold, edge_shapes=edge_shapes, note=note)
        written = write(dot, path, fmt)
    return VizResult(graph, str(graph.summary()), written, path_count(graph), table)


def _check_compiled_options(fmt, level, depth, backward, grads, params, fold,
                            edge_shapes) -> None:
    given = [name for name, on in (("--level scalar", level == "scalar"),
                                   ("--depth", depth is not None), ("--backward", backward),
                                   ("--grads", grads), ("--params", params), ("--fold", fold),
                                   ("--edge-shapes", edge_shapes),
                                   (f"--format {fmt}", fmt in ("html", "json"))) if on]
    if given:
        raise TdsError(f"--compiled draws the compiled forward op by op, with the fused groups "
                       f"as boxes (svg, png, pdf or dot); drop {', '.join(given)}")


def _viz_compiled(graph: Graph, path: str, fmt: str, mode: str, checkpoint: str | None,
                  seed: int) -> VizResult:
    """Compile the model's forward for the traced input (tds.compile), run it once under
    no_grad in `mode`, and draw the plan (viz.compiled)."""
    import numpy as np

    from viz.compiled import compiled_counts, draw_compiled

    from .. import autograd
    from ..compile import compile as tds_compile
    from ..tensor import Tensor

    model = graph.model
    if model is None or not hasattr(model, "named_modules"):
        raise TdsError("--compiled compiles the model file's model, which is not a Module")
    if checkpoint is not None:
        _load_checkpoint(graph, checkpoint)
    inp = graph.nodes[graph.inputs[0]]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(inp.shape).astype(inp.dtype) if inp.dtype.kind == "f" else \
        np.zeros(inp.shape, inp.dtype)
    was_training = model.training
    model.train(mode == "train")
    compiled = tds_compile(model)
    try:
        with autograd.no_grad():
            compiled(Tensor(x))
    finally:
        model.train(was_training)
    entry = compiled.last
    counts = compiled_counts(entry)
    note = f"{type(model).__name__}, {mode} mode, forward on an input of shape " \
        f"{fmt_shape(inp.shape)}"
    written = write(draw_compiled(compiled, note=note), path, fmt)
    notes = [f"{counts.line} ({mode} mode; compiled in {sum(entry.times.values()):.1f} s, "
             f"first run included); in Python, tds.compile(model).explain() says more"]
    return VizResult(graph, str(graph.summary()), written, path_count(graph), notes=notes,
                     compiled=compiled)


MAX_FRAMES_SCALARS = 150  # each frame redraws the whole graph: one per Value


def _viz_scalar(graph: Graph, path: str, fmt: str, frames: str | None, max_scalars: int,
                seed: int) -> VizResult:
    import numpy as np

    from viz.scalar_graph import draw_scalar_graph, write_backward_frames

    from ..graph.scalar_lower import ScalarTooLarge, trace_scalar
    from ..tensor import Tensor

    if fmt == "json":
        raise TdsError("--level scalar draws the scalar graph: choose svg, png, pdf or dot")
    shape = graph.nodes[graph.inputs[0]].shape
    x = np.random.default_rng(seed).standard_normal(shape)
    try:
        st = trace_scalar(graph.model, x, max_nodes=max_scalars)
    except ScalarTooLarge as e:
        raise TdsError(f"--level scalar: {e}") from None
    st.loss.backward()
    # the same network at tensor level, the same input: its gradients, to compare
    model = graph.model
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.grad = None
        out = model(Tensor(x.astype(np.float32)))
        out.sum().backward()
        diff = max((float(np.abs(st.grads()[k] - p.grad.data).max())
                    for k, p in model.named_parameters() if p.grad is not None), default=0.0)
    finally:
        for p, g in saved:
            p.grad = g
    notes = [f"Scalar graph: {st.count:,} Values (every multiply and add is one), on a random "
             f"input of shape {fmt_shape(shape)}; backward from {st.loss_name}",
             f"Scalar and tensor gradients of every parameter agree: largest difference "
             f"{diff:.1e}"]
    title = (f"{type(model).__name__} lowered to scalars: {st.count:,} Values; each box: "
             f"label | data | grad (d {st.loss.label} / d value); backward from {st.loss_name}")
    written = write(draw_scalar_graph(st.loss, title=title), path, fmt)
    if frames is not None:
        if st.count > MAX_FRAMES_SCALARS:
            raise TdsError(f"--frames: {st.count:,} Values would make {st.count:,} frames of "
                           f"{st.count:,} nodes each; at most {MAX_FRAMES_SCALARS} (try a "
                           "smaller input or a smaller model)")

        files = write_backward_frames(st.loss, frames, fmt if fmt != "dot" else "svg")
        notes.append(f"Wrote {len(files)} frames, one per backward step, to {frames}")
    return VizResult(graph, str(graph.summary()), written, path_count(graph), notes=notes)


def _load_checkpoint(graph: Graph, checkpoint: str) -> None:
    if graph.model is None or not hasattr(graph.model, "load"):
        raise TdsError(f"--checkpoint {checkpoint}: the model file's model is not a Module, so "
                       "there are no weights to load")
    if not os.path.exists(checkpoint):
        raise TdsError(f"--checkpoint {checkpoint}: no such file (an .npz that tds train "
                       "writes as best.npz)")
    graph.model.load(checkpoint)


def summary_of_file(model_file: str, input_shape: tuple[int, ...] | None = None,
                    mode: str = "eval") -> str:
    """The summary table of the model file's model, with the path count line."""
    graph = trace_file(model_file, input_shape=input_shape, mode=mode)
    return str(graph.summary()) + "\n" + paths_line(path_count(graph))
