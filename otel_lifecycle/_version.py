"""The version: the one literal that pyproject.toml, --version and the metrics scope read."""

__version__ = "0.1.0.dev0"
