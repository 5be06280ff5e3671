"""Tests for fishtrack.io.video: real codecs, files written by the tests themselves.

Every frame carries its own frame number as 8 big binary blocks (dark = 0, bright = 1), so each
decoded frame can be checked to be the right one even through lossy codecs and after seeks.
"""

from __future__ import annotations

import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import tifffile

from fishtrack.errors import VideoError
from fishtrack.io.video import (
    Chunk,
    DamagedVideoWarning,
    DamageRecord,
    VideoMeta,
    open_video,
)
from fishtrack.io.writer import VideoWriter, write_video

H, W = 96, 128
N = 90
FPS = 30.0


# ----------------------------------------------------------------------------- frame patterns
def pattern(i: int, h: int = H, w: int = W) -> np.ndarray:
    """Frame ``i``: mild texture, a moving bar, and the 8-bit code of ``i`` in rows 16..80."""
    rng = np.random.default_rng(i)
    f = rng.normal(110, 8, (h, w)).clip(0, 255).astype(np.uint8)
    x = (i * 3) % (w - 8)
    f[:12, x : x + 8] = 250
    bw = w // 8
    for b in range(8):
        f[16:80, b * bw : (b + 1) * bw] = 230 if (i >> b) & 1 else 20
    return f


def code(frame: np.ndarray) -> int:
    """The frame number encoded by :func:`pattern` (robust to lossy compression)."""
    w = frame.shape[1]
    bw = w // 8
    blocks = frame[20:76, : bw * 8].reshape(56, 8, bw).mean(axis=(0, 2))
    return int(sum(1 << b for b in range(8) if blocks[b] > 125))


def codes(frames: np.ndarray) -> list[int]:
    return [code(f) for f in frames]


def read_all(src, n=16, **kw) -> Chunk:
    chunks = list(src.chunks(n, **kw))
    if not chunks:
        return Chunk(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 1, 1), np.uint8))
    return Chunk(
        np.concatenate([c.indices for c in chunks]),
        np.concatenate([c.times for c in chunks]),
        np.concatenate([c.frames for c in chunks]),
    )


def encode_gop(path: Path, frames, fps=FPS, *, gop=12, bframes=3, open_gop=False, hevc=False):
    """H.264/H.265 with a fixed GOP and B-frames (the writer leaves GOP choice to x264)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx265" if hevc else "libx264", rate=Fraction(fps).limit_denominator())
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:b-adapt=0"
        params += ":open-gop=1" if open_gop else ""
        if hevc:
            s.options = {
                "preset": "veryfast",
                "crf": "20",
                "x265-params": params + ":log-level=error",
            }
        else:
            s.options = {"preset": "veryfast", "crf": "20", "x264-params": params}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def remux(src: Path, dst: Path, *, fmt: str | None = None, options: dict | None = None) -> Path:
    """Copy the video packets into another container (e.g. MP4 with ``movflags=faststart``)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format=fmt, options=options or {}) as o:
        s = i.streams.video[0]
        out = o.add_stream_from_template(s)
        for p in i.demux(s):
            if p.size:
                p.stream = out
                o.mux(p)
    return dst


