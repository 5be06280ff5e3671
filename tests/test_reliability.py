"""Damaged and hostile input, faults in the middle of a run, reproducibility, frame alignment,
``fishtrack verify`` and security.

What other files already cover (not repeated here): tests/test_video.py (truncated MJPG AVI,
faststart / fragmented MP4 and MKV at a few points, corrupt middle of MJPG AVI and H.264 MP4,
missing / empty / text / audio-only / unsupported-codec files, folders with unreadable or odd-sized
images and counter gaps, TIFF with mixed page shapes), tests/test_config.py (typos, wrong types,
out-of-range values, a python/object tag, non-UTF-8), tests/test_experiment.py (manifest problems
with row numbers, missing columns, duplicate wells and fish ids, paths leaving the folder,
Windows-1252 manifests, resume, leftovers of a killed run, the lock taken in-process, equal
results with 1 or 2 workers and on dask). Property-based tests are in tests/test_properties.py.

Here: sweeps of cut-off and corrupted files over many byte offsets and formats, wrong suffixes,
cut-off TIFF stacks; every hostile input through the command line (exit code, one line naming
the file, no traceback, nothing written); a batch killed with SIGKILL while trials are written and
run again; a second run on a locked folder from the command line; full disk and read-only
output folders; byte-identical tables with 1 and 2 workers on real videos; frames and times of
the tables against the video; dropped and duplicated container frames; ``fishtrack verify``; no
pickle / eval / unsafe YAML / network.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import tifffile
from fixtures_experiment import (
    PROTOCOL,
    fake_arenas,
    fake_trial,
    write_fake_video,
    write_manifest,
)
from test_video import blank_frame_packet, code, encode_gop, packet_table, pattern, remux
from typer.testing import CliRunner

from fishtrack.cli import app
from fishtrack.errors import VideoError
from fishtrack.experiment import run_experiment
from fishtrack.io.video import DamagedVideoWarning, open_video
from fishtrack.io.writer import write_video
from fishtrack.verify import verify_folder

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
N = 40
FPS = 30.0
FRAMES = [pattern(i) for i in range(N)]
runner = CliRunner()


# ============================================================================================
# damaged video files: sweeps over byte offsets


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("intact")
    gop_mp4 = encode_gop(d / "g.mp4", FRAMES)
    return {
        "h264_mkv": encode_gop(d / "g.mkv", FRAMES),
        "hevc_mkv": encode_gop(d / "h.mkv", FRAMES, hevc=True),
        "h264_mp4_faststart": remux(gop_mp4, d / "fast.mp4", options={"movflags": "faststart"}),
        "mjpg_avi": write_video(d / "m.avi", FRAMES, FPS, "mjpg"),
        "ffv1_avi": write_video(d / "f.avi", FRAMES, FPS, "ffv1"),
        "raw_avi": write_video(d / "r.avi", FRAMES, FPS, "raw"),
        "tiff": write_video(d / "s.tif", FRAMES, FPS, "tiff"),
    }


def _offsets(size: int, n: int = 24) -> list[int]:
    """Cuts in the header (a few bytes in) and spread over the whole file."""
    small = [1, 4, 8, 12, 16, 32, 64, 128, 512, 1024]
    return sorted({o for o in small + [int(size * f) for f in np.linspace(0.03, 0.995, n)]
                   if 0 < o < size})


def _read_all(path: Path):
    """(n_frames, indices, times, frames, damage, warnings) or the VideoError."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            with open_video(path) as src:
                idx, times, frames = [], [], []
                for ch in src.chunks(16):
                    idx += ch.indices.tolist()
                    times += ch.times.tolist()
                    frames += list(ch.frames)
                return len(src), idx, times, frames, list(src.damage), [
                    str(w.message) for w in rec if issubclass(w.category, DamagedVideoWarning)]
        except VideoError as err:
            return err


def _video_error_ok(err: VideoError, path: Path) -> str | None:
    text = str(err)
    if str(path) not in text or "\n" in text:
        return f"not one line naming the file: {text!r}"
    if isinstance(err.__cause__, av.FFmpegError):
        return "FFmpeg's exception leaked as the cause"
    return None


def _lost_start_s(damage) -> float:
    """Seconds of recording lost before the first frame (times count from the first frame)."""
    import re

    for r in damage:
        m = re.search(r"first frame in the file is at ([\d.]+) s", r.detail)
        if r.frame == 0 and r.kind == "missing_frames" and m:
            return float(m.group(1))
    return 0.0


def _check_damaged_read(path: Path, n_intact: int, *, by_time: bool) -> str | None:
    """The contract for any damaged file: a one-line VideoError, or frames that are what their
    numbers and times say, and every loss reported. Returns a problem or None."""
    t0 = time.monotonic()
    res = _read_all(path)
    if time.monotonic() - t0 > 15:
        return "reading took more than 15 s"
    if isinstance(res, VideoError):
        return _video_error_ok(res, path)
    n, idx, times, frames, damage, warned = res
    if idx != sorted(set(idx)) or any(not 0 <= i < n for i in idx):
        return f"frame numbers not increasing within 0..{n - 1}: {idx}"
    if by_time and np.any(np.diff(times) <= 0):
        return f"times not increasing: {times}"
    # each picture is the frame its time (containers) or number (TIFF pages) says it is
    t0 = _lost_start_s(damage)
    want = [int(round((t + t0) * FPS)) for t in times] if by_time else idx
    got = [code(f) for f in frames]
    if len(idx) < n_intact and not damage:
        return f"{n_intact - len(idx)} frame(s) lost without a damage record"
    if damage and not any(str(path) in w for w in warned):
        return "damage recorded but no DamagedVideoWarning naming the file"
    return None if got == want or not by_time else ("wrong", got, want)


@pytest.mark.parametrize("key", ["h264_mkv", "hevc_mkv", "h264_mp4_faststart", "mjpg_avi",
                                 "ffv1_avi", "raw_avi", "tiff"])
def test_files_cut_off_at_many_byte_offsets(intact, tmp_path, key):
    src = intact[key]
    data = src.read_bytes()
    problems = []
    for cut in _offsets(len(data)):
        p = tmp_path / f"cut{src.suffix}"
        p.write_bytes(data[:cut])
        why = _check_damaged_read(p, N, by_time=key != "tiff")
        if isinstance(why, tuple):  # a cut never leaves a wrong picture under a frame's time
            why = f"pictures {why[1]} under frames/times {why[2]}"
        if why:
            problems.append(f"cut at byte {cut}: {why}")
    assert not problems, problems


