"""The encoder's record of its compression (x264/x265 write their settings into the stream),
and the warning `fishtrack track` gives when a CRF that high smears the tails of larvae that
small (docs/tracking.md, "The tails of small larvae in H.264 wells")."""

from __future__ import annotations

import json
import math

import av
import numpy as np
import pytest

from fishtrack.io.video import open_video
from fishtrack.io.video.encoder import encoder_settings
from fishtrack.pipeline import track_to_folder
from fishtrack.synth import SimSpec, simulate
from fishtrack.tracking.codec_limits import SMALL_LARVA_PX, TAIL_LOSSY_CRF, tail_codec_warning


def _encode(path, codec: str, options: dict[str, str], pix_fmt: str = "yuv420p") -> None:
    """Ten 64x64 frames of moving noise through a real encoder."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, pix_fmt
        s.options = options
        for _ in range(10):
            img = rng.integers(0, 255, (64, 64), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(img[..., None], 3, axis=2), format="rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.mark.parametrize(
    ("codec", "options", "suffix", "name", "quality"),
    [
        ("libx264", {"crf": "27"}, ".mp4", "x264 - core", 27.0),
        ("libx264", {"qp": "0"}, ".mkv", "x264 - core", 0.0),  # constant quantizer 0: lossless
        ("libx264", {"b": "200k"}, ".mp4", "x264 - core", math.nan),  # coded to a bit rate
        ("libx265", {"crf": "30", "x265-params": "log-level=error"}, ".mp4", "x265 (build", 30.0),
        ("mjpeg", {}, ".avi", "", math.nan),
        ("ffv1", {}, ".mkv", "", math.nan),
    ],
)
def test_video_meta_reads_the_encoders_own_record(tmp_path, codec, options, suffix, name, quality):
    path = tmp_path / f"v{suffix}"
    _encode(path, codec, options, "yuvj420p" if codec == "mjpeg" else "yuv420p")
    with open_video(path) as v:
        meta = v.meta
    assert meta.encoder.startswith(name) if name else meta.encoder == ""
    if math.isnan(quality):
        assert math.isnan(meta.crf)
    else:
        assert meta.crf == quality
        assert meta.encoder.endswith(f"{'qp' if 'qp' in options else 'crf'} {quality:g}")


def test_encoder_record_is_text_only():
    """Bytes that merely look like options, past the record's end (a NUL), are not read."""
    head = b"\x00\x00\x01\x06\x05x264 - core 165 - options: rc=crf crf=28.0 qcomp=0.60\x00 crf=3"
    s = encoder_settings(head + bytes(range(256)))
    assert (s.name, s.rate_control, s.quality) == ("x264 - core 165", "crf", 28.0)
    assert encoder_settings(b"no record here crf=12").name == ""


def test_warning_rule_edges():
    assert tail_codec_warning("h264", TAIL_LOSSY_CRF, SMALL_LARVA_PX - 1)
    assert tail_codec_warning("h264", TAIL_LOSSY_CRF - 1, 20) is None
    assert tail_codec_warning("h264", 30, SMALL_LARVA_PX) is None
    assert tail_codec_warning("hevc", 30, 20) is None  # measured on H.264 only
    assert tail_codec_warning("h264", math.nan, 20) is None


@pytest.fixture(scope="module")
def small_larvae(tmp_path_factory):
    """The same 24-px larvae in 2 wells, written at CRF 27 and at CRF 18."""
    root = tmp_path_factory.mktemp("codec")
    out = {}
    for crf in (27, 18):
        spec = SimSpec(name=f"crf{crf}", layout="wells", rows=1, cols=2, duration_s=4, fps=50,
                       fish_length_px=24, noise_sd=3.0, crf=crf, seed=5)
        sim = simulate(spec, root / f"sim{crf}")
        res = track_to_folder(sim.video_path, sim.out_dir / "config.yaml", root / f"out{crf}",
                              stream=True)
        out[crf] = (res, json.loads((root / f"out{crf}" / "provenance.json").read_text()))
    return out


def test_track_warns_when_the_codec_limits_small_tails(small_larvae):
    res, prov = small_larvae[27]
    assert prov["video"]["crf"] == 27.0 and prov["video"]["encoder"].startswith("x264 - core")
    assert res.summary["fish_length_px"] < SMALL_LARVA_PX
    assert res.summary["tail_limited_by_codec"] is True
    assert any("limited by the codec" in w and "CRF 27" in w for w in res.summary["warnings"])
    assert prov["summary"]["tail_limited_by_codec"] is True


def test_track_does_not_warn_at_a_low_crf(small_larvae):
    res, prov = small_larvae[18]
    assert prov["video"]["crf"] == 18.0
    assert res.summary["tail_limited_by_codec"] is False
    assert not any("limited by the codec" in w for w in res.summary["warnings"])
