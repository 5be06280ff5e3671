"""Experiments: a manifest of videos and wells, a resumable batch runner, statistics and report.

A *manifest* is a table a lab technician fills in a spreadsheet, one row per fish (well): a
CSV file, or an Excel ``.xlsx`` workbook (its first sheet, or the sheet named by ``sheet``;
cell values only: formulas are not evaluated, macros never run).

=========== ========= =====================================================================
column      required  meaning
=========== ========= =====================================================================
video       yes       video path: absolute (``/data/rig2/plate.avi``, ``~/videos/x.avi``), or
                      relative to the manifest's folder (``day1/plate.avi``,
                      ``../videos/plate.avi``)
arena       yes       well name (``A1``, ``B12``; case and leading zeros are ignored)
group       yes       treatment group (e.g. ``control``, ``ketamine``)
fish_id     no        unique fish name (default ``VIDEOSTEM:ARENA``)
dose        no        numeric when every value is a number
sex, batch  no        kept as covariates
trial       no        kept as a covariate
condition   no        within-fish treatment (e.g. before / after): the same fish_id may then
                      appear in several videos, compared fish by fish against
                      ``stats.reference_condition``
exclude     no        empty / 0 / no / false keep the fish; anything else excludes it (text
                      other than yes / 1 / true / x is kept as the reason)
protocol    no        stimulus-log CSV for that video (path as for ``video``), read with
                      :func:`fishtrack.behaviour.load_protocol_log`; overrides ``protocol:``
                      of the config for that video
config      no        YAML config for that video (path as for ``video``), e.g. when
                      one experiment mixes plates and head-embedded larvae; replaces the
                      experiment config for tracking it (statistics use the experiment's
                      ``stats`` section)
(any other) no        kept as a covariate column in ``per_fish.csv``
=========== ========= =====================================================================

Row numbers in messages are the spreadsheet's (the header is row 1); messages about an Excel
workbook name its sheet. Paths are the user's own: any file the user running fishtrack can
read is accepted; a path that does not exist is reported with its row.

:func:`run_experiment` checks the whole manifest (table problems, missing videos and protocol
logs, then the wells of every video after a fast arena detection) and reports every problem
at once *before* any tracking starts; then it tracks each video into ``OUT/trials/<stem>/``
(in parallel: local processes or a dask.distributed cluster), skipping trials whose outputs
already match the video and config, and finally computes per-fish metrics, group statistics
and ``report.html`` (:func:`compute_stats`, which can be re-run alone after editing
``OUT/manifest.csv``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import socket
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fishtrack.config import Config, dump_config, parse_config
from fishtrack.errors import FishtrackError, ManifestError, OutputError
from fishtrack.report import MAIN_METRICS

__all__ = [
    "Manifest",
    "ProgressEvent",
    "TrialFailure",
    "TrialOutcome",
    "ExperimentResult",
    "read_manifest",
    "run_experiment",
    "compute_stats",
    "detect_video_arenas",
    "track_trial",
    "output_lock",
    "trial_status",
    "trial_names",
    "MAIN_METRICS",
]

REQUIRED_COLUMNS = ("video", "arena", "group")
KNOWN_COLUMNS = (
    "video", "arena", "group", "fish_id", "dose", "sex", "batch", "trial", "exclude", "protocol",
    "config", "condition",
)
_RESERVED = ("row", "manifest_row", "exclude_reason", "trial_dir")
"""Column names the runner adds itself (a manifest may not use them)."""
_PER_VIDEO = ("protocol", "config")
"""Columns naming a file per video (like ``video``: absolute or relative to the manifest); one
value per video."""
TRIAL_FILES = ("tracks.parquet", "bouts.csv", "epochs.csv", "provenance.json")
"""Files a complete trial folder holds (``provenance.json`` is written last)."""
LOCK_NAME = ".fishtrack.lock"
STATE_FILE = "experiment.json"

_FALSE_WORDS = {"", "0", "no", "n", "false", "f", "keep", "include", "included"}
_TRUE_WORDS = {"1", "yes", "y", "true", "t", "x", "exclude", "excluded"}
_ARENA_RE = re.compile(r"^([A-Z]{1,2})0*(\d{1,3})$")

Status = Literal["done", "skipped", "reclassified", "failed"]


# ============================================================================================
# progress


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report of :func:`run_experiment` / :func:`compute_stats`.

    ``kind``:

    * ``"check"`` — arena check before tracking; ``done``/``total`` videos checked.
    * ``"trial"`` — one trial (``trial`` = its folder name): first ``status == "queued"``
      (``total`` 0), then ``done``/``total`` frames while ``status == "running"`` (not
      forwarded from dask workers), and a last event with ``status`` ``done`` | ``skipped``
      | ``reclassified`` | ``failed`` (``message``: the error).
    * ``"overall"`` — ``done``/``total`` trials finished; ``trial``/``status`` name the one
      that just finished.
    * ``"stats"`` — ``done``/``total`` steps of the statistics and report; ``message`` says
      which.
    """

    kind: Literal["check", "trial", "overall", "stats"]
    done: int
    total: int
    trial: str | None = None
    status: str | None = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def _emit(progress: ProgressCallback | None, *args: Any, **kw: Any) -> None:
    if progress is not None:
        progress(ProgressEvent(*args, **kw))


# ============================================================================================
# manifest


@dataclass
class Manifest:
    """A validated manifest.

    Attributes
    ----------
    path
        The CSV file or Excel workbook.
    root
        Folder relative video and protocol paths are relative to (normally the manifest's
        folder).
    table
        One row per fish with columns ``row`` (spreadsheet row number), ``video`` (path
        relative to ``root``, ``/``-separated, or an absolute path when the file is not in
        ``root`` or below), ``arena`` (normalised, e.g. ``A1``), ``group``, ``fish_id``,
        ``exclude`` (bool), ``exclude_reason``, ``protocol`` (path or empty) and every optional
        / covariate column.
    covariates
        Names of the extra columns kept as covariates (in file order).
    encoding
        Text encoding the file was read with (``"xlsx"`` for a workbook).
    sheet
        The workbook sheet that was read (None for a CSV).
    csv_text
        A workbook's sheet as CSV text, rows at the same row numbers (what ``fishtrack run``
        stores as ``OUT/manifest.csv``); None for a CSV.
    """

    path: Path
    root: Path
    table: pd.DataFrame
    covariates: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    sheet: str | None = None
    csv_text: str | None = None

    def video_path(self, rel: str) -> Path:
        return self.root / rel  # an absolute ``rel`` stays as it is

    @property
    def where(self) -> str:
        """How messages name the manifest: the file, and the sheet of a workbook."""
        return f"{self.path}, sheet '{self.sheet}'" if self.sheet is not None else str(self.path)

    def csv_bytes(self) -> bytes:
        """The manifest as CSV bytes: the file itself, or a workbook sheet converted."""
        if self.csv_text is not None:
            return self.csv_text.encode("utf-8")
        return self.path.read_bytes()

    @property
    def videos(self) -> list[str]:
        """Distinct videos (relative paths) in first-appearance order."""
        return list(dict.fromkeys(self.table["video"]))


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise ManifestError("not readable UTF-16 text; save it as 'CSV UTF-8'", path=path) from None
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise ManifestError(
            f"contains NUL bytes (first at line {line}): not a text CSV, or UTF-16 without a "
            "byte-order mark; save it as 'CSV UTF-8'",
            path=path,
        )
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            raise ManifestError(
                f"not UTF-8 text (undecodable byte at line {line}); save it as 'CSV UTF-8'",
                path=path,
            ) from None
        warnings.warn(
            f"{path}: not UTF-8 (first non-UTF-8 byte at line {line}); read as Windows-1252. "
            "Save the manifest as 'CSV UTF-8' to be sure names are read as written.",
            stacklevel=3,
        )
        return text, "cp1252"


