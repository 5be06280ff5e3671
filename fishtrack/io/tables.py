"""Atomic writing of tables and files.

Every output file is written to a temporary file in the same folder and then renamed over
the target (``os.replace`` is atomic on POSIX), so an interrupted run never leaves a
half-written table under its final name. Write errors (read-only folder, full disk) become
:class:`fishtrack.errors.OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd

from fishtrack.errors import FishtrackError, OutputError

__all__ = ["atomic_path", "write_bytes", "write_text", "write_table", "read_table", "require_columns"]


def _explain_oserror(err: OSError, path: Path) -> OutputError:
    if err.errno == errno.ENOSPC:
        why = "the disk is full; free space or choose another --out folder"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder is not writable; choose another --out folder or fix its permissions"
    else:
        why = err.strerror or str(err)
    return OutputError(f"cannot write: {why}", path=path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _explain_oserror(err, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give normal file permissions
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        raise _explain_oserror(err, path) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _write_with(path: Path, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return path


def write_table(df: pd.DataFrame, path: str | Path, *, csv: bool = False) -> Path:
    """Write ``df`` to ``path`` (``.parquet`` or ``.csv``); with ``csv=True`` and a Parquet
    path, also write the ``.csv`` next to it. Returns the main path."""
    path = Path(path)
    if path.suffix == ".parquet":
        _write_with(path, lambda t: df.to_parquet(t, index=False, engine="pyarrow"))
        if csv:
            _write_with(path.with_suffix(".csv"), lambda t: df.to_csv(t, index=False))
    elif path.suffix == ".csv":
        _write_with(path, lambda t: df.to_csv(t, index=False))
    else:
        raise ValueError(f"unsupported table suffix {path.suffix!r}")
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV table written by fishtrack, with a clear error if unreadable."""
    path = Path(path)
    if not path.exists():
        raise FishtrackError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, engine="pyarrow")
        return pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - any parse failure becomes one clear line
        raise FishtrackError(f"{path}: cannot read table ({type(err).__name__}: {err})") from None


def require_columns(df: pd.DataFrame, columns: Iterable[str], source: str, *, hint: str = "") -> None:
    """Raise :class:`FishtrackError` ``"SOURCE: missing column(s) A, B"`` (then ``hint``) when
    ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FishtrackError(f"{source}: missing column(s) {', '.join(missing)}{hint}")
