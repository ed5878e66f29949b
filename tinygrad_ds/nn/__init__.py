"""Layers and models, as torch.nn: `from tinygrad_ds import nn`."""
from .module import Module, Parameter

__all__ = ["Module", "Parameter"]
