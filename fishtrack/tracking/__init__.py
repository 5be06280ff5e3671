"""Fish tracking: background model, segmentation, head/midline, identity, ``track_video``.

See ``docs/tracking.md`` for the algorithm and every setting.
"""

from fishtrack.tracking.background import ArenaModel, Background, estimate_background
from fishtrack.tracking.identity import MultiTracker, idf1
from fishtrack.tracking.tracker import (
    ArraySource,
    TrackResult,
    kept_rows,
    track_columns,
    track_video,
)

__all__ = [
    "ArenaModel",
    "ArraySource",
    "Background",
    "MultiTracker",
    "TrackResult",
    "estimate_background",
    "idf1",
    "track_columns",
    "kept_rows",
    "track_video",
]
