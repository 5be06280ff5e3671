"""``provenance.json``: what produced an output folder.

Records the fishtrack version, versions of the main libraries, the effective config and its
hash, the input file's identity (name, size, sha256 of its first MiB), frames read, damage
found while decoding and timings. ``fishtrack verify`` (:mod:`fishtrack.verify`) re-checks a
folder against it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fishtrack.errors import FishtrackError
from fishtrack.io.tables import write_text

__all__ = ["file_identity", "library_versions", "build_provenance", "write_provenance", "read_provenance"]

_LIBS = ("numpy", "opencv-python-headless", "av", "tifffile", "scikit-image", "scipy", "pandas", "pyarrow", "pydantic")


def file_identity(path: str | Path) -> dict[str, Any]:
    """Name, size and sha256 of the first MiB of a file (or of a folder's file listing)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        size = sum(f.stat().st_size for f in files)
        for f in files:
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
        return {"name": p.name, "path": str(p), "abs_path": os.path.abspath(p),
                "size_bytes": size, "n_files": len(files), "sha256_listing": h.hexdigest()}
    size = p.stat().st_size
    with open(p, "rb") as fh:
        h.update(fh.read(1 << 20))
    return {"name": p.name, "path": str(p), "abs_path": os.path.abspath(p), "size_bytes": size,
            "sha256_first_mib": h.hexdigest()}


def library_versions() -> dict[str, str]:
    """Python's version and those of fishtrack and its main libraries (``"not installed"``
    for a missing one): a new dict each call, the packages' metadata read once per process
    (``importlib.metadata`` parses each one's whole METADATA file: ~20 ms of CPU for the ten,
    issue 15; a run's provenance asked twice, after the tracking)."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version()}
    for lib in ("fishtrack", *_LIBS):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = "not installed"
    return tuple(out.items())


def build_provenance(
    *,
    config: dict,
    config_hash: str,
    inputs: dict[str, Any],
    frames_read: int,
    damage: list[dict],
    timings: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    versions = library_versions()
    prov = {
        "fishtrack_version": versions["fishtrack"],
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions,
        "config": config,
        "config_hash": config_hash,
        "input": inputs,
        "frames_read": int(frames_read),
        "damaged_frames": damage,
        "timings_s": {k: round(float(v), 3) for k, v in timings.items()},
    }
    if extra:
        prov.update(extra)
    return prov


def write_provenance(path: str | Path, prov: dict[str, Any]) -> Path:
    return write_text(path, json.dumps(prov, indent=2, sort_keys=False, default=str) + "\n")


def read_provenance(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FishtrackError(f"{p}: provenance.json not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FishtrackError(f"{p}: provenance.json is not valid JSON ({err})") from None
    except OSError as err:  # a folder of that name, no permission, I/O error
        raise FishtrackError(f"{p}: cannot read provenance.json ({err.strerror or err})") from None