def _frame_spans(path: Path, key: str) -> list[tuple[int, int, int]]:
    """(frame, first byte, end byte) of the data each frame of an intact file depends on: its
    own TIFF page, or every packet of its group of pictures (keyframe to the next keyframe in
    decode order; FFV1 carries its coder state over non-key frames too), with the container's
    packet header in front."""
    if key == "tiff":
        with tifffile.TiffFile(path) as t:
            return [(i, int(pg.dataoffsets[0]), int(pg.dataoffsets[0] + pg.databytecounts[0]))
                    for i, pg in enumerate(t.pages)]
    with av.open(str(path)) as c:
        pk = [(p.pts, int(p.pos), int(p.size), bool(p.is_keyframe))
              for p in c.demux(video=0) if p.size]
    frame = np.argsort(np.argsort([p[0] for p in pk]))
    gop = np.cumsum([p[3] for p in pk])
    spans = []
    for g in np.unique(gop):
        members = np.flatnonzero(gop == g)
        start = min(pk[m][1] for m in members) - 32
        end = max(pk[m][1] + pk[m][2] for m in members)
        spans += [(int(frame[m]), start, end) for m in members]
    return spans


@pytest.mark.parametrize("key", ["mjpg_avi", "ffv1_avi", "raw_avi", "tiff", "h264_mkv"])
def test_files_with_corrupted_bytes_at_many_offsets(intact, tmp_path, key):
    """Random bytes overwrite part of the file. Nothing hangs or leaks, numbering stays right,
    losses are reported, and every frame whose data (its group of pictures) is untouched comes
    out right under its own number. Corruption inside a compressed picture is not always detectable (no
    checksums): such a picture may come out with artefacts (docs/troubleshooting.md)."""
    src = intact[key]
    data = src.read_bytes()
    spans = _frame_spans(src, key)
    rng = np.random.default_rng(7)
    problems = []
    for a in _offsets(len(data), 16):
        length = int(rng.integers(16, 600))
        bad = bytearray(data)
        bad[a:a + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        p = tmp_path / f"bad{src.suffix}"
        p.write_bytes(bytes(bad))
        why = _check_damaged_read(p, N, by_time=key != "tiff")
        if why is None or isinstance(why, tuple):
            res = _read_all(p)
            if isinstance(res, VideoError):
                continue
            _, idx, times, frames, damage, _ = res
            untouched = {f for f, s, e in spans if e <= a or s >= a + length}
            first_byte = min((s for _, s, _ in spans), default=len(data))
            if a + length <= first_byte:
                untouched = set()  # a damaged header may change how the file is parsed
            # frames lost before it renumber a frame (numbers count the frames the file
            # holds), its time still says which frame of the recording it is
            t0 = _lost_start_s(damage)
            orig = idx if key == "tiff" else [int(round((t + t0) * FPS)) for t in times]
            lossless = key in ("ffv1_avi", "raw_avi", "tiff")
            for i, k, f in zip(idx, orig, frames, strict=True):
                if k in untouched and lossless and not np.array_equal(f, FRAMES[k]):
                    problems.append(f"bytes {a}+{length}: untouched frame {k} (#{i}) differs")
                    break
                if k in untouched and code(f) != k:
                    problems.append(f"bytes {a}+{length}: untouched frame {k} (#{i}) reads as "
                                    f"{code(f)}")
                    break
        elif why:
            problems.append(f"bytes {a}+{length}: {why}")
    assert not problems, problems


# ============================================================================================
# wrong suffix, zero bytes, cut-off TIFF


def test_wrong_suffixes_are_read_by_content(intact, tmp_path):
    cases = {"mp4_as.avi": intact["h264_mp4_faststart"], "avi_as.mp4": intact["mjpg_avi"],
             "mkv_as.mov": intact["h264_mkv"], "tiff_stack_as.avi": intact["tiff"]}
    for name, src in cases.items():
        p = tmp_path / name
        shutil.copy(src, p)
        with open_video(p) as v:
            got = [code(f) for ch in v.chunks(16) for f in ch.frames]
            assert (len(v), got, v.damage) == (N, list(range(N)), []), name
    # an AVI named .tif: clear error saying it is not a TIFF
    p = tmp_path / "video_as.tif"
    shutil.copy(intact["mjpg_avi"], p)
    err = _read_all(p)
    assert isinstance(err, VideoError) and "not a readable TIFF" in str(err)
    assert _video_error_ok(err, p) is None


def test_zero_byte_files(tmp_path):
    for name in ("empty.mp4", "empty.avi", "empty.tif"):
        p = tmp_path / name
        p.write_bytes(b"")
        err = _read_all(p)
        assert isinstance(err, VideoError) and "empty (0 bytes)" in str(err), name
        assert _video_error_ok(err, p) is None
    d = write_video(tmp_path / "frames", FRAMES[:10], FPS, "png")
    victim = sorted(d.iterdir())[3]
    victim.write_bytes(b"")  # a zero-byte image in a folder: skipped and reported, not fatal
    n, idx, _, frames, damage, warned = _read_all(d)
    assert n == 10 and idx == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [code(f) for f in frames] == idx
    assert [(r.frame, r.kind) for r in damage] == [(3, "undecodable_frame")]
    assert victim.name in damage[0].detail and warned


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99, 0.9995])
def test_cut_off_tiff_stack_reports_the_lost_pages(intact, tmp_path, capfd, keep):
    """tifffile stops at a page chain pointing past the end and only logs it: the reader must
    say how many pages are lost (the stack's shape metadata says 40) and keep stderr clean."""
    data = intact["tiff"].read_bytes()
    p = tmp_path / "cut.tif"
    p.write_bytes(data[: int(len(data) * keep)])
    n, idx, _, frames, damage, warned = _read_all(p)
    assert 1 <= n < N and idx == list(range(n)) and [code(f) for f in frames] == idx
    assert [(r.frame, r.kind) for r in damage] == [(n, "truncated")]
    assert f"describes {N} frames but only {n} page(s)" in damage[0].detail
    assert warned and str(p) in warned[0]
    assert "tifffile" not in capfd.readouterr().err


def test_cut_off_imagej_tiff_without_shape_metadata(tmp_path):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, np.stack(FRAMES[:20]), imagej=True, metadata={"axes": "TYX"})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    res = _read_all(p)
    if isinstance(res, VideoError):  # ImageJ stores one contiguous block: pages may be lost
        assert _video_error_ok(res, p) is None
        return
    n, idx, _, _, damage, _ = res
    assert n < 20 and damage and damage[0].kind == "truncated"


# ============================================================================================
# dropped and duplicated container frames