def _sniff_delimiter(text: str) -> str:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _norm_header(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return key if key in KNOWN_COLUMNS or key in ("fishid", "fish") else name.strip()


def _has_control(value: str) -> bool:
    import unicodedata

    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def _cell(value: str, limit: int = 60) -> str:
    """A manifest cell quoted for a message: control characters escaped, long text cut."""
    text = value.encode("unicode_escape").decode("ascii") if _has_control(value) else value
    return f"'{text}'" if len(text) <= limit else f"'{text[: limit - 3]}...'"


def _norm_rel_path(value: str, root: Path) -> tuple[str | None, str | None]:
    """(path, None) or (None, problem) for a manifest path cell.

    The path is the user's: absolute paths are kept (``~`` expanded), relative ones are
    relative to ``root`` (``..`` allowed); both are normalised, ``/``-separated (``\\`` read as
    a separator). A path that lies in ``root`` or below is returned relative to it, any other
    as an absolute path. Only what cannot name a file here is a problem: control characters,
    URLs, and Windows drive or network paths on a computer that is not Windows.
    """
    if _has_control(value):
        return None, f"{_cell(value)} contains control characters (tab, line break, NUL...)"
    v = value.strip()
    unc = v.startswith("\\\\")
    v = v.replace("\\", "/")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", v):
        return None, (f"{_cell(value)} is a URL; give a file path (absolute, or relative to the "
                      "manifest's folder)")
    if os.name != "nt":
        if re.match(r"^[a-zA-Z]:(/|$)", v):
            return None, (
                f"{_cell(value)} is a Windows path (drive {v[0].upper()}:); give the path "
                "under which this computer sees the file (e.g. /mnt/..., /Volumes/...)"
            )
        if unc:
            return None, (
                f"{_cell(value)} is a Windows network path; give the path under which this "
                "computer mounts that share (e.g. /mnt/..., /Volumes/...)"
            )
    if v.startswith("~"):
        v = os.path.expanduser(v).replace("\\", "/")
    if os.path.isabs(v) or v.startswith("/"):
        norm = posixpath.normpath(v)
        if os.name != "nt" and norm.startswith("//"):
            norm = "/" + norm.lstrip("/")  # POSIX: '//x' is '/x'
        root_abs = posixpath.normpath(Path(os.path.abspath(root)).as_posix())
        if norm.startswith(root_abs.rstrip("/") + "/"):
            return posixpath.relpath(norm, root_abs), None
        return norm, None
    return posixpath.normpath(v), None


def _exists(path: Path) -> bool:
    """``path.exists()``, False also for names the OS refuses (too long, NUL)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _norm_arena(value: str) -> str | None:
    m = _ARENA_RE.match(value.strip().upper())
    return f"{m.group(1)}{int(m.group(2))}" if m and int(m.group(2)) > 0 else None


def _rows_text(rows: Iterable[int]) -> str:
    rows = sorted(set(int(r) for r in rows))
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows))


def _raise_problems(path: str | Path, problems: list[str]) -> None:
    if not problems:
        return
    n = len(problems)
    err = ManifestError(
        f"{n} problem{'s' if n > 1 else ''}: " + "; ".join(problems), path=path
    )
    err.problems = list(problems)  # type: ignore[attr-defined]
    raise err


def _read_records(
    path: Path, sheet: str | None
) -> tuple[list[list[str]], str, str | None, str | None, str | Path]:
    """The manifest's cells: ``(records, encoding, sheet, csv_text, where)``; ``where`` names
    the file (and the workbook's sheet) in messages."""
    if not path.exists():
        raise ManifestError("manifest file not found", path=path)
    if path.is_dir():
        raise ManifestError("is a folder, expected a manifest CSV or .xlsx file", path=path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"cannot read the manifest ({err.strerror})", path=path) from None
    from fishtrack.io.workbook import is_workbook, read_sheet

    if is_workbook(raw[:8]):
        name, records = read_sheet(path, sheet, error=ManifestError)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records)
        return ([[c.strip() for c in r] for r in records], "xlsx", name, buf.getvalue(),
                f"{path}, sheet '{name}'")
    if sheet is not None:
        raise ManifestError(
            f"is a CSV table, not an Excel workbook: it has no sheets (sheet {sheet!r} given)",
            path=path,
        )
    text, encoding = _decode(raw, path)
    if not text.strip():
        raise ManifestError("the manifest is empty; it needs a header row with video, arena, group", path=path)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text)))
    except csv.Error as err:
        raise ManifestError(f"not a readable CSV table ({err})", path=path) from None
    return [[c.strip() for c in r] for r in records], encoding, None, None, path


def _fish_problems(table: pd.DataFrame, *, repeated_ok: bool) -> list[str]:
    """Duplicate wells; a fish_id on several rows. With a ``condition`` or ``trial`` column a
    fish may be measured in several videos (within-fish conditions, repeated trials), but
    never twice in one video and always in one group."""
    problems = []
    keys = [(["video", "arena"], "name the same well")]
    keys.append((["fish_id", "video"] if repeated_ok else ["fish_id"],
                 "have the same fish_id in one video" if repeated_ok else "have the same fish_id"))
    for key, what in keys:
        dup = table[table.duplicated(key, keep=False)]
        for vals, grp in dup.groupby(key, sort=False):
            vals = vals if isinstance(vals, tuple) else (vals,)
            desc = ", ".join(f"{k} {_cell(str(v))}" for k, v in zip(key, vals, strict=True))
            hint = ("" if repeated_ok or key != ["fish_id"] else
                    "; a fish measured in several videos needs a 'condition' (within-fish "
                    "treatment) or 'trial' column")
            problems.append(f"{_rows_text(grp['row'])} {what} ({desc}){hint}")
    groups = table.groupby("fish_id", sort=False)["group"].nunique()
    for fish in groups.index[groups > 1]:
        grp = table[table["fish_id"] == fish]
        names = ", ".join(_cell(g) for g in dict.fromkeys(grp["group"]))
        problems.append(
            f"{_rows_text(grp['row'])}: fish {_cell(fish)} is in groups {names}; a fish belongs "
            "to one group (put a within-fish treatment such as before/after in a 'condition' "
            "column)"
        )
    return problems


