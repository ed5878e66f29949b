"""The plan on the GPU: the same steps as the cpu plan (plan.py), over device arrays.

- each fused group is a generated numba.cuda kernel (cuda_codegen.py), one thread per element;
- each other op runs by its own forward, which reaches the cuda backend through the kernel
  table (the arrays it gets are device arrays);
- the graph's constants are copied to the GPU once, when the plan is built, and the loop
  outputs the plan keeps are made there; so a replay copies nothing between host and device.

A compiled step is on the GPU when its inputs or its model's parameters are (`device_of`).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import backend_name
from ..graph.ir import Graph
from .fusion import Group


def device_of(graph: Graph, arrays: list) -> str:
    """'cuda' when an input, parameter or buffer of the graph is a device array, else 'cpu'."""
    if any(backend_name(a) == "cuda" for a in arrays):
        return "cuda"
    for n in graph.nodes:
        if n.kind in ("param", "buffer") and backend_name(n.source().data) == "cuda":
            return "cuda"
    return "cpu"


def kernel(graph: Graph, group: Group) -> tuple[str, str, object]:
    """(code, header, fn) of the group's CUDA kernel, as plan.build_plan takes them."""
    from .cuda_codegen import cuda_group_source, load_cuda_kernel

    code, header = cuda_group_source(graph, group)
    return code, header, load_cuda_kernel(code, math.prod(group.shape))


def on_device(plan):
    """`plan` with its arrays on the GPU (changed in place and returned): constants copied,
    the loop outputs it keeps made there, the values that outlive a replay allocated there."""
    from .. import cuda as tcuda
    from ..backend.cuda import array as A

    tcuda.require()
    plan.template = [tcuda.to_device(v) if isinstance(v, np.ndarray) else v
                     for v in plan.template]
    steps = []
    for s in plan.steps:
        if s[0] == "kernel":
            _, fn, ins, outs, written = s
            outs = [(slot, shape, dtype, buf if type(buf) is list else A._empty(shape, dtype))
                    for slot, shape, dtype, buf in outs]
            s = ("kernel", fn, ins, outs, written)
        steps.append(s)
    plan.steps = steps
    plan.alloc = _alloc
    plan.own = _own
    plan.launches = None  # kernels the last replay launched (explain() reports it)
    replay = plan.replay

    def counted(inputs: list) -> list:
        before = tcuda._launches["launches"]
        outs = replay(inputs)
        plan.launches = tcuda._launches["launches"] - before
        return outs

    plan.replay = counted
    return plan


def _alloc(pool: list, shape: tuple, dtype):
    """New device memory for a value that outlives the replay (an output, a .grad). Not reused
    as the cpu plan's are: a view of a device array does not hold the array itself, so its
    reference count cannot tell that nothing refers to the memory any more."""
    from ..backend.cuda import array as A

    return A._empty(shape, dtype)


def _own(g, forced: bool):
    """A .grad's array: a copy on the device when it is an input, parameter or another .grad."""
    from ..backend.cuda import array as A

    return A.copy(g) if forced else g
