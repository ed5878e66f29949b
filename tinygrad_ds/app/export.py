"""What `tds export` does: trace a model file's model in eval mode and write it as ONNX."""
from __future__ import annotations

from ..graph.onnx_export import DEFAULT_OPSET, OnnxExport, OnnxExportError, import_onnx
from .modelfile import ModelFileError
from .tracefile import trace_file


def export_model_file(model_file: str, output: str, input_shape: tuple[int, ...] | None = None,
                      opset: int = DEFAULT_OPSET) -> OnnxExport:
    """Load MODEL_FILE (its `model` or `build_model()`, and `input_shape`), trace the model in
    eval mode on input_shape (the file's unless given) and write `output` as an ONNX inference
    model (see Graph.to_onnx). Errors name the file (and the line, the op, its module)."""
    import_onnx()  # the missing package is said first, before any model is loaded
    graph = trace_file(model_file, input_shape=input_shape, mode="eval")
    try:
        return graph.to_onnx(output, opset=opset)
    except OnnxExportError as e:
        raise ModelFileError(f"{model_file}: {str(e).removeprefix('to_onnx: ')}") from None
