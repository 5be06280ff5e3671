"""fishtrack: track larval zebrafish in behaviour videos and score futility-induced passivity."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fishtrack")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