def _write_mjpg_mkv(path: Path, frame_numbers: list[int], fps: int = 25,
                    duplicate: int | None = None) -> Path:
    """MJPG in Matroska with each frame's pts = its number (gaps = dropped frames); the packet
    of the ``duplicate``-th frame is written twice (same timestamp)."""
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("mjpeg", rate=fps)
        s.width, s.height, s.pix_fmt = 128, 96, "yuvj420p"
        s.time_base = Fraction(1, fps)
        for k, i in enumerate(frame_numbers):
            f = av.VideoFrame.from_ndarray(pattern(i), format="gray").reformat(format="yuvj420p")
            f.pts, f.time_base = i, Fraction(1, fps)
            for pkt in s.encode(f):
                copy = None
                if k == duplicate:
                    copy = av.Packet(bytes(pkt))
                    copy.pts, copy.dts, copy.time_base = pkt.pts, pkt.dts, pkt.time_base
                c.mux(pkt)
                if copy is not None:
                    copy.stream = s
                    c.mux(copy)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def test_dropped_frames_are_reported_and_keep_their_times(tmp_path):
    kept = [i for i in range(30) if i not in (10, 11, 12, 20)]
    n, idx, times, frames, damage, warned = _read_all(_write_mjpg_mkv(tmp_path / "d.mkv", kept))
    assert n == len(kept) and idx == list(range(len(kept)))  # never renumbered or invented
    assert [code(f) for f in frames] == kept
    np.testing.assert_allclose(times, np.array(kept) / 25, atol=1e-9)
    assert [(r.frame, r.kind) for r in damage] == [(10, "missing_frames"), (17, "missing_frames")]
    assert "~3 frame(s) missing" in damage[0].detail and warned


def test_duplicated_container_frames_are_reported_once_and_skipped(tmp_path):
    p = _write_mjpg_mkv(tmp_path / "dup.mkv", list(range(20)), duplicate=5)
    with av.open(str(p)) as c:  # the file really holds the packet twice
        pts = [pk.pts for pk in c.demux(video=0) if pk.size]
    assert len(pts) == 21 and len(set(pts)) == 20
    n, idx, times, frames, damage, _ = _read_all(p)
    assert n == 20 and idx == list(range(20)) and [code(f) for f in frames] == idx
    assert [(r.frame, r.kind) for r in damage] == [(5, "corrupt_packet")]
    assert "repeat another packet's timestamp" in damage[0].detail


# ============================================================================================
# hostile input through the command line: exit code, one line naming the file, no traceback,
# nothing written


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    """Two tiny real plates (1 x 2 wells, 4 s at 25 fps), their config and a manifest."""
    from fishtrack.synth import SimSpec, simulate

    root = tmp_path_factory.mktemp("sim")
    videos, groups = [], {}
    for k, seed in ((1, 3), (2, 4)):
        spec = SimSpec(name=f"plate{k}", layout="wells", rows=1, cols=2, fps=25, duration_s=4,
                       seed=seed, fish_length_px=24)
        res = simulate(spec, root / "in" / f"p{k}")
        videos.append(res.video_path)
        truth = pd.read_parquet(res.truth_path)
        groups[k] = truth.groupby("arena")["group"].first().to_dict()
    config = root / "in" / "p1" / "config.yaml"
    rows = [{"video": f"p{k}/plate{k}.mp4", "arena": a, "group": g}
            for k in (1, 2) for a, g in sorted(groups[k].items())]
    manifest = write_manifest(root / "in" / "manifest.csv", rows)
    with open_video(videos[0]) as src:
        frames = [f for ch in src.chunks(64) for f in ch.frames]
    return {"root": root, "videos": videos, "config": config, "manifest": manifest,
            "rows": rows, "frames": frames}


def _cli(args: list[str]):
    return runner.invoke(app, [str(a) for a in args])


def _assert_one_line_error(r, code: int, names: str | Path, match: str) -> str:
    """Exit ``code``; stderr is exactly one line 'error: ...' naming ``names`` and saying
    ``match``; no traceback anywhere."""
    assert r.exit_code == code, (r.exit_code, r.stderr, r.stdout)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert str(names) in lines[0] and match in lines[0], lines[0]
    return lines[0]


def _nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def _bad_video(kind: str, d: Path, sim: dict, intact: dict) -> tuple[Path, list[str]]:
    """A hostile input for `fishtrack track` and extra arguments."""
    frames = sim["frames"]
    if kind == "missing":
        return d / "nope.mp4", []
    if kind == "zero_bytes":
        (d / "empty.mp4").write_bytes(b"")
        return d / "empty.mp4", []
    if kind == "text_as_video":
        (d / "notes.mp4").write_text("time,event\n0.0,start\n" * 50)
        return d / "notes.mp4", []
    if kind == "unsupported_codec":
        (d / "qq.avi").write_bytes(intact["mjpg_avi"].read_bytes().replace(b"MJPG", b"QQQQ"))
        return d / "qq.avi", []
    if kind == "mp4_cut_before_index":
        data = sim["videos"][0].read_bytes()
        (d / "cut.mp4").write_bytes(data[: len(data) // 2])
        return d / "cut.mp4", []
    if kind == "tiff_mixed_shapes":
        with tifffile.TiffWriter(d / "mixed.tif") as t:
            for f in frames[:5]:
                t.write(f)
            t.write(frames[5][:50])
        return d / "mixed.tif", ["--config", _with_fps(sim, d)]
    if kind == "folder_odd_sized_frame":
        folder = write_video(d / "frames", frames[:60], 25, "png")
        victim = sorted(folder.iterdir())[37]
        import cv2

        cv2.imwrite(str(victim), frames[37][:-2])
        return folder, ["--config", _with_fps(sim, d)]
    if kind == "tiff_without_frame_rate":
        return write_video(d / "stack.tif", frames[:30], 25, "tiff"), []
    if kind == "too_small":
        return write_video(d / "tiny.avi", [f[:8, :8] for f in frames[:10]], 25, "ffv1"), []
    if kind == "no_wells":
        return write_video(d / "grey.avi", [np.full_like(frames[0], 128)] * 10, 25, "ffv1"), []
    raise AssertionError(kind)


def _with_fps(sim: dict, d: Path) -> Path:
    import yaml

    cfg = yaml.safe_load(sim["config"].read_text())
    cfg["video"] = {"fps": 25.0}
    p = d / "config_fps.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize(("kind", "code", "match"), [
    ("missing", 3, "file not found"),
    ("zero_bytes", 3, "file is empty (0 bytes)"),
    ("text_as_video", 3, "not a readable video file"),
    ("unsupported_codec", 3, "unsupported codec"),
    ("mp4_cut_before_index", 3, "'moov' atom) is missing"),
    ("tiff_mixed_shapes", 3, "TIFF pages change shape"),
    ("folder_odd_sized_frame", 3, "but the folder's frames are"),
    ("tiff_without_frame_rate", 2, "set video.fps"),
    ("too_small", 4, "at least 16 x 16 px"),
    ("no_wells", 4, "no well rim was found"),
])
def test_cli_track_refuses_bad_video_cleanly(sim, intact, tmp_path, kind, code, match):
    video, extra = _bad_video(kind, tmp_path, sim, intact)
    args = ["track", video, "--out", tmp_path / "out", *(extra or ["--config", sim["config"]])]
    r = _cli(args)
    line = _assert_one_line_error(r, code, video, match)
    if kind == "folder_odd_sized_frame":
        assert "frame_00037" in line or "37" in line
    _nothing_written(tmp_path / "out")


