"""fishtrack: track larval zebrafish in behaviour videos and score futility-induced passivity.

The public API is re-exported here and imported lazily (importing ``fishtrack`` is cheap and
has no side effects):

- ``fishtrack.track(video, config) -> DataFrame`` — track one video (per-frame table)
- ``fishtrack.open_video(path)`` — streaming video source
- ``fishtrack.load_config(path)`` — validated configuration
- ``fishtrack.simulate(spec, out_dir)`` — simulator with ground truth
- ``fishtrack.classify(tracks, cfg, protocol)`` — bouts, states, epochs
- ``fishtrack.run_experiment(manifest, config, out)`` / ``fishtrack.compute_stats(out)``
- ``fishtrack.per_fish_metrics(...)`` / ``fishtrack.compare_groups(...)``
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fishtrack")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "track": "fishtrack.pipeline",
    "track_to_folder": "fishtrack.pipeline",
    "open_video": "fishtrack.io.video",
    "load_config": "fishtrack.config",
    "Config": "fishtrack.config",
    "simulate": "fishtrack.synth",
    "SimSpec": "fishtrack.synth",
    "classify": "fishtrack.behaviour",
    "run_experiment": "fishtrack.experiment",
    "compute_stats": "fishtrack.experiment",
    "per_fish_metrics": "fishtrack.stats",
    "compare_groups": "fishtrack.stats",
    "FishtrackError": "fishtrack.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fishtrack' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
