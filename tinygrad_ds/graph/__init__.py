"""Tracing models into a Graph: the intermediate representation that the visualizer draws and
the graph compiler replays.

    import tinygrad_ds as tds
    graph = tds.trace(model, (1, 3, 32, 32))   # shape-only: nothing is computed
    print(graph.summary())                     # module, type, output shape, params, mult-adds
    graph.run(x)                               # the same ops on real data: equals model(x)
    graph.backward()                           # the backward pass, as a Graph of its own
    step_graph = tds.trace(step, x0, y0)       # a whole training step, replayed by .run(x, y)
    graph.check()                              # a well-formed program (order, shapes, dtypes)
"""
from . import ir
from .backward import derive_backward
from .check import GraphError, check_graph
from .collapse import module_graph
from .ir import Call, Graph, Node
from .onnx_export import export_onnx
from .run import GraphRunError, run_graph
from .summary import Summary, multiply_adds, summarize
from .trace import TraceLimitError, trace

ir._beside.update(backward=derive_backward, module_graph=module_graph, summary=summarize,
                  run=run_graph, check=check_graph, to_onnx=export_onnx)

__all__ = ["trace", "Graph", "Node", "Call", "Summary", "multiply_adds", "GraphError",
           "GraphRunError", "TraceLimitError"]
