"""The one place the stages are composed for a single video.

video source -> background -> arenas -> tracking -> behaviour -> trial folder

:func:`track` is the library entry point (``fishtrack.track(video, config)``); it returns the
per-frame table. :func:`track_to_folder` also writes the trial folder that ``fishtrack track``
produces (:class:`fishtrack.trial.TrialFolder`: ``tracks.parquet``, ``bouts.csv``,
``epochs.csv``, ``provenance.json``, each atomically, the provenance last).
:func:`find_arenas` is the first two stages alone (the arena check of ``fishtrack run``,
``fishtrack arenas``); :func:`classify_folder` re-scores a trial folder's tracks.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fishtrack._threads import import_beside, trim_heap
from fishtrack.arenas import Arena, detect_arenas
from fishtrack.background_sample import EarlySample
from fishtrack.config import Config, config_hash, parse_config, resolve_config
from fishtrack.errors import ConfigError, FishtrackError, OutputError
from fishtrack.found import arena_record, found_key, load_found, save_found
from fishtrack.io.provenance import build_provenance, file_identity, library_versions
from fishtrack.io.tables import ArrowSpill, SpillFile
from fishtrack.io.video import VideoSource, open_video
from fishtrack.tracking import Background, estimate_background, kept_rows, track_video
from fishtrack.tracking.codec_limits import tail_codec_warning

if TYPE_CHECKING:  # imported after the first frames are tracked: _late_imports
    import pandas as pd
    import pyarrow as pa

    from fishtrack.behaviour import OUTPUT_COLUMNS, classify, load_protocol_log
    from fishtrack.trial import Provenance, TrialFolder, TrialResult

__all__ = [
    "TrialResult",
    "track",
    "track_to_folder",
    "classify_folder",
    "resolve_config",
    "find_arenas",
    "open_source",
]

Progress = Callable[[int, int], None]

# OUTPUT_FILES (= fishtrack.trial.TABLES): tables whose size and sha256 ``provenance.json``
# records (``outputs``); a late name like those below.

_SPILL = ("pyarrow", "pyarrow.parquet")
"""What the tracker's spill file needs (pyarrow, not pandas: ``SpillFile.write`` converts the
tracker's NumPy columns itself), imported in a thread beside the tracking of the first frames."""

_LATE = ("pandas", "fishtrack.behaviour", "fishtrack.trial", "fishtrack.behaviour.classify")
"""What the stages after the tracking import (pandas, the behaviour stage, the trial folder:
~0.8 s of CPU): in a thread beside the last seconds of the tracking (:class:`_NearEnd`), not
during the rest of it (pandas alone is ~40 MB resident; issue 15)."""
LATE_IMPORT_LEAD_S = 2.0
"""The :data:`_LATE` imports start when the tracking is estimated to end within this many
seconds (the frames left at its frames per second so far)."""


class _NearEnd:
    """The tracker's ``progress`` (calls ``progress`` too, if given) that starts importing
    :data:`_LATE` in a thread once the tracking's estimated time left is at most
    :data:`LATE_IMPORT_LEAD_S` and the thread ``after`` (the spill's imports) is done (one
    importing thread at a time); :meth:`join` waits for that import (if started)."""

    def __init__(self, progress: Progress | None, after=None):
        self.progress = progress
        self.after = after
        self.thread = None
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.thread is None and done > 0 and not (self.after and self.after.is_alive()):
            left = (total - done) * (time.perf_counter() - self.start) / done
            if left <= LATE_IMPORT_LEAD_S:
                self.thread = import_beside(*_LATE)
        if self.progress is not None:
            self.progress(done, total)

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def _late_imports() -> None:
    """Bind this module's late names (``pd``, ``pa``, ``classify``, ``OUTPUT_COLUMNS``,
    ``load_protocol_log``, ``TrialFolder``, ``TrialResult``, ``Provenance``, ``TABLES``,
    ``OUTPUT_FILES``), importing them if needed; a name already bound (e.g. replaced by a
    test) is kept."""
    import pandas
    import pyarrow

    from fishtrack import behaviour, trial

    g = globals()
    for name, value in (("pd", pandas), ("pa", pyarrow), ("classify", behaviour.classify),
                        ("OUTPUT_COLUMNS", behaviour.OUTPUT_COLUMNS),
                        ("load_protocol_log", behaviour.load_protocol_log),
                        ("TABLES", trial.TABLES), ("OUTPUT_FILES", trial.TABLES),
                        ("Provenance", trial.Provenance), ("TrialFolder", trial.TrialFolder),
                        ("TrialResult", trial.TrialResult)):
        g.setdefault(name, value)