def read_manifest(
    path: str | Path, *, root: str | Path | None = None, sheet: str | None = None
) -> Manifest:
    """Read and validate a manifest (no file-system checks of the videos).

    Parameters
    ----------
    path
        CSV file (comma, semicolon or tab separated; UTF-8, UTF-16 with BOM, or
        Windows-1252 with a warning), or an Excel ``.xlsx`` workbook (values only: formulas
        are not evaluated, macros never run).
    root
        Folder relative paths are relative to; default the manifest's folder.
    sheet
        Workbooks only: the sheet to read (name, or 1-based position); default the first.

    Returns
    -------
    Manifest

    Raises
    ------
    ManifestError
        Listing every problem found (with spreadsheet row numbers, and the sheet of a
        workbook): unreadable file, missing columns, empty cells, bad well names, paths that
        cannot name a file here (URLs, other computers' drives), duplicate wells or fish ids,
        one video with two protocol logs.
    """
    path = Path(path)
    records, encoding, sheet_name, csv_text, where = _read_records(path, sheet)
    root = Path(root) if root is not None else path.parent
    header_i = next((i for i, r in enumerate(records) if any(r)), None)
    if header_i is None:
        raise ManifestError("the manifest is empty; it needs a header row with video, arena, group", path=where)
    header = records[header_i]
    body = records[header_i + 1:]
    problems: list[str] = []

    names = [_norm_header(h) for h in header]
    names = ["fish_id" if n in ("fishid", "fish") else n for n in names]
    width = len(names)
    # columns without a header: drop when empty, else a problem
    keep: list[int] = []
    for j, n in enumerate(names):
        if n:
            keep.append(j)
        elif any(len(r) > j and r[j] for r in body):
            problems.append(f"column {j + 1} has values but no header name")
    seen: dict[str, int] = {}
    for j in keep:
        if names[j] in seen:
            problems.append(f"column {_cell(names[j])} appears twice (columns {seen[names[j]] + 1} and {j + 1})")
        seen.setdefault(names[j], j)
    for name in sorted(set(seen) & set(_RESERVED)):
        problems.append(f"column '{name}' is a name fishtrack adds to the outputs; rename it")
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        found = ", ".join(_cell(names[j], 30).strip("'") for j in keep[:12]) or "none"
        if len(keep) > 12:
            found += f", ... ({len(keep)} columns)"
        problems.append(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {found}); the header row needs video, arena, group"
        )
    _raise_problems(where, problems)

    rows: list[dict[str, Any]] = []
    for k, rec in enumerate(body):
        rownum = header_i + k + 2
        if not any(rec):
            continue
        if len(rec) > width and any(rec[width:]):
            problems.append(f"row {rownum}: {len(rec)} cells but the header has {width} columns")
        rec = rec + [""] * (width - len(rec))
        rows.append({"row": rownum, **{names[j]: rec[j] for j in keep}})
    if not rows:
        _raise_problems(where, ["the manifest has a header but no rows"])

    cov = [names[j] for j in keep if names[j] not in KNOWN_COLUMNS]
    for r in rows:
        n = r["row"]
        for col in REQUIRED_COLUMNS:
            if not r[col]:
                problems.append(f"row {n}: '{col}' is empty")
        if r["video"]:
            rel, why = _norm_rel_path(r["video"], root)
            if why:
                problems.append(f"row {n}: video {why}")
            r["video"] = rel or r["video"]
        if r["arena"]:
            a = _norm_arena(r["arena"])
            if a is None:
                problems.append(f"row {n}: arena {_cell(r['arena'])} is not a well name like A1 or H12")
            else:
                r["arena"] = a
        for col in _PER_VIDEO:
            if r.get(col):
                rel, why = _norm_rel_path(r[col], root)
                if why:
                    problems.append(f"row {n}: {col} {why}")
                r[col] = rel or r[col]
            else:
                r[col] = ""
        ex = r.get("exclude", "")
        low = ex.strip().lower()
        r["exclude"] = low not in _FALSE_WORDS
        r["exclude_reason"] = ex if r["exclude"] and low not in _TRUE_WORDS else ""
    if problems:
        _raise_problems(where, problems)
    # default fish id: the video's trial name (its stem, made unique when two videos share
    # one, e.g. rig1/plate.avi and rig2/plate.avi) and the well
    stems = trial_names(list(dict.fromkeys(r["video"] for r in rows)))
    for r in rows:
        if not r.get("fish_id"):
            r["fish_id"] = f"{stems[r['video']]}:{r['arena']}"

    table = pd.DataFrame(rows)
    # duplicate wells, duplicate fish ids, one video with two protocol logs
    problems += _fish_problems(table, repeated_ok=any(
        c in seen for c in ("condition", "trial", "session", "time_since_treatment_h")))
    for col, what in (("protocol", "protocol logs"), ("config", "configs")):
        for vid, grp in table.groupby("video", sort=False):
            files = set(grp[col])
            if len(files) > 1:
                problems.append(
                    f"{_rows_text(grp['row'])}: video '{vid}' has different {what} "
                    f"({', '.join(sorted(f or '(none)' for f in files))}); give one per video"
                )
    _raise_problems(where, problems)

    if "dose" in table.columns:
        num = pd.to_numeric(table["dose"].replace("", np.nan), errors="coerce")
        if not (num.isna() & (table["dose"] != "")).any():
            table["dose"] = num
    order = ["row", "video", "arena", "group", "fish_id", "exclude", "exclude_reason"]
    rest = [c for c in table.columns if c not in order and c not in _PER_VIDEO]
    used = [c for c in _PER_VIDEO if c in seen]  # per-video files only when the column exists
    table = table[order + rest + used].reset_index(drop=True)
    return Manifest(path=path, root=root, table=table, covariates=cov, encoding=encoding,
                    sheet=sheet_name, csv_text=csv_text)


# ============================================================================================
# trials: names, status, execution


def trial_names(videos: list[str]) -> dict[str, str]:
    """Trial folder name per video (relative path): its stem, made unique with parent folders."""
    stems = {v: Path(v).stem for v in videos}
    counts: dict[str, int] = {}
    for s in stems.values():
        counts[s] = counts.get(s, 0) + 1
    out: dict[str, str] = {}
    for v, s in stems.items():
        if counts[s] == 1:
            out[v] = s
        else:
            p = Path(v)
            parts = [x for x in p.parent.parts if x not in (p.anchor, ".", "..")]
            out[v] = "__".join([*parts, p.stem]) if parts else p.name
    # last resort: numbering
    seen: dict[str, int] = {}
    for v in videos:
        n = out[v]
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            out[v] = f"{n}__{seen[n]}"
    return out


_SPEED_ONLY = {"video": ("chunk_size",)}
"""Settings that change speed or memory but not results: ignored when deciding to redo."""


