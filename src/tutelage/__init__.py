"""tutelage: turn the judgments of paid domain experts into better language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tutelage")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
