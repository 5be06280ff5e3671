"""Keypoints of another tool -> fishtrack's tracks table.

Every importer builds a :class:`Poses` (positions of named keypoints per frame and
individual, optional confidences) and :func:`poses_to_tracks` turns it into rows of the
tracks contract (docs/data_model.md):

1. **Keypoint mapping** (:class:`KeypointMap`): which keypoint(s) are the head (several are
   averaged, e.g. the two eyes: fishtrack's head point is the midpoint of the eyes), which
   lie along the body axis behind the head, and which form the tail chain (base to tip).
   :func:`guess_keypoint_map` proposes one from the names.
2. **Confidence**: a keypoint is trusted when its position is finite and its confidence is
   at least ``min_confidence`` (NaN confidence = the tool gave none = trusted).
   ``detected`` = the head is trusted; the midline (and so ``heading``, ``tail_angle``,
   ``tail_curvature``, ``tail_x_i``/``tail_y_i``) is known only where every point of the
   chain is trusted.
3. **Midline**: head + body + tail points, resampled to ``n_points`` points equally spaced
   along the chain (piecewise linear, by arc length), as the tracker resamples its midline.
4. **Angles**: :func:`fishtrack.tracking.midline.body_angles` - the tracker's own function -
   gives heading (from the point at 25 % of the midline to the head, ``atan2(dy, dx)``),
   ``tail_angle = wrap(atan2(tip - head) - (heading + pi))`` and the curvature.
5. **Arenas and fish names** (:func:`assign_arenas`): a chamber holds every fish in ``A1``
   (``A1-1``, ``A1-2``, ...); in wells / embedded layouts each individual is its own arena,
   named by the source when it uses well names, otherwise by its mean head position on a
   grid (rows top to bottom, columns left to right, as fishtrack names arenas).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fishtrack.arenas import arena_name
from fishtrack.errors import ConfigError, FishtrackError
from fishtrack.tracking.midline import body_angles, wrap

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "KeypointMap",
    "Poses",
    "assign_arenas",
    "guess_keypoint_map",
    "poses_to_tracks",
    "resample_chain",
]

DEFAULT_MIN_CONFIDENCE = 0.6
"""DeepLabCut's default ``pcutoff`` (likelihood below it = point not trusted)."""

_CHUNK = 200_000  # rows resampled at a time (bounds memory)


@dataclass
class Poses:
    """Keypoints of one recording, as read from another tool's file.

    ``position`` (T, F, K, 2) px, image coordinates (origin top-left, y down), NaN where
    unknown; ``confidence`` (T, F, K) or None (NaN = no score); ``frames`` (T,) video frame
    numbers; ``times`` (T,) seconds from the first frame of the video.
    """

    position: np.ndarray
    keypoints: list[str]
    individuals: list[str]
    frames: np.ndarray
    times: np.ndarray
    confidence: np.ndarray | None = None
    arenas: list[str] | None = None
    """Arena per individual when the source knows it (e.g. ZebraZoom's wells)."""
    heading: np.ndarray | None = None
    """(T, F) heading from the source, used only where no midline exists (rad, image axes)."""
    fps: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class KeypointMap:
    """Which keypoints make the head, the body axis and the tail chain (head to tip).

    ``head``: one keypoint, or several whose mean is the head point (e.g. both eyes).
    ``body``: keypoints along the body behind the head (e.g. the swim bladder), head to tail.
    ``tail``: the tail chain from its base to the tip. The midline is head + body + tail.
    """

    head: list[str]
    body: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    @property
    def chain(self) -> list[str]:
        return [*self.body, *self.tail]

    def as_dict(self) -> dict[str, list[str]]:
        return {"head": list(self.head), "body": list(self.body), "tail": list(self.tail)}


# --------------------------------------------------------------------------------------------
# guessing the mapping from keypoint names


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


