"""What a recording's compression lets the tracker measure.

H.264 at a high CRF smears away the posterior tail of a small larva: the decoded frame no
longer holds it, and any tracker follows the only dark path left (measured on the same scenes
written losslessly and at CRF 18-28: docs/tracking.md, "The tails of small larvae in H.264
wells", 2026-12-07). This module turns the encoder's own record (:mod:`fishtrack.io.video.encoder`)
and the measured fish length into a warning for the run's summary.
"""

from __future__ import annotations

import math

__all__ = ["SMALL_LARVA_PX", "TAIL_LOSSY_CRF", "tail_codec_warning"]

SMALL_LARVA_PX = 40.0
"""Fish length (px) below which the tail's posterior half is a few pixels wide: the lengths
measured were 20-38 px."""
TAIL_LOSSY_CRF = 24.0
"""x264 CRF from which the measured tail-angle r of 20-38 px larvae fell below issue 12's goal
(0.9): 0.880-0.949 at CRF 24, 0.746-0.838 at 26, 0.556-0.701 at 27-28; CRF 21 kept 0.949-0.972
and CRF 18 0.961-0.979 (lossless 0.957-0.987)."""


def tail_codec_warning(codec: str, crf: float, fish_length_px: float) -> str | None:
    """A one-line warning when an H.264 recording's CRF (as x264 recorded it) is high enough
    to smear the tails of larvae this short; None otherwise (or when either is unknown)."""
    if codec != "h264" or not (math.isfinite(crf) and math.isfinite(fish_length_px)):
        return None
    if crf < TAIL_LOSSY_CRF or fish_length_px >= SMALL_LARVA_PX:
        return None
    return (
        f"tail angles limited by the codec: H.264 at CRF {crf:g} with {fish_length_px:.0f}-px "
        f"larvae (at CRF >= {TAIL_LOSSY_CRF:g} the posterior tail of larvae under "
        f"{SMALL_LARVA_PX:.0f} px is smeared away; measured tail-angle r 0.56-0.95 against 0.95-0.98 "
        "at CRF <= 21); record at CRF <= 21 or losslessly (docs/tracking.md, 'The tails of small "
        "larvae in H.264 wells')"
    )
