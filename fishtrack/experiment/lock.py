"""The stale-aware lock of an experiment folder (``OUT/.fishtrack.lock``)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from fishtrack.errors import OutputError

LOCK_NAME = ".fishtrack.lock"


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold ``OUT/.fishtrack.lock`` while a run uses ``out``.

    Raises
    ------
    OutputError
        Another run (this or another machine) holds the lock. A lock left by a killed run on
        this machine (its process no longer exists) is replaced.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the output folder ({err.strerror})", path=out) from None
    lock = out / LOCK_NAME
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for _attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                other = {}
            if lock_is_stale(other):
                lock.unlink(missing_ok=True)
                continue
            who = (
                f"pid {other.get('pid', '?')} on {other.get('host', '?')}, started "
                f"{other.get('started_utc', '?')}"
            )
            raise OutputError(
                f"{out}: another fishtrack run is using this output folder ({who}); wait for it "
                f"to finish or, if no run is active, delete {lock}"
            ) from None
        except OSError as err:
            raise OutputError(f"cannot create the lock file ({err.strerror})", path=lock) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover - lost three races in a row
        raise OutputError(f"{out}: could not take the lock {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def lock_is_stale(info: dict) -> bool:
    """A lock left by a run that no longer exists (a process of this machine that is gone)."""
    if info.get("host") != socket.gethostname():
        return False
    try:
        pid = int(info.get("pid"))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
