"""What `tds paths` does, as one function that works from Python too.

    from tinygrad_ds.app.paths_report import paths_report
    r = paths_report("examples/resnet.py", out_dir="figs")   # or paths_report(blocks=4)
    print(r.text)       # count, length table, the first paths; r.written: the files
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from tinygrad_ds.graph.paths import PathGraph, binomial_row, fmt_count, length_table
from viz.render import write
from viz.unravel import MAX_PATHS, draw_unraveled, plot_lengths

from ..errors import TdsError
from .tracefile import trace_file
from .viz_report import paths_line

MAX_CHAIN = 100_000


@dataclass
class PathsReport:
    text: str
    pg: PathGraph
    written: list[str] = field(default_factory=list)


def paths_report(model_file: str | None = None, blocks: int | None = None, limit: int = 20,
                 length: int | None = None, through: str | None = None,
                 highlight: str | None = None, out_dir: str | None = ".", fmt: str = "svg",
                 decompose: int | None = None, grad: bool = False, grad_samples: int = 10,
                 lesion: str | None = None, data: str = "builtin", val_size: int = 500,
                 input_shape: tuple[int, ...] | None = None, seed: int = 0) -> PathsReport:
    """Count, tabulate and list the paths of a model file's network (or of an abstract chain
    of `blocks` residual blocks), write the unraveled drawing and the length plot into out_dir
    (None: write nothing), and optionally: the gradient expansion dy/dh_k (decompose=k), the
    gradient by path length (grad), a lesion study from a checkpoint (lesion)."""
    if (model_file is None) == (blocks is None):
        raise TdsError("give a model file or --blocks T (one of the two)")
    if (grad or lesion) and model_file is None:  # checked before anything is written
        raise TdsError("--grad and --lesion measure a real network: give a model file")
    say: list[str] = []
    graph = None
    if blocks is not None:
        if not 0 <= blocks <= MAX_CHAIN:
            raise TdsError(f"--blocks {blocks}: give 0 to {MAX_CHAIN:,}")
        pg = PathGraph.chain(blocks)
        stem = f"chain{blocks}"
        say.append(f"An abstract chain of {blocks} residual blocks: h_t = h_(t-1) + f_t(h_(t-1))")
    else:
        graph = trace_file(model_file, input_shape=input_shape)
        pg = PathGraph.from_graph(graph)
        stem = os.path.splitext(os.path.basename(model_file))[0]
        name = type(graph.model).__name__ if graph.model is not None else "model"
        say.append(f"{name} from {model_file}: {pg.num_blocks} residual block"
                   f"{'s' * (pg.num_blocks != 1)}")
    T = pg.num_blocks
    total = pg.count()
    say.append(paths_line(pg.factorize()))
    if T == 0 and total == 1:
        say.append("No residual blocks: the network is a plain chain with 1 path from input to "
                   "output, so there is no ensemble of paths to unravel.")
    elif T == 0:
        say.append("No residual blocks; the paths come from other joins (concatenations or "
                   "sums of parallel branches), so lengths below count the layers with "
                   "parameters a path goes through.")
    unit = "blocks" if T else "layers"

    # the length table: binomial coefficients directly for a long chain (no DP needed)
    dist = binomial_row(T) if blocks is not None and T > 400 else pg.length_distribution(unit)
    if total > 1 or T:
        say.append("")
        say.append("Paths by length (" + ("residual blocks passed" if T else "layers passed")
                   + ("; Binomial(T, 1/2) times 2^T" if blocks is not None else "") + "):")
        say.append(length_table(dist, T if blocks is not None else None))
    if T:
        per = pg.block_counts()
        same = len(set(per)) == 1
        say.append(f"Paths through each block: {fmt_count(per[0])} of {fmt_count(total)} (half)"
                   if same else "Paths through each block: " + ", ".join(
                       f"{pg.short_name(b)} {fmt_count(c)}" for b, c in enumerate(per)))

    # the enumeration
    if T <= 2000:
        say.append("")
        say.append(str(pg.enumerate(limit=limit, length=length, unit=unit,
                                    through=(through,) if through else ())))
    elif length is not None or through:
        raise TdsError(f"enumeration filters on a chain of {T} blocks: at most 2000")
    if pg.legend():
        say.append("where " + "; ".join(pg.legend()[:12]) +
                   ("; ..." if len(pg.legend()) > 12 else ""))

    # the drawings
    written: list[str] = []
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        if total > MAX_PATHS and T > 400:
            say.append(f"The drawing is left out: {T} blocks is beyond what a drawing holds.")
        else:
            dot = draw_unraveled(pg, highlight=highlight or through)
            w = write(dot, os.path.join(out_dir, f"{stem}_unraveled.{fmt}"), fmt)
            written.append(w.path)
            if w.note:
                say.append(w.note)
            if total > MAX_PATHS:
                say.append(f"{fmt_count(total)} paths are too many to draw one by one (at most "
                           f"{MAX_PATHS}, that is 6 blocks): the drawing groups them by length.")
        if total > 1:
            p = os.path.join(out_dir, f"{stem}_lengths.png")
            fig = plot_lengths(dist, p, title=f"{stem}: {fmt_count(total)} paths by length",
                               unit="residual blocks passed" if T else "layers passed")
            import matplotlib.pyplot as plt

            plt.close(fig)
            written.append(p)

    if decompose is not None:
        from viz.decomposition import gradient_expansion

        d = gradient_expansion(T, decompose)
        text = _wrap_sum(d.text(), 100)
        say += ["", "The gradient as a sum over paths:", text, "LaTeX:", d.latex()]

    if grad:
        from tinygrad_ds.tensor import Tensor

        from viz.path_grad import gradient_by_length

        x = Tensor(np.random.default_rng(seed).standard_normal(graph.nodes[graph.inputs[0]].shape)
                   .astype(np.float32))
        g = gradient_by_length(graph.model, x, samples=grad_samples, seed=seed)
        say += ["", f"Gradient by path length (|d sum(y v)/dx| on a random input, up to "
                    f"{grad_samples} paths per length):", str(g)]
        if out_dir is not None:
            p = os.path.join(out_dir, f"{stem}_grad_by_length.png")
            import matplotlib.pyplot as plt

            plt.close(g.plot(p))
            written.append(p)
    if lesion:
        say += ["", _lesion(graph.model, lesion, data, val_size, seed,
                            tuple(graph.nodes[graph.inputs[0]].shape))]
    if written:
        say.append("")
        say += [f"Wrote {p}" for p in written]
    return PathsReport("\n".join(say), pg, written)


def _lesion(model, checkpoint: str, data: str, val_size: int, seed: int, input_shape) -> str:
    from tinygrad_ds import data as D

    from viz.lesion import lesion_study

    if not os.path.exists(checkpoint):
        raise TdsError(f"--lesion {checkpoint}: no such checkpoint (an .npz that tds train "
                       "writes as best.npz)")
    model.load(checkpoint)
    ds = D.open_dataset(data, n_train=10, n_val=val_size, seed=seed)
    ds["val"].transform = D.Compose([D.Normalize(ds["mean"], ds["std"])])
    ds["val"].eval()
    loader = D.DataLoader(ds["val"], 100)
    return str(lesion_study(model, loader, input_shape=input_shape))


def _wrap_sum(text: str, width: int) -> str:
    """Break a long sum of products at its ' + ' signs, never inside a product; what follows
    the sum on its next line (its explanation) stays as it is."""
    text, _, tail = text.partition("\n")
    lines, line = [], ""
    for i, term in enumerate(text.split(" + ")):
        piece = term if i == 0 else " + " + term
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = "    +" + piece[2:]
        else:
            line += piece
    return "\n".join(lines + [line] + ([tail] if tail else []))
