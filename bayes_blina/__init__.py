"""bayes_blina: Bayesian biomarker and response models for blinatumomab therapy in ALL."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("bayes_blina")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