CONFIG_CASES = {
    "typo": ("arenas:\n  layot: wells\n", "arenas.layot: unknown key (allowed here: layout"),
    "wrong_type": ("arenas:\n  rows: two\n", "arenas.rows: Input should be a valid integer"),
    "bool_for_number": ("video:\n  chunk_size: yes\n", "video.chunk_size: must be a number"),
    "out_of_range": ("behaviour:\n  min_passive_s: -1\n", "behaviour.min_passive_s: Input should be greater than 0"),
    "infinite": ("video:\n  fps: .inf\n", "video.fps: Input should be a finite number"),
    "python_object_tag": ("arenas: !!python/object/apply:os.system ['echo pwned']\n",
                          "could not determine a constructor for the tag"),
    "python_name_tag": ("video: !!python/name:os.system\n", "could not determine a constructor"),
    "duplicate_key": ("behaviour:\n  min_passive_s: 2\n  min_passive_s: 20\n",
                      "key 'min_passive_s' appears twice (lines 2 and 3)"),
    "alias_bomb": ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                   "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                   "video: {fps: *f}\n", "video.fps: Input should be a valid number"),
    "deep_nesting": ("video: " + "[" * 800 + "]" * 800 + "\n", "nested too deeply"),
    "not_utf8": (b"arenas:\n  layout: \xe9\n", "not UTF-8 text"),
    "not_a_mapping": ("- wells\n- 24\n", "the top level must be a mapping"),
}


@pytest.mark.parametrize("kind", list(CONFIG_CASES))
def test_cli_refuses_bad_config_cleanly(sim, tmp_path, kind):
    text, match = CONFIG_CASES[kind]
    cfg = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    else:
        cfg.write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    r = _cli(["track", sim["videos"][0], "--config", cfg, "--out", tmp_path / "out"])
    line = _assert_one_line_error(r, 2, cfg, match)
    assert len(line) < 1000 and time.monotonic() - t0 < 20
    _nothing_written(tmp_path / "out")
    assert _cli(["config", "validate", cfg]).exit_code == 2


def _manifest_case(kind: str, d: Path, sim: dict) -> tuple[Path, str]:
    src = sim["root"] / "in"
    for k in (1, 2):
        shutil.copytree(src / f"p{k}", d / f"p{k}", dirs_exist_ok=True)
    m = d / "manifest.csv"
    rows = [dict(r) for r in sim["rows"]]
    if kind == "missing_columns":
        write_manifest(m, [{k: v for k, v in r.items() if k != "group"} for r in rows])
        return m, "missing required column group (found: video, arena)"
    if kind == "duplicate_rows":
        write_manifest(m, rows + [rows[1]])
        return m, "rows 3, 6 name the same well (video 'p1/plate1.mp4', arena 'A2')"
    if kind == "unknown_arena":
        write_manifest(m, rows[:-1] + [{**rows[-1], "arena": "B3"}])
        return m, "row 5: arena 'B3' does not exist in 'p2/plate2.mp4' (2 arenas found: A1, A2)"
    # paths are the user's own (issue 17): '..' and absolute paths elsewhere are accepted, and
    # one that names no file is reported with its row
    if kind == "path_leads_nowhere":
        write_manifest(m, rows[:-1] + [{**rows[-1], "video": "../../etc/passwd"}])
        return m, f"row 5: video '../../etc/passwd' not found in {d}"
    if kind == "absolute_path_elsewhere_missing":
        gone = sim["videos"][1].parent / "gone" / "plate2.mp4"
        write_manifest(m, rows[:-1] + [{**rows[-1], "video": str(gone)}])
        return m, f"row 5: video '{gone.as_posix()}' not found"
    if kind == "url":
        write_manifest(m, rows[:-1] + [{**rows[-1], "video": "https://lab.example/p2.mp4"}])
        return m, "row 5: video 'https://lab.example/p2.mp4' is a URL"
    if kind == "missing_video":
        write_manifest(m, rows[:-1] + [{**rows[-1], "video": "p2/plate9.mp4"}])
        return m, "row 5: video 'p2/plate9.mp4' not found"
    if kind == "excel_workbook":
        m.write_bytes(b"PK\x03\x04" + bytes(200))
        return m, "looks like a zip file (an Excel workbook?) but cannot be opened"
    if kind == "utf16_without_bom":
        m.write_bytes("video,arena,group\np1/plate1.mp4,A1,control\n".encode("utf-16-le"))
        return m, "contains NUL bytes"
    if kind == "control_character":
        write_manifest(m, rows[:-1] + [{**rows[-1], "video": "p2/pl\x07ate2.mp4"}])
        return m, "video 'p2/pl\\x07ate2.mp4' contains control characters"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing_columns", "duplicate_rows", "unknown_arena",
                                  "path_leads_nowhere", "absolute_path_elsewhere_missing",
                                  "url", "missing_video",
                                  "excel_workbook", "utf16_without_bom", "control_character"])
def test_cli_run_refuses_bad_manifest_cleanly(sim, tmp_path, kind):
    m, match = _manifest_case(kind, tmp_path, sim)
    out = tmp_path / "out"
    r = _cli(["run", m, "--config", sim["config"], "--out", out])
    assert r.exit_code == 6, (r.stderr, r.stdout)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    # one problem: one line; several: a count line and one line per problem
    assert lines[0].startswith("error: ") and (len(lines) == 1 or "problems:" in lines[0])
    assert str(m) in r.stderr and match in r.stderr, r.stderr
    assert not (out / "trials").exists() and not (out / ".fishtrack.lock").exists()


def test_cli_run_accepts_videos_named_by_absolute_and_parent_paths(sim, tmp_path):
    """Issue 17: the manifest lives with the analysis, the videos on a data drive; absolute
    paths and paths through '..' are read as the user wrote them."""
    src = sim["root"] / "in"
    rows = [dict(r) for r in sim["rows"]]
    for r in rows:
        r["video"] = (str(src / r["video"]) if r["video"].startswith("p1/")
                      else os.path.relpath(src / r["video"], tmp_path / "analysis"))
    m = write_manifest(tmp_path / "analysis" / "manifest.csv", rows)
    out = tmp_path / "analysis" / "out"
    r = _cli(["run", m, "--config", sim["config"], "--out", out])
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["plate1", "plate2"]
    assert set(pd.read_csv(out / "per_fish.csv")["fish_id"]) == {
        f"plate{k}:{a}" for k in (1, 2) for a in ("A1", "A2")}
    assert _cli(["verify", out]).exit_code == 0


