"""Loading a user's model file, the one `tds viz` and `tds train` read.

A model file is plain Python that defines

    model = nn.Sequential(...)        # an nn.Module, or
    def build_model(): return ...     # a function returning one

and the shape of one input batch, batch first:

    input_shape = (1, 3, 32, 32)      # or
    example_input = tds.randn(1, 3, 32, 32)

Loading runs the file, as `python model.py` would, except that `__name__` is
'__tds_model__', so code under `if __name__ == "__main__":` does not run. Every error in the
file comes back as one `ModelFileError` naming the file and the line, never a bare traceback.
"""
from __future__ import annotations

import ast
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..errors import ShapeError, TdsError, fmt_shape


class ModelFileError(TdsError):
    """A model file that cannot be loaded or run: the message names the file and the line."""


@dataclass
class ModelSpec:
    """What a model file defines. input_shape: the shape of one batch, (N, C, H, W) say."""

    path: str
    model: Any
    input_shape: tuple[int, ...] | None
    example_input: Any = None  # the file's Tensor, when it defined `example_input`
    namespace: dict = field(default_factory=dict, repr=False)


def load_model_file(path: str, input_shape: tuple[int, ...] | None = None
                    ) -> tuple[Any, tuple[int, ...]]:
    """Run the model file at `path`; return (model, input_shape).

    `input_shape` overrides the file's (a command-line flag). Raises ModelFileError when the file
    is missing, does not parse, raises while running, or defines no model or no input shape.
    """
    spec = load_model_spec(path, input_shape=input_shape)
    if spec.input_shape is None:
        raise ModelFileError(
            f"{path}: defines neither `input_shape` nor `example_input`; add a line such as "
            "`input_shape = (1, 3, 32, 32)` (one batch, batch first), or pass the shape on the "
            "command line")
    return spec.model, spec.input_shape


def load_model_spec(path: str, input_shape: tuple[int, ...] | None = None) -> ModelSpec:
    """Like load_model_file, but returns everything the file defined (a ModelSpec) and leaves
    input_shape None when neither the file nor the caller gives one."""
    from ..nn.module import Module
    from ..tensor import Tensor

    path = os.fspath(path)
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a folder, not a model file; give the Python file that "
                             "defines the model, such as examples/resnet.py")
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file not found")
    source = _read_source(path)
    try:
        code = compile(source, path, "exec")
    except SyntaxError as e:
        line = (e.text or "").rstrip("\n")
        shown = ""
        if line.strip():
            indent = len(line) - len(line.lstrip())
            shown = f"\n    {line.strip()}"
            if e.offset:
                shown += "\n    " + " " * max(0, e.offset - 1 - indent) + "^"
        raise ModelFileError(f"{path}:{e.lineno}: syntax error: {e.msg}"
                             + shown) from None

    ns: dict = {"__name__": "__tds_model__", "__file__": os.path.abspath(path),
                "__builtins__": __builtins__}
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so the file can import its neighbours, as `python model.py`
    try:
        exec(code, ns)
    except BaseException as e:  # noqa: BLE001 - every error becomes one message
        if isinstance(e, KeyboardInterrupt):
            raise
        raise error_in_file(path, e) from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass

    model = ns.get("model")
    if model is None and "build_model" in ns:
        build = ns["build_model"]
        if not callable(build):
            raise ModelFileError(f"{path}:{_def_line(source, 'build_model')}: `build_model` "
                                 f"is a {type(build).__name__}, not a function")
        try:
            model = build()
        except Exception as e:  # noqa: BLE001
            raise error_in_file(path, e, where="build_model()") from None
        what = "build_model() returned"
        line = _def_line(source, "build_model")
    else:
        what, line = "`model` is", _def_line(source, "model")
    if model is None:
        raise ModelFileError(
            f"{path}: defines neither `model` nor `build_model()`; add e.g. "
            "`model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))`")
    if not isinstance(model, Module):
        raise ModelFileError(f"{path}:{line}: {what} a {type(model).__name__}, not an nn.Module")

    example = ns.get("example_input")
    if example is not None and not isinstance(example, Tensor):
        raise ModelFileError(f"{path}:{_def_line(source, 'example_input')}: `example_input` is a "
                             f"{type(example).__name__}, not a Tensor")
    if input_shape is None:
        if "input_shape" in ns:
            input_shape = _check_shape(ns["input_shape"], f"{path}:"
                                       f"{_def_line(source, 'input_shape')}: `input_shape`")
        elif example is not None:
            input_shape = tuple(example.shape)
    else:
        input_shape = _check_shape(input_shape, "the input shape given")
    return ModelSpec(path, model, input_shape, example, ns)


