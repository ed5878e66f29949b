"""What the benchmark scripts say about the machine they ran on."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


RESULTS = Path(__file__).with_name("RESULTS.md")


def report(table: str, append: bool = True) -> None:
    """Print a benchmark's table and, unless told not to, append it to benchmarks/RESULTS.md."""
    print(table)
    if append:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(table)
