"""Errors raised by fishtrack.

Every error a user can trigger with bad input is a :class:`FishtrackError`. Its message is
one line that names the file (or config key) and the problem, so the CLI can print it without
a traceback. Library internals never leak their own exception types to the user.
"""

from __future__ import annotations

from pathlib import Path


class FishtrackError(Exception):
    """Base class for user-facing errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        if path is not None and str(path) not in message:
            message = f"{path}: {message}"
        super().__init__(message)


class VideoError(FishtrackError):
    """A video cannot be opened or decoded (missing, empty, not a video, unsupported codec)."""

    exit_code = 3


class ConfigError(FishtrackError):
    """A configuration file or value is invalid."""

    exit_code = 2


class ArenaError(FishtrackError):
    """Arenas could not be found as configured."""

    exit_code = 4


class TrackingError(FishtrackError):
    """Tracking could not run on the given input."""

    exit_code = 5


class ManifestError(FishtrackError):
    """An experiment manifest is invalid."""

    exit_code = 6


class OutputError(FishtrackError):
    """An output folder cannot be written (read-only, full disk, locked by another run)."""

    exit_code = 7


class VerifyError(FishtrackError):
    """``fishtrack verify`` found an output folder that does not match its provenance."""

    exit_code = 8


def short_error(err: BaseException, limit: int = 200) -> str:
    """``Type: message`` of another library's exception on one line, shortened (library
    messages can span paragraphs), for the parentheses of a one-line fishtrack message."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