def packet_table(path: Path) -> dict[str, np.ndarray]:
    """Truth about an intact file, independent of the module: per packet in decode order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rows = [(p.pts, p.pos, p.size) for p in c.demux(s) if p.size]
    pts = np.array([r[0] for r in rows], np.int64)
    frame = np.argsort(np.argsort(pts))  # presentation index of each packet
    return {
        "frame": frame,
        "pos": np.array([r[1] for r in rows], np.int64),
        "size": np.array([r[2] for r in rows], np.int64),
    }


def blank_frame_packet(intact: Path, frame: int, out: Path) -> Path:
    """A copy of ``intact`` (an AVI) at ``out`` whose packet of ``frame``, with the 8 bytes of
    its chunk header before it, is zeroed: that frame cannot be read."""
    tab = packet_table(intact)
    data = bytearray(intact.read_bytes())
    k = int(np.flatnonzero(tab["frame"] == frame)[0])
    data[int(tab["pos"][k]) - 8:int(tab["pos"][k] + tab["size"][k])] = bytes(int(tab["size"][k]) + 8)
    out.write_bytes(bytes(data))
    return out


# ----------------------------------------------------------------------------- fixtures
FRAMES = [pattern(i) for i in range(N)]


@pytest.fixture(scope="module")
def vids(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "h264_mp4": write_video(d / "a.mp4", FRAMES, FPS, "h264"),
        "h264_mov": write_video(d / "a.mov", FRAMES, FPS, "h264"),
        "h264_mkv": write_video(d / "a.mkv", FRAMES, FPS, "h264"),
        "hevc_mp4": write_video(d / "h.mp4", FRAMES, FPS, "hevc"),
        "mjpg_avi": write_video(d / "m.avi", FRAMES, FPS, "mjpg"),
        "ffv1_avi": write_video(d / "f.avi", FRAMES, FPS, "ffv1"),
        "raw_avi": write_video(d / "r.avi", FRAMES, FPS, "raw"),
        "tiff": write_video(d / "s.tif", FRAMES, FPS, "tiff"),
        "png": write_video(d / "png_folder", FRAMES, FPS, "png"),
        "gop_mp4": encode_gop(d / "g.mp4", FRAMES),
        "gop_mkv": encode_gop(d / "g.mkv", FRAMES),
        "opengop_mp4": encode_gop(d / "og.mp4", FRAMES, open_gop=True),
        "gop_hevc_mkv": encode_gop(d / "gh.mkv", FRAMES, hevc=True),
    }
    jpg = d / "jpg_folder"
    jpg.mkdir()
    for i, f in enumerate(FRAMES):
        cv2.imwrite(str(jpg / f"img{i:04d}.jpg"), f, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out["jpg"] = jpg
    bmp = d / "bmp_folder"
    bmp.mkdir()
    for i, f in enumerate(FRAMES):
        cv2.imwrite(str(bmp / f"img{i}.bmp"), f)
    out["bmp"] = bmp
    return out


FORMATS = {
    # key: (codec, count method, lossless, fps known)
    "h264_mp4": ("h264", "demuxed packets", False, True),
    "h264_mov": ("h264", "demuxed packets", False, True),
    "h264_mkv": ("h264", "demuxed packets", False, True),
    "hevc_mp4": ("hevc", "demuxed packets", False, True),
    "mjpg_avi": ("mjpeg", "demuxed packets", False, True),
    "ffv1_avi": ("ffv1", "demuxed packets", True, True),
    "raw_avi": ("rawvideo", "demuxed packets", True, True),
    "tiff": ("tiff", "tiff pages", True, False),
    "png": ("png", "image files", True, False),
    "jpg": ("jpeg", "image files", False, False),
    "bmp": ("bmp", "image files", True, False),
    "gop_mp4": ("h264", "demuxed packets", False, True),
}


# ----------------------------------------------------------------------------- formats
@pytest.mark.parametrize("key", list(FORMATS))
def test_every_format_reads_every_frame_in_order(vids, key):
    codec, method, lossless, has_fps = FORMATS[key]
    with open_video(vids[key]) as src:
        m = src.meta
        assert isinstance(m, VideoMeta)
        assert (m.n_frames, len(src), m.width, m.height) == (N, N, W, H)
        assert m.codec == codec
        assert m.frame_count_method == method
        allf = read_all(src, 16)
    assert allf.indices.tolist() == list(range(N))
    assert allf.frames.dtype == np.uint8 and allf.frames.shape == (N, H, W)
    assert codes(allf.frames) == list(range(N))
    err = np.abs(allf.frames.astype(int) - np.stack(FRAMES).astype(int))
    if lossless:
        assert err.max() == 0
    else:
        assert err.mean() < 6
    if has_fps:
        assert m.fps == pytest.approx(FPS)
        # MKV stores milliseconds
        np.testing.assert_allclose(allf.times, np.arange(N) / FPS, atol=1e-3)
        assert m.duration_s == pytest.approx(N / FPS, abs=1e-3)
    else:
        assert np.isnan(m.fps) and np.isnan(allf.times).all()


def test_image_sources_get_times_from_fps(vids):
    for key in ("tiff", "png"):
        with open_video(vids[key], fps=25) as src:
            assert src.meta.fps == 25
            np.testing.assert_allclose(src.timestamps, np.arange(N) / 25)
            assert src.meta.duration_s == pytest.approx(N / 25)


@pytest.mark.parametrize("n", [1, 7, 10, 30, 45, 89, 90, 200])
def test_chunk_boundaries_and_times(vids, n):
    with open_video(vids["gop_mp4"]) as src:
        chunks = list(src.chunks(n))
        ts = src.timestamps
    sizes = [len(c) for c in chunks]
    expect = [min(n, N - k) for k in range(0, N, n)]
    assert sizes == expect
    for k, c in enumerate(chunks):
        assert c.indices.tolist() == list(range(k * n, k * n + len(c)))
        assert c.indices.dtype == np.int64 and c.times.dtype == np.float64
        assert c.frames.shape == (len(c), H, W)
        np.testing.assert_array_equal(c.times, ts[c.indices])
        assert codes(c.frames) == c.indices.tolist()
    alltimes = np.concatenate([c.times for c in chunks])
    np.testing.assert_allclose(alltimes, np.arange(N) / FPS, atol=1e-6)


@pytest.mark.parametrize("start,stop", [(0, 5), (5, 50), (37, None), (89, 90), (40, 40)])
def test_chunks_start_stop(vids, start, stop):
    with open_video(vids["gop_mkv"]) as src:
        got = read_all(src, 8, start=start, stop=stop)
    end = N if stop is None else stop
    assert got.indices.tolist() == list(range(start, end))
    assert codes(got.frames) == list(range(start, end))


def test_prefetch_modes_agree_and_chunks_are_fresh_arrays(vids):
    with open_video(vids["mjpg_avi"]) as src:
        a = list(src.chunks(10, prefetch=0))
        b = list(src.chunks(10, prefetch=3))
    assert len(a) == len(b) == 9
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.frames, y.frames)
    assert not any(np.shares_memory(b[i].frames, b[i + 1].frames) for i in range(len(b) - 1))
    # chunk arrays are recycled only when nothing refers to them: kept views stay intact
    with open_video(vids["mjpg_avi"]) as src:
        kept = [c.frames[3] for c in src.chunks(10)]
        firsts = [c.frames[0].copy() for c in src.chunks(10)]
    assert [code(f) for f in kept] == [10 * k + 3 for k in range(9)]
    assert [code(f) for f in firsts] == [10 * k for k in range(9)]


def test_breaking_out_of_chunks_stops_the_decode_thread(vids):
    def alive():
        return [t for t in threading.enumerate() if t.name.startswith("fishtrack-decode")]

    with open_video(vids["h264_mp4"]) as src:
        gen = src.chunks(4, prefetch=2)
        first = next(gen)
        assert first.indices.tolist() == [0, 1, 2, 3]
        gen.close()
    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive()


@pytest.mark.parametrize("key", ["gop_mp4", "opengop_mp4", "mjpg_avi"])
def test_one_container_open_serves_probe_index_and_first_reader(vids, key, monkeypatch):
    """Opening costs about as much as decoding a frame: the probe's handle does the index pass
    and is then decoded by the first reader (sequential or random), with correct frames."""
    import fishtrack.io.video.pyav as video

    opened = []
    real_open = video._av_open

    def counting_open(path, limit=None):
        opened.append(path)
        return real_open(path, limit)

    monkeypatch.setattr(video, "_av_open", counting_open)
    with open_video(vids[key]) as src:
        got = read_all(src, 16)  # probe + index pass + decode thread
        assert len(opened) == 1
        assert got.indices.tolist() == list(range(N))
        assert codes(got.frames) == list(range(N))
        assert code(src.read(50)) == 50  # random access needs a handle of its own
        assert len(opened) == 2
    with open_video(vids[key]) as src:  # random access first: seeks the reused handle
        assert [code(src.read(i)) for i in (61, 5, 0, 89)] == [61, 5, 0, 89]
        assert len(opened) == 3
        assert codes(read_all(src, 32, prefetch=0).frames) == list(range(N))
    src = open_video(vids[key])
    src.close()  # never read: the spare handle is released
    assert src._b.take_container() is None


def test_bad_arguments(vids):
    with open_video(vids["mjpg_avi"]) as src:
        with pytest.raises(ValueError):
            list(src.chunks(0))
        with pytest.raises(IndexError):
            src.read(N)
        with pytest.raises(IndexError):
            list(src.chunks(4, start=N + 1))
        np.testing.assert_array_equal(src.read(-1), src.read(N - 1))
    with pytest.raises(VideoError, match="closed"):
        src.read(0)
    with pytest.raises(VideoError, match="fps"):
        open_video(vids["mjpg_avi"], fps=0)


# ----------------------------------------------------------------------------- random access
@pytest.mark.parametrize(
    "key",
    ["gop_mp4", "gop_mkv", "opengop_mp4", "gop_hevc_mkv", "h264_mp4", "mjpg_avi", "tiff", "png"],
)
def test_random_access_equals_sequential(vids, key):
    with open_video(vids[key]) as src:
        seq = read_all(src, 32).frames
        rng = np.random.default_rng(3)
        order = rng.permutation(N)[:40]
        for i in order:
            np.testing.assert_array_equal(src.read(int(i)), seq[i], err_msg=f"frame {i}")
        req = [70, 3, 3, 88, 12, 13, 14, 60, 0]
        np.testing.assert_array_equal(src.sample(req), seq[req])
        rr = src.read_range(37, 71)
        assert rr.indices.tolist() == list(range(37, 71))
        np.testing.assert_array_equal(rr.frames, seq[37:71])
        np.testing.assert_array_equal(rr.times, src.timestamps[37:71])
        assert src.sample([]).shape == (0, H, W)
        assert src.damage == []


def test_bframe_files_really_have_bframes_and_keyframes(vids):
    """Guards the random-access test: the GOP files reorder packets and have 8 keyframes."""
    for key in ("gop_mp4", "gop_mkv", "opengop_mp4"):
        with av.open(str(vids[key])) as c:
            pk = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
        assert sum(b[0] < a[0] for a, b in zip(pk, pk[1:], strict=False)) > 20
        assert sum(k for _, k in pk) >= 7


def test_random_read_seeks_instead_of_decoding_from_the_start(vids):
    with open_video(vids["gop_mp4"]) as src:
        assert code(src.read(85)) == 85
        decoded = src._ra.n_decoded
    # keyframes every 12 frames: frame 85 needs its GOP (84..) plus the B-frame delay
    assert decoded <= 12 + 4


def test_sample_seeks_past_frames_it_does_not_need(vids):
    """Intra-only video: every sampled frame is its own keyframe, so a sample of every 4th frame
    decodes only those; in a GOP file it decodes forward within a GOP and seeks across."""
    req = list(range(0, N, 4))
    with open_video(vids["mjpg_avi"]) as src:
        assert codes(src.sample(req)) == req
        assert src._ra.n_decoded <= len(req) + 2
    with open_video(vids["gop_mp4"]) as src:  # keyframes every 12: frames 0..3 of each GOP
        req = [g + i for g in range(0, 84, 12) for i in range(4)]
        assert codes(src.sample(req)) == req
        assert src._ra.n_decoded <= len(req) + 7 * 3


def test_keyframes_are_the_frames_decoding_can_start_at(vids):
    """``keyframes``: the GOP files' every 12th frame, every frame of an intra-only codec, None
    for stacks and folders; a sample of runs starting at them decodes little more than the
    frames asked for (what the background's run sampling relies on)."""
    for key in ("gop_mp4", "gop_mkv", "gop_hevc_mkv"):
        with open_video(vids[key]) as src:
            assert src.keyframes.tolist() == list(range(0, N, 12)), key
    with open_video(vids["mjpg_avi"]) as src:
        assert src.keyframes.tolist() == list(range(N))
    for key in ("tiff", "png"):
        with open_video(vids[key], fps=FPS) as src:
            assert src.keyframes is None
    with open_video(vids["gop_mp4"]) as src:
        req = [k + i for k in src.keyframes.tolist() for i in range(3)]
        assert codes(src.sample(req)) == req
        assert src._ra.n_decoded <= len(req) + 8 * 3  # + B-frame delay per run


@pytest.mark.parametrize("key", ["gop_mp4", "gop_mkv", "opengop_mp4", "gop_hevc_mkv"])
def test_random_read_starts_at_the_nearest_keyframe(vids, key):
    """A seek must land on the keyframe at or before the frame, not a GOP earlier (MP4 and
    Matroska seek by presentation time: a B-frame keyframe's dts lands on the previous GOP)."""
    tab = packet_table(vids[key])
    with av.open(str(vids[key])) as c:
        is_key = [p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size]
    keys = sorted(int(f) for f, k in zip(tab["frame"], is_key, strict=True) if k)
    assert len(keys) >= 7
    for t in (85, 50, 13, 71, 36):
        with open_video(vids[key]) as src:
            assert code(src.read(t)) == t
            decoded = src._ra.n_decoded
        kf = max(k for k in keys if k <= t)
        assert decoded <= t - kf + 1 + 3, (t, kf, decoded)  # + leading/reordered B-frames


# ----------------------------------------------------------------------------- times
@pytest.mark.parametrize(
    "suffix,codec,atol", [(".mp4", "h264", 1e-5), (".mkv", "h264", 1e-3), (".avi", "mjpg", 1e-9)]
)
def test_variable_frame_rate_times_are_preserved(tmp_path, suffix, codec, atol):
    rng = np.random.default_rng(5)
    steps = rng.choice([1, 1, 1, 2, 3], size=59)
    t = np.concatenate([[0.0], np.cumsum(steps)]) / FPS
    path = tmp_path / f"vfr{suffix}"
    with VideoWriter(path, FPS, codec, variable_rate=True) as w:
        for i, ti in enumerate(t):
            w.write(pattern(i), pts_s=float(ti))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with open_video(path) as src:
            np.testing.assert_allclose(src.timestamps, t, atol=atol)
            got = read_all(src, 7)
            gaps = sorted(r.frame for r in src.damage if r.kind == "missing_frames")
            assert {r.kind for r in src.damage} == {"missing_frames"}
    assert got.indices.tolist() == list(range(60))  # frames are never renumbered by time
    assert codes(got.frames) == list(range(60))
    np.testing.assert_allclose(got.times, t, atol=atol)
    assert gaps == [int(i) + 1 for i in np.flatnonzero(steps > 1)]
    assert any(issubclass(r.category, DamagedVideoWarning) for r in rec)
    with open_video(path, fps=50) as src:  # override: frame / fps
        np.testing.assert_allclose(src.timestamps, np.arange(60) / 50)
        assert src.meta.time_source == "fps override"
        assert src.damage == []


def test_elementary_stream_without_timestamps(tmp_path, vids):
    raw = remux(vids["gop_mp4"], tmp_path / "e.h264", fmt="h264")
    with av.open(str(raw)) as c:  # truth: the stream really has no pts
        assert all(p.pts is None for p in c.demux(c.streams.video[0]) if p.size)
    with open_video(raw) as src:
        assert len(src) == N
        assert src.meta.time_source in ("packet durations", "nominal frame rate")
        np.testing.assert_allclose(src.timestamps, np.arange(N) / FPS, atol=1e-6)
        got = read_all(src, 32)
        assert codes(got.frames) == list(range(N))
        assert code(src.read(50)) == 50


# ----------------------------------------------------------------------------- crop / grey
def test_crop(vids):
    crop = (16, 8, 64, 40)
    with open_video(vids["gop_mp4"]) as full, open_video(vids["gop_mp4"], crop=crop) as cr:
        assert (cr.meta.width, cr.meta.height) == (64, 40)
        a = read_all(full, 16).frames
        b = read_all(cr, 16).frames
        np.testing.assert_array_equal(b, a[:, 8:48, 16:80])
        np.testing.assert_array_equal(cr.read(33), a[33, 8:48, 16:80])
    with open_video(vids["png"], crop=[0, 0, W, H]) as src:
        assert src.read(5).shape == (H, W)
    for bad in [(0, 0, W + 1, H), (-1, 0, 4, 4), (0, 0, 0, 5), (1, 2, 3)]:
        with pytest.raises(VideoError, match="crop"):
            open_video(vids["mjpg_avi"], crop=bad)


def test_grey_matches_ffmpeg_and_opencv(vids):
    """Limited-range luma expansion == FFmpeg's gray conversion; OpenCV's BGR->grey within 2."""
    p = vids["h264_mp4"]
    with open_video(p) as src:
        ours = read_all(src).frames
        assert "limited range" in src.meta.grey_rule
    with av.open(str(p)) as c:
        ff = np.stack([f.to_ndarray(format="gray") for f in c.decode(c.streams.video[0])])
    np.testing.assert_array_equal(ours, ff)
    cap = cv2.VideoCapture(str(p))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    assert np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(int) - ours[0]).max() <= 2


