"""Export: one architecture as standalone PyTorch source with its weights, and loading it back."""

from invnas.exporting.exporter import export_run, export_space
from invnas.exporting.loading import load_exported

__all__ = ["export_run", "export_space", "load_exported"]
