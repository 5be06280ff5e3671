"""Optional packages of the importers, with a one-line error when one is missing."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from fishtrack.errors import FishtrackError


def require(module: str, source: str) -> Any:
    """Import ``module`` (e.g. ``h5py``, ``movement.io.load_poses``) for ``--from source``."""
    show = warnings.showwarning  # importing movement redirects warnings to its own logger
    try:
        mod = importlib.import_module(module)
        if module.startswith("movement"):
            # movement logs its errors to stderr (loguru) before raising them; fishtrack reports
            # the error itself, in one line
            from loguru import logger

            logger.disable("movement")
        return mod
    except ImportError as err:
        raise FishtrackError(
            f"fishtrack import --from {source} needs the Python package "
            f"{module.split('.')[0]!r} ({err}); install it with: pip install 'fishtrack[export]'"
        ) from None
    finally:
        warnings.showwarning = show
