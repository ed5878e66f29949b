"""The graph compiler: passes over a traced Graph, fused elementwise kernels generated as numba
source (cached on disk), and a plan that replays the program with little Python.

    step = tds.compile(train_step)    # a callable; compiles on the first call per key
    step.explain()                    # what each pass did, the fused loops, the costs
    step.profile(x, y)                # the time of a call, op by op

Layers: this package reads graph/, ops/, backend/ and the tensor; nothing below imports it.
Its modules are imported on first use (`import tinygrad_ds` stays fast).
"""
from __future__ import annotations

import importlib

_NAMES = {
    "Compiled": "api", "Entry": "api",
    "cache_dir": "codegen", "group_source": "codegen", "load_kernel": "codegen",
    "ELEMENTWISE": "fusion", "Fusion": "fusion", "Group": "fusion", "fuse": "fusion",
    "PASSES": "passes", "eliminate_common_subexpressions": "passes",
    "eliminate_dead_code": "passes", "fold_constants": "passes", "simplify": "passes",
    "fold_transposes": "passes", "elide_copies": "passes",
    "Plan": "plan", "build_plan": "plan",
    "held_bytes": "memory", "peak_bytes": "memory", "plan_buffers": "memory",
}


def compile(fn_or_model, verbose: bool = False, passes=None):  # shadows the builtin: tds.compile
    """Compile a model's forward, or a whole function of Tensors (a training step: forward,
    loss, backward and optimizer update become one plan), into a callable that replays
    generated, fused kernels.

    passes: the passes to run, by name, in order (default: all of 'fold_constants',
    'simplify', 'fold_transposes', 'elide_copies', 'cse', 'dce', then 'fuse', the elementwise
    fusion that generates kernels);
    functions Graph -> Graph may be given too. Leave one out to see what it does.
    verbose: print what compiling did, and why a plan is compiled again.
    The first call with a new key (input shapes and dtypes, which require grad, the modules'
    training flags) traces and compiles; later calls replay. `.explain()` tells what it did.
    A compiled model called with gradients on replays a forward plan that also keeps the
    values its backward reads, and records one tape node: `loss.backward()` replays the
    compiled backward plan and leaves `.grad` as eager does (compile/autodiff.py). Where the
    backward cannot be compiled (explain() says why), the optimised graph runs op by op.
    On 'cuda' (inputs or parameters on the GPU) the fused groups are generated as numba.cuda
    kernels, one thread per element, and the whole replay stays on the device.
    """
    from .api import compile as _compile

    return _compile(fn_or_model, verbose=verbose, passes=passes)


def __getattr__(name: str):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'tinygrad_ds.compile' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ELEMENTWISE",
    "PASSES",
    "Compiled",
    "Entry",
    "Fusion",
    "Group",
    "Plan",
    "build_plan",
    "cache_dir",
    "compile",
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "elide_copies",
    "fold_constants",
    "fold_transposes",
    "fuse",
    "group_source",
    "held_bytes",
    "load_kernel",
    "peak_bytes",
    "plan_buffers",
    "simplify",
]
