"""The encoder's own record of how a video was compressed.

x264 and x265 write their settings as text into the stream (an SEI user-data message in the
first packet: ``x264 - core 164 ... options: ... rc=crf ... crf=23.0 ...``). The rate-control
setting says how much the codec was allowed to throw away, which bounds what a tracker can
measure in fine structures such as the tail of a small larva (docs/tracking.md, "The tails of
small larvae in H.264 wells"). Only the text is read; nothing in it is evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EncoderSettings", "encoder_settings"]

_NAME = re.compile(rb"(x264 - core \d+|x265 \(build \d+\))")
_OPTION = re.compile(rb"\b(rc|crf|qp)=([A-Za-z0-9_.]+)")
_SPAN = 4096  # the settings text is ~1-2 kB, right after the encoder's name


@dataclass(frozen=True)
class EncoderSettings:
    """What the encoder recorded about itself.

    Attributes
    ----------
    name
        ``"x264 - core 164"``, ``"x265 (build 199)"``; ``""`` when the stream holds no such
        record (other encoders, intra-frame or lossless codecs, image files).
    rate_control
        x264/x265's ``rc`` option: ``"crf"`` (constant quality), ``"cqp"`` (constant
        quantizer), ``"abr"``/``"cbr"`` (a bit rate); ``""`` when not recorded.
    quality
        The constant-quality value: ``crf`` for ``rc=crf``, ``qp`` for ``rc=cqp`` (lower keeps
        more; 0 with ``qp`` is lossless); NaN when the stream was coded to a bit rate or the
        value is not recorded.
    """

    name: str = ""
    rate_control: str = ""
    quality: float = float("nan")

    def describe(self) -> str:
        """One line for provenance and messages (``""`` when nothing was recorded)."""
        if not self.name:
            return ""
        if self.quality == self.quality:  # not NaN
            key = "qp" if self.rate_control == "cqp" else "crf"
            return f"{self.name}, {key} {self.quality:g}"
        return f"{self.name}, rc {self.rate_control or 'unknown'}"


def encoder_settings(first_packet: bytes) -> EncoderSettings:
    """The settings x264/x265 wrote into ``first_packet`` (the stream's first packet's bytes);
    empty :class:`EncoderSettings` when it holds none."""
    m = _NAME.search(first_packet)
    if m is None:
        return EncoderSettings()
    text = first_packet[m.end(): m.end() + _SPAN].split(b"\x00", 1)[0]  # the text ends at a NUL
    opts = {k.decode(): v.decode() for k, v in _OPTION.findall(text)}
    rc = opts.get("rc", "")
    key = {"crf": "crf", "cqp": "qp"}.get(rc, "crf" if "crf" in opts and not rc else "")
    try:
        quality = float(opts[key]) if key in opts else float("nan")
    except ValueError:
        quality = float("nan")
    return EncoderSettings(name=m.group(1).decode(), rate_control=rc, quality=quality)