def _section_hash(cfg_dict: dict, keys: tuple[str, ...]) -> str:
    part = {k: cfg_dict.get(k) for k in keys}
    for sec, fields in _SPEED_ONLY.items():
        if isinstance(part.get(sec), dict):
            part[sec] = {k: v for k, v in part[sec].items() if k not in fields}
    blob = json.dumps(part, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_TRACK_KEYS = ("video", "arenas", "tracking")
_BEHAV_KEYS = ("behaviour", "protocol")


def trial_status(
    folder: str | Path, video: str | Path, config: Config
) -> Literal["current", "reclassify", "stale", "missing"]:
    """Whether a trial folder already holds the outputs for ``video`` with ``config``.

    ``current``: every file present, the input file identity (size, hash of the first MiB;
    an imported trial folder: hash of its content) and the tracking and behaviour config (hash of the ``video``, ``arenas``, ``tracking``,
    ``behaviour``, ``protocol`` sections, without the speed-only ``video.chunk_size``) match. ``reclassify``: only ``behaviour`` or
    ``protocol`` changed (the tracks are re-scored, not re-tracked). ``stale``: the video or
    the tracking config changed. ``missing``: no complete trial folder.
    """
    from fishtrack.importers import IDENTITY_KEYS, input_identity
    from fishtrack.io.provenance import read_provenance

    folder = Path(folder)
    if not all((folder / f).exists() for f in TRIAL_FILES):
        return "missing"
    try:
        prov = read_provenance(folder / "provenance.json")
        ident = input_identity(video)
    except (FishtrackError, OSError):
        return "missing"
    inp = prov.get("input") or {}
    for k in IDENTITY_KEYS:
        if inp.get(k) != ident.get(k):
            return "stale"
    try:
        old = parse_config(prov.get("config") or {}, "provenance").model_dump(mode="json")
    except FishtrackError:
        return "stale"
    new = config.model_dump(mode="json")
    if _section_hash(old, _TRACK_KEYS) != _section_hash(new, _TRACK_KEYS):
        return "stale"
    old_b = {
        "behaviour": prov.get("behaviour_config", old.get("behaviour")),
        "protocol": prov.get("protocol", old.get("protocol")),
    }
    try:  # fill defaults of fields added since
        old_b["behaviour"] = parse_config({"behaviour": old_b["behaviour"]}).behaviour.model_dump(mode="json")
    except FishtrackError:
        return "reclassify"
    if _section_hash(old_b, _BEHAV_KEYS) != _section_hash(new, _BEHAV_KEYS):
        return "reclassify"
    return "current"


TrialFn = Callable[..., Any]
"""``trial_fn(video, config, out_folder, progress=None)`` writes a complete trial folder."""
ArenasFn = Callable[[Path, Config], list[str]]
"""``arenas_fn(video, config) -> [arena names]`` (fast check before tracking)."""


def track_trial(video: Path, config: Config, out: Path, progress=None) -> None:
    """Default trial function: :func:`fishtrack.pipeline.track_to_folder`."""
    from fishtrack.pipeline import track_to_folder

    track_to_folder(video, config, out, progress=progress)


def detect_video_arenas(video: Path, config: Config) -> list[str]:
    """Default arena check: background of sampled frames + arena detection; the arena names."""
    from fishtrack.arenas import detect_arenas
    from fishtrack.io.video import open_video
    from fishtrack.tracking import estimate_background

    with open_video(video, crop=config.video.crop, fps=config.video.fps) as src:
        bg = estimate_background(src, config.tracking)
    return [a.name for a in detect_arenas(bg.image, config.arenas)]


@dataclass
class TrialTask:
    """Everything a worker needs to produce one trial folder (picklable)."""

    name: str
    video: str
    out_root: str
    config: Config
    mode: Literal["track", "reclassify"] = "track"
    trial_fn: TrialFn | None = None


@dataclass
class TrialOutcome:
    """What happened to one trial."""

    trial: str
    video: str
    status: Status
    seconds: float = 0.0
    error: str = ""
    log: str = ""


@dataclass
class TrialFailure:
    """A trial that failed: its folder name, video, the one-line error, and a log file with
    the full traceback when the error was unexpected."""

    trial: str
    video: str
    error: str
    log: str = ""


class _QueueProgress:
    """Per-frame progress of a worker, forwarded through a multiprocessing queue (throttled)."""

    def __init__(self, queue, name: str, interval_s: float = 0.25):
        self.queue, self.name, self.interval_s = queue, name, interval_s
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s or done >= total:
            self._last = now
            with contextlib.suppress(Exception):
                self.queue.put_nowait((self.name, int(done), int(total)))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder to ``final``; an old ``final`` is removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _execute_trial(task: TrialTask, queue=None) -> TrialOutcome:
    """Run one trial into a temporary folder and rename it into place (worker entry point).

    Never raises: a failure becomes a ``failed`` outcome (with a log of the traceback when
    the error is not a :class:`FishtrackError`).
    """
    t0 = time.perf_counter()
    root = Path(task.out_root)
    final = root / "trials" / task.name
    tmp = final.with_name(f".{task.name}.part-{uuid.uuid4().hex[:8]}")
    progress = _QueueProgress(queue, task.name) if queue is not None else None
    try:
        if task.mode == "reclassify":
            from fishtrack.pipeline import classify_folder

            shutil.copytree(final, tmp)
            classify_folder(tmp, task.config)
        elif _is_imported(task.video):  # a `fishtrack import` folder: classified, not tracked
            from fishtrack.importers import classify_imported

            tmp.mkdir(parents=True)
            classify_imported(task.video, task.config, tmp)
        else:
            tmp.mkdir(parents=True)
            fn = task.trial_fn or track_trial
            fn(Path(task.video), task.config, tmp, progress=progress)
        absent = [f for f in TRIAL_FILES if not (tmp / f).exists()]
        if absent:
            raise FishtrackError(f"{task.video}: the trial produced no {', '.join(absent)}")
        _replace_dir(tmp, final)
        status: Status = "reclassified" if task.mode == "reclassify" else "done"
        return TrialOutcome(task.name, task.video, status, time.perf_counter() - t0)
    except FishtrackError as err:
        return TrialOutcome(task.name, task.video, "failed", time.perf_counter() - t0, str(err))
    except BaseException as err:  # noqa: BLE001 - a failing trial must not stop the others
        if isinstance(err, KeyboardInterrupt):
            raise
        log = root / "logs" / f"{task.name}.log"
        with contextlib.suppress(OSError):
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc(), encoding="utf-8")
        msg = f"{task.video}: unexpected {type(err).__name__}: {err} (traceback in {log})"
        return TrialOutcome(task.name, task.video, "failed", time.perf_counter() - t0, msg, str(log))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _check_arenas(video: str, config: Config, arenas_fn: ArenasFn | None) -> tuple[str, list[str] | None, str]:
    """Worker entry point of the arena check: (video, names or None, error)."""
    try:
        if _is_imported(video):  # imported tracks: the arenas they name
            from fishtrack.importers import imported_arenas

            return video, imported_arenas(video), ""
        fn = arenas_fn or detect_video_arenas
        return video, list(fn(Path(video), config)), ""
    except FishtrackError as err:
        return video, None, str(err)
    except Exception as err:  # noqa: BLE001 - reported with the other manifest problems
        return video, None, f"{video}: {type(err).__name__}: {err}"


# ============================================================================================
# execution back-ends: in-process, local processes, dask.distributed


