"""The one place the stages are composed for a single video.

video source -> background -> arenas -> tracking -> behaviour -> outputs

:func:`track` is the library entry point (``fishtrack.track(video, config)``); it returns the
per-frame table. :func:`track_to_folder` also writes the trial folder that ``fishtrack track``
produces (``tracks.parquet``, ``bouts.csv``, ``epochs.csv``, ``provenance.json``) atomically.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fishtrack.config import Config, config_hash, load_config
from fishtrack.errors import FishtrackError

__all__ = ["TrialResult", "track", "track_to_folder", "classify_folder", "resolve_config"]

Progress = Callable[[int, int], None]


@dataclass
class TrialResult:
    """Everything one tracked video produced."""

    tracks: pd.DataFrame
    bouts: pd.DataFrame | None = None
    epochs: pd.DataFrame | None = None
    arenas: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def resolve_config(config: Config | str | Path | dict | None) -> Config:
    """Accept a Config, a YAML path, a mapping or None (defaults)."""
    from fishtrack.config import parse_config

    if isinstance(config, Config):
        return config
    if config is None or isinstance(config, str | Path):
        return load_config(config)
    if isinstance(config, dict):
        return parse_config(config)
    raise TypeError(f"config must be a Config, a path or a dict, not {type(config).__name__}")


def with_protocol_log(cfg: Config, protocol_log: str | Path | None, duration_s: float | None) -> Config:
    """Return ``cfg`` whose ``protocol`` comes from a stimulus-log CSV when one is given."""
    if protocol_log is None:
        return cfg
    from fishtrack.behaviour import load_protocol_log

    phases = load_protocol_log(protocol_log, end_s=duration_s)
    return cfg.model_copy(update={"protocol": phases})


def _run_stages(
    video: str | Path, cfg: Config, progress: Progress | None, protocol_log: str | Path | None = None
) -> TrialResult:
    """Run every stage; a :class:`FishtrackError` that does not name the video yet is raised
    again (same class) with the video's path in front, so the one line says which file."""
    try:
        return _run_stages_inner(video, cfg, progress, protocol_log)
    except FishtrackError as err:
        if str(video) in str(err):
            raise
        new = type(err)(f"{video}: {err}")
        if hasattr(err, "problems"):
            new.problems = err.problems  # type: ignore[attr-defined]
        raise new from None


def _check_times(src, video: str | Path) -> None:
    """Behaviour needs a time per frame: TIFF stacks and image folders have none unless
    ``video.fps`` is set (or an ImageJ TIFF states its frame interval)."""
    import numpy as np

    from fishtrack.errors import ConfigError

    ts = np.asarray(src.timestamps, dtype=np.float64)
    if ts.size and not np.isfinite(ts).all():
        raise ConfigError(
            f"{video}: the frames have no times ({src.meta.codec}, no frame rate stored); "
            "set video.fps in the config to the recording's frame rate"
        )