def colour_frames(n=6):
    out = []
    for i in range(n):
        f = np.zeros((H, W, 3), np.uint8)
        f[:, : W // 3] = (200, 40, 10)  # BGR
        f[:, W // 3 : 2 * W // 3] = (10, 180, 60)
        f[:, 2 * W // 3 :] = (30, 30, 220)
        f[:8, i * 8 : i * 8 + 8] = 255
        out.append(f)
    return out


@pytest.mark.parametrize(
    "codec,suffix,tol",
    [("png", "", 0), ("tiff", ".tif", 0), ("h264", ".mp4", 4), ("mjpg", ".avi", 4)],
)
def test_colour_is_converted_to_grey(tmp_path, codec, suffix, tol):
    frames = colour_frames()
    p = write_video(tmp_path / f"c{suffix}", frames, FPS, codec)
    expect = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames])
    with open_video(p) as src:
        got = read_all(src).frames
    assert got.shape == expect.shape
    # compare away from colour edges (chroma subsampling smears them in lossy codecs)
    inner = np.s_[:, 16:, [10, 30, 60, 75, 110, 120]]
    assert np.abs(got[inner].astype(int) - expect[inner].astype(int)).max() <= tol


def test_16bit_tiff_uses_min_max_rule(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(1000, 3001, (H, W)).astype(np.uint16) for _ in range(20)]
    frames[0][0, 0], frames[-1][0, 1] = 1000, 3000  # make min and max exact and sampled
    p = tmp_path / "s16.tif"
    tifffile.imwrite(p, np.stack(frames))
    with open_video(p) as src:
        got = read_all(src).frames
        assert "1000" in src.meta.grey_rule and "3000" in src.meta.grey_rule
    expect = np.clip(np.floor((np.stack(frames) - 1000.0) * 255.0 / 2000.0 + 0.5), 0, 255)
    np.testing.assert_array_equal(got, expect.astype(np.uint8))
    assert got.min() == 0 and got.max() == 255


def test_16bit_png_folder_uses_min_max_rule(tmp_path):
    d = tmp_path / "p16"
    d.mkdir()
    vals = [(i * 500) for i in range(10)]  # frame i is flat at i * 500
    for i, v in enumerate(vals):
        cv2.imwrite(str(d / f"f{i}.png"), np.full((H, W), v, np.uint16))
    with open_video(d, fps=10) as src:
        got = read_all(src).frames
    expect = [int(np.floor(v * 255 / 4500 + 0.5)) for v in vals]
    assert [int(f[0, 0]) for f in got] == expect


def test_tiff_with_mixed_page_shapes_is_an_error(tmp_path):
    p = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(p) as t:
        t.write(np.zeros((H, W), np.uint8))
        t.write(np.zeros((H // 2, W), np.uint8))
    with pytest.raises(VideoError, match="pages change shape") as ei:
        open_video(p)
    assert str(p) in str(ei.value)


def test_imagej_tiff_frame_interval(tmp_path):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(
        p, np.stack(FRAMES[:10]), imagej=True, metadata={"finterval": 0.04, "axes": "TYX"}
    )
    with open_video(p) as src:
        assert src.meta.fps == pytest.approx(25)
        np.testing.assert_allclose(src.timestamps, np.arange(10) * 0.04)


# ----------------------------------------------------------------------------- image folders
def test_natural_sort_order_and_ignored_files(tmp_path):
    d = tmp_path / "nat"
    d.mkdir()
    for i in range(12):  # frame_1 ... frame_12, not zero-padded
        cv2.imwrite(str(d / f"frame_{i + 1}.png"), pattern(i))
    (d / "notes.txt").write_text("not an image")
    cv2.imwrite(str(d / ".hidden.png"), pattern(99))
    with open_video(d, fps=10) as src:
        assert len(src) == 12
        got = read_all(src, 5)
        assert src.damage == []
    assert codes(got.frames) == list(range(12))  # frame_2 before frame_10
    np.testing.assert_allclose(got.times, np.arange(12) / 10)


def test_folder_counter_gaps_keep_real_times(tmp_path):
    d = tmp_path / "gap"
    d.mkdir()
    counters = [0, 1, 2, 5, 6, 7, 8, 12]
    for k, c in enumerate(counters):
        cv2.imwrite(str(d / f"cam_{c:05d}.png"), pattern(k))
    with pytest.warns(DamagedVideoWarning, match="missing_frames"):
        with open_video(d, fps=20) as src:
            np.testing.assert_allclose(src.timestamps, np.array(counters) / 20)
            got = read_all(src)
            dmg = src.damage
    assert got.indices.tolist() == list(range(8))
    assert [(r.frame, r.kind) for r in dmg] == [(3, "missing_frames"), (7, "missing_frames")]


def test_folder_with_unreadable_image_carries_on(tmp_path):
    d = write_video(tmp_path / "bad_png", FRAMES[:20], FPS, "png")
    victim = sorted(d.iterdir())[7]
    victim.write_bytes(b"this is not a png")
    with pytest.warns(DamagedVideoWarning, match=r"undecodable_frame at frame\(s\) 7"):
        with open_video(d) as src:
            got = read_all(src, 6)
            dmg = src.damage
    assert got.indices.tolist() == [i for i in range(20) if i != 7]
    assert codes(got.frames) == got.indices.tolist()
    assert dmg[0].frame == 7 and victim.name in dmg[0].detail


def test_folder_with_odd_sized_image_is_an_error(tmp_path):
    d = write_video(tmp_path / "odd", FRAMES[:10], FPS, "png")
    victim = sorted(d.iterdir())[4]
    cv2.imwrite(str(victim), np.zeros((H + 2, W), np.uint8))
    with open_video(d) as src:
        with pytest.raises(VideoError, match=victim.name):
            read_all(src)


# ----------------------------------------------------------------------------- input errors
def _assert_video_error(path, match):
    with pytest.raises(VideoError, match=match) as ei:
        src = open_video(path)
        len(src)  # the index pass is lazy
    assert str(path) in str(ei.value)
    assert "\n" not in str(ei.value)
    assert not isinstance(ei.value.__cause__, av.FFmpegError)
    return ei.value


def test_missing_empty_and_bogus_inputs(tmp_path):
    _assert_video_error(tmp_path / "nope.avi", "not found")
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    _assert_video_error(empty, "empty")
    text = tmp_path / "notes.avi"
    text.write_text("these are my lab notes, not a video\n" * 20)
    err = _assert_video_error(text, "not a readable video")
    assert str(err).startswith(f"{text}: ") and str(err).count(str(text)) == 1
    folder = tmp_path / "no_images"
    folder.mkdir()
    (folder / "readme.txt").write_text("x")
    _assert_video_error(folder, "no images")
    tif = tmp_path / "fake.tif"
    tif.write_text("not a tiff")
    _assert_video_error(tif, "TIFF")


def test_container_without_video_stream(tmp_path):
    p = tmp_path / "audio_only.mkv"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for pk in s.encode(frame):
            c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    _assert_video_error(p, "no video stream")


def test_unsupported_codec(tmp_path, vids):
    data = vids["mjpg_avi"].read_bytes()
    assert data.count(b"MJPG") >= 1
    p = tmp_path / "unknown_codec.avi"
    p.write_bytes(data.replace(b"MJPG", b"QQQQ"))  # a FourCC no decoder knows
    _assert_video_error(p, "unsupported codec")


# ----------------------------------------------------------------------------- damaged input
def _read_damaged(path):
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with open_video(path) as src:
            got = read_all(src, 16)
            dmg = src.damage
            n = len(src)
    elapsed = time.monotonic() - t0
    warned = [r for r in rec if issubclass(r.category, DamagedVideoWarning)]
    return got, dmg, n, warned, elapsed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cut_frame,where", [(10, "mid"), (41, "mid"), (75, "header"), (89, "mid")])
def test_truncated_mjpg_avi(tmp_path, vids, cut_frame, where):
    intact = vids["mjpg_avi"]
    tab = packet_table(intact)
    k = int(np.flatnonzero(tab["frame"] == cut_frame)[0])
    cut = int(tab["pos"][k] + tab["size"][k] // 2) if where == "mid" else int(tab["pos"][k] - 8)
    p = tmp_path / "cut.avi"
    p.write_bytes(intact.read_bytes()[:cut])
    got, dmg, n, warned, elapsed = _read_damaged(p)
    assert got.indices.tolist() == list(range(cut_frame))
    assert codes(got.frames) == list(range(cut_frame))
    assert "truncated" in {r.kind for r in dmg}
    assert all(r.frame >= cut_frame for r in dmg)
    assert warned and str(p) in str(warned[0].message)
    assert elapsed < 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize("frac", [0.2, 0.55, 0.9])
def test_truncated_h264_mp4_faststart(tmp_path, vids, frac):
    """MP4 with its index at the front (camera software with faststart/fragments) stays readable."""
    fast = remux(vids["gop_mp4"], tmp_path / "fast.mp4", options={"movflags": "faststart"})
    tab = packet_table(fast)
    data = fast.read_bytes()
    cut = int(len(data) * frac)
    complete = tab["pos"] + tab["size"] <= cut
    prefix = int(np.argmin(complete)) if not complete.all() else len(complete)
    must = sorted(tab["frame"][:prefix].tolist())  # complete decode-order prefix
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[:cut])
    got, dmg, n, warned, elapsed = _read_damaged(p)
    decoded = got.indices.tolist()
    assert set(must) <= set(decoded) <= set(must) | {int(tab["frame"][prefix])}
    assert codes(got.frames) == decoded
    assert "truncated" in {r.kind for r in dmg}
    assert warned and str(p) in str(warned[0].message)
    assert elapsed < 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fragmented_mp4", "mkv"])
@pytest.mark.parametrize("frac", [0.25, 0.5, 0.9])
def test_truncated_fragmented_mp4_and_mkv(tmp_path, vids, kind, frac):
    if kind == "mkv":
        intact = vids["gop_mkv"]
    else:
        opts = {"movflags": "frag_keyframe+empty_moov"}
        intact = remux(vids["gop_mp4"], tmp_path / "frag.mp4", options=opts)
    tab = packet_table(intact)
    data = intact.read_bytes()
    cut = int(len(data) * frac)
    complete = tab["pos"] + tab["size"] <= cut
    must = set(tab["frame"][: int(np.argmin(complete))].tolist())
    p = tmp_path / f"cut{intact.suffix}"
    p.write_bytes(data[:cut])
    got, dmg, n, warned, elapsed = _read_damaged(p)
    assert must <= set(got.indices.tolist()) <= must | set(tab["frame"][~complete].tolist())
    assert codes(got.frames) == got.indices.tolist()  # numbers stay right after the cut
    assert "truncated" in {r.kind for r in dmg}
    assert warned and str(p) in str(warned[0].message)
    with warnings.catch_warnings(), open_video(p) as src:  # reading a lost frame: clear error
        warnings.simplefilter("ignore", DamagedVideoWarning)
        bad = [r.frame for r in src.damage if r.frame < len(src)]
        for i in bad[:1]:
            with pytest.raises(VideoError, match=f"frame {i} cannot be decoded"):
                src.read(i)
    assert elapsed < 20


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path, vids):
    data = vids["h264_mp4"].read_bytes()
    p = tmp_path / "cut_nomoov.mp4"
    p.write_bytes(data[: len(data) // 2])
    _assert_video_error(p, "moov")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("frac", [0.3, 0.5, 0.7])
def test_corrupt_middle_of_mjpg_avi_keeps_frame_numbers(tmp_path, vids, frac):
    intact = vids["mjpg_avi"]
    tab = packet_table(intact)
    data = bytearray(intact.read_bytes())
    a, length = int(len(data) * frac), 3000
    data[a : a + length] = (
        np.random.default_rng(1).integers(0, 256, length, dtype=np.uint8).tobytes()
    )
    p = tmp_path / "corrupt.avi"
    p.write_bytes(bytes(data))
    got, dmg, n, warned, elapsed = _read_damaged(p)
    start, end = tab["pos"] - 8, tab["pos"] + tab["size"]  # chunk header + data
    hit = (start < a + length) & (end > a)
    intact_frames = sorted(tab["frame"][~hit].tolist())
    hit_frames = set(tab["frame"][hit].tolist())
    assert hit_frames, "the corruption must hit a frame"
    # every untouched frame comes out, under its own number
    assert set(intact_frames) <= set(got.indices.tolist())
    assert n == N
    good = [
        (i, c)
        for i, c in zip(got.indices.tolist(), codes(got.frames), strict=True)
        if i not in hit_frames
    ]
    assert all(i == c for i, c in good)
    lost = hit_frames - set(got.indices.tolist())
    assert lost <= {r.frame for r in dmg}
    if lost:
        assert warned and str(p) in str(warned[0].message)
    assert elapsed < 20


@pytest.mark.timeout(60)
def test_corrupt_middle_of_h264_mp4(tmp_path, vids):
    intact = vids["gop_mp4"]
    tab = packet_table(intact)
    data = bytearray(intact.read_bytes())
    k = int(np.flatnonzero(tab["frame"] == 40)[0])  # a frame inside the GOP 36..47
    a = int(tab["pos"][k]) + 4
    data[a : a + 200] = np.random.default_rng(2).integers(0, 256, 200, dtype=np.uint8).tobytes()
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(bytes(data))
    got, dmg, n, warned, elapsed = _read_damaged(p)
    idx = got.indices.tolist()
    assert n == N and idx == sorted(set(idx))
    pairs = dict(zip(idx, codes(got.frames), strict=True))
    # before the damaged GOP and after the next keyframe (48) frames are intact and correctly numbered
    for i in [*range(0, 36), *range(48, N)]:
        assert pairs.get(i) == i
    assert elapsed < 20


def test_damage_record_to_dict():
    r = DamageRecord(3, "truncated", "x")
    assert r.to_dict() == {"frame": 3, "kind": "truncated", "detail": "x"}
