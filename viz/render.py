"""Writing a drawing to a file, with or without Graphviz's `dot` program."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import graphviz

FORMATS = ("svg", "png", "pdf", "dot", "json", "html")
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew "
                "install graphviz; conda: conda install graphviz)")


@dataclass
class Written:
    path: str
    note: str = ""      # set when the drawing could not be rendered and a .dot file was written


def has_dot() -> bool:
    return shutil.which("dot") is not None


def write(dot: graphviz.Digraph, path: str, fmt: str) -> Written:
    """Render `dot` to `path` in `fmt` ('svg', 'png', 'pdf' or 'dot'). Without the `dot`
    program, writes the .dot source next to `path` and says how to render it."""
    if fmt not in ("svg", "png", "pdf", "dot"):
        raise ValueError(f"format must be one of svg, png, pdf, dot; got {fmt!r}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if fmt == "dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot.source)
        return Written(path)
    if not has_dot():
        base = path[: -len(fmt) - 1] if path.endswith("." + fmt) else path
        dot_path = base + ".dot"
        with open(dot_path, "w", encoding="utf-8") as f:
            f.write(dot.source)
        return Written(dot_path, f"Graphviz's `dot` program was not found, so the drawing was "
                                 f"written as {dot_path}; {INSTALL_HINT}, then run: "
                                 f"dot -T{fmt} {dot_path} -o {path}")
    data = dot.pipe(format=fmt)
    with open(path, "wb") as f:
        f.write(data)
    return Written(path)