def _run_stages_inner(
    video: str | Path, cfg: Config, progress: Progress | None, protocol_log: str | Path | None = None
) -> TrialResult:
    from fishtrack.arenas import detect_arenas
    from fishtrack.io.video import open_video
    from fishtrack.tracking import estimate_background, track_video

    timings: dict[str, float] = {}
    caught: list[str] = []
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        with open_video(video, crop=cfg.video.crop, fps=cfg.video.fps) as src:
            _check_times(src, video)
            bg = estimate_background(src, cfg.tracking)
            timings["background"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            arenas = detect_arenas(bg.image, cfg.arenas)
            timings["arenas"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            res = track_video(
                src,
                arenas,
                cfg.tracking,
                fish_per_arena=cfg.arenas.fish_per_arena,
                layout=cfg.arenas.layout,
                background=bg,
                chunk_size=cfg.video.chunk_size,
                progress=progress,
            )
            timings["tracking"] = time.perf_counter() - t1
            meta = src.meta
            cfg = with_protocol_log(cfg, protocol_log, float(meta.duration_s))
            damage = [d.__dict__ if hasattr(d, "__dict__") else dict(d) for d in src.damage]
        caught = [str(w.message) for w in wlist]
    tracks = res.tracks
    out = TrialResult(tracks=tracks, arenas=arenas, summary=dict(res.summary), warnings=caught)
    out.summary.setdefault("warnings", [])
    out.summary["warnings"] = list(out.summary["warnings"]) + caught
    t1 = time.perf_counter()
    try:
        from fishtrack.behaviour import classify
    except ImportError:  # behaviour stage not available
        classify = None
    behaviour_noise = None
    if classify is not None and len(tracks):
        b = classify(tracks, cfg.behaviour, cfg.protocol)
        out.tracks, out.bouts, out.epochs = b.tracks, b.bouts, b.epochs
        behaviour_noise = b.noise
    timings["behaviour"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    from fishtrack.io.provenance import build_provenance, file_identity

    out.provenance = build_provenance(
        config=cfg.model_dump(mode="json"),
        config_hash=config_hash(cfg),
        inputs=file_identity(video),
        frames_read=int(meta.n_frames),
        damage=damage,
        timings=timings,
        extra={
            "video": {
                "n_frames": int(meta.n_frames),
                "fps": float(meta.fps),
                "width": int(meta.width),
                "height": int(meta.height),
                "codec": str(meta.codec),
                "duration_s": float(meta.duration_s),
                "frame_count_method": str(getattr(meta, "frame_count_method", "")),
            },
            "arenas": [_arena_record(a) for a in arenas],
            "summary": _jsonable(out.summary),
            "protocol_log": None if protocol_log is None else str(protocol_log),
            "behaviour_noise": behaviour_noise,
        },
    )
    return out


def _arena_record(a) -> dict:
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


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def track(
    video: str | Path,
    config: Config | str | Path | dict | None = None,
    *,
    protocol_log: str | Path | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Track every fish in ``video``; returns the per-frame table (see docs/data_model.md).

    ``protocol_log`` (a stimulus-log CSV, see docs/behaviour.md) replaces the config's
    ``protocol``.
    """
    return _run_stages(Path(video), resolve_config(config), progress, protocol_log).tracks


def track_to_folder(
    video: str | Path,
    config: Config | str | Path | dict | None,
    out: str | Path,
    *,
    csv: bool = False,
    protocol_log: str | Path | None = None,
    progress: Progress | None = None,
) -> TrialResult:
    """Track ``video`` and write the trial folder ``out`` (all files written atomically)."""
    from fishtrack.io.provenance import write_provenance
    from fishtrack.io.tables import write_table

    cfg = resolve_config(config)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FishtrackError(f"{out}: --out must be a folder, but a file of that name exists")
    _check_writable(out)  # before the work, not after it
    res = _run_stages(Path(video), cfg, progress, protocol_log)
    # an old provenance.json goes first: until the new one is written last, the folder is
    # marked incomplete (never new tables under an old run's provenance)
    _remove(out / "provenance.json")
    write_table(res.tracks, out / "tracks.parquet", csv=csv)
    if res.bouts is not None:
        write_table(res.bouts, out / "bouts.csv")
    if res.epochs is not None:
        write_table(res.epochs, out / "epochs.csv")
    # provenance last: its presence marks a complete trial folder
    res.provenance["outputs"] = output_digests(out)
    write_provenance(out / "provenance.json", res.provenance)
    return res


OUTPUT_FILES = ("tracks.parquet", "bouts.csv", "epochs.csv")
"""Tables whose size and sha256 ``provenance.json`` records (``outputs``)."""


def output_digests(folder: str | Path) -> dict[str, dict]:
    """``{file: {size_bytes, sha256}}`` of the trial tables present in ``folder``."""
    import hashlib

    out = {}
    for name in OUTPUT_FILES:
        p = Path(folder) / name
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
            out[name] = {"size_bytes": p.stat().st_size, "sha256": h.hexdigest()}
    return out


def _check_writable(out: Path) -> None:
    """The output folder exists and is writable, or can be created (its nearest existing
    parent is a writable folder)."""
    import os

    from fishtrack.errors import OutputError

    p = out
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise OutputError(f"{out}: cannot create the output folder: {p} is a file, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(
            f"{out}: cannot write: the folder {p} is not writable; choose another --out folder "
            "or fix its permissions"
        )


def _remove(path: Path) -> None:
    from fishtrack.errors import OutputError

    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise OutputError(f"cannot replace the old file ({err.strerror})", path=path) from None


def classify_folder(
    folder: str | Path,
    config: Config | str | Path | dict | None = None,
    *,
    protocol_log: str | Path | None = None,
) -> TrialResult:
    """Re-score an existing trial folder's tracks with (new) behaviour parameters."""
    from fishtrack.behaviour import classify
    from fishtrack.io.provenance import read_provenance, write_provenance
    from fishtrack.io.tables import read_table, write_table

    folder = Path(folder)
    tracks_path = folder / "tracks.parquet"
    if not tracks_path.exists():
        raise FishtrackError(f"{folder}: no tracks.parquet here; run `fishtrack track` first")
    prov_path = folder / "provenance.json"
    prov = read_provenance(prov_path) if prov_path.exists() else {}
    if config is None and "config" in prov:
        from fishtrack.config import parse_config

        cfg = parse_config(prov["config"], str(prov_path))
    else:
        cfg = resolve_config(config)
    duration = prov.get("video", {}).get("duration_s")
    cfg = with_protocol_log(cfg, protocol_log, duration)
    tracks = read_table(tracks_path)
    drop = [c for c in tracks.columns if c in _behaviour_columns(tracks)]
    tracks = tracks.drop(columns=drop)
    t0 = time.perf_counter()
    b = classify(tracks, cfg.behaviour, cfg.protocol)
    write_table(b.tracks, tracks_path)
    write_table(b.bouts, folder / "bouts.csv")
    write_table(b.epochs, folder / "epochs.csv")
    prov["behaviour_config"] = cfg.behaviour.model_dump(mode="json")
    prov["behaviour_noise"] = b.noise
    prov["protocol"] = [p.model_dump(mode="json") for p in cfg.protocol]
    prov.setdefault("timings_s", {})["classify"] = round(time.perf_counter() - t0, 3)
    prov["outputs"] = output_digests(folder)
    write_provenance(prov_path, prov)
    return TrialResult(tracks=b.tracks, bouts=b.bouts, epochs=b.epochs, provenance=prov)


def _behaviour_columns(tracks: pd.DataFrame) -> list[str]:
    """Columns the behaviour stage adds (removed before re-scoring)."""
    try:
        from fishtrack.behaviour import OUTPUT_COLUMNS
    except ImportError:
        OUTPUT_COLUMNS = ("state", "in_bout")
    return [c for c in OUTPUT_COLUMNS if c in tracks.columns]
