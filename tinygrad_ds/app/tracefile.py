"""trace_file: load a model file and trace its model, every error as one message naming the file,
the line and, for shape errors, the module path and both shapes."""
from __future__ import annotations

from ..errors import ShapeError, fmt_shape
from ..graph import Graph, trace
from .modelfile import ModelFileError, _def_line, _module_path, error_in_file, load_model_spec


def trace_file(path: str, input_shape: tuple[int, ...] | None = None,
               mode: str = "eval") -> Graph:
    """Load a model file (see tinygrad_ds.app.modelfile) and trace its model on its input shape
    (or `input_shape`). Every error, a shape mismatch deep in the model included, comes back as
    one ModelFileError naming the file, the line and, for shape errors, the module path and
    both shapes."""
    spec = load_model_spec(path, input_shape=input_shape)
    if spec.input_shape is None:
        raise ModelFileError(
            f"{path}: defines neither `input_shape` nor `example_input`; add a line such as "
            "`input_shape = (1, 3, 32, 32)` (one batch, batch first), or pass --input-shape")
    example = spec.input_shape
    if spec.example_input is not None and tuple(spec.example_input.shape) == spec.input_shape:
        example = spec.example_input  # keeps its dtype (integer token ids, float64)
    try:
        return trace(spec.model, example, mode=mode)
    except Exception as e:  # noqa: BLE001 - one message naming file, line and module
        raise _file_error(spec, e) from None


def _file_error(spec, e: Exception) -> ModelFileError:
    """'model.py:3: shape error in module classifier.1 (Linear): <the op's message, with both
    shapes> (input (1, 3, 32, 32))'. The line is the innermost frame in the file, else the line
    that defines the model."""
    err = error_in_file(spec.path, e, model=spec.model)
    text = str(err)
    head = text.split(": ", 1)[0]
    if head == spec.path:  # no frame in the file: point at the line that made the model
        with open(spec.path, encoding="utf-8") as f:
            source = f.read()
        name = "model" if "model" in spec.namespace else "build_model"
        head = f"{spec.path}:{_def_line(source, name)}"
    scope = _module_path(e, spec.model)
    where = ""
    if scope:
        mods = dict(spec.model.named_modules())
        kind = type(mods[scope]).__name__ if scope in mods else ""
        where = f" in module {scope}" + (f" ({kind})" if kind else "")
    what = "shape error" if isinstance(e, ShapeError) else type(e).__name__
    msg = (f"{head}: {what}{where}: {e} (tracing the model on an input of shape "
           f"{fmt_shape(spec.input_shape)})")
    return FileShapeError(msg) if isinstance(e, ShapeError) else ModelFileError(msg)

class FileShapeError(ModelFileError, ShapeError):
    """A shape mismatch found while tracing a model file's model."""
