"""`tds`: the command line. Each command parses its options and calls one library function."""
from __future__ import annotations

import click

from ._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tds")
def main() -> None:
    """tinygrad_ds: build, train and look at small deep networks.

    \b
    Example:
      tds --version
    """


if __name__ == "__main__":
    main()
