"""Code generation for the GPU: a fused group becomes the source of one numba.cuda kernel.

The same graph nodes, the same body as the cpu kernel (codegen.group_body: reads of the outside
operands, one local per node, the stores), around it one GPU thread per element instead of
loops: the thread's flat index is split into the indices i0, i1, ... by the group's shape,
which is baked into the source as constants. Math functions are math's (numba.cuda compiles
those; numpy's ufuncs it does not take on scalars here).

    src, header = cuda_group_source(graph, group)   # readable: a comment names the nodes
    kernel = load_cuda_kernel(src, n)               # cached on disk as the cpu kernels are

A generated file looks like:

    @cuda.jit(cache=True)
    def fused_add_relu(a0, a1, o0):
        # o0: (4, 5) float32, written here
        i = cuda.grid(1)
        if i >= 20:
            return
        q = i
        i1 = q % 5
        q //= 5
        i0 = q
        x0 = a0[i0, i1]
        ...
"""
from __future__ import annotations

import math

from ..graph.ir import Graph
from .codegen import group_body, kernel_name, load_kernel
from .fusion import Group

# numba.cuda's spelling of the functions codegen's numpy table names
CUDA_FUNCS = {"exp": "math.exp({0})", "log": "math.log({0})", "sqrt": "math.sqrt({0})",
              "abs": "abs({0})", "sign": "(1 if {0} > 0 else (-1 if {0} < 0 else {0}))",
              "tanh": "math.tanh({0})"}


def cuda_group_source(graph: Graph, group: Group) -> tuple[str, str]:
    """(code, header) of the group's CUDA kernel: one thread per element of group.shape."""
    shape = group.shape
    name = kernel_name(graph, group)
    body, params, outs, header = group_body(graph, group, "    ", CUDA_FUNCS)
    nodes = graph.nodes
    n = math.prod(shape)
    lines = ["import math", "", "import numpy as np", "from numba import cuda", "", "",
             "@cuda.jit(cache=True)",
             f"def {name}({', '.join(params)}):"]
    for m, o in outs.items():
        lines.append(f"    # {o}: {shape!r} {nodes[m].dtype}, written here")
    lines += ["    i = cuda.grid(1)", f"    if i >= {n}:", "        return"]
    if shape:  # the flat index split into the group's indices, the last one fastest
        lines.append("    q = i")
        for k in range(len(shape) - 1, 0, -1):
            if shape[k] != 1:  # (a size-1 axis is read at index 0, never by name)
                lines += [f"    i{k} = q % {shape[k]}", f"    q //= {shape[k]}"]
        lines.append("    i0 = q")
    lines += body
    return "\n".join(lines) + "\n", header


class CudaKernel:
    """A generated kernel launched over its elements, one thread each; called as the cpu
    kernels are, fn(*inputs, *outputs), with device arrays. Launches are counted
    (tds.cuda.launch_stats())."""

    def __init__(self, kernel, n: int, name: str):
        from ..backend.cuda import kernels as K

        self.__name__ = name
        self.kernel = kernel
        self.launch = K.Counted(kernel)[K.blocks(n), K.TPB]  # configured once

    def __call__(self, *args) -> None:
        self.launch(*args)


def load_cuda_kernel(code: str, n: int) -> CudaKernel:
    """The kernel of `code` (written to the kernel cache folder as the cpu kernels are; numba
    keeps its compiled code beside it, cache=True), ready to launch over n elements."""
    from ..backend.cuda import kernels as K

    kernel = load_kernel(code)
    if K.SIM:  # the simulator runs the Python: give it numpy's functions (inf, not
        # OverflowError, where a GPU gives inf); it reads the kernel's globals when it runs
        kernel.fn.__globals__["math"] = K.F
    return CudaKernel(kernel, n, code.split("def ", 1)[1].split("(", 1)[0])