def test_cli_reads_a_windows_1252_manifest_with_a_one_line_warning(sim, real_run, tmp_path):
    """Not UTF-8 but readable: one warning line and the full result (accents intact). The
    experiment's stored manifest is re-saved the way Excel writes 'CSV' and re-analysed."""
    out = shutil.copytree(real_run, tmp_path / "out")
    man = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    man["group"] = man["group"].replace({"control": "contrôle"})
    man.to_csv(out / "manifest.csv", index=False, encoding="cp1252")
    import yaml

    data = yaml.safe_load(sim["config"].read_text())
    data["stats"] = {"reference_group": "contrôle", "n_bootstrap": 100, "n_permutations": 100}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    r = _cli(["stats", out, "--config", cfg])
    assert r.exit_code == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(warn) == 1 and warn[0].startswith("warning: ") and "not UTF-8" in warn[0], r.stderr
    assert str(out / "manifest.csv") in warn[0]
    per_fish = pd.read_csv(out / "per_fish.csv")
    assert set(per_fish["group"]) == set(man["group"]) and "contrôle" in set(per_fish["group"])
    gs = pd.read_csv(out / "group_stats.csv")
    assert len(gs) and (gs["reference"] == "contrôle").all()


# ============================================================================================
# output folders that cannot be written


def _userns_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                       capture_output=True)
    return r.returncode == 0


def _in_private_mount(mount_opts: str, mountpoint: Path, cmd: list[str]) -> tuple[int, str, str]:
    """Run ``cmd`` with a tmpfs (``mount_opts``) mounted on ``mountpoint`` in a private mount
    namespace (no root needed, nothing visible outside); returns (exit code of cmd, its stderr,
    the files left on the tmpfs)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    script = textwrap.dedent(f"""
        set -u
        mount -t tmpfs -o {mount_opts} tmpfs '{mountpoint}' || exit 99
        "$@" 2>'{mountpoint.parent}/stderr.txt'
        rc=$?
        find '{mountpoint}' -mindepth 1 > '{mountpoint.parent}/left.txt'
        exit $rc
    """)
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script,
                        "sh", *cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode != 99, f"tmpfs mount failed: {r.stderr}"
    err = (mountpoint.parent / "stderr.txt").read_text()
    left = (mountpoint.parent / "left.txt").read_text()
    return r.returncode, err, left


needs_userns = pytest.mark.skipif(not _userns_available(),
                                  reason="unprivileged mount namespaces not available")


@needs_userns
def test_full_disk_gives_a_clear_error_and_no_half_written_file(sim, tmp_path):
    mnt = tmp_path / "mnt"
    rc, err, left = _in_private_mount(
        "size=48k", mnt,
        [sys.executable, "-m", "fishtrack", "track", str(sim["videos"][0]), "--config",
         str(sim["config"]), "--out", str(mnt / "trial")])
    assert rc == 7, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "the disk is full" in lines[0] and str(mnt / "trial") in lines[0]
    assert ".part" not in left and "provenance.json" not in left, left  # temp files removed


@needs_userns
def test_full_disk_during_a_batch_fails_the_trials_and_the_run_clearly(tmp_path):
    root = tmp_path / "in"
    for k in (1, 2):
        write_fake_video(root / f"p{k}.mp4", {"A1": [(9, 12)], "A2": []})
    rows = [{"video": f"p{k}.mp4", "arena": a, "group": g}
            for k in (1, 2) for a, g in (("A1", "ketamine"), ("A2", "control"))]
    m = write_manifest(root / "m.csv", rows)
    mnt = tmp_path / "mnt"
    code_ = _batch_script(m, mnt / "out", workers=1, sleep=False)
    rc, err, left = _in_private_mount("size=24k", mnt, [sys.executable, "-c", code_])
    assert rc == 7, err
    assert "the disk is full" in err and "Traceback" not in err
    assert ".part" not in left, left


def test_read_only_output_folder(sim, tmp_path):
    """A folder the user cannot write to (chmod; root ignores it, so then a read-only mount)."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            r = _cli(["track", sim["videos"][0], "--config", sim["config"], "--out", ro / "t"])
            _assert_one_line_error(r, 7, ro / "t", "not writable")
            r = _cli(["run", sim["manifest"], "--config", sim["config"], "--out", ro / "e"])
            _assert_one_line_error(r, 7, ro / "e", "cannot create the output folder")
        finally:
            ro.chmod(0o755)
        return
    if not _userns_available():
        pytest.skip("running as root and no mount namespaces: cannot make a read-only folder")
    mnt = tmp_path / "mnt"
    rc, err, left = _in_private_mount(
        "ro", mnt, [sys.executable, "-m", "fishtrack", "track", str(sim["videos"][0]),
                    "--config", str(sim["config"]), "--out", str(mnt / "trial")])
    assert rc == 7 and "not writable" in err and str(mnt / "trial") in err, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