_HEAD = ("head", "headcenter", "headcentre", "headmid", "midhead", "eyesmid", "mideyes",
         "betweeneyes", "eyemid", "eyecenter", "eyecentre")
_EYES = (("lefteye", "righteye"), ("eyeleft", "eyeright"), ("leye", "reye"), ("eyel", "eyer"),
         ("le", "re"))
_SNOUT = ("snout", "nose", "mouth", "rostrum", "headtip", "jaw")
_BODY = ("swimbladder", "bladder", "sb", "body", "bodycenter", "bodycentre", "trunk", "yolk",
         "neck", "centroid", "center", "centre", "midbody", "mid")
_TAIL_FIRST = ("base", "start", "root")
_TAIL_LAST = ("tip", "end", "fin", "caudal")


def _tail_rank(norm: str) -> tuple[int, float] | None:
    """Order of a tail keypoint along the tail (None: not a tail keypoint)."""
    if not norm.startswith("tail") and not norm.endswith("tail") and "tail" not in norm:
        return None
    rest = norm.replace("tail", "", 1)
    num = re.search(r"(\d+)", rest)
    if num:
        return (1, float(num.group(1)))
    if any(w in rest for w in _TAIL_FIRST):
        return (0, 0.0)
    if any(w in rest for w in _TAIL_LAST):
        return (2, 0.0)
    if rest == "":
        return (1, -1.0)  # a lone "tail" keypoint
    return (1, 1e9)


def guess_keypoint_map(keypoints: list[str]) -> KeypointMap | None:
    """A :class:`KeypointMap` from keypoint names, or None when no head can be identified.

    Head: a keypoint named like ``head``; else the two eyes (``left_eye``/``right_eye`` and
    similar), averaged; else ``snout``/``nose``. Body: ``swim_bladder``, ``body``, ``trunk``,
    ``centroid``, ... (in file order). Tail: every keypoint whose name contains ``tail``,
    ordered base (``tail_base``) < numbered (``tail1``, ``tail_2``, ... ascending) < tip
    (``tail_tip``, ``tail_end``).
    """
    norm = {k: _norm(k) for k in keypoints}
    by_norm = {v: k for k, v in norm.items()}
    head: list[str] = []
    for h in _HEAD:
        if h in by_norm:
            head = [by_norm[h]]
            break
    if not head:
        for a, b in _EYES:
            if a in by_norm and b in by_norm:
                head = [by_norm[a], by_norm[b]]
                break
    if not head:
        for h in _SNOUT:
            if h in by_norm:
                head = [by_norm[h]]
                break
    if not head:
        return None
    tail_ranked = [(r, i, k) for i, k in enumerate(keypoints)
                   if k not in head and (r := _tail_rank(norm[k])) is not None]
    tail = [k for _, _, k in sorted(tail_ranked)]
    body = [k for k in keypoints if k not in head and k not in tail and norm[k] in _BODY]
    return KeypointMap(head=head, body=body, tail=tail)


def resolve_keypoint_map(
    keypoints: list[str],
    *,
    head: list[str] | None = None,
    body: list[str] | None = None,
    tail: list[str] | None = None,
    source: str = "",
) -> tuple[KeypointMap, bool]:
    """The mapping to use: the given lists (each checked against ``keypoints``), the rest
    guessed from the names. Returns (mapping, guessed)."""
    where = f"{source}: " if source else ""
    listing = ", ".join(keypoints)
    for what, names in (("--head", head), ("--body", body), ("--tail", tail)):
        unknown = [n for n in (names or []) if n not in keypoints]
        if unknown:
            raise ConfigError(
                f"{where}{what} names keypoint(s) not in the file: {', '.join(unknown)} "
                f"(keypoints: {listing})"
            )
    guess = guess_keypoint_map(keypoints)
    if head is None and guess is None:
        raise ConfigError(
            f"{where}cannot tell which keypoint is the head from the names ({listing}); "
            "give --head NAME (several names: their mean, e.g. both eyes) and --tail NAME,... "
            "(tail base to tip)"
        )
    guessed = head is None or tail is None or body is None
    m = KeypointMap(
        head=list(head) if head is not None else guess.head,  # type: ignore[union-attr]
        body=list(body) if body is not None else ([] if guess is None else guess.body),
        tail=list(tail) if tail is not None else ([] if guess is None else guess.tail),
    )
    if head is not None and body is None and guess is not None:
        m.body = [k for k in guess.body if k not in m.head and k not in m.tail]
    if head is not None and tail is None and guess is not None:
        m.tail = [k for k in guess.tail if k not in m.head and k not in m.body]
    used = m.head + m.chain
    dup = sorted({k for k in used if used.count(k) > 1})
    if dup:
        raise ConfigError(f"{where}keypoint(s) used twice in the mapping: {', '.join(dup)}")
    return m, guessed


