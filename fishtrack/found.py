"""A video's background and arenas, kept between the wells check and the trial of a run.

``fishtrack run`` checks every manifest well before tracking (a background estimate and an
arena detection per video), then tracks the video, which needs the same two results. The check
saves them in ``OUT/trials/.<trial>.found.npz`` and the trial loads them instead of estimating
the background a second time (issue 15: ~0.75 s of CPU per 530x388 video). The file is an
uncompressed ``.npz`` of plain arrays (read with ``allow_pickle=False``) plus one JSON text: the
key, the arenas and the background's scalars. It is written to a temporary file, then renamed.

The key is the video's identity (absolute path, size, modification time in ns, and the hash
of its first MiB or its folder listing) and the hash of the whole config: a video touched or a
config changed since the check means the file is ignored and the work is done again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fishtrack.arenas import Arena
from fishtrack.config import Config, config_hash
from fishtrack.io.provenance import file_identity
from fishtrack.io.tables import atomic_path
from fishtrack.tracking import Background

__all__ = ["arena_record", "found_key", "load_found", "save_found"]

_ARRAYS = ("image", "median", "sample_indices", "calib", "calib_indices")


def arena_record(a: Any) -> dict:
    """An arena as JSON (provenance.json's ``arenas``; :class:`Arena` ``(**record)``)."""
    return {
        "name": a.name,
        "row": int(a.row),
        "col": int(a.col),
        "shape": a.shape,
        "cx": float(a.cx),
        "cy": float(a.cy),
        "radius": float(a.radius),
        "bbox": [int(v) for v in a.bbox],
        "margin": float(getattr(a, "margin", 0.0)),
        "angle": float(getattr(a, "angle", 0.0)),
        "found": bool(getattr(a, "found", True)),
    }


def found_key(video: str | Path, config: Config) -> dict:
    """What the saved background and arenas depend on: the video's identity and the config."""
    st = os.stat(video)
    return {**file_identity(video), "mtime_ns": int(st.st_mtime_ns), "config_hash": config_hash(config)}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays of the polarity evidence as JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def save_found(path: str | Path, key: dict, arenas: list[Arena], bg: Background) -> None:
    """Write the (unrefined) background and the arenas to ``path`` (atomically)."""
    meta = {"key": key, "arenas": [arena_record(a) for a in arenas], "polarity": bg.polarity,
            "noise": bg.noise, "polarity_evidence": bg.polarity_evidence}
    arrays = {name: getattr(bg, name) for name in _ARRAYS}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta, default=_plain)), **arrays)


def load_found(path: str | Path, key: dict) -> tuple[list[Arena], Background] | None:
    """The arenas and background saved in ``path`` under ``key``; None when the file is
    absent, unreadable or saved under another key (a changed video or config)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("key") != key:
                return None
            arrays = {name: data[name] for name in _ARRAYS}
    except (OSError, ValueError, KeyError):
        return None
    arenas = [Arena(**{**r, "bbox": tuple(r["bbox"])}) for r in meta["arenas"]]
    bg = Background(polarity=meta["polarity"], noise=meta["noise"],
                    polarity_evidence=meta["polarity_evidence"], **arrays)
    return arenas, bg