def test_output_path_under_a_file(sim, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("not a folder")
    t0 = time.monotonic()
    r = _cli(["track", sim["videos"][0], "--config", sim["config"], "--out", f / "trial"])
    _assert_one_line_error(r, 7, f / "trial", "is a file, not a folder")
    assert time.monotonic() - t0 < 5  # refused before tracking
    r = _cli(["run", sim["manifest"], "--config", sim["config"], "--out", f / "exp"])
    _assert_one_line_error(r, 7, f / "exp", "cannot create the output folder")
    assert f.read_text() == "not a folder"


# ============================================================================================
# a batch killed with SIGKILL while trials are written; a second run on a locked folder

STATS = {"n_bootstrap": 100, "n_permutations": 100, "bin_s": 4.0}
FAKE_CONFIG = {"protocol": PROTOCOL, "stats": STATS}


def _batch_script(manifest: Path, out: Path, *, workers: int, sleep: bool = True) -> str:
    """Python code running a batch with the fake trial function (importable by spawned
    workers), printing failures and exiting like the CLI."""
    return textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from fixtures_experiment import fake_arenas, fake_trial
        from fishtrack.errors import FishtrackError
        from fishtrack.experiment import run_experiment

        if __name__ == "__main__":
            try:
                res = run_experiment({str(manifest)!r}, {FAKE_CONFIG!r}, {str(out)!r},
                                     workers={workers}, trial_fn=fake_trial,
                                     arenas_fn=fake_arenas, report=False)
            except FishtrackError as err:
                print(f"error: {{err}}", file=sys.stderr)
                sys.exit(err.exit_code)
            for f in res.failures:
                print(f"failed: {{f.trial}}: {{f.error}}", file=sys.stderr)
            sys.exit(1 if res.failures else 0)
    """)


def _fake_batch(root: Path, n: int, sleep_s: float) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        a = float(rng.integers(8, 14))
        wells = {"A1": [(a, a + 3.0)], "A2": [], "B1": [(a + 1, 20.0)]}
        write_fake_video(root / f"plate{k}.mp4", wells, sleep_s=sleep_s)
        rows += [{"video": f"plate{k}.mp4", "arena": w, "group": g}
                 for w, g in (("A1", "control"), ("A2", "ketamine"), ("B1", "ketamine"))]
    return write_manifest(root / "manifest.csv", rows)


def _tables(out: Path) -> dict[str, bytes]:
    files = {p.relative_to(out).as_posix(): p.read_bytes()
             for p in sorted(out.rglob("*")) if p.is_file()
             and p.suffix in (".csv", ".parquet") and p.name != "manifest.csv"
             # hidden: a trial's kept statistics inputs (trials/<t>/.stats), not outputs
             and not any(part.startswith(".") for part in p.relative_to(out).parts)}
    assert any(k.startswith("trials/") for k in files) and "per_fish.csv" in files
    return files


def test_sigkill_mid_batch_then_rerun_equals_an_uninterrupted_run(tmp_path):
    manifest = _fake_batch(tmp_path / "in", n=6, sleep_s=0.5)
    # the uninterrupted reference: the same plates, without the slow-down
    ref = run_experiment(_fake_batch(tmp_path / "ref_in", n=6, sleep_s=0.0), FAKE_CONFIG,
                         tmp_path / "ref", trial_fn=fake_trial, arenas_fn=fake_arenas,
                         report=False)
    assert ref.ok
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _batch_script(manifest, out, workers=2)],
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    trials = out / "trials"
    deadline = time.monotonic() + 60
    try:
        # wait until one trial is complete and another is being written
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in trials.glob("plate*") if (p / "provenance.json").exists()] \
                if trials.exists() else []
            parts = list(trials.glob(".plate*.part-*")) if trials.exists() else []
            if done and parts:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch finished before it could be killed"
        # a second run on the same folder is refused while the first holds the lock
        r = _cli(["run", manifest, "--out", out])
        _assert_one_line_error(r, 7, out, "another fishtrack run is using this output folder")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    time.sleep(0.2)  # let the killed workers go
    complete = sorted(p.name for p in trials.glob("plate*"))
    assert 1 <= len(complete) < 6, complete
    for name in complete:  # never a half trial under its final name
        assert verify_folder(trials / name).ok
    assert list(trials.glob(".plate*.part-*"))  # the partial ones are left over
    assert (out / ".fishtrack.lock").exists()  # the killed run's lock
    stamps = {n: (trials / n / "tracks.parquet").stat().st_mtime_ns for n in complete}
    # rerun: the lock of the dead run is taken over, complete trials reused, the rest redone
    res = run_experiment(manifest, FAKE_CONFIG, out, trial_fn=fake_trial, arenas_fn=fake_arenas,
                         report=False)
    status = dict(zip(res.trials["trial"], res.trials["status"], strict=True))
    assert {n for n, s in status.items() if s == "skipped"} == set(complete)
    assert {n for n, s in status.items() if s == "done"} == {f"plate{k}" for k in range(6)} - set(complete)
    assert all((trials / n / "tracks.parquet").stat().st_mtime_ns == stamps[n] for n in complete)
    assert not list(trials.glob(".*")) and not (out / ".fishtrack.lock").exists()
    assert _tables(out) == _tables(tmp_path / "ref")  # byte for byte
    assert verify_folder(out).ok, verify_folder(out).problems


def test_cli_second_run_on_a_locked_folder_is_refused_and_changes_nothing(tmp_path):
    manifest = _fake_batch(tmp_path / "in", n=2, sleep_s=0.0)
    out = tmp_path / "out"
    run_experiment(manifest, FAKE_CONFIG, out, trial_fn=fake_trial, arenas_fn=fake_arenas,
                   report=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # a live process of this machine holds the lock
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".fishtrack.lock").write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "started_utc": "2024-01-01T00:00:00Z"}))
        for args in (["run", manifest, "--out", out], ["stats", out]):
            r = _cli(args)
            line = _assert_one_line_error(r, 7, out, "another fishtrack run")
            assert f"pid {holder.pid}" in line and "delete" in line
    finally:
        holder.kill()
        holder.wait()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".fishtrack.lock"}
    assert after == {p: b for p, b in before.items()}


# ============================================================================================
# reproducibility, provenance and frame alignment on real videos


@pytest.fixture(scope="module")
def real_run(sim, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real") / "out"
    res = run_experiment(sim["manifest"], sim["config"], out, workers=1, report=False)
    assert res.ok, res.failures
    return out


def test_tables_are_byte_identical_across_runs_and_worker_counts(sim, real_run, tmp_path):
    res = run_experiment(sim["manifest"], sim["config"], tmp_path / "out", workers=2,
                         report=False)
    assert res.ok and list(res.trials["status"]) == ["done", "done"]
    first, second = _tables(real_run), _tables(tmp_path / "out")
    # per_fish, per_fish_bins, group_stats, the assay tables of this experiment
    # (per_fish_wide, sensitivity, onset_locked, onset_locked_fish, onset_stats), 3 per trial
    assert sorted(first) == sorted(second) and len(first) == 3 + 5 + 3 * 2
    for name in first:
        assert first[name] == second[name], name


def test_provenance_records_versions_config_hash_and_input_identity(sim, real_run):
    from fishtrack.config import config_hash, load_config, parse_config
    from fishtrack.io.provenance import file_identity
    from fishtrack.pipeline import output_digests

    folder = real_run / "trials" / "plate1"
    prov = json.loads((folder / "provenance.json").read_text())
    import fishtrack

    assert prov["fishtrack_version"] == fishtrack.__version__
    assert {"python", "numpy", "av", "opencv-python-headless", "pandas", "pyarrow"} <= set(prov["versions"])
    cfg = parse_config(prov["config"])
    assert prov["config_hash"] == config_hash(cfg) == config_hash(load_config(sim["config"]))
    ident = file_identity(sim["videos"][0])
    assert {k: prov["input"][k] for k in ("size_bytes", "sha256_first_mib")} == \
        {k: ident[k] for k in ("size_bytes", "sha256_first_mib")}
    assert prov["outputs"] == output_digests(folder)


def test_rows_frames_and_times_match_the_video_exactly(sim, real_run):
    for k, video in enumerate(sim["videos"], start=1):
        folder = real_run / "trials" / f"plate{k}"
        prov = json.loads((folder / "provenance.json").read_text())
        tracks = pd.read_parquet(folder / "tracks.parquet")
        with open_video(video) as src:
            n, ts = len(src), np.array(src.timestamps)
            decoded = sum(len(ch.indices) for ch in src.chunks(64))
        assert prov["frames_read"] == n == decoded == 100 and prov["damaged_frames"] == []
        assert sorted(tracks["fish"].unique()) == ["A1", "A2"]
        for _, g in tracks.groupby("fish"):
            assert g["frame"].tolist() == list(range(n))
            assert np.array_equal(g["time_s"].to_numpy(), ts)  # exactly the container's times


@pytest.mark.parametrize("codec", ["tiff", "png"])
def test_image_stacks_track_with_the_frame_rate_of_their_config(tmp_path, codec):
    """TIFF stacks and image folders store no rate: the simulator's config states it, and the
    tables have one row per page / image with times frame / fps."""
    from fishtrack.synth import SimSpec, simulate

    res = simulate(SimSpec(name="stack", layout="wells", rows=1, cols=2, fps=25, duration_s=2,
                           seed=5, fish_length_px=24, codec=codec), tmp_path / "sim")
    r = _cli(["track", res.video_path, "--config", res.config_path, "--out", tmp_path / "t"])
    assert r.exit_code == 0, r.stderr
    tracks = pd.read_parquet(tmp_path / "t" / "tracks.parquet")
    for _, g in tracks.groupby("fish"):
        assert g["frame"].tolist() == list(range(50))
        np.testing.assert_allclose(g["time_s"], np.arange(50) / 25, rtol=0, atol=1e-12)
    assert verify_folder(tmp_path / "t").ok


def test_damaged_real_video_gives_a_warning_and_a_row_for_every_frame(sim, tmp_path):
    """Undecodable frames keep their rows (detected False, no position); the loss is in the
    provenance and the CLI prints one warning line; a cut-off file gives the frames it holds."""
    frames = sim["frames"]
    intact = write_video(tmp_path / "full.avi", frames, 25, "mjpg")
    tab = packet_table(intact)
    bad = blank_frame_packet(intact, 50, tmp_path / "bad.avi")
    r = _cli(["track", bad, "--config", sim["config"], "--out", tmp_path / "o1"])
    assert r.exit_code == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(warn) == 1 and warn[0].startswith("warning: ") and str(bad) in warn[0], r.stderr
    prov = json.loads((tmp_path / "o1" / "provenance.json").read_text())
    lost = {d["frame"] for d in prov["damaged_frames"]}
    assert 50 in lost and prov["frames_read"] == 100
    tracks = pd.read_parquet(tmp_path / "o1" / "tracks.parquet")
    for _, g in tracks.groupby("fish"):
        assert g["frame"].tolist() == list(range(100))
        assert not g.loc[g["frame"].isin(lost), "detected"].any()
        assert g.loc[g["frame"].isin(lost), "x"].isna().all()
        assert g.loc[~g["frame"].isin(lost), "detected"].mean() > 0.9
    assert verify_folder(tmp_path / "o1").ok
    cut = tmp_path / "cut.avi"
    cut.write_bytes(intact.read_bytes()[: int(tab["pos"][int(np.flatnonzero(tab["frame"] == 70)[0])])])
    r = _cli(["track", cut, "--config", sim["config"], "--out", tmp_path / "o2"])
    assert r.exit_code == 0 and "truncated" in r.stderr, r.stderr
    prov = json.loads((tmp_path / "o2" / "provenance.json").read_text())
    tracks = pd.read_parquet(tmp_path / "o2" / "tracks.parquet")
    assert prov["frames_read"] == 70 and tracks.groupby("fish").size().tolist() == [70, 70]
    assert verify_folder(tmp_path / "o2").ok


# ============================================================================================
# fishtrack verify


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_verify_passes_on_intact_folders(sim, real_run, tmp_path):
    for folder in (real_run, real_run / "trials" / "plate2"):
        r = _cli(["verify", folder])
        assert r.exit_code == 0 and "matches its provenance" in r.stdout, r.output


def _verify_problems(folder: Path, *extra) -> list[str]:
    r = _cli(["verify", folder, *extra])
    assert r.exit_code == 8, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
    if lines[0].startswith("error: ") and "problems:" not in lines[0]:
        return [lines[0]]
    return [ln[2:] for ln in lines[1:]]


def test_verify_reports_every_mismatch_of_a_trial_folder(sim, real_run, tmp_path):
    t = _copy(real_run / "trials" / "plate1", tmp_path / "t")
    prov = json.loads((t / "provenance.json").read_text())
    # the tables are edited, the recorded config is edited, the video moved
    tracks = pd.read_parquet(t / "tracks.parquet")
    tracks[tracks["frame"] != 5].to_parquet(t / "tracks.parquet", index=False)
    (t / "epochs.csv").unlink()
    prov["config"]["behaviour"]["min_passive_s"] = 9.0
    prov["input"]["path"] = prov["input"]["abs_path"] = str(tmp_path / "moved.mp4")
    (t / "provenance.json").write_text(json.dumps(prov))
    probs = _verify_problems(t)
    text = "\n".join(probs)
    assert all(str(t) in p for p in probs)
    assert "config_hash does not match the config recorded" in text
    assert f"input video {tmp_path / 'moved.mp4'} not found" in text
    assert "epochs.csv is missing" in text
    assert "tracks.parquet changed since it was written" in text
    assert "tracks.parquet has 198 rows; expected frames_read x fish = 100 x 2 = 200" in text
    assert "fish without exactly one row per frame 0-99: A1 (99 rows" in text
    assert len(probs) == 6, probs
    # the video given where it is now: that problem goes away
    probs = _verify_problems(t, "--video", sim["videos"][0])
    assert not any("input video" in p for p in probs) and len(probs) == 5


def test_verify_detects_a_changed_input_video(sim, real_run, tmp_path):
    t = _copy(real_run / "trials" / "plate2", tmp_path / "t")
    video = tmp_path / "v.mp4"
    data = bytearray(sim["videos"][1].read_bytes())
    data[5000] ^= 0xFF
    video.write_bytes(bytes(data))
    probs = _verify_problems(t, "--video", video)
    assert len(probs) == 1 and "SHA-256 of the first MiB" in probs[0]


def test_verify_an_incomplete_trial_and_a_non_fishtrack_folder(tmp_path):
    t = tmp_path / "t"
    t.mkdir()
    (t / "tracks.parquet").write_bytes(b"half")
    probs = _verify_problems(t)
    assert any("no provenance.json: the trial is incomplete" in p for p in probs)
    r = _cli(["verify", tmp_path / "nothing"])
    assert r.exit_code == 1 and "no such folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = _cli(["verify", tmp_path / "empty"])
    assert r.exit_code == 1 and "not a fishtrack output folder" in r.stderr


def test_verify_reports_every_mismatch_of_an_experiment_folder(sim, real_run, tmp_path):
    out = _copy(real_run, tmp_path / "out")
    # plate2 tracked with other tracking settings; a failed trial in the last run; a table gone
    prov_p = out / "trials" / "plate2" / "provenance.json"
    prov = json.loads(prov_p.read_text())
    prov["config"]["tracking"]["min_area_px"] = 99
    from fishtrack.config import config_hash as _canonical_hash

    prov["config_hash"] = _canonical_hash(prov["config"])  # consistent, but not the experiment's
    prov_p.write_text(json.dumps(prov))
    state = json.loads((out / "experiment.json").read_text())
    state["last_run"][0].update(status="failed", error="plate1.mp4: simulated")
    (out / "experiment.json").write_text(json.dumps(state))
    (out / "group_stats.csv").unlink()
    shutil.rmtree(out / "trials" / "plate1")
    probs = _verify_problems(out)
    text = "\n".join(probs)
    assert "trials/plate1: missing (video 'p1/plate1.mp4' was not tracked)" in text
    assert "trials/plate2: tracked with other video / arenas / tracking settings" in text
    assert "trial 'plate1' failed in the last run: plate1.mp4: simulated" in text
    assert "group_stats.csv is missing" in text
    assert len(probs) == 4, probs


# ============================================================================================
# security: no pickle, eval, unsafe YAML or network


def _package_sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8"))
            for p in sorted((ROOT / "fishtrack").rglob("*.py"))}


FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib",
                     "urllib", "urllib.request", "urllib3", "http.client", "requests", "httpx",
                     "aiohttp", "ftplib", "smtplib", "telnetlib", "xmlrpc", "socketserver"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_CALLS = {"read_pickle", "unsafe_load", "full_load", "unsafe_load_all",
                   "full_load_all", "create_connection", "urlopen", "urlretrieve"}


def test_package_source_has_no_unsafe_deserialisation_or_network_calls():
    found = []
    for name, tree in _package_sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{name}:{node.lineno}: import {m}" for m in mods
                          if m in FORBIDDEN_MODULES or m.split(".")[0] in {"pickle", "urllib", "http"}]
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            called = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if (called in FORBIDDEN_BUILTINS and isinstance(fn, ast.Name)) or called in FORBIDDEN_CALLS:
                found.append(f"{name}:{node.lineno}: {called}()")
            kw = {k.arg: k.value for k in node.keywords}
            if called in ("load", "load_all") and isinstance(fn, ast.Attribute) \
                    and ast.unparse(fn.value) == "yaml":
                loader = ast.unparse(kw["Loader"]) if "Loader" in kw else "(default)"
                if loader != "_UniqueKeyLoader":
                    found.append(f"{name}:{node.lineno}: yaml.load(Loader={loader})")
            if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant)
                                             and kw["allow_pickle"].value is False):
                found.append(f"{name}:{node.lineno}: allow_pickle")
            if called in ("connect", "bind") and "socket" in ast.unparse(fn):
                found.append(f"{name}:{node.lineno}: socket {called}")
    assert not found, found
    import yaml

    from fishtrack.config import _UniqueKeyLoader

    assert issubclass(_UniqueKeyLoader, yaml.SafeLoader)


def test_a_whole_run_makes_no_network_connection_and_unpickles_nothing(sim, tmp_path):
    """Python's audit hooks see every socket connect / name lookup and every unpickled class:
    a `run` (tracking, statistics and report) and a `verify` raise none of them."""
    watch = textwrap.dedent(f"""
        import sys
        seen = []
        def hook(event, args):
            if event.startswith(("socket.connect", "socket.getaddrinfo", "socket.bind",
                                 "urllib.Request", "http.client", "pickle.find_class",
                                 "ftplib", "smtplib")):
                seen.append(event)
                raise RuntimeError(f"forbidden at run time: {{event}} {{args!r:.80}}")
        sys.addaudithook(hook)
        from fishtrack.cli import app
        for args in (["run", {str(sim['manifest'])!r}, "--config", {str(sim['config'])!r},
                      "--out", {str(tmp_path / 'e')!r}],
                     ["verify", {str(tmp_path / 'e')!r}]):
            try:
                app(args, standalone_mode=False)
            except SystemExit as e:
                assert not e.code, (args, e.code)
        assert not seen, seen
        print("clean")
    """)
    r = subprocess.run([sys.executable, "-c", watch], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr[-3000:]


# ============================================================================================
# docs/troubleshooting.md lists every error message and exit code

OWNED_ELSEWHERE: tuple[str, ...] = ()
"""Modules being written by others at the time of writing; their messages belong in the table
as soon as they settle (remove them from this tuple then)."""


def _message_fragments() -> list[tuple[str, str]]:
    """(where, the longest literal part of the message) of every error fishtrack raises."""
    import fishtrack.errors as errors

    classes = {n for n, c in vars(errors).items()
               if isinstance(c, type) and issubclass(c, errors.FishtrackError)}

    def parts(node) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            out, cur = [], ""
            for v in node.values:
                if isinstance(v, ast.Constant):
                    cur += v.value
                else:
                    out.append(cur)
                    cur = ""
            return [*out, cur]
        if isinstance(node, ast.BinOp):
            return parts(node.left) + parts(node.right)
        return []

    found = []
    for name, tree in _package_sources().items():
        if name.startswith(OWNED_ELSEWHERE):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in classes and node.args:
                chunks = [c.strip(" :;,.()'\"") for c in parts(node.args[0])]
                chunks = [c for c in chunks if len(c) >= 8]
                if chunks:
                    found.append((f"{name}:{node.lineno}", max(chunks, key=len)))
    return found


def test_troubleshooting_lists_every_error_message_and_exit_code():
    import fishtrack.errors as errors

    doc = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    flat = " ".join(doc.split())  # table cells and wrapped paragraphs alike
    frags = _message_fragments()
    assert len(frags) > 150
    missing = [f"{where}: {frag!r}" for where, frag in frags if " ".join(frag.split()) not in flat]
    assert not missing, "\n".join(missing)
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.FishtrackError):
            assert f"| {cls.exit_code} | `{cls.__name__}` |" in doc, cls
    cli_doc = (ROOT / "fishtrack" / "cli.py").read_text(encoding="utf-8").split('"""')[1]
    assert "8 verify found mismatches" in cli_doc and "troubleshooting.md" in cli_doc