# --------------------------------------------------------------------------------------------
# midline


def resample_chain(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced along each polyline (piecewise linear, by arc length).

    ``points`` (M, k, 2) finite, k >= 2; returns (M, n, 2) float64 with the first and last
    points unchanged. Rows of zero length give NaN.
    """
    pts = np.asarray(points, np.float64)
    m, k = pts.shape[:2]
    out = np.full((m, n, 2), np.nan)
    for s in range(0, m, _CHUNK):
        p = pts[s : s + _CHUNK]
        seg = np.hypot(*np.moveaxis(np.diff(p, axis=1), -1, 0))  # (c, k-1)
        cum = np.concatenate([np.zeros((len(p), 1)), np.cumsum(seg, axis=1)], axis=1)
        total = cum[:, -1]
        target = np.linspace(0.0, 1.0, n)[None, :] * total[:, None]  # (c, n)
        idx = (cum[:, None, 1:-1] <= target[:, :, None]).sum(axis=2)  # segment per target
        rows = np.arange(len(p))[:, None]
        a = p[rows, idx]
        b = p[rows, idx + 1]
        seg_len = seg[rows, idx]
        frac = np.where(seg_len > 0, (target - cum[rows, idx]) / np.where(seg_len > 0, seg_len, 1),
                        0.0)
        r = a + np.clip(frac, 0.0, 1.0)[..., None] * (b - a)
        r[:, 0] = p[:, 0]
        r[:, -1] = p[:, -1]
        r[total <= 0] = np.nan
        out[s : s + _CHUNK] = r
    return out


# --------------------------------------------------------------------------------------------
# arenas and fish names


def cluster_1d(values: np.ndarray, tol: float) -> np.ndarray:
    """Index of the 1-D cluster of each value (clusters split where sorted gaps > tol)."""
    order = np.argsort(values, kind="stable")
    label = np.zeros(len(values), np.int64)
    label[order] = np.concatenate([[0], np.cumsum(np.diff(values[order]) > tol)])
    return label


def grid_names(centres: np.ndarray, cell: float | None = None) -> list[str] | None:
    """Plate-style names (``A1``, ``A2``, ``B1`` ...) of points laid out on a grid: rows by y
    (top first), columns by x (left first). ``cell``: typical spacing (default: median
    distance to the nearest other point). None when names would repeat or a centre is NaN."""
    c = np.asarray(centres, np.float64).reshape(-1, 2)
    if len(c) == 0 or not np.isfinite(c).all():
        return None
    if len(c) == 1:
        return ["A1"]
    if cell is None or not np.isfinite(cell) or cell <= 0:
        d = np.hypot(c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1])
        np.fill_diagonal(d, np.inf)
        cell = float(np.median(d.min(axis=1)))
    tol = 0.5 * cell
    rows = cluster_1d(c[:, 1], tol)
    cols = cluster_1d(c[:, 0], tol)
    names = [arena_name(int(r), int(k)) for r, k in zip(rows, cols, strict=True)]
    return names if len(set(names)) == len(names) else None


_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,3})$")


def assign_arenas(
    poses: Poses, head_xy: np.ndarray, layout: str
) -> tuple[list[str], list[str], list[str]]:
    """(arena per individual, fish name per individual, notes).

    ``head_xy`` (T, F, 2) head positions (NaN where unknown).
    """
    n = len(poses.individuals)
    notes: list[str] = []
    if layout == "chamber":
        arenas = ["A1"] * n
        fish = ["A1"] if n == 1 else [f"A1-{k}" for k in range(1, n + 1)]
        return arenas, fish, notes
    if poses.arenas is not None:
        arenas = list(poses.arenas)
    else:
        wells = [_WELL.match(str(s).strip()) for s in poses.individuals]
        if all(wells) and len({(m.group(1).upper(), int(m.group(2))) for m in wells}) == n:  # type: ignore[union-attr]
            arenas = [f"{m.group(1).upper()}{int(m.group(2))}" for m in wells]  # type: ignore[union-attr]
        else:
            with np.errstate(invalid="ignore"), _quiet():
                centres = np.nanmean(head_xy, axis=0) if len(head_xy) else np.zeros((n, 2))
            names = grid_names(centres)
            if names is None:
                names = [f"A{k}" for k in range(1, n + 1)]
                notes.append(
                    f"arenas named A1..A{n} in the order of the file's individuals (their "
                    "mean positions do not form a grid)"
                )
            arenas = names
    # several individuals in one arena (e.g. ZebraZoom animals of one well): ARENA-k
    fish: list[str] = []
    for i, a in enumerate(arenas):
        same = [j for j, b in enumerate(arenas) if b == a]
        fish.append(a if len(same) == 1 else f"{a}-{same.index(i) + 1}")
    return arenas, fish, notes


class _quiet:
    """Silence numpy's RuntimeWarning for all-NaN slices."""

    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


# --------------------------------------------------------------------------------------------
# poses -> tracks


def _index(keypoints: list[str], names: list[str]) -> list[int]:
    return [keypoints.index(k) for k in names]


def poses_to_tracks(
    poses: Poses,
    mapping: KeypointMap,
    *,
    layout: str = "wells",
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    n_points: int | None = None,
    resample: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The tracks table (one row per frame per individual) and a summary for provenance.

    Columns: ``frame, time_s, arena, fish, x, y, heading, tail_angle, tail_curvature,
    detected, area_px`` (NaN: unknown without video) and, when the mapping has a midline,
    ``tail_x_0 … tail_x_{N-1}, tail_y_0 … tail_y_{N-1}`` (0 = head, N-1 = tail tip).
    """
    pos = np.asarray(poses.position, np.float64)
    t_n, f_n = pos.shape[:2]
    kps = list(poses.keypoints)
    if poses.confidence is not None:
        conf = np.asarray(poses.confidence, np.float64)
        trusted = np.isfinite(pos).all(axis=-1) & ~(conf < min_confidence)
    else:
        trusted = np.isfinite(pos).all(axis=-1)
    hi = _index(kps, mapping.head)
    ci = _index(kps, mapping.chain)
    head_ok = trusted[:, :, hi].all(axis=2)  # (T, F)
    head = pos[:, :, hi].mean(axis=2)  # (T, F, 2)
    head[~head_ok] = np.nan

    m = t_n * f_n
    x = head[..., 0].reshape(m)
    y = head[..., 1].reshape(m)
    heading = np.full(m, np.nan)
    tail_angle = np.full(m, np.nan)
    curvature = np.full(m, np.nan)
    n_chain = 1 + len(ci)
    n_out = int(n_points) if n_points else n_chain
    tail_pts = None
    if len(ci) >= 1:
        if n_out < 2:
            raise ConfigError(f"n_points must be at least 2 (got {n_out})")
        if not resample and n_out != n_chain:
            raise ConfigError(
                f"without resampling the midline has the {n_chain} mapped points; "
                f"n_points={n_out} needs resampling"
            )
        chain_ok = (head_ok & trusted[:, :, ci].all(axis=2)).reshape(m)
        chain = np.concatenate([head[:, :, None, :], pos[:, :, ci]], axis=2).reshape(m, n_chain, 2)
        tail_pts = np.full((m, n_out, 2), np.nan)
        if chain_ok.any():
            sel = chain[chain_ok]
            tail_pts[chain_ok] = resample_chain(sel, n_out) if resample else sel
        good = np.isfinite(tail_pts).all(axis=(1, 2))
        if good.any():
            h, ta, cu = body_angles(tail_pts[good])
            heading[good], tail_angle[good], curvature[good] = h, ta, cu
        tail_pts[~good] = np.nan
    if poses.heading is not None:
        src = np.asarray(poses.heading, np.float64).reshape(m)
        use = ~np.isfinite(heading) & np.isfinite(src) & np.isfinite(x)
        heading[use] = wrap(src[use])

    arenas, fish, notes = assign_arenas(poses, head, layout)
    cols: dict[str, Any] = {
        "frame": np.repeat(np.asarray(poses.frames, np.int64), f_n),
        "time_s": np.repeat(np.asarray(poses.times, np.float64), f_n),
        "arena": np.tile(np.array(arenas, dtype=object), t_n),
        "fish": np.tile(np.array(fish, dtype=object), t_n),
        "x": x.astype(np.float32),
        "y": y.astype(np.float32),
        "heading": heading.astype(np.float32),
        "tail_angle": tail_angle.astype(np.float32),
        "tail_curvature": curvature.astype(np.float32),
        "detected": head_ok.reshape(m),
        "area_px": np.full(m, np.nan, np.float32),
    }
    if tail_pts is not None:
        for i in range(n_out):
            cols[f"tail_x_{i}"] = tail_pts[:, i, 0].astype(np.float32)
        for i in range(n_out):
            cols[f"tail_y_{i}"] = tail_pts[:, i, 1].astype(np.float32)
    tracks = pd.DataFrame(cols)
    det = tracks["detected"].to_numpy()
    summary = {
        "keypoints": kps,
        "mapping": mapping.as_dict(),
        "min_confidence": float(min_confidence),
        "n_points": n_out if tail_pts is not None else 0,
        "resampled": bool(resample and tail_pts is not None),
        "individuals": {f: str(s) for f, s in zip(fish, poses.individuals, strict=True)},
        "detection_rate": float(det.mean()) if len(det) else 0.0,
        "tail_rate": float(np.isfinite(tail_angle).mean()) if m else 0.0,
        "notes": list(poses.notes) + notes,
    }
    if tail_pts is None:
        summary["notes"].append(
            "no tail keypoints: tail_angle is unknown, so bouts are movement bouts found from "
            "the head's speed (behaviour.bout_signal auto; see docs/behaviour.md) and "
            "active/passive states follow from them"
        )
    return tracks, summary


def check_poses(poses: Poses, source: str) -> None:
    """Basic shape checks with one-line errors naming the file."""
    p = poses.position
    if p.ndim != 4 or p.shape[-1] != 2:
        raise FishtrackError(f"{source}: expected 2-D positions (frames, individuals, "
                             f"keypoints, x/y); got shape {p.shape}")
    if p.shape[0] == 0:
        raise FishtrackError(f"{source}: no frames in the file")
    if p.shape[1] == 0:
        raise FishtrackError(f"{source}: no individuals in the file")
    if len(poses.frames) != p.shape[0] or len(poses.times) != p.shape[0]:
        raise FishtrackError(f"{source}: frame numbers / times do not match the positions")
    if len(np.unique(poses.frames)) != len(poses.frames):
        raise FishtrackError(f"{source}: frame numbers repeat")
