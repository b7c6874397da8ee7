"""The package version (one place; read by the package, the checkpoints and pyproject)."""

__version__ = "0.1.0"