def __getattr__(name: str):
    if name in {"pd", "pa", "classify", "OUTPUT_COLUMNS", "load_protocol_log", "TABLES",
                "OUTPUT_FILES", "Provenance", "TrialFolder", "TrialResult"}:
        _late_imports()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def with_protocol_log(cfg: Config, protocol_log: str | Path | None, duration_s: float | None) -> Config:
    """Return ``cfg`` whose ``protocol`` comes from a stimulus-log CSV when one is given."""
    if protocol_log is None:
        return cfg
    _late_imports()
    phases = load_protocol_log(protocol_log, end_s=duration_s)
    return cfg.model_copy(update={"protocol": phases})


# --------------------------------------------------------------------------------------------
# the first stages: video, background, arenas


def open_source(video: str | Path, config: Config) -> VideoSource:
    """Open ``video`` as the config's ``video`` section says (crop, frame-rate override)."""
    return open_video(video, crop=config.video.crop, fps=config.video.fps)


def find_arenas(
    source: VideoSource, config: Config, *, timings: dict[str, float] | None = None,
    start: float | None = None, early: EarlySample | None = None,
) -> tuple[list[Arena], Background]:
    """Background of the source's sampled frames, then the arenas on it.

    ``timings`` (when given) gets the seconds spent on the background (since ``start``, a
    ``time.perf_counter()`` value, default now: e.g. from before the video was opened) and on
    the arenas. ``early``: the sample of this source already being taken in a thread
    (:class:`~fishtrack.background_sample.EarlySample`).
    """
    t0 = time.perf_counter() if start is None else start
    sample = None if early is None else early.sample()
    bg = estimate_background(source, config.tracking, sample=sample)
    t1 = time.perf_counter()
    arenas = detect_arenas(bg.image, config.arenas)
    if timings is not None:
        timings["background"] = t1 - t0
        timings["arenas"] = time.perf_counter() - t1
    return arenas, bg


def find_arenas_once(
    source: VideoSource, video: str | Path, config: Config, cache: str | Path | None, *,
    timings: dict[str, float] | None = None, start: float | None = None,
    early: EarlySample | None = None,
) -> tuple[list[Arena], Background, bool]:
    """:func:`find_arenas`, done once per run: with ``cache`` (a file of
    :mod:`fishtrack.found`) the arenas and background saved there for this video and config
    are loaded (the third value is then True); otherwise they are found and saved there. The
    wells check of ``fishtrack run`` and the trial after it share the file."""
    if cache is None:
        return (*find_arenas(source, config, timings=timings, start=start, early=early), False)
    t0 = time.perf_counter() if start is None else start
    key = found_key(video, config)
    hit = load_found(cache, key)
    if hit is not None:
        if timings is not None:
            timings["background"] = time.perf_counter() - t0
            timings["arenas"] = 0.0
        return (*hit, True)
    arenas, bg = find_arenas(source, config, timings=timings, start=t0, early=early)
    save_found(cache, key, arenas, bg)
    return arenas, bg, False


def _check_times(src: VideoSource, video: str | Path) -> None:
    """Behaviour needs a time per frame: TIFF stacks and image folders have none unless
    ``video.fps`` is set (or an ImageJ TIFF states its frame interval)."""
    ts = np.asarray(src.timestamps, dtype=np.float64)
    if ts.size and not np.isfinite(ts).all():
        raise ConfigError(
            f"{video}: the frames have no times ({src.meta.codec}, no frame rate stored); "
            "set video.fps in the config to the recording's frame rate"
        )


# --------------------------------------------------------------------------------------------
# every stage


