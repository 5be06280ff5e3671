"""Smoke tests of the tracker on real recordings (third-party videos in ``../shared/videos``).

These videos have no numeric ground truth (see ``shared/videos/README.md``), so every check
compares the tracker's output with something measured here *independently* of the tracker's
background model and algorithms:

* fishness = black-hat of the lightly smoothed frame (morphological closing minus frame: dark
  things narrower than the kernel, relative to their own surroundings), which needs no
  temporal background and therefore also sees fish that never move;
* the eyes = the darkest pair of dark peaks of the raw frame near the tracked head, 0.05-0.16
  body lengths apart with a paler gap between them (larvae);
* the tail = the posterior half of the midline must lie on a dark ridge: fishness on the
  midline at least twice the fishness 0.12 body lengths to either side of it.

Body lengths (snout to visible tail tip) were measured by hand on the frames and are used only
to scale distances. Thresholds are set from what the tracker achieves (stated next to each
assertion) with a margin, so that a regression fails but frame-to-frame variation does not.
Every test skips cleanly when the video folder or the file is absent. Whole videos are tracked
(they are short: 98-501 frames); the file runs in about 30 s, the two 1000-fps clips being
decoded once into memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fishtrack.arenas import detect_arenas
from fishtrack.config import ArenasConfig, TrackingConfig
from fishtrack.io.video import open_video
from fishtrack.tracking import ArraySource, estimate_background, track_video
from fishtrack.tracking.midline import wrap

pytestmark = pytest.mark.timeout(120)

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"

#: body length (px, snout to visible tail tip) measured by hand on the frames
LENGTH = {
    "onefish_trial1_1000fps.mp4": 100.0,
    "threefish_trial2_1000fps.mp4": 100.0,
    "head_embedded_stytra.avi": 130.0,
    "free_swim_strip_stytra.avi": 87.0,
    "eight_fish_tank_idtrackerai.avi": 80.0,
}


def _video(name: str) -> Path:
    if not VIDEOS.is_dir():
        pytest.skip(f"{VIDEOS} is absent (real videos are not part of the repository)")
    path = VIDEOS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@dataclass
class Run:
    name: str
    tracks: pd.DataFrame
    summary: dict
    arenas: list
    frames: dict  # frame number -> uint8 (H, W), for the independent checks
    length: float  # hand-measured body length (px)


def _track(
    name: str, layout: str, fish: int, check_frames: int = 40, in_memory: bool = False
) -> Run:
    """Track a whole video the way the pipeline does (background, arenas on it, tracking) and
    keep ``check_frames`` frames spread over it for the independent checks. ``in_memory``
    decodes the video once into an array (the 98-frame 1024 x 1024 H.264 clips decode at only
    ~30 frames/s, and background, tracking and checks would decode them three times)."""
    path = _video(name)
    cfg = TrackingConfig()
    with open_video(path) as src:
        source = (
            ArraySource(src.read_range(0, len(src)).frames, fps=src.meta.fps) if in_memory else src
        )
        bg = estimate_background(source, cfg)
        arenas = detect_arenas(bg.image, ArenasConfig(layout=layout, fish_per_arena=fish))
        res = track_video(source, arenas, cfg, fish_per_arena=fish, layout=layout, background=bg)
        idx = np.unique(np.linspace(0, len(src) - 1, check_frames).round().astype(int))
        frames = dict(zip(idx.tolist(), source.sample(idx), strict=True))
    return Run(name, res.tracks, res.summary, arenas, frames, LENGTH[name])


# --------------------------------------------------------------------------------------------
# independent measurements


def blackhat(frame: np.ndarray, length: float) -> np.ndarray:
    """Fishness without a background model: closing minus frame (dark fish), float32."""
    k = int(0.3 * length) | 1
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    smooth = cv2.GaussianBlur(frame, (0, 0), 1.0)
    return cv2.morphologyEx(smooth, cv2.MORPH_BLACKHAT, ker).astype(np.float32)


def _sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    xy = pts.astype(np.float32)
    return cv2.remap(
        img, xy[:, 0].reshape(1, -1), xy[:, 1].reshape(1, -1), cv2.INTER_LINEAR
    ).ravel()


def eye_midpoint(frame: np.ndarray, head: np.ndarray, length: float) -> np.ndarray | None:
    """Midpoint of the eyes of a larva near ``head``, from the raw frame (no background): the
    darkest pair of darkness peaks (local maxima over 0.07 lengths, darkness relative to the
    window's 90th percentile, at least 0.6 x the darkest) within 0.25 lengths of ``head``,
    0.05-0.16 lengths apart (larval eyes: ~0.1) and with a paler gap between them. None if no
    such pair exists or the head is not in the frame."""
    r = int(np.ceil(0.25 * length))
    h, w = frame.shape
    x0, y0 = max(0, int(head[0]) - r), max(0, int(head[1]) - r)
    x1, y1 = min(w, int(head[0]) + r + 1), min(h, int(head[1]) + r + 1)
    if x1 - x0 < r or y1 - y0 < r:
        return None
    win = cv2.GaussianBlur(frame, (0, 0), 1.0)[y0:y1, x0:x1].astype(np.float32)
    dark = np.percentile(win, 90) - win
    k = int(0.035 * length)
    local = cv2.dilate(dark, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    ys, xs = np.nonzero((dark >= local) & (dark >= 0.6 * dark.max()))
    best, score = None, 0.0
    for i in range(len(ys)):
        for j in range(i + 1, len(ys)):
            sep = float(np.hypot(xs[i] - xs[j], ys[i] - ys[j]))
            weaker = min(dark[ys[i], xs[i]], dark[ys[j], xs[j]])
            gap = dark[(ys[i] + ys[j]) // 2, (xs[i] + xs[j]) // 2]
            if 0.05 * length <= sep <= 0.16 * length and gap < 0.9 * weaker and weaker > score:
                best, score = (0.5 * (xs[i] + xs[j]), 0.5 * (ys[i] + ys[j])), weaker
    return None if best is None else np.array(best) + (x0, y0)


def tail_contrast(bh: np.ndarray, pts: np.ndarray, length: float) -> float:
    """Fishness on the posterior half of a midline divided by the fishness 0.12 lengths to
    either side of it (the larger side); nan for a midline of fewer than 4 points."""
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 4:
        return float("nan")
    d = np.gradient(pts, axis=0)
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-9
    back = slice(len(pts) // 2, None)
    off = 0.12 * length * nrm[back]
    on = _sample(bh, pts[back]).mean()
    side = np.maximum(_sample(bh, pts[back] + off), _sample(bh, pts[back] - off)).mean()
    return float(on / max(side, 1.0))


def _traced(tracks: pd.DataFrame) -> np.ndarray:
    """Length (px) of every midline of a tracks table (0 where there is none)."""
    n = sum(1 for c in tracks.columns if c.startswith("tail_x_"))
    xs = tracks[[f"tail_x_{i}" for i in range(n)]].to_numpy(float)
    ys = tracks[[f"tail_y_{i}" for i in range(n)]].to_numpy(float)
    return np.nansum(np.hypot(np.diff(xs, axis=1), np.diff(ys, axis=1)), axis=1)


def _midline(row) -> np.ndarray:
    xs = sorted((c for c in row.index if c.startswith("tail_x_")), key=lambda c: int(c[7:]))
    return np.stack(
        [row[xs].to_numpy(float), row[[c.replace("_x_", "_y_") for c in xs]].to_numpy(float)], 1
    )


def checks(run: Run) -> pd.DataFrame:
    """Per checked fish-frame: head distance from the independent eye midpoint (px) and the
    tail contrast of the midline (measured on a crop around the fish)."""
    rows = []
    t = run.tracks[run.tracks.detected & run.tracks.frame.isin(list(run.frames))]
    pad = int(0.5 * run.length)
    for _, r in t.iterrows():
        frame = run.frames[int(r.frame)]
        mid = _midline(r)
        pts = np.vstack([[r.x, r.y], mid[np.isfinite(mid).all(axis=1)]])
        x0, y0 = (np.floor(pts.min(axis=0)).astype(int) - pad).clip(0)
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
        crop = frame[y0:y1, x0:x1]
        head = np.array([r.x - x0, r.y - y0])
        eyes = eye_midpoint(crop, head, run.length)
        err = float(np.hypot(*(eyes - head))) if eyes is not None else float("nan")
        tc = tail_contrast(blackhat(crop, run.length), mid - (x0, y0), run.length)
        rows.append((int(r.frame), r.fish, err, tc))
    return pd.DataFrame(rows, columns=["frame", "fish", "head_err", "tail_contrast"])


def forward_fraction(tracks: pd.DataFrame, min_step: float, lag: int = 1) -> float:
    """Fraction of clear moves (head displacement over ``lag`` frames above ``min_step`` px)
    whose direction agrees with the heading (|angle| < 90 degrees): fish swim forwards, so a
    head put on the tail shows up as backward swimming."""
    agree = []
    for _, g in tracks.sort_values("frame").groupby("fish"):
        x, y, hd = g.x.to_numpy(), g.y.to_numpy(), g.heading.to_numpy()
        dx, dy = x[lag:] - x[:-lag], y[lag:] - y[:-lag]
        ok = np.hypot(dx, dy) > min_step
        ok &= np.isfinite(hd[:-lag])
        agree += list(np.cos(np.arctan2(dy[ok], dx[ok]) - hd[:-lag][ok]) > 0)
    return float(np.mean(agree)) if agree else float("nan")


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def onefish():
    return _track("onefish_trial1_1000fps.mp4", "chamber", 1, check_frames=49, in_memory=True)


@pytest.fixture(scope="module")
def threefish():
    return _track("threefish_trial2_1000fps.mp4", "chamber", 3, check_frames=49, in_memory=True)


@pytest.fixture(scope="module")
def embedded():
    return _track("head_embedded_stytra.avi", "embedded", 1, check_frames=110)


@pytest.fixture(scope="module")
def strip():
    return _track("free_swim_strip_stytra.avi", "chamber", 1, check_frames=60)


@pytest.fixture(scope="module")
def eight():
    return _track("eight_fish_tank_idtrackerai.avi", "chamber", 8, check_frames=30)


# --------------------------------------------------------------------------------------------
# larvae in a Petri dish, 1000 fps, noisy H.264 (noise sd ~11 grey levels)


def test_onefish_found_head_on_eyes_midline_on_tail(onefish):
    t = onefish.tracks
    assert set(t.fish) == {"A1"} and onefish.summary["fish_per_arena"] == {"A1": 1}
    # the larva is visible in all 98 frames (checked by eye) and found in every one
    assert t.detected.all()
    (arena,) = onefish.arenas
    assert arena.contains(t.x.to_numpy(), t.y.to_numpy()).all()
    c = checks(onefish)
    # head = eye midpoint (the eyes are ~10 px apart: a head on one eye would be ~5 px off).
    # Measured: median 1.1 px, 47 of 49 checked frames within 4 px; the other two are frames at
    # the peak of the escape C-bend, where the head is put ~6-9 px behind the eyes
    assert c.head_err.median() <= 2.0
    assert (c.head_err <= 4.0).mean() >= 0.9
    # midline on the tail: measured contrast median 2.4, every checked frame >= 1.5 (the tail
    # of this larva is faint and, in the C-bend, motion-blurred; the midline follows it to its
    # faint tip, whose contrast is lower than the body's)
    assert c.tail_contrast.median() >= 2.0
    assert (c.tail_contrast >= 1.5).mean() >= 0.95
    # ... to the tip: measured median 0.92 of the hand-measured length (0.88-0.96)
    assert np.median(_traced(t[t.detected])) >= 0.85 * onefish.length


def test_threefish_three_fish_heads_and_midlines(threefish):
    t = threefish.tracks
    assert threefish.summary["fish_per_arena"] == {"A1": 3}
    assert set(t.fish) == {"A1-1", "A1-2", "A1-3"}
    # A1-2 rests until frame ~45 and A1-3 until frame ~62 (both are in the median
    # background, removed as still fish); all three are found in every frame
    assert t.groupby("fish").detected.mean().min() == 1.0
    fish_at_rest = [s for s in threefish.summary["still_fish"] if s["method"] == "sampled"]
    assert fish_at_rest, "the resting larva must be taken out of the background"
    (arena,) = threefish.arenas  # no fish elsewhere: every head inside the dish
    assert arena.contains(t.x.to_numpy(), t.y.to_numpy()).all()
    c = checks(threefish)
    # measured: median head error 0.6 px, 146 of 147 checked fish-frames within 4 px (the
    # other: an escape frame whose motion-blurred eyes merge, and the head goes to the swim
    # bladder)
    assert c.head_err.median() <= 2.0
    assert (c.head_err <= 4.0).mean() >= 0.95
    # midline on the tail: measured contrast median 2.8, 145 of 147 checked fish-frames >= 1.5
    # (the swimming A1-1's faint, motion-blurred tip is the lowest: 1.49). Until 2026-12-06
    # the fish length was measured at 70 px (hand: 100) and the midlines stopped at 0.77 of
    # the length, on the darker part of the tail (contrast >= 2 everywhere, median 3.1); at
    # the measured 86 px they follow the tail to 0.88 of it
    assert c.tail_contrast.median() >= 2.0
    assert (c.tail_contrast >= 1.5).mean() >= 0.95
    assert np.median(_traced(t[t.detected])) >= 0.82 * threefish.length
    # the three larvae are far apart in this clip: no identity doubt, no track jumps
    assert not t.id_uncertain.any()
    steps = t.sort_values("frame").groupby("fish")[["x", "y"]].diff()
    assert np.hypot(steps.x, steps.y).max() < 0.3 * threefish.length
    # at 1000 fps the head never swaps ends: where both frames have a tail, the heading changes
    # by less than 1 rad (measured <= 0.37; before, the head sat on the dark mid-body patch
    # with the midline traced to the eyes for 1-2 frames at a time, e.g. A1-3 frames 76-77)
    for _, g in t.sort_values("frame").groupby("fish"):
        both = g.tail_angle.notna() & g.tail_angle.shift().notna()
        turn = np.abs(wrap(g.heading.diff().to_numpy()))[both.to_numpy()]
        assert turn.max() < 1.0


# --------------------------------------------------------------------------------------------
# stytra example assets (lossless FFV1, many duplicated frames)


def test_embedded_tail_traced_to_the_tip(embedded):
    t = embedded.tracks
    assert t.detected.all() and t.x.nunique() == 1 and t.y.nunique() == 1  # head fixed
    # head to the right: the heading points right (+x)
    assert abs(float(np.angle(np.exp(1j * t.heading).mean()))) < np.deg2rad(20)
    c = checks(embedded)
    assert c.head_err.max() <= 2.0  # measured 0.6 px
    assert (c.tail_contrast >= 2.0).mean() >= 0.95  # measured: every checked frame (median 7)
    # the midline reaches the tail tip: measured median 0.95 of the hand-measured length
    pts = np.stack([_midline(r) for _, r in t.iterrows()])
    traced = np.hypot(*np.diff(pts, axis=1).transpose(2, 0, 1)).sum(axis=1)
    assert np.median(traced) >= 0.8 * embedded.length
    # tail angle sign (docs/tracking.md): positive = tail rotated clockwise on screen, i.e. the
    # tip above the body axis of a larva facing right. Independently, the tip is the pixel of
    # the larva's dark outline (black-hat >= 0.25 x its maximum, largest blob) farthest from
    # the head; in frames with a clear bend (|tail angle| > 0.08 rad: this larva's tail beats
    # by up to ~0.17 rad, i.e. the tip moves ~20 px off the axis) the signs must agree
    hx, hy = t.x.iloc[0], t.y.iloc[0]
    ang, tip_dy = [], []
    for f, frame in embedded.frames.items():
        ang.append(float(t.loc[t.frame == f, "tail_angle"].iloc[0]))
        bh = blackhat(frame, embedded.length)
        _, lab, stats, _ = cv2.connectedComponentsWithStats(
            (bh >= 0.25 * bh.max()).astype(np.uint8)
        )
        ys, xs = np.nonzero(lab == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        tip = np.argmax(np.hypot(xs - hx, ys - hy))
        tip_dy.append(ys[tip] - hy)
    ang, tip_dy = np.array(ang), np.array(tip_dy)
    bent = np.abs(ang) > 0.08
    # measured on the 110 checked frames: 25 bent, 22 agree; in the other 3 the faint tip
    # hooks back across the body axis (the midline follows it, checked by eye), which this
    # check's tip (the farthest pixel above a quarter of the black-hat maximum) misses;
    # correlation -0.94
    assert bent.sum() >= 10
    assert np.mean(np.sign(ang[bent]) == -np.sign(tip_dy[bent])) >= 0.85
    assert np.corrcoef(ang, tip_dy)[0, 1] < -0.8


def test_free_swimming_strip_fish_found_and_absent_frames_empty(strip):
    t = strip.tracks
    assert set(t.fish) == {"A1"}
    # the larva enters the field in the first frames: the tracker reports it from frame 5 on
    # and leaves the frames before it NaN (never guessed)
    first = int(t.loc[t.detected, "frame"].min())
    assert first <= 10 and t.loc[t.frame >= first, "detected"].mean() >= 0.99
    early = t[t.frame < first]
    assert early[["x", "y", "heading", "tail_x_0"]].isna().all().all()
    with open_video(_video(strip.name)) as src:
        before = src.read(0)
    bh0 = blackhat(before, strip.length)
    assert bh0.max() < 0.3 * max(blackhat(f, strip.length).max() for f in strip.frames.values())
    c = checks(strip)
    assert (c.head_err <= 2.0).mean() >= 0.95  # measured: median 0.2 px, max 0.7 px
    assert (c.tail_contrast >= 2.0).mean() >= 0.95  # measured: every checked frame (median 6)
    # it swims forwards (to the right)
    assert forward_fraction(t[t.detected], min_step=1.0) >= 0.9


# --------------------------------------------------------------------------------------------
# idtracker.ai test video: 8 juvenile zebrafish (no resolved eyes), MPEG-4, 28 fps


def test_eight_fish_tank(eight):
    t = eight.tracks
    assert eight.summary["fish_per_arena"] == {"A1": 8}
    assert t.fish.nunique() == 8
    det = t.groupby("frame").detected.sum()
    # all 8 found in >= 99 % of frames (measured 498 of 501; when two fish overlap, one merged
    # blob of eyeless fish cannot be split and one fish is missing for a frame or is taken
    # from a faint reflection in the glass wall)
    assert (det == 8).mean() >= 0.99
    d = t[t.detected]
    med = d.area_px.median()
    assert ((d.area_px > 0.5 * med) & (d.area_px < 1.5 * med)).mean() >= 0.98  # measured 99.4 %
    # the first 40 frames too: every fish, fish-sized (issue 12: a reflection tracked instead
    # of a fish there, in another segment of this rig)
    # (measured: all 8 in 39 of the first 40 frames, one fish hidden in a crossing in the other)
    early = d[d.frame < 40]
    assert (early.groupby("frame").size() == 8).sum() >= 39
    # (measured: all but one, two touching fish in one blob in frame 25)
    assert ((early.area_px > 0.5 * med) & (early.area_px < 1.5 * med)).mean() >= 0.99
    c = checks(eight)
    # no eyes to check the head against; the midline lies on the body in 98 % of checked
    # fish-frames (curled or overlapping fish account for the rest)
    assert (c.tail_contrast >= 2.0).mean() >= 0.9
    # midlines end where the fish ends (issue 12: several ran past the tail into the
    # background): measured length 0.85 of the hand-measured length (median; 90th percentile
    # 0.93), and they are fish-long, not stubs (10th percentile 0.7)
    traced = _traced(d[d.tail_angle.notna()]) / eight.length
    assert np.percentile(traced, 90) <= 1.0
    assert np.percentile(traced, 10) >= 0.5
    # heads at the front: the fish swim the way they face (measured 93 % of moves of more than
    # 0.05 lengths per frame; the rest are crossings of two fish; the head point of these
    # eyeless fish is 0.06 lengths behind the snout)
    assert forward_fraction(d, min_step=0.05 * eight.length) >= 0.9


# --------------------------------------------------------------------------------------------
# the measured fish length (every length of the tracker is a fraction of it)


@pytest.mark.parametrize("run", ["onefish", "threefish", "embedded", "strip", "eight"])
def test_measured_fish_length_near_the_hand_measured_one(run, request):
    # measured 2026-12-06: 0.94, 0.86, 1.04, 0.96, 0.98 of the hand lengths. Before, the
    # three-larva dish measured 230 px (2.3): a dish rim's shadow inpainted as a still larva
    # shows in every calibration frame, and was measured as the largest moving fish
    r = request.getfixturevalue(run)
    assert 0.8 * r.length <= r.summary["fish_length_px"] <= 1.25 * r.length, r.summary["fish_length_px"]