def _read_source(path: str) -> str:
    """The file's text in the encoding Python would read it in: UTF-8, or the one a PEP 263
    coding line (`# -*- coding: latin-1 -*-`) declares."""
    import io
    import tokenize

    with open(path, "rb") as f:
        raw = f.read()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        return raw.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as e:
        line = raw[:getattr(e, "start", 0)].count(b"\n") + 1
        raise ModelFileError(f"{path}:{line}: cannot read it as Python source ({e}); save it as "
                             "UTF-8, or declare its encoding on its first or second line, as "
                             "in `# -*- coding: latin-1 -*-`") from None


def _check_shape(shape, what: str) -> tuple[int, ...]:
    ok = isinstance(shape, (tuple, list)) and len(shape) > 0 and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    if not ok:
        raise ModelFileError(f"{what} must be a tuple of positive ints, batch first, such as "
                             f"(1, 3, 32, 32); got {shape!r}")
    return tuple(int(s) for s in shape)


def _def_line(source: str, name: str) -> int:
    """The line where `name` is last assigned or defined at the top level of the file (1 if
    it cannot be found: the message still names the file)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return 1
    line = 1
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            line = node.lineno
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                line = node.lineno
    return line


def _model_line(path: str) -> int:
    """The line of the file that defines `model` (else `build_model`)."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return 1
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)}
    return _def_line(source, "model" if "model" in names else "build_model")


def error_in_file(path: str, exc: BaseException, where: str = "",
                  model: Any = None, fallback_line: int | None = None) -> ModelFileError:
    """Turn an exception raised while running code from `path` into one ModelFileError:
    'model.py:12: ShapeError: ... (in module layer2.0.conv1)'.

    The line is the innermost traceback frame inside the file, else `fallback_line` (the line
    that made the model, when the error came from library layers); `model` (when given) lets
    the message name the module whose forward raised, by its path in the model."""
    target = os.path.abspath(path)
    lineno, text = None, ""
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in frames:
        if os.path.abspath(fr.filename) == target:
            lineno, text = fr.lineno, (fr.line or "").strip()
    if isinstance(exc, SyntaxError) and lineno is None:
        lineno = exc.lineno
    if lineno is None:
        lineno = fallback_line
    loc = f"{path}:{lineno}" if lineno is not None else path
    msg = f"{loc}: {type(exc).__name__}: {exc}"
    if where:
        msg += f" (while running {where})"
    scope = _module_path(exc, model) if model is not None else None
    if scope:
        msg += f" (in module {scope})"
    if text:
        msg += f"\n    {text}"
    return ModelFileError(msg)


def _module_path(exc: BaseException, model: Any) -> str | None:
    """The dotted path (layer2.0.conv1) of the innermost Module whose forward was running."""
    from ..nn.module import Module

    names = {id(m): name for name, m in model.named_modules()}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        obj = tb.tb_frame.f_locals.get(code.co_varnames[0]) if code.co_argcount else None
        if isinstance(obj, Module) and id(obj) in names and code.co_name == "forward":
            found = names[id(obj)] or type(obj).__name__
        tb = tb.tb_next
    return found


def run_example(path: str, model: Any, input_shape: tuple[int, ...]):
    """Run `model` once on zeros of `input_shape` without recording the tape, turning any
    error into a ModelFileError that names the file, the line and the module (shape errors say
    both shapes, as the op's own message does). Returns the output Tensor."""
    from .. import autograd, factory

    x = factory.zeros(*input_shape)
    try:
        with autograd.no_grad():
            return model(x)
    except Exception as e:  # noqa: BLE001
        err = error_in_file(path, e, where=f"the model on an input of shape "
                                           f"{fmt_shape(input_shape)}", model=model,
                            fallback_line=_model_line(path))
        if isinstance(e, ShapeError):
            raise _ShapeModelFileError(str(err)) from None
        raise err from None


class _ShapeModelFileError(ModelFileError, ShapeError):
    """A shape mismatch found while running a model file's model."""
