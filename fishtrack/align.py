"""Co-recorded signals: read a time series with its own clock, align it to video time, and
average it around give-up and phase onsets.

A lab records other things next to the video: a calcium ΔF/F trace per fish, a stimulus log,
a motor-nerve recording, a DAQ channel with the camera's trigger pulses. ``fishtrack align
TRIAL --signal FILE.csv`` (:func:`align_trial`)

1. reads the file (:func:`read_signal`): CSV/TSV (or Parquet) with a time column
   (``time_s``, ``time``, ``t``, ``timestamp``, ``seconds``, or ``time_ms`` in
   milliseconds; or ``--time-column``) and numeric value columns. Per-fish signals are either
   long (an ``arena`` or ``fish`` column) or wide (one column per well, named like the
   trial's arenas: ``A1, A2, ...``); any other numeric column is shared by every fish;
2. maps its clock to video time (:func:`fit_clock`), ``video_time = scale x signal_time +
   offset``:

   * ``offset_s`` given: ``scale`` = 1 and that offset (the signal's time 0 is at video time
     ``offset_s``);
   * a sync column (TTL): its rising edges (upward crossings of the midpoint between its
     minimum and maximum, interpolated between samples) are matched to video times — to
     ``video_sync_times`` when given (e.g. LED flashes seen in the video; same count), else to
     the video's frame times when there is one pulse per frame (camera trigger output), else a
     single pulse marks the first frame (recording start trigger). With two or more matched
     pulses, scale and offset are fitted by least squares (so a clock that runs fast or slow
     is corrected) and the largest residual is reported;
3. writes ``TRIAL/align/aligned_<stem>.csv`` (``time_s`` in video time, ``signal_time_s``,
   ``arena`` for per-fish signals, the values) and ``aligned_<stem>.json`` (the clock
   mapping), then the onset-locked averages of the signal, bout rate and vigour
   (:mod:`fishtrack.stats.eventlocked`): ``locked_<stem>.csv`` (per fish),
   ``locked_<stem>_groups.csv`` and a figure ``locked_<stem>.png`` / ``.svg``.

Errors are one line naming the file: no time column, times that are not numbers or do not
increase, no numeric signal, a sync column without pulses, pulse counts that match nothing,
no overlap with the video's time range. Every output is written atomically.
``fishtrack stats`` then adds the aligned signals of every trial to the report's onset-locked
section, and ``fishtrack export --to nwb`` includes them (docs/export.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.config import StatsConfig
from fishtrack.errors import FishtrackError
from fishtrack.io.tables import read_table, write_bytes, write_table, write_text
from fishtrack.stats.eventlocked import event_locked, events_table, group_traces
from fishtrack.trial import PROVENANCE, TRACKS, TrialFolder

__all__ = ["Alignment", "AlignResult", "read_signal", "sync_pulses", "fit_clock", "align_signal",
           "align_trial", "aligned_signal_files", "read_aligned_signals", "TIME_NAMES"]

TIME_NAMES = ("time_s", "time", "t", "timestamp", "seconds", "time_ms")
"""Time column names recognised (case-insensitive; ``time_ms`` is in milliseconds)."""
_WELL = re.compile(r"^[A-Za-z]{1,2}\d{1,3}$")
ALIGN_DIR = "align"


@dataclass
class Alignment:
    """``video_time = scale * signal_time + offset_s``."""

    method: str
    offset_s: float
    scale: float = 1.0
    n_pulses: int = 0
    max_residual_s: float = 0.0

    def apply(self, t: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(t, float) + self.offset_s


def _read_any(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FishtrackError(f"{path}: signal file not found")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=None, engine="python")
    except Exception as err:  # noqa: BLE001 - any parse failure: one clear line
        raise FishtrackError(f"{path}: cannot read the signal file ({type(err).__name__}: "
                             f"{err})") from None


def read_signal(path: str | Path, *, time_column: str | None = None) -> pd.DataFrame:
    """The signal as a table with ``time_s`` (the signal's own clock, s) first.

    Raises
    ------
    FishtrackError
        Missing file, no time column, times that are not numbers or do not increase, or no
        numeric column besides the time.
    """
    path = Path(path)
    df = _read_any(path)
    lower = {str(c).strip().lower(): c for c in df.columns}
    if time_column is not None:
        if time_column not in df.columns:
            raise FishtrackError(f"{path}: no column {time_column!r} (columns: "
                                 f"{', '.join(map(str, df.columns[:12]))})")
        col = time_column
    else:
        col = next((lower[n] for n in TIME_NAMES if n in lower), None)
        if col is None:
            raise FishtrackError(
                f"{path}: no time column (looked for {', '.join(TIME_NAMES)}); name it with "
                "--time-column")
    t = pd.to_numeric(df[col], errors="coerce")
    if t.isna().any():
        raise FishtrackError(f"{path}: time column {col!r} has empty or non-numeric values")
    t = t.to_numpy(float) / (1000.0 if str(col).strip().lower() == "time_ms" else 1.0)
    if len(t) < 2:
        raise FishtrackError(f"{path}: fewer than 2 samples")
    keys = [c for c in df.columns if str(c).strip().lower() in ("arena", "fish")]
    if not keys and np.any(np.diff(t) <= 0):
        raise FishtrackError(f"{path}: time column {col!r} does not increase")
    values = [c for c in df.columns if c != col and c not in keys
              and pd.api.types.is_numeric_dtype(df[c])]
    if not values:
        raise FishtrackError(f"{path}: no numeric signal column besides the time column {col!r}")
    out = df[keys + values].copy()
    out.columns = [str(c).strip().lower() if c in keys else str(c) for c in out.columns]
    out.insert(0, "time_s", t)
    return out


def sync_pulses(t: np.ndarray, values: np.ndarray, *, source: str = "signal",
                column: str = "sync") -> np.ndarray:
    """Times of the rising edges of a TTL-like column (upward crossings of the midpoint
    between its minimum and maximum, linearly interpolated between samples)."""
    v = np.asarray(values, float)
    t = np.asarray(t, float)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        raise FishtrackError(f"{source}: sync column {column!r} has no values")
    lo, hi = float(np.min(v[ok])), float(np.max(v[ok]))
    if not hi > lo:
        raise FishtrackError(f"{source}: sync column {column!r} has no pulses (it is constant)")
    thr = (lo + hi) / 2
    v, t = v[ok], t[ok]
    rise = np.flatnonzero((v[:-1] < thr) & (v[1:] >= thr))
    if len(rise) == 0:
        raise FishtrackError(f"{source}: sync column {column!r} has no pulses (no rising edge "
                             f"through {thr:.4g})")
    frac = (thr - v[rise]) / (v[rise + 1] - v[rise])
    return t[rise] + frac * (t[rise + 1] - t[rise])


def fit_clock(pulses: np.ndarray, video_times: np.ndarray, method: str) -> Alignment:
    """Least-squares ``video = scale * signal + offset`` through matched pulse times."""
    p, v = np.asarray(pulses, float), np.asarray(video_times, float)
    if len(p) == 1:
        return Alignment(method, float(v[0] - p[0]), 1.0, 1, 0.0)
    scale, offset = np.polyfit(p, v, 1)
    resid = v - (scale * p + offset)
    return Alignment(method, float(offset), float(scale), len(p), float(np.max(np.abs(resid))))


def align_signal(
    signal: pd.DataFrame,
    *,
    source: str = "signal",
    offset_s: float | None = None,
    sync_column: str | None = None,
    frame_times: np.ndarray | None = None,
    video_sync_times: np.ndarray | None = None,
) -> tuple[pd.DataFrame, Alignment]:
    """Map the signal's ``time_s`` to video time (module docstring); returns the aligned
    table (``time_s`` video time, ``signal_time_s``, keys, values; the sync column dropped)
    and the clock mapping. Checks that the aligned signal overlaps the video's frames."""
    t = signal["time_s"].to_numpy(float)
    if offset_s is not None and sync_column is not None:
        raise FishtrackError(f"{source}: give either an offset or a sync column, not both")
    if offset_s is not None:
        al = Alignment("offset", float(offset_s))
    elif sync_column is not None:
        if sync_column not in signal.columns:
            raise FishtrackError(f"{source}: no sync column {sync_column!r}")
        pulses = sync_pulses(t, signal[sync_column].to_numpy(float), source=source,
                             column=sync_column)
        n_frames = len(frame_times) if frame_times is not None else 0
        if video_sync_times is not None:
            vs = np.sort(np.asarray(video_sync_times, float))
            if len(vs) != len(pulses):
                raise FishtrackError(f"{source}: sync column {sync_column!r} has {len(pulses)} "
                                     f"pulses but {len(vs)} video sync times were given")
            al = fit_clock(pulses, vs, "sync pulses matched to video sync times")
        elif n_frames and len(pulses) == n_frames:
            al = fit_clock(pulses, np.sort(frame_times), "one sync pulse per video frame")
        elif len(pulses) == 1:
            first = float(np.min(frame_times)) if n_frames else 0.0
            al = fit_clock(pulses, np.array([first]), "one sync pulse at the first frame")
        else:
            raise FishtrackError(
                f"{source}: sync column {sync_column!r} has {len(pulses)} pulses but the video "
                f"has {n_frames} frames; give the video times of the pulses "
                "(--video-sync FILE) or an offset (--offset)")
    else:
        raise FishtrackError(f"{source}: give an offset (--offset) or a sync column "
                             "(--sync-column) to align the signal to the video")
    out = signal.drop(columns=[sync_column] if sync_column else [])
    out = out.rename(columns={"time_s": "signal_time_s"})
    out.insert(0, "time_s", al.apply(t))
    if frame_times is not None and len(frame_times):
        v0, v1 = float(np.min(frame_times)), float(np.max(frame_times))
        s0, s1 = float(out["time_s"].min()), float(out["time_s"].max())
        if s1 < v0 or s0 > v1:
            raise FishtrackError(
                f"{source}: no overlap with the video's time range (signal {s0:.3g} to "
                f"{s1:.3g} s after alignment, video {v0:.3g} to {v1:.3g} s); check the offset "
                "or the sync column")
    return out, al


@dataclass
class AlignResult:
    """What :func:`align_trial` wrote and how the clocks were matched."""

    paths: dict[str, Path]
    alignment: Alignment
    n_events: int
    n_fish: int


def _to_long(sig: pd.DataFrame, arenas: list[str], stem: str) -> pd.DataFrame:
    """Wide per-well columns (named like the trial's arenas) to a long ``arena`` table."""
    if "arena" in sig.columns or "fish" in sig.columns:
        return sig
    wells = [c for c in sig.columns if c in set(arenas) and _WELL.match(c)]
    if not wells:
        return sig
    shared = [c for c in sig.columns if c not in wells and c not in ("time_s", "signal_time_s")]
    long = sig.melt(id_vars=["time_s", "signal_time_s", *shared], value_vars=wells,
                    var_name="arena", value_name=stem)
    return long.sort_values(["arena", "time_s"], kind="stable").reset_index(drop=True)


def aligned_signal_files(trial_dir: str | Path) -> list[Path]:
    """The aligned signals of a trial folder (``align/aligned_*.csv``)."""
    d = Path(trial_dir) / ALIGN_DIR
    return sorted(d.glob("aligned_*.csv")) if d.is_dir() else []


def read_aligned_signals(trial_dir: str | Path) -> list[pd.DataFrame]:
    """The aligned signals of a trial, one table per file (``time_s``, ``arena`` for
    per-fish signals, the values); empty when there is none. A value column named like one
    of another file gets the file's stem in front (``<stem>:<column>``)."""
    out, seen = [], set()
    for f in aligned_signal_files(trial_dir):
        df = read_table(f).drop(columns=["signal_time_s"], errors="ignore")
        if "arena" in df.columns:
            df["arena"] = df["arena"].astype(str)
        stem = f.stem.removeprefix("aligned_")
        values = [c for c in df.columns if c not in ("time_s", "arena", "fish", "video")]
        df = df.rename(columns={c: f"{stem}:{c}" for c in values if c in seen})
        seen |= set(values)
        out.append(df)
    return out


def align_trial(
    folder: str | Path,
    signal_path: str | Path,
    *,
    offset_s: float | None = None,
    sync_column: str | None = None,
    video_sync: str | Path | None = None,
    time_column: str | None = None,
    trial: str | None = None,
    stats=None,
) -> AlignResult:
    """Align a signal file to a trial and write the aligned signal, its onset-locked
    averages and their figure into ``TRIAL/align/`` (module docstring).

    ``folder`` is a trial folder (``fishtrack track --out``) or an experiment folder
    (``fishtrack run --out``) with ``trial`` naming one of its trials (then the fish get
    their manifest groups). ``stats``: a :class:`~fishtrack.config.StatsConfig` (window and
    bins of the averages).
    """
    from fishtrack.report.figures import event_locked_figure, figure_png_svg

    stats = stats or StatsConfig()
    folder = Path(folder)
    fish_table = None
    if (folder / "manifest.csv").exists() and (folder / "trials").is_dir():
        names = sorted(p.name for p in (folder / "trials").iterdir() if p.is_dir())
        if trial is None or trial not in names:
            raise FishtrackError(f"{folder}: an experiment folder; name one of its trials with "
                                 f"--trial ({', '.join(names[:10]) or 'none'})")
        pf_path = folder / "per_fish.csv"
        if pf_path.exists():
            pf = read_table(pf_path)
            if "trial_dir" in pf.columns:
                rows = pf[pf["trial_dir"].astype(str) == trial]
                fish_table = rows[[c for c in ("arena", "fish_id", "group", "exclude")
                                   if c in rows.columns]].drop_duplicates("arena")
        folder = folder / "trials" / trial
    tf = TrialFolder(folder)
    if tf.missing((TRACKS, PROVENANCE)):
        raise FishtrackError(f"{folder}: not a trial folder (no {TRACKS} / {PROVENANCE})")
    prov = tf.provenance()
    tracks = tf.tracks()
    frame_times = np.unique(tracks["time_s"].to_numpy(float))
    signal_path = Path(signal_path)
    sig = read_signal(signal_path, time_column=time_column)
    vs = None
    if video_sync is not None:
        vs = read_signal(video_sync, time_column=time_column)["time_s"].to_numpy(float)
    aligned, al = align_signal(sig, source=str(signal_path), offset_s=offset_s,
                               sync_column=sync_column, frame_times=frame_times,
                               video_sync_times=vs)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", signal_path.stem)
    arenas = sorted(tracks["arena"].unique()) if "arena" in tracks.columns else []
    aligned = _to_long(aligned, arenas, stem)
    out_dir = folder / ALIGN_DIR
    out_dir.mkdir(exist_ok=True)
    paths: dict[str, Path] = {"aligned": write_table(aligned, out_dir / f"aligned_{stem}.csv")}
    meta = asdict(al) | {"signal_file": str(signal_path.resolve()), "sync_column": sync_column,
                         "video_sync": str(video_sync) if video_sync else None}
    paths["alignment"] = write_text(out_dir / f"aligned_{stem}.json",
                                    json.dumps(meta, indent=2) + "\n")
    # onset-locked averages of this trial
    bouts = tf.bouts() if tf.bouts_path.exists() else None
    epochs = tf.epochs() if tf.epochs_path.exists() else None
    if fish_table is None:
        fish_table = pd.DataFrame({"arena": arenas, "group": "all fish"}) if arenas else None
    protocol = prov.phases()
    ev = events_table(tracks, epochs, protocol, fish_table)
    sig_in = aligned.drop(columns=["signal_time_s"])
    traces = event_locked(tracks, bouts, ev, pre_s=stats.event_pre_s, post_s=stats.event_post_s,
                          bin_s=stats.event_bin_s, signals=sig_in)
    groups = group_traces(traces, stats.confidence_level)
    paths["locked"] = write_table(traces, out_dir / f"locked_{stem}.csv")
    paths["locked_groups"] = write_table(groups, out_dir / f"locked_{stem}_groups.csv")
    fig = event_locked_figure(groups, reference=stats.reference_group,
                              title=f"{signal_path.name} aligned to {folder.name} ({al.method})")
    png, svg = figure_png_svg(fig)  # one layout for both
    paths["figure"] = write_bytes(out_dir / f"locked_{stem}.png", png)
    paths["figure_svg"] = write_bytes(out_dir / f"locked_{stem}.svg", svg)
    return AlignResult(paths=paths, alignment=al, n_events=int(len(ev)),
                       n_fish=int(ev["fish_id"].nunique()) if len(ev) else 0)
