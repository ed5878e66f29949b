"""Drawings of tinygrad_ds graphs (graphviz) and plots (matplotlib). Imports the library, never
the reverse."""