def _run_stages(
    video: str | Path, cfg: Config, progress: Progress | None, protocol_log: str | Path | None = None,
    spill: SpillFile | None = None, found_cache: str | Path | None = None,
    early: EarlySample | None = None,
) -> TrialResult:
    """Run every stage; a :class:`FishtrackError` that does not name the video yet is raised
    again (same class) with the video's path in front, so the one line says which file.

    With ``spill`` the tracks stream through that file (:func:`track_to_folder` with
    ``stream``): the result's ``tracks`` is empty and ``tracks_parts`` yields the table."""
    try:
        return _run_stages_inner(video, cfg, progress, protocol_log, spill, found_cache, early)
    except FishtrackError as err:
        if str(video) in str(err):
            raise
        new = type(err)(f"{video}: {err}")
        if hasattr(err, "problems"):
            new.problems = err.problems  # type: ignore[attr-defined]
        raise new from None


def _run_stages_inner(
    video: str | Path, cfg: Config, progress: Progress | None, protocol_log: str | Path | None = None,
    spill: SpillFile | None = None, found_cache: str | Path | None = None,
    early: EarlySample | None = None,
) -> TrialResult:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if early is not None and not early.matches(video, cfg):
        early.close()  # started for another video or config: not this run's sample
        early = None
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        with open_source(video, cfg) if early is None else early.source() as src:
            _check_times(src, video)
            arenas, bg, reused = find_arenas_once(src, video, cfg, found_cache, timings=timings,
                                                  start=t0, early=early)
            t1 = time.perf_counter()
            # pyarrow (the spill's) is imported beside the first frames' tracking; pandas and
            # the behaviour stage beside its last seconds (_NearEnd). Warnings are
            # process-wide: the threads run inside this record and after the arena detection
            # (no catch_warnings of a thread while it imports; their imports record no warning
            # and filter none of the tracker's: docs/benchmarks.md); then the libraries'
            # versions the provenance records (read once per process)
            late = import_beside(*_SPILL, then=library_versions)

            key_flags = keyframe_flags(src)

            def sink(block, write=None if spill is None else _spill_sink(spill)):
                late.join()  # the spill's pyarrow, imported by one thread only
                write(with_keyframe_column(block, key_flags))

            near_end = _NearEnd(progress, after=late)
            try:
                res = track_video(
                    src,
                    arenas,
                    cfg.tracking,
                    fish_per_arena=cfg.arenas.fish_per_arena,
                    layout=cfg.arenas.layout,
                    background=bg,
                    chunk_size=cfg.video.chunk_size,
                    progress=near_end,
                    sink=None if spill is None else sink,
                    release_calib=True,  # bg is not used after tracking (saved before it)
                )
            finally:
                late.join()
                near_end.join()
            timings["tracking"] = time.perf_counter() - t1
            _late_imports()
            meta = src.meta
            cfg = with_protocol_log(cfg, protocol_log, float(meta.duration_s))
            damage = [d.__dict__ if hasattr(d, "__dict__") else dict(d) for d in src.damage]
        caught = [str(w.message) for w in wlist]
    # streamed: the empty frame of the tracker's columns, which stands for the table when no
    # row was tracked, gets the column too (every block of tracks.parquet has one schema)
    tracks = with_keyframe_column(res.tracks, key_flags)
    out = TrialResult(tracks=tracks, arenas=arenas, summary=dict(res.summary), warnings=caught)
    kept = {k: out.summary.pop(k) for k in ("kept_slots", "n_slots") if k in out.summary}
    out.summary.setdefault("warnings", [])
    out.summary["warnings"] = list(out.summary["warnings"]) + caught
    length = float(out.summary.get("fish_length_px", math.nan)) if out.summary.get("detection_rate") else math.nan
    codec_note = tail_codec_warning(meta.codec, meta.crf, length)  # no fish found: no tails to judge
    out.summary["tail_limited_by_codec"] = codec_note is not None
    if codec_note is not None:
        out.summary["warnings"].append(codec_note)
    trim_heap()  # the tracking stage's freed working memory, before behaviour's imports
    t1 = time.perf_counter()
    behaviour_noise = None
    if spill is not None:
        behaviour_noise = _classify_streamed(out, spill, kept, cfg)
    elif len(out.tracks):
        b = classify(out.tracks, cfg.behaviour, cfg.protocol, px_per_mm=cfg.px_per_mm)
        out.tracks, out.bouts, out.epochs = b.tracks, b.bouts, b.epochs
        behaviour_noise = b.noise
    timings["behaviour"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    out.provenance = build_provenance(
        config=cfg.model_dump(mode="json"),
        config_hash=config_hash(cfg),
        inputs=file_identity(video),
        frames_read=int(meta.n_frames),
        damage=damage,
        timings=timings,
        extra={
            "video": {
                "n_frames": int(meta.n_frames),
                "fps": float(meta.fps),
                "width": int(meta.width),
                "height": int(meta.height),
                "codec": str(meta.codec),
                "duration_s": float(meta.duration_s),
                "frame_count_method": str(getattr(meta, "frame_count_method", "")),
                "encoder": meta.encoder,
                "crf": float(meta.crf) if math.isfinite(meta.crf) else None,
            },
            "arenas": [arena_record(a) for a in arenas],
            "summary": _jsonable(out.summary),
            "protocol_log": None if protocol_log is None else str(protocol_log),
            "behaviour_noise": behaviour_noise,
            "background_reused": reused,
        },
    )
    return out


def keyframe_flags(src) -> Callable[[np.ndarray], np.ndarray]:
    """For the tracks' ``keyframe`` column: a function of frame numbers (int array) giving
    whether each is a key frame of an inter-coded video (``VideoSource.keyframes``, from the
    container's index). All False where every frame is one or the codec is intra-only or
    lossless (:func:`_inter_coded`: MJPG, FFV1, raw) or none is known (TIFF stacks, image
    folders, arrays): there no frame is coded against another with loss, so no frame renews
    the picture more than the others."""
    kf = getattr(src, "keyframes", None)
    meta = getattr(src, "meta", None)
    n = int(getattr(meta, "n_frames", 0) or 0)
    kf = None if kf is None else np.unique(np.asarray(kf, np.int64))
    if (kf is None or len(kf) == 0 or (n and len(kf) >= n)
            or not _inter_coded(str(getattr(meta, "codec", "")))):
        return lambda frame: np.zeros(len(frame), bool)

    def flags(frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame, np.int64)
        i = np.minimum(np.searchsorted(kf, frame), len(kf) - 1)
        return kf[i] == frame

    return flags


def _inter_coded(codec: str) -> bool:
    """Whether ``codec`` (FFmpeg's decoder name, e.g. ``h264``) codes frames against others
    with loss, so that a key frame renews the decoded picture: FFmpeg's descriptor says lossy
    and not intra-only. False for MJPG, raw and the lossless FFV1 (whose index can name key
    frames every few frames: ``head_embedded_stytra.avi`` of ../shared/videos, every 12th,
    decoded bit-exact, every frame an I frame); True when the codec is unknown (the index is
    trusted)."""
    try:
        import av

        c = av.codec.Codec(codec, "r")
    except Exception:  # not a codec FFmpeg knows by this name (e.g. ``tiff`` stacks: no keys)
        return True
    return bool(getattr(c, "lossy", True)) and not bool(getattr(c, "intra_only", False))


def with_keyframe_column(block, flags: Callable[[np.ndarray], np.ndarray]):
    """``block`` (a tracker's column dict or a DataFrame) with the ``keyframe`` column after
    ``tail_motion`` (at the end without it): one vectorised look-up per block, no per-frame
    objects."""
    if "keyframe" in block or "frame" not in block:
        return block
    if hasattr(block, "iloc"):
        out = block.copy(deep=False)
        at = (list(out.columns).index("tail_motion") + 1 if "tail_motion" in out.columns
              else len(out.columns))
        out.insert(at, "keyframe", flags(out["frame"].to_numpy()))
        return out
    out = {}
    for k, v in block.items():
        out[k] = v
        if k == "tail_motion":
            out["keyframe"] = flags(block["frame"])
    if "keyframe" not in out:
        out["keyframe"] = flags(block["frame"])
    return out


BEHAVIOUR_INPUT = ("frame", "time_s", "arena", "fish", "x", "y", "heading", "tail_angle",
                   "detected", "motion_energy", "tail_motion", "keyframe")
"""Tracker columns the behaviour stage reads (with the midline points ``tail_x_i``,
``tail_y_i`` and the midline's segment angles ``seg_angle_i``, whose mid-tail angle the
pixel-motion gate tests); its results do not depend on the others."""


def _kept_blocks(spill: SpillFile, kept: dict, columns=None):
    """The fish kept, block by block (``pyarrow.Table`` s), from the rows the tracker
    streamed (every slot)."""
    for block in spill.arrow_blocks(columns):
        keep = kept_rows({"frame": block.column("frame")}, kept)
        yield block if keep.all() else block.filter(pa.array(keep))


PART_ROWS = 30_000
"""The behaviour stage of a streamed recording scores its fish in parts of about this many
rows (whole fish, at least one per part): its working memory, ~550 bytes per row, is bounded
by the larger of this and the longest fish, not by the recording (docs/architecture.md)."""
PART_BLOCK_ROWS = 2048
"""Rows per row group of the behaviour's per-part files (what a reader holds per part)."""
SPILL_GROUP_ROWS = 16_384
"""Rows (whole frames, at least one) per row group of the streamed tracks' spill file, and so
of ``tracks.parquet``: the end of a run reads the tracker's rows back, joins them with the
behaviour's columns and writes them a row group at a time (a block of the tracker, ~60 000
rows on a 48-well plate, took ~40 MB of Arrow buffers and ~30 MB of pandas copies at once;
docs/architecture.md "Memory"). Not smaller: a Parquet writer keeps ~0.8 kB of metadata per
column chunk until it is closed (~46 kB per row group of 56 columns), which grows with the
recording's length."""


def _spill_sink(spill: SpillFile) -> Callable[[dict], None]:
    """The tracker's streaming sink writing to ``spill`` in row groups of whole frames of
    about :data:`SPILL_GROUP_ROWS` rows (a block of the tracker holds whole frames, each the
    same number of rows: every slot). A row group at a time: its Arrow copies (a DataFrame's
    also pandas') are held, not the whole block's (~60 000 rows of a 48-well plate: ~30 MB).
    After each block the memory Arrow's pool freed goes back to the OS."""

    def write(columns: dict | pd.DataFrame) -> None:
        import pyarrow as pa  # imported beside the tracking (_SPILL) before the first block

        frame = np.asarray(columns["frame"])
        per_frame = max(1, int(np.count_nonzero(frame == frame[0]))) if len(frame) else 1
        group = max(1, SPILL_GROUP_ROWS // per_frame) * per_frame
        for a in range(0, len(frame), group) or [0]:
            part = (columns.iloc[a : a + group] if hasattr(columns, "iloc")
                    else {k: v[a : a + group] for k, v in columns.items()})
            spill.write(part, group_rows=group)
        # the Parquet writer's buffers go back to the OS: Arrow's own pool (mimalloc) would
        # keep them beside malloc's heap, and the tracking phase's memory rose with each block
        pa.default_memory_pool().release_unused()

    return write


def _fish_parts(spill: SpillFile, kept: dict) -> tuple[pd.MultiIndex, np.ndarray]:
    """The fish of the streamed tracks in the behaviour stage's order (``arena, fish``) and
    the part of each (contiguous runs of fish of about :data:`PART_ROWS` rows)."""
    counts: pd.Series | None = None
    for table in _kept_blocks(spill, kept, ["frame", "arena", "fish"]):
        block = table.to_pandas()
        c = block.groupby(["arena", "fish"], sort=False, dropna=False).size()
        counts = c if counts is None else counts.add(c, fill_value=0)
    counts = counts.sort_index()
    part = np.zeros(len(counts), np.int64)
    rows = 0
    for i, n in enumerate(counts.to_numpy()):
        if i and rows + n > PART_ROWS:
            part[i:] += 1
            rows = 0
        rows += n
    return counts.index, part


def _row_parts(block: pd.DataFrame, keys: pd.MultiIndex, part: np.ndarray) -> np.ndarray:
    """The part of every row of ``block``."""
    idx = keys.get_indexer(pd.MultiIndex.from_frame(block[["arena", "fish"]]))
    return part[idx]


def _classify_streamed(out: TrialResult, spill: SpillFile, kept: dict, cfg: Config) -> dict | None:
    """Behaviour on streamed tracks, a few fish at a time: the columns the stage uses are
    copied from the spill file into one file per part of the fish (:func:`_fish_parts`),
    :func:`fishtrack.behaviour.classify.classify_parts` scores the parts (reading each part
    once per pass) and writes each part's added columns to a file of its own; ``out.tracks_parts``
    then yields the final table block by block (the tracker's columns from the spill, the
    behaviour's from the parts' files, in the tracker's row order), as the in-memory path's
    table. Every file lies next to the outputs and is removed with the spill file at the latest."""
    from fishtrack.behaviour.classify import classify_parts

    cols = [c for c in spill.columns
            if c in BEHAVIOUR_INPUT or c.startswith(("tail_x_", "tail_y_", "seg_angle_"))]
    noise = None
    inputs: list[ArrowSpill] = []
    added: list[SpillFile] = []
    keys = part = None
    if spill.rows:
        keys, part = _fish_parts(spill, kept)
    if keys is not None and len(keys):
        # each part's rows go to an Arrow IPC file of its own, read whole once per pass
        # without decoding (~5 vs ~30 ms for 30 000 rows from Parquet); every part's file is
        # open while the tracks are copied: Parquet writers would each hold the metadata of
        # every block written (~150 MB on a 30-min 48-well plate: docs/architecture.md)
        inputs += [spill.arrow_companion(".behaviour-in") for _ in range(part[-1] + 1)]

        def parts():
            for f in inputs:
                yield f.read()

        def emit(i: int, tracks: pd.DataFrame) -> None:
            extra = tracks[[c for c in tracks.columns if c not in cols]].reset_index(drop=True)
            f = spill.companion(".behaviour-out")
            added.append(f)
            for a in range(0, max(len(extra), 1), PART_BLOCK_ROWS):
                f.write(extra.iloc[a : a + PART_BLOCK_ROWS])
            f.close()

        try:
            for block in _kept_blocks(spill, kept, cols):
                # split as Arrow: no pandas conversion per part and block
                rp = _row_parts(block.select(["arena", "fish"]).to_pandas(), keys, part)
                for p in np.unique(rp):
                    inputs[p].write(block.take(np.flatnonzero(rp == p)))
            for f in inputs:
                f.close()
            trim_heap()  # the copy's freed blocks, before the parts are scored
            b = classify_parts(parts, cfg.behaviour, cfg.protocol, px_per_mm=cfg.px_per_mm,
                               emit=emit, score_part=classify, work_dir=spill.path.parent)
        finally:
            for f in inputs:
                f.remove()
        out.bouts, out.epochs, noise = b.bouts, b.epochs, b.noise
        trim_heap()  # the scoring's freed arrays, before tracks.parquet's Arrow blocks

    def tracks_parts():
        # Arrow blocks: the tracker's columns go from the spill file to tracks.parquet
        # without a pandas copy (the peak of the end of a run: docs/architecture.md)
        readers = [f.reader() for f in added]
        r = 0
        for block in _kept_blocks(spill, kept):
            if readers and block.num_rows:
                fish = block.select(["arena", "fish"]).to_pandas()
                rp = _row_parts(fish, keys, part)
                pos = np.arange(len(fish))
                pieces = []
                for p in np.unique(rp):
                    piece = readers[p].take(int(np.sum(rp == p)))
                    piece.index = pos[rp == p]
                    pieces.append(piece)
                extra = pd.concat(pieces).sort_index().reset_index(drop=True)
                del pieces
                added_cols = pa.Table.from_pandas(extra, preserve_index=False)
                for name, col in zip(added_cols.column_names, added_cols.columns, strict=True):
                    block = block.append_column(name, col)
                del extra, added_cols
            r += block.num_rows
            yield block
        for f in added:
            f.remove()
        if r == 0:  # no rows at all: the empty table with the tracker's columns
            yield out.tracks

    out.tracks_parts = tracks_parts
    return noise


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


# --------------------------------------------------------------------------------------------
# entry points


def track(
    video: str | Path,
    config: Config | str | Path | dict | None = None,
    *,
    protocol_log: str | Path | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Track every fish in ``video``; returns the per-frame table (see docs/data_model.md).

    ``protocol_log`` (a stimulus-log CSV, see docs/behaviour.md) replaces the config's
    ``protocol``.

    The table is built in memory: about 140 bytes per fish per frame while tracking, and
    about 1 KB per fish-frame at the peak, when the behaviour stage scores the table (e.g.
    ~800 MB for 16 fish x 5 min at 100 fps, 480 000 fish-frames; docs/benchmarks.md). For
    long recordings use :func:`track_to_folder` with ``stream=True`` (``fishtrack track``),
    which writes the trial folder without building the table; its behaviour stage still
    holds every fish's scoring columns (docs/architecture.md, "Memory").
    """
    return _run_stages(Path(video), resolve_config(config), progress, protocol_log).tracks


def track_to_folder(
    video: str | Path,
    config: Config | str | Path | dict | None,
    out: str | Path,
    *,
    csv: bool = False,
    protocol_log: str | Path | None = None,
    progress: Progress | None = None,
    stream: bool = False,
    found_cache: str | Path | None = None,
    early: EarlySample | None = None,
) -> TrialResult:
    """Track ``video`` and write the trial folder ``out`` (all files written atomically).

    ``stream=True`` (what ``fishtrack track`` and ``fishtrack run`` do): the tracks are never
    held whole. The tracker hands finished rows to a temporary file in ``out`` as it goes
    (memory bounded by the chunk size and the number of fish, not the video's length), the
    behaviour stage reads back the columns it uses, and ``tracks.parquet`` is written in row
    groups; the files equal those of the in-memory path. The result's ``tracks`` is then an
    empty table (read ``out/tracks.parquet``, e.g. :meth:`TrialFolder.tracks` with
    ``columns``); bouts, epochs, summary and provenance are as without ``stream``.

    ``found_cache``: a file of :mod:`fishtrack.found` (what ``fishtrack run``'s wells check
    saved): the background and arenas are loaded from it when it was saved for this video and
    config (provenance ``background_reused``: true), else found and saved there.

    ``early``: the video opened and its background sample being taken in a thread since before
    this call (:class:`~fishtrack.background_sample.EarlySample`, what ``fishtrack track``
    starts before importing the pipeline); used when it was started for this video and config.
    The outputs are the same with it or without.
    """
    cfg = resolve_config(config)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FishtrackError(f"{out}: --out must be a folder, but a file of that name exists")
    _check_writable(out)  # before the work, not after it
    if not stream:
        res = _run_stages(Path(video), cfg, progress, protocol_log, found_cache=found_cache,
                          early=early)
        TrialFolder(out).write(res, csv=csv)
        return res
    with SpillFile(out, prefix=".tracks-spill") as spill:
        res = _run_stages(Path(video), cfg, progress, protocol_log, spill, found_cache, early)
        TrialFolder(out).write(res, csv=csv)
    res.tracks_parts = None
    return res


def output_digests(folder: str | Path) -> dict[str, dict]:
    """``{file: {size_bytes, sha256}}`` of the trial tables present in ``folder``."""
    _late_imports()
    return TrialFolder(folder).digests()


def _check_writable(out: Path) -> None:
    """The output folder exists and is writable, or can be created (its nearest existing
    parent is a writable folder)."""
    p = out
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise OutputError(f"{out}: cannot create the output folder: {p} is a file, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(
            f"{out}: cannot write: the folder {p} is not writable; choose another --out folder "
            "or fix its permissions"
        )


def classify_folder(
    folder: str | Path,
    config: Config | str | Path | dict | None = None,
    *,
    protocol_log: str | Path | None = None,
) -> TrialResult:
    """Re-score an existing trial folder's tracks with (new) behaviour parameters."""
    _late_imports()
    trial = TrialFolder(folder)
    if not trial.tracks_path.exists():
        raise FishtrackError(f"{trial}: no tracks.parquet here; run `fishtrack track` first")
    prov = trial.provenance() if trial.provenance_path.exists() else \
        Provenance({}, path=trial.provenance_path)
    if config is None and "config" in prov.data:
        cfg = parse_config(prov.config, str(trial.provenance_path))
    else:
        cfg = resolve_config(config)
    cfg = with_protocol_log(cfg, protocol_log, prov.duration_s)
    tracks = trial.tracks()
    tracks = tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tracks.columns])
    t0 = time.perf_counter()
    b = classify(tracks, cfg.behaviour, cfg.protocol, px_per_mm=cfg.px_per_mm)
    prov.record_scoring(cfg, time.perf_counter() - t0, noise=b.noise)
    trial.rescore(b, prov)
    return TrialResult(tracks=b.tracks, bouts=b.bouts, epochs=b.epochs, provenance=prov.data)