class _Backend:
    """Runs picklable top-level functions: inline, in a spawn process pool or on dask."""

    def __init__(self, workers: int, scheduler: Any, want_progress: bool):
        self.workers = max(1, int(workers))
        self.scheduler = scheduler
        self.want_progress = want_progress
        self.pool = None
        self.client = None
        self.manager = None
        self.queue = None
        self._own_client = False

    def __enter__(self) -> _Backend:
        if self.scheduler is not None:
            self.client, self._own_client = _dask_client(self.scheduler)
        elif self.workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("spawn")
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
            if self.want_progress:
                self.manager = ctx.Manager()
                self.queue = self.manager.Queue()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.manager is not None:
            self.manager.shutdown()
        if self.client is not None and self._own_client:
            self.client.close()

    def map_unordered(
        self, fn: Callable, items: list[tuple], on_tick: Callable[[], None] | None = None
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(*items[index]))`` as calls finish; ``on_tick`` runs between."""
        if not items:
            return
        if self.client is not None:
            from dask.distributed import as_completed

            futures = [self.client.submit(fn, *args, pure=False) for args in items]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    yield i, fut.result()
                except Exception as err:  # noqa: BLE001 - a lost worker is one failed trial
                    yield i, err
        elif self.pool is not None:
            from concurrent.futures import FIRST_COMPLETED, wait

            pending = {self.pool.submit(fn, *args): i for i, args in enumerate(items)}
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                if on_tick is not None:
                    on_tick()
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        yield i, fut.result()
                    except Exception as err:  # noqa: BLE001 - e.g. a worker killed by the OS
                        yield i, err
        else:
            for i, args in enumerate(items):
                try:
                    yield i, fn(*args)
                except Exception as err:  # noqa: BLE001
                    yield i, err


def _dask_client(scheduler: Any) -> tuple[Any, bool]:
    """A dask Client for an address, a Cluster (e.g. dask-jobqueue's SLURMCluster) or a
    Client; ``(client, we_own_it)``."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise FishtrackError(
            "scheduler given but dask.distributed is not installed; pip install 'dask[distributed]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        if isinstance(scheduler, str):
            return Client(scheduler, timeout="20s"), True
        if hasattr(scheduler, "scheduler_address"):
            return Client(scheduler), True
    except (OSError, TimeoutError) as err:
        raise FishtrackError(f"cannot connect to the dask scheduler {scheduler}: {err}") from None
    raise TypeError("scheduler must be an address 'tcp://host:port', a dask Cluster or a Client")


# ============================================================================================
# lock


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold ``OUT/.fishtrack.lock`` while a run uses ``out``.

    Raises
    ------
    OutputError
        Another run (this or another machine) holds the lock. A lock left by a killed run on
        this machine (its process no longer exists) is replaced.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the output folder ({err.strerror})", path=out) from None
    lock = out / LOCK_NAME
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for _attempt in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                other = {}
            if _lock_is_stale(other):
                lock.unlink(missing_ok=True)
                continue
            who = (
                f"pid {other.get('pid', '?')} on {other.get('host', '?')}, started "
                f"{other.get('started_utc', '?')}"
            )
            raise OutputError(
                f"{out}: another fishtrack run is using this output folder ({who}); wait for it "
                f"to finish or, if no run is active, delete {lock}"
            ) from None
        except OSError as err:
            raise OutputError(f"cannot create the lock file ({err.strerror})", path=lock) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:  # pragma: no cover - lost three races in a row
        raise OutputError(f"{out}: could not take the lock {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _lock_is_stale(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return False
    try:
        pid = int(info.get("pid"))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _clean_leftovers(trials_dir: Path) -> None:
    """Remove temporary folders of a killed run; restore a trial caught between renames."""
    if not trials_dir.exists():
        return
    for p in trials_dir.iterdir():
        m = re.match(r"^\.(.+)\.(part|old)-[0-9a-f]{8}$", p.name)
        if not m or not p.is_dir():
            continue
        final = trials_dir / m.group(1)
        if m.group(2) == "old" and not final.exists() and (p / "provenance.json").exists():
            os.rename(p, final)
        else:
            shutil.rmtree(p, ignore_errors=True)


# ============================================================================================
# results


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` / :func:`compute_stats` produced.

    Attributes
    ----------
    out
        The experiment folder.
    per_fish
        One row per fish in the manifest (and tracked): metrics per phase and covariates
        (also ``OUT/per_fish.csv``).
    bins
        Passive fraction per fish per time bin (``OUT/per_fish_bins.csv``).
    group_stats
        Group comparisons (``OUT/group_stats.csv``).
    trials
        One row per trial: ``trial, video, status, seconds, error``.
    failures
        Failed trials; non-empty means the run should end with a non-zero exit code.
    paths
        ``per_fish``, ``bins``, ``group_stats``, ``report``, ``figures``, ``manifest``,
        ``config``.
    warnings
        Things the user should know (unknown wells, missing trials, corrections applied).
    assay
        The assay analyses (:class:`fishtrack.stats.assay.AssayResults`: give-up
        sensitivity, dose–response, time course, onset-locked averages, wide table).
    """

    out: Path
    per_fish: pd.DataFrame
    bins: pd.DataFrame
    group_stats: pd.DataFrame
    trials: pd.DataFrame
    failures: list[TrialFailure] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    assay: Any = None

    @property
    def ok(self) -> bool:
        return not self.failures


# ============================================================================================
# run


def _trial_configs(
    table: pd.DataFrame, root: Path, cfg: Config
) -> tuple[dict[str, Config], list[str]]:
    """Config per video: the manifest's per-video config (else the experiment's), with the
    protocol of the video's stimulus log when the manifest names one."""
    from fishtrack.config import load_config
    from fishtrack.errors import ConfigError

    out: dict[str, Config] = {}
    problems: list[str] = []
    for vid, grp in table.groupby("video", sort=False):
        rows = _rows_text(grp["row"])
        base = cfg
        own = grp["config"].iloc[0] if "config" in grp.columns else ""
        if own:
            try:
                base = load_config(root / own)
            except ConfigError as err:
                problems.append(f"{rows}: {err}")
                continue
        log = grp["protocol"].iloc[0] if "protocol" in grp.columns else ""
        if not log:
            out[vid] = base
            continue
        log_path = root / log
        if not _exists(log_path):
            problems.append(f"{rows}: protocol log '{log}' not found")
            continue
        try:
            phases = _load_protocol(log_path, root / vid)
            out[vid] = base.model_copy(update={"protocol": phases})
        except (ConfigError, FishtrackError) as err:
            problems.append(f"{rows}: {err}")
    return out, problems


def _load_protocol(log: Path, video: Path) -> list:
    from fishtrack.behaviour.protocol import load_protocol_log
    from fishtrack.errors import ConfigError

    try:
        return load_protocol_log(log)
    except ConfigError as err:
        if "no end" not in str(err):
            raise
    if _is_imported(video):  # imported tracks: the duration their provenance records
        from fishtrack.io.provenance import read_provenance

        dur = (read_provenance(video / "provenance.json").get("video") or {}).get("duration_s")
        return load_protocol_log(log, end_s=float(dur) if dur else None)
    from fishtrack.io.video import open_video

    with open_video(video) as src:
        return load_protocol_log(log, end_s=float(src.meta.duration_s))


def _is_imported(video: str | Path) -> bool:
    """A manifest ``video`` that is a trial folder written by ``fishtrack import``."""
    from fishtrack.importers import is_imported_trial

    return is_imported_trial(video)


def run_experiment(
    manifest: str | Path,
    config: Config | str | Path | dict | None = None,
    out: str | Path = "fishtrack_experiment",
    *,
    workers: int = 1,
    scheduler: Any = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    trial_fn: TrialFn | None = None,
    arenas_fn: ArenasFn | None = None,
    report: bool = True,
    sheet: str | None = None,
) -> ExperimentResult:
    """Track every video of a manifest, then compute statistics and the report.

    Parameters
    ----------
    manifest
        Manifest CSV or Excel workbook (see the module docstring).
    config
        Config, YAML path, mapping or ``None`` (defaults).
    out
        Experiment folder: ``trials/<video-stem>/``, ``per_fish.csv``, ``per_fish_bins.csv``,
        ``group_stats.csv``, ``report.html``, ``figures/``, and copies of the manifest and
        config.
    workers
        Local worker processes (1 runs in this process).
    scheduler
        dask.distributed scheduler address (``"tcp://host:8786"``), a dask Cluster (e.g.
        ``dask_jobqueue.SLURMCluster``) or a Client; ``workers`` is then ignored.
    force
        Re-track every trial even when its outputs match the video and config.
    progress
        Called with :class:`ProgressEvent` objects.
    trial_fn, arenas_fn
        Replace the per-trial pipeline (:func:`track_trial`) and the arena check
        (:func:`detect_video_arenas`); top-level (picklable) functions.
    report
        Also write ``report.html`` and ``figures/`` (the CSV tables are always written).
    sheet
        Workbook manifests: the sheet to read (name or 1-based position; default the first).
        The sheet is stored as ``OUT/manifest.csv``.

    Returns
    -------
    ExperimentResult
        ``failures`` lists trials that failed; the others are complete.

    Raises
    ------
    ManifestError
        Every manifest problem at once (before any tracking): table problems, missing
        videos or protocol logs, wells that do not exist in their video.
    OutputError
        The output folder is locked by another run or not writable.
    """
    from fishtrack.pipeline import resolve_config

    cfg = resolve_config(config)
    out = Path(out)
    manifest = Path(manifest)
    with output_lock(out):
        root = None
        state_file = out / STATE_FILE
        if manifest.resolve() == (out / "manifest.csv").resolve() and state_file.exists():
            root = _read_state(out).get("manifest_root")
        man = read_manifest(manifest, root=root, sheet=sheet)
        _check_reference_group(man, cfg)
        videos = man.videos
        names = trial_names(videos)
        problems = []
        for vid, grp in man.table.groupby("video", sort=False):
            if not _exists(man.root / vid):
                where = "" if Path(vid).is_absolute() else f" in {man.root}"
                problems.append(f"{_rows_text(grp['row'])}: video '{vid}' not found{where}")
        present = [v for v in videos if _exists(man.root / v)]
        tconf, pproblems = _trial_configs(
            man.table[man.table["video"].isin(present)], man.root, cfg
        )
        problems += pproblems
        trials_dir = out / "trials"
        _clean_leftovers(trials_dir)
        status: dict[str, str] = {}
        for v in present:
            if v not in tconf:
                continue
            st = trial_status(trials_dir / names[v], man.root / v, tconf[v])
            status[v] = "stale" if force and st != "missing" else st

        with _Backend(workers, scheduler, progress is not None) as backend:
            # arena check (fast) for every video to be tracked; current trials use provenance
            known: dict[str, list[str]] = {}
            to_check = []
            for v in present:
                if v in tconf and status.get(v) in ("current", "reclassify"):
                    known[v] = _arenas_from_provenance(trials_dir / names[v])
                elif v in tconf:
                    to_check.append(v)
            _emit(progress, "check", 0, len(to_check))
            items = [(str(man.root / v), tconf[v], arenas_fn) for v in to_check]
            n_done = 0
            for i, res in backend.map_unordered(_check_arenas, items):
                v = to_check[i]
                if isinstance(res, BaseException):
                    res = (v, None, f"{v}: {type(res).__name__}: {res}")
                _, arena_names, err = res
                n_done += 1
                _emit(progress, "check", n_done, len(to_check), trial=names[v])
                rows = man.table.loc[man.table["video"] == v, "row"]
                if arena_names is None:
                    problems.append(f"{_rows_text(rows)}: cannot check the wells of '{v}': {err}")
                else:
                    known[v] = arena_names
            for v, arena_list in known.items():
                if not arena_list:
                    continue
                have = set(arena_list)
                sub = man.table[(man.table["video"] == v) & ~man.table["arena"].isin(have)]
                for _, r in sub.iterrows():
                    problems.append(
                        f"row {r['row']}: arena '{r['arena']}' does not exist in '{v}' "
                        f"({len(have)} arenas found: {_arena_span(arena_list)})"
                    )
            _raise_problems(man.where, problems)

            # record the experiment before work starts
            _write_inputs(out, man, cfg, names)

            tasks = []
            outcomes: dict[str, TrialOutcome] = {}
            for v in videos:
                name = names[v]
                if status[v] == "current":
                    outcomes[name] = TrialOutcome(name, v, "skipped")
                    continue
                mode = "reclassify" if status[v] == "reclassify" else "track"
                tasks.append(TrialTask(name, str(man.root / v), str(out), tconf[v], mode, trial_fn))
            total = len(videos)
            n_done = 0
            for name in outcomes:
                n_done += 1
                _emit(progress, "trial", 1, 1, trial=name, status="skipped")
                _emit(progress, "overall", n_done, total, trial=name, status="skipped")
            for t in tasks:
                _emit(progress, "trial", 0, 0, trial=t.name, status="queued")

            def drain() -> None:
                q = backend.queue
                while q is not None:
                    try:
                        tname, d, tot = q.get_nowait()
                    except Exception:  # noqa: BLE001 - queue.Empty from a manager proxy
                        return
                    _emit(progress, "trial", d, tot, trial=tname, status="running")

            items = [(t, backend.queue) for t in tasks]
            if backend.pool is None and backend.client is None and progress is not None:
                items = [(t, _InlineQueue(progress)) for t in tasks]
            rel = {names[v]: v for v in videos}
            for i, oc in backend.map_unordered(_execute_trial, items, on_tick=drain):
                t = tasks[i]
                if isinstance(oc, BaseException):  # e.g. a worker killed by the OS or the cluster
                    why = f"{t.video}: worker lost ({type(oc).__name__}: {oc})"
                    oc = TrialOutcome(t.name, t.video, "failed", 0.0, why)
                oc.video = rel[t.name]
                drain()
                outcomes[t.name] = oc
                n_done += 1
                _emit(progress, "trial", 1, 1, trial=t.name, status=oc.status, message=oc.error)
                _emit(progress, "overall", n_done, total, trial=t.name, status=oc.status)

        trials = pd.DataFrame(
            [
                {"trial": names[v], "video": v, "status": outcomes[names[v]].status,
                 "seconds": round(outcomes[names[v]].seconds, 2), "error": outcomes[names[v]].error}
                for v in videos
            ]
        )
        failures = [
            TrialFailure(o.trial, o.video, o.error, o.log) for o in outcomes.values() if o.status == "failed"
        ]
        _update_state(out, trials)
        res = _compute_stats(out, man, cfg, names, progress=progress, report=report)
    res.trials = trials
    res.failures = failures
    return res


def _check_reference_group(man: Manifest, cfg: Config) -> None:
    from fishtrack.errors import ConfigError
    from fishtrack.stats import METRICS

    groups = sorted(set(man.table["group"]))
    if cfg.stats.reference_group not in groups:
        raise ConfigError(
            f"stats.reference_group: {_cell(cfg.stats.reference_group)} is not a group in "
            f"{man.path} (groups: {', '.join(_cell(g) for g in groups[:20])}); set "
            "stats.reference_group in the config"
        )
    if "condition" in man.table.columns:
        conds = [c for c in dict.fromkeys(man.table["condition"].astype(str).str.strip()) if c]
        ref = cfg.stats.reference_condition
        if len(conds) > 1 and ref not in conds:
            what = "is not set" if ref is None else f"{_cell(ref)} is not a condition"
            raise ConfigError(
                f"stats.reference_condition: {what}; {man.path} has conditions "
                f"{', '.join(_cell(c) for c in conds[:20])} (a within-fish design); set "
                "stats.reference_condition in the config"
            )
    if cfg.stats.primary.metric not in METRICS:
        raise ConfigError(
            f"stats.primary.metric: {_cell(cfg.stats.primary.metric)} is not a compared metric "
            f"(allowed: {', '.join(METRICS)})"
        )


class _InlineQueue:
    """Queue stand-in for in-process runs: forwards per-frame progress directly."""

    def __init__(self, progress: ProgressCallback):
        self.progress = progress

    def put_nowait(self, item: tuple[str, int, int]) -> None:
        name, done, total = item
        self.progress(ProgressEvent("trial", done, total, trial=name, status="running"))


def _arena_span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 6 else f"{names[0]}-{names[-1]}"


def _arenas_from_provenance(folder: Path) -> list[str]:
    from fishtrack.io.provenance import read_provenance

    try:
        prov = read_provenance(folder / "provenance.json")
    except FishtrackError:
        return []
    return [a.get("name") for a in prov.get("arenas", []) if isinstance(a, dict) and a.get("name")]


def _write_inputs(out: Path, man: Manifest, cfg: Config, names: dict[str, str]) -> None:
    from fishtrack.io.tables import write_bytes, write_text

    write_bytes(out / "manifest.csv", man.csv_bytes())
    write_text(out / "config.yaml", dump_config(cfg))
    state = _read_state(out)
    state.update(
        {
            "manifest": str(man.path.resolve()),
            "manifest_root": str(Path(os.path.abspath(man.root))),
            "manifest_sheet": man.sheet,
            "trials": {names[v]: v for v in man.videos},
            "updated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    write_text(out / STATE_FILE, json.dumps(state, indent=2) + "\n")


def _update_state(out: Path, trials: pd.DataFrame) -> None:
    from fishtrack.io.tables import write_text

    state = _read_state(out)
    state["last_run"] = trials.to_dict(orient="records")
    write_text(out / STATE_FILE, json.dumps(state, indent=2, default=str) + "\n")


def _read_state(out: Path) -> dict:
    p = out / STATE_FILE
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ============================================================================================
# statistics


def compute_stats(
    out_dir: str | Path,
    config: Config | str | Path | dict | None = None,
    *,
    progress: ProgressCallback | None = None,
    report: bool = True,
) -> ExperimentResult:
    """Re-compute per-fish metrics, group statistics and the report from existing trials.

    Reads ``OUT/manifest.csv`` (edit it, e.g. its ``exclude`` column, then call this) and
    ``OUT/config.yaml`` unless ``config`` is given (its ``stats`` section and ``px_per_mm``
    matter here; tracking is not redone).

    Raises
    ------
    FishtrackError
        ``out_dir`` is not an experiment folder.
    ManifestError
        The stored manifest has problems.
    """
    from fishtrack.config import load_config
    from fishtrack.pipeline import resolve_config

    out = Path(out_dir)
    if not (out / "manifest.csv").exists():
        raise FishtrackError(
            f"{out}: not an experiment folder (no manifest.csv); run `fishtrack run` first"
        )
    state = _read_state(out)
    cfg = resolve_config(config) if config is not None else load_config(
        out / "config.yaml" if (out / "config.yaml").exists() else None
    )
    with output_lock(out):
        man = read_manifest(out / "manifest.csv", root=state.get("manifest_root"))
        stored = {v: k for k, v in (state.get("trials") or {}).items()}
        names = trial_names(man.videos)
        names = {v: stored.get(v, names[v]) for v in man.videos}
        res = _compute_stats(out, man, cfg, names, progress=progress, report=report)
    last = pd.DataFrame(state.get("last_run") or [], columns=["trial", "video", "status", "seconds", "error"])
    res.trials = last
    return res


_TRACK_COLUMNS = ("frame", "time_s", "arena", "fish", "detected", "state", "in_bout", "x", "y",
                  "heading", "tail_angle", "area_px", "id_uncertain")


def _read_tracks(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(path).schema_arrow.names
        cols = [c for c in _TRACK_COLUMNS if c in names]
        return pd.read_parquet(path, columns=cols, engine="pyarrow")
    except Exception as err:  # noqa: BLE001 - unreadable file: one clear line
        raise FishtrackError(f"{path}: cannot read tracks ({type(err).__name__}: {err})") from None


@dataclass
class _TrialData:
    name: str
    video: str
    tracks: pd.DataFrame
    bouts: pd.DataFrame
    epochs: pd.DataFrame
    protocol: list
    prov: dict
    fish_rows: pd.DataFrame
    corrections: int = 0
    px_per_mm: float | None = None


def _fish_rows(man_rows: pd.DataFrame, trial: str) -> pd.DataFrame:
    """Manifest rows of one video as the stats stage's fish table (matched on ``arena``)."""
    rows = man_rows.rename(columns={"row": "manifest_row"}).copy()
    rows.insert(rows.columns.get_loc("fish_id") + 1, "trial_dir", trial)
    return rows.reset_index(drop=True)


def _load_trial(out: Path, name: str, video: str, man_rows: pd.DataFrame,
                cfg: Config) -> tuple[_TrialData | None, list[str]]:
    from fishtrack.io.provenance import read_provenance
    from fishtrack.io.tables import read_table

    folder = out / "trials" / name
    notes: list[str] = []
    if not (folder / "provenance.json").exists() or not (folder / "tracks.parquet").exists():
        return None, [f"trial '{name}' ({video}) has no complete outputs; its fish are not analysed"]
    prov = read_provenance(folder / "provenance.json")
    tracks = _read_tracks(folder / "tracks.parquet")
    bouts = read_table(folder / "bouts.csv") if (folder / "bouts.csv").exists() else pd.DataFrame()
    epochs = read_table(folder / "epochs.csv") if (folder / "epochs.csv").exists() else pd.DataFrame()
    try:
        protocol = parse_config(prov.get("config") or {}, str(folder / "provenance.json")).protocol
        if "protocol" in prov:  # re-scored by classify_folder with another protocol
            from fishtrack.config import Phase

            protocol = [Phase(**p) for p in prov["protocol"]]
    except (FishtrackError, TypeError, ValueError):
        protocol = cfg.protocol
    for df in (tracks, bouts, epochs):
        for col in ("arena", "fish"):
            if col in df.columns:
                df[col] = df[col].astype(str)
    tracked = set(tracks["arena"].unique()) if "arena" in tracks.columns else set()
    extra = sorted(tracked - set(man_rows["arena"]))
    if extra:
        notes.append(
            f"trial '{name}': {len(extra)} tracked well(s) not in the manifest (not analysed): "
            f"{_arena_span(extra)}"
        )
    missing = sorted(set(man_rows["arena"]) - tracked)
    if missing:
        notes.append(f"trial '{name}': no fish tracked in manifest well(s) {', '.join(missing)}")
    if "arena" in tracks.columns:  # wells not in the manifest are tracked but not analysed
        tracks = tracks[tracks["arena"].isin(set(man_rows["arena"]))].reset_index(drop=True)
    n_corr = 0
    corr_path = folder / "corrections.csv"
    if corr_path.exists() and "state" in tracks.columns:
        from fishtrack.corrections import (
            apply_corrections,
            apply_corrections_to_epochs,
            load_corrections,
        )

        corr = load_corrections(corr_path)
        tracks = apply_corrections(tracks, corr)
        n_corr = int(tracks["corrected"].sum())
        if not epochs.empty:
            epochs = apply_corrections_to_epochs(epochs, corr)
        notes.append(
            f"trial '{name}': manual corrections applied from {corr_path.name} "
            f"({len(corr)} interval(s), {n_corr} frame(s) relabelled)"
        )
    px_per_mm = cfg.px_per_mm
    if "config" in man_rows.columns and man_rows["config"].iloc[0]:  # the video's own config
        px_per_mm = (prov.get("config") or {}).get("px_per_mm", px_per_mm)
    td = _TrialData(name, video, tracks, bouts, epochs, protocol, prov,
                    _fish_rows(man_rows, name), n_corr, px_per_mm)
    return td, notes


def _qc_table(td: _TrialData, ids: pd.DataFrame) -> pd.DataFrame:
    """Detection rate over the whole record per analysed fish."""
    tr = td.tracks
    det = tr["detected"].astype(bool) if "detected" in tr.columns else pd.Series(True, index=tr.index)
    rate = det.groupby([tr["arena"], tr["fish"]]).mean().rename("detection_rate").reset_index()
    out = ids.merge(rate, on=["arena", "fish"], how="left")
    out["trial_dir"] = td.name
    return out


def _ethogram(td: _TrialData, ids: pd.DataFrame, width_s: float) -> pd.DataFrame:
    """Majority state per fish per time bin, long format: ``fish_id, bin_start_s, state``."""
    tr = td.tracks
    if "state" not in tr.columns or tr.empty or ids.empty:
        return pd.DataFrame(columns=["fish_id", "bin_start_s", "state", "trial_dir"])
    key = pd.MultiIndex.from_frame(tr[["arena", "fish"]])
    fid = pd.Series(ids["fish_id"].to_numpy(), index=pd.MultiIndex.from_frame(ids[["arena", "fish"]]))
    fish_id = fid.reindex(key).to_numpy()
    ok = pd.notna(fish_id)
    b = np.floor(tr["time_s"].to_numpy(float)[ok] / width_s + 1e-6).astype(np.int64)
    counts = (
        pd.DataFrame({"fish_id": fish_id[ok], "bin": b, "state": tr["state"].astype(str).to_numpy()[ok]})
        .value_counts()
        .reset_index(name="n")
        .sort_values(["fish_id", "bin", "n"], ascending=[True, True, False], kind="stable")
        .drop_duplicates(["fish_id", "bin"])
    )
    counts["bin_start_s"] = counts["bin"] * width_s
    counts["trial_dir"] = td.name
    return counts[["fish_id", "bin_start_s", "state", "trial_dir"]].reset_index(drop=True)


def _per_trial_stats(td: _TrialData, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    from fishtrack.stats import binned_passive_fraction, per_fish_metrics

    if td.tracks.empty or "state" not in td.tracks.columns:
        return pd.DataFrame(), pd.DataFrame()
    pf = per_fish_metrics(
        td.tracks, td.bouts, td.epochs, td.protocol, td.fish_rows, px_per_mm=td.px_per_mm,
        struggle_window_s=cfg.stats.struggle_window_s,
    )
    bins = binned_passive_fraction(td.tracks, td.protocol, cfg.stats.bin_s, td.fish_rows)
    return pf, bins


def _compute_stats(
    out: Path, man: Manifest, cfg: Config, names: dict[str, str], *,
    progress: ProgressCallback | None = None, report: bool = True,
) -> ExperimentResult:
    from fishtrack.io.tables import write_table
    from fishtrack.stats import RESULT_COLUMNS, compare_groups

    notes: list[str] = []
    videos = man.videos
    n_steps = len(videos) + 3
    per_fish_parts, bin_parts, qc_parts, etho_parts = [], [], [], []
    assay_parts: dict[str, list] = {}
    trial_info: list[dict] = []
    protocols: dict[str, list] = {}
    protocol_ref = list(cfg.protocol)
    width = _ethogram_bin_s(out, [names[v] for v in videos])
    for k, v in enumerate(videos):
        name = names[v]
        _emit(progress, "stats", k, n_steps, message=f"reading {name}")
        rows = man.table[man.table["video"] == v]
        td, tn = _load_trial(out, name, v, rows, cfg)
        notes += tn
        if td is None:
            trial_info.append({"trial": name, "video": v, "complete": False})
            continue
        if td.protocol and not protocol_ref:
            protocol_ref = list(td.protocol)
        protocols[v] = list(td.protocol or [])
        pf, bins = _per_trial_stats(td, cfg)
        _assay_trial(assay_parts, td, cfg, out / "trials" / name)
        per_fish_parts.append(pf)
        bin_parts.append(bins)
        ids = (pf[["arena", "fish", "fish_id"]].drop_duplicates().astype(str)
               if not pf.empty else pd.DataFrame(columns=["arena", "fish", "fish_id"]))
        qc_parts.append(_qc_table(td, ids))
        if report:
            etho_parts.append(_ethogram(td, ids, width))
        trial_info.append(
            {
                "trial": name,
                "video": v,
                "complete": True,
                "n_frames": int(td.prov.get("frames_read", 0)),
                "damaged_frames": len(td.prov.get("damaged_frames") or []),
                "n_wells_tracked": len(td.prov.get("arenas") or []),
                "n_fish_analysed": len(ids),
                "corrections": td.corrections,
            }
        )
    per_fish = _concat(per_fish_parts)
    bins = _concat(bin_parts)
    qc = _concat(qc_parts)
    _emit(progress, "stats", len(videos), n_steps, message="comparing groups")
    group_stats = pd.DataFrame(columns=list(RESULT_COLUMNS))
    if not per_fish.empty:
        from fishtrack.errors import ConfigError

        try:  # excluded fish and fish without a group are left out by compare_groups
            group_stats = compare_groups(per_fish, cfg.stats)
        except ConfigError as err:  # e.g. every fish of the reference group excluded
            notes.append(f"no group comparison: {err}")
    design_notes = _design_notes(per_fish, protocols)
    from fishtrack.stats.assay import analyse, write_tables

    assay = analyse(per_fish, assay_parts, cfg, group_stats)
    write_table(per_fish, out / "per_fish.csv")
    write_table(bins, out / "per_fish_bins.csv")
    write_table(group_stats, out / "group_stats.csv")
    paths = {
        "per_fish": out / "per_fish.csv",
        "bins": out / "per_fish_bins.csv",
        "group_stats": out / "group_stats.csv",
        "manifest": out / "manifest.csv",
        "config": out / "config.yaml",
    }
    paths |= write_tables(out, assay)
    if report:
        from fishtrack.report import write_report

        _emit(progress, "stats", len(videos) + 1, n_steps, message="writing the report")
        paths |= write_report(
            out,
            per_fish=per_fish,
            bins=bins,
            group_stats=group_stats,
            ethogram=_concat(etho_parts),
            ethogram_bin_s=width,
            qc=qc,
            trials=pd.DataFrame(trial_info),
            manifest=man.table,
            config=cfg,
            protocol=protocol_ref,
            notes=notes,
            design_notes=design_notes,
            assay=assay,
        )
    _emit(progress, "stats", n_steps, n_steps, message="done")
    return ExperimentResult(
        out=out,
        per_fish=per_fish,
        bins=bins,
        group_stats=group_stats,
        trials=pd.DataFrame(),
        paths=paths,
        warnings=notes + design_notes,
        assay=assay,
    )


def _assay_trial(parts: dict[str, list], td: _TrialData, cfg: Config, folder: Path) -> None:
    """Per-trial inputs of the assay analyses (:func:`fishtrack.stats.assay.trial_parts`),
    with the signals aligned to the trial by ``fishtrack align``."""
    from fishtrack.align import read_aligned_signals
    from fishtrack.stats.assay import trial_parts

    if td.tracks.empty or "state" not in td.tracks.columns:
        return
    got = trial_parts(td.tracks, td.bouts, td.epochs, td.protocol, td.fish_rows, cfg,
                      px_per_mm=td.px_per_mm, signals=read_aligned_signals(folder))
    for key, df in got.items():
        parts.setdefault(key, []).append(df)


def _design_notes(per_fish: pd.DataFrame, protocols: dict[str, list]) -> list[str]:
    """Confounds of the analysed fish (:func:`fishtrack.stats.design.design_warnings`)."""
    from fishtrack.stats.design import design_warnings
    from fishtrack.stats.survival import _excluded

    need = {"video", "arena", "group", "fish_id"}
    if per_fish.empty or not need <= set(per_fish.columns):
        return []
    fish = per_fish[~_excluded(per_fish) & per_fish["group"].notna().to_numpy()]
    fish = fish[["video", "arena", "group"]].drop_duplicates()
    return design_warnings(fish, protocols)


def _ethogram_bin_s(out: Path, trials: list[str], n_columns: int = 600) -> float:
    """Ethogram bin width: the longest trial (from provenance) in about ``n_columns`` bins,
    never shorter than the longest frame interval."""
    longest, frame_s = 0.0, 0.0
    for name in trials:
        p = out / "trials" / name / "provenance.json"
        with contextlib.suppress(OSError, ValueError, TypeError, ZeroDivisionError):
            video = json.loads(p.read_text(encoding="utf-8")).get("video") or {}
            longest = max(longest, float(video.get("duration_s") or 0.0))
            frame_s = max(frame_s, 1.0 / float(video.get("fps") or np.inf))
    if longest <= 0:
        return 0.1
    if frame_s <= 0:
        return longest / n_columns
    return float(np.ceil(longest / n_columns / frame_s - 1e-9) * frame_s)  # whole frames


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if p is not None and not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
