"""Export: one architecture as standalone PyTorch source with its weights, and loading it back."""

from invnas.export.exporter import export_run, export_space
from invnas.export.loading import load_exported

__all__ = ["export_run", "export_space", "load_exported"]
