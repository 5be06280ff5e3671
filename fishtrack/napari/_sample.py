"""napari sample data: the bundled sample videos, tracked once and cached.

The first use tracks the sample video with its ``config.yaml`` into a cache folder
(``$FISHTRACK_CACHE`` or ``~/.cache/fishtrack/napari-samples``); later uses open the cached
trial folder at once. Sample videos exist in a fishtrack checkout (``make samples``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fishtrack.config import config_hash, load_config
from fishtrack.errors import FishtrackError
from fishtrack.napari import convert as cv
from fishtrack.napari._reader import trial_layers
from fishtrack.pipeline import track_to_folder
from fishtrack.trial import PROVENANCE, TRACKS, TrialFolder

__all__ = ["SAMPLES", "sample_trial_folder", "plate24", "embedded"]

SAMPLES = Path(__file__).resolve().parents[2] / "sample_videos"


def _cache_root() -> Path:
    env = os.environ.get("FISHTRACK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fishtrack" / "napari-samples"


def _is_current(folder: Path, video: Path) -> bool:
    trial = TrialFolder(folder)
    if trial.missing((PROVENANCE, TRACKS)):
        return False
    try:
        inp = trial.provenance().input
    except FishtrackError:
        return False
    return int(inp.get("size_bytes", -1)) == video.stat().st_size


def sample_trial_folder(name: str, *, samples: Path | None = None, cache: Path | None = None) -> Path:
    """Trial folder for sample ``name`` (``sample_videos/<name>/<name>.mp4``), tracking it first
    when no current cached result exists."""
    root = samples or SAMPLES
    video = root / name / f"{name}.mp4"
    cfg_path = root / name / "config.yaml"
    if not video.exists():
        raise FishtrackError(f"{video}: sample video not found; run `make samples` in a fishtrack checkout")
    cfg = load_config(cfg_path if cfg_path.exists() else None)
    out = (cache or _cache_root()) / f"{name}-{config_hash(cfg)[:12]}"
    if not _is_current(out, video):
        with _progress(f"tracking sample {name} (first use only)") as cb:
            track_to_folder(video, cfg, out, progress=cb)
    return out


@contextlib.contextmanager
def _progress(description: str):
    """A ``progress(done, total)`` callback that drives napari's progress bar when napari is
    importable (the activity panel shows it), else does nothing."""
    try:
        from napari.utils import progress
    except ImportError:  # pragma: no cover - napari is what calls the samples
        yield None
        return
    bar = progress(total=0, desc=description)
    state = {"n": 0}

    def cb(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(max(0, int(done) - state["n"]))
        state["n"] = int(done)

    try:
        yield cb
    finally:
        bar.close()


def _layers(name: str):
    return trial_layers(cv.read_trial(sample_trial_folder(name)))


def plate24():
    """24-well plate sample: video, arenas, tracks, heads and tails."""
    return _layers("plate24")


def embedded():
    """Head-embedded larva sample: video, tracks, heads and tails."""
    return _layers("embedded")
