"""Lesion studies (Veit et al. 2016, Figures 3 and 5): delete residual blocks at test time.

Deleting block t of a residual network leaves y = shortcut(x) where y = x + f_t(x) was: half of
the paths are gone, the other half are untouched, and accuracy drops a little. Deleting a layer
of a plain network breaks its only path, and accuracy falls to chance.

    from viz.lesion import lesion_study, lesion_k
    result = lesion_study(model, loader)         # one row per block: accuracy without it
    print(result)
    rows = lesion_k(model, loader, ks=(1, 2, 3), samples=5)   # k random blocks at once

For a network with nn.Residual blocks, a block is deleted by running only its shortcut. For a
plain network, the blocks are the modules in a Sequential (not containers themselves) whose
output has the shape of their input; deleting one makes it the identity.
"""
from __future__ import annotations

import random as _random
from contextlib import contextmanager
from dataclasses import dataclass

from tinygrad_ds.errors import TdsError
from tinygrad_ds.graph import trace
from tinygrad_ds.nn.containers import ModuleList, Sequential
from tinygrad_ds.nn.residual import Residual
from tinygrad_ds.train import evaluate


@dataclass
class LesionRow:
    block: str           # module path
    acc: float
    loss: float
    delta: float         # acc - the intact network's acc


@dataclass
class LesionResult:
    kind: str            # 'residual' or 'plain'
    baseline_acc: float
    baseline_loss: float
    rows: list[LesionRow]
    note: str = ""

    def __str__(self) -> str:
        lines = [f"lesion study of a {self.kind} network: accuracy {self.baseline_acc:.2%} "
                 f"intact", f"{'deleted block':<28} {'accuracy':>9} {'change':>8} {'loss':>8}"]
        for r in self.rows:
            lines.append(f"{r.block:<28} {r.acc:>9.2%} {r.delta:>+8.2%} {r.loss:>8.3f}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def find_blocks(model, input_shape=None) -> tuple[str, list[tuple[str, object]], str]:
    """('residual' or 'plain', [(module path, module)], note). Residual networks: their
    nn.Residual modules. Plain ones: shape-keeping modules inside Sequentials (needs
    input_shape, to trace the shapes)."""
    res = [(n, m) for n, m in model.named_modules() if isinstance(m, Residual)]
    if res:
        return "residual", res, ""
    if input_shape is None:
        raise TdsError("lesion: the model has no nn.Residual blocks; give input_shape to find "
                       "the shape-keeping blocks of a plain network")
    cands = []
    for name, parent in model.named_modules():
        if isinstance(parent, Sequential):
            for child_name, m in parent.named_children():
                if not isinstance(m, (Sequential, ModuleList)) and any(True for _ in
                                                                       m.named_children()):
                    cands.append((f"{name}.{child_name}" if name else child_name, m))
    shapes: dict[str, tuple] = {}
    with _recording(cands, shapes):
        trace(model, input_shape)
    keep = [(n, m) for n, m in cands if n in shapes and shapes[n][0] == shapes[n][1]]
    left = len(cands) - len(keep)
    note = (f"{left} block{'s' * (left != 1)} change the shape (stride or channels), so they "
            "cannot be deleted from the plain network" if left else "")
    if not keep:
        raise TdsError("lesion: found no block that keeps its input's shape, so none can be "
                       "deleted")
    return "plain", keep, note


@contextmanager
def _recording(cands, shapes):
    def wrap(name, m):
        orig = m.forward

        def fwd(x, *a, **k):
            out = orig(x, *a, **k)
            shapes[name] = (tuple(x.shape), tuple(out.shape))
            return out
        return fwd

    try:
        for name, m in cands:
            object.__setattr__(m, "forward", wrap(name, m))
        yield
    finally:
        for _, m in cands:
            m.__dict__.pop("forward", None)


@contextmanager
def deleted(blocks):
    """Within the block, each module in `blocks` is deleted: an nn.Residual runs only its
    shortcut, any other module returns its input."""
    try:
        for m in blocks:
            fn = (lambda x, m=m: m.shortcut(x)) if isinstance(m, Residual) else (lambda x: x)
            object.__setattr__(m, "forward", fn)  # an instance attribute hides the method
        yield
    finally:
        for m in blocks:
            m.__dict__.pop("forward", None)


def lesion_study(model, loader, input_shape=None) -> LesionResult:
    """Accuracy on `loader` with each block deleted in turn: one row per block."""
    kind, blocks, note = find_blocks(model, input_shape)
    base = evaluate(model, loader)
    rows = []
    for name, m in blocks:
        with deleted([m]):
            r = evaluate(model, loader)
        rows.append(LesionRow(name, r.get("acc", float("nan")), r["loss"],
                              r.get("acc", float("nan")) - base.get("acc", float("nan"))))
    return LesionResult(kind, base.get("acc", float("nan")), base["loss"], rows, note)


@dataclass
class LesionKRow:
    k: int
    mean_acc: float
    min_acc: float
    max_acc: float
    samples: int


def lesion_k(model, loader, ks=(1, 2, 3), samples: int = 5, input_shape=None,
             seed: int = 0) -> list[LesionKRow]:
    """Veit et al. Fig. 5: delete k blocks chosen at random (`samples` draws for each k) and
    report the accuracy: it falls smoothly for a residual network."""
    _, blocks, _ = find_blocks(model, input_shape)
    rng = _random.Random(seed)
    out = []
    for k in ks:
        if not 0 <= k <= len(blocks):
            raise TdsError(f"lesion_k: cannot delete {k} of {len(blocks)} blocks")
        accs = []
        for _ in range(samples):
            chosen = rng.sample(range(len(blocks)), k)
            with deleted([blocks[i][1] for i in chosen]):
                accs.append(evaluate(model, loader).get("acc", float("nan")))
        out.append(LesionKRow(k, sum(accs) / len(accs), min(accs), max(accs), len(accs)))
    return out


def format_lesion_k(rows: list[LesionKRow]) -> str:
    lines = [f"{'blocks deleted':>14} {'mean acc':>9} {'min':>8} {'max':>8}"]
    lines += [f"{r.k:>14} {r.mean_acc:>9.2%} {r.min_acc:>8.2%} {r.max_acc:>8.2%}" for r in rows]
    return "\n".join(lines)
