"""The graph compiler: passes over a traced Graph, fused elementwise kernels generated as numba
source (cached on disk), and a plan that replays the program with little Python.

    step = tds.compile(train_step)    # a callable; compiles on the first call per key
    step.explain()                    # what each pass did, the fused loops, the costs

Layers: this package reads graph/, ops/, backend/ and the tensor; nothing below imports it.
"""
from .api import Compiled, compile
from .codegen import cache_dir, group_source, load_kernel
from .fusion import ELEMENTWISE, Fusion, Group, fuse
from .passes import (PASSES, eliminate_common_subexpressions, eliminate_dead_code,
                     fold_constants, simplify)
from .plan import Plan, build_plan

__all__ = ["compile", "Compiled", "PASSES", "eliminate_dead_code",
           "eliminate_common_subexpressions", "fold_constants", "simplify", "fuse", "Fusion",
           "Group", "ELEMENTWISE", "group_source", "load_kernel", "cache_dir", "build_plan",
           "Plan"]
