"""Manifests: A *manifest* is a table a lab technician fills in a spreadsheet, one row per fish (well): a
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
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fishtrack.errors import ManifestError
from fishtrack.io.workbook import is_workbook, read_sheet

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

_FALSE_WORDS = {"", "0", "no", "n", "false", "f", "keep", "include", "included"}
_TRUE_WORDS = {"1", "yes", "y", "true", "t", "x", "exclude", "excluded"}
_ARENA_RE = re.compile(r"^([A-Z]{1,2})0*(\d{1,3})$")


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
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def quote_cell(value: str, limit: int = 60) -> str:
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
        return None, f"{quote_cell(value)} contains control characters (tab, line break, NUL...)"
    v = value.strip()
    unc = v.startswith("\\\\")
    v = v.replace("\\", "/")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", v):
        return None, (f"{quote_cell(value)} is a URL; give a file path (absolute, or relative to the "
                      "manifest's folder)")
    if os.name != "nt":
        if re.match(r"^[a-zA-Z]:(/|$)", v):
            return None, (
                f"{quote_cell(value)} is a Windows path (drive {v[0].upper()}:); give the path "
                "under which this computer sees the file (e.g. /mnt/..., /Volumes/...)"
            )
        if unc:
            return None, (
                f"{quote_cell(value)} is a Windows network path; give the path under which this "
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


def path_exists(path: Path) -> bool:
    """``path.exists()``, False also for names the OS refuses (too long, NUL)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _norm_arena(value: str) -> str | None:
    m = _ARENA_RE.match(value.strip().upper())
    return f"{m.group(1)}{int(m.group(2))}" if m and int(m.group(2)) > 0 else None


def rows_text(rows: Iterable[int]) -> str:
    rows = sorted(set(int(r) for r in rows))
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(map(str, rows))


def raise_problems(path: str | Path, problems: list[str]) -> None:
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
            desc = ", ".join(f"{k} {quote_cell(str(v))}" for k, v in zip(key, vals, strict=True))
            hint = ("" if repeated_ok or key != ["fish_id"] else
                    "; a fish measured in several videos needs a 'condition' (within-fish "
                    "treatment) or 'trial' column")
            problems.append(f"{rows_text(grp['row'])} {what} ({desc}){hint}")
    groups = table.groupby("fish_id", sort=False)["group"].nunique()
    for fish in groups.index[groups > 1]:
        grp = table[table["fish_id"] == fish]
        names = ", ".join(quote_cell(g) for g in dict.fromkeys(grp["group"]))
        problems.append(
            f"{rows_text(grp['row'])}: fish {quote_cell(fish)} is in groups {names}; a fish belongs "
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
    body = records[header_i + 1:]
    names, keep, seen = _read_header(records[header_i], body, where)
    rows, problems = _body_rows(body, header_i + 2, names, keep)
    if not rows:
        raise_problems(where, ["the manifest has a header but no rows"])
    for r in rows:
        problems += _normalise_row(r, root)
    raise_problems(where, problems)
    _default_fish_ids(rows)
    table = pd.DataFrame(rows)
    raise_problems(where, _table_problems(table, seen))
    cov = [names[j] for j in keep if names[j] not in KNOWN_COLUMNS]
    return Manifest(path=path, root=root, table=_tidy_table(table, seen), covariates=cov,
                    encoding=encoding, sheet=sheet_name, csv_text=csv_text)


def _read_header(header: list[str], body: list[list[str]], where: str | Path
                 ) -> tuple[list[str], list[int], dict[str, int]]:
    """Column names (normalised), the columns kept (named ones), and the first column of each
    name; raises every header problem at once."""
    problems: list[str] = []
    names = [_norm_header(h) for h in header]
    names = ["fish_id" if n in ("fishid", "fish") else n for n in names]
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
            problems.append(f"column {quote_cell(names[j])} appears twice (columns {seen[names[j]] + 1} and {j + 1})")
        seen.setdefault(names[j], j)
    for name in sorted(set(seen) & set(_RESERVED)):
        problems.append(f"column '{name}' is a name fishtrack adds to the outputs; rename it")
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        found = ", ".join(quote_cell(names[j], 30).strip("'") for j in keep[:12]) or "none"
        if len(keep) > 12:
            found += f", ... ({len(keep)} columns)"
        problems.append(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {found}); the header row needs video, arena, group"
        )
    raise_problems(where, problems)
    return names, keep, seen


def _body_rows(body: list[list[str]], first_row: int, names: list[str], keep: list[int]
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """One mapping per non-empty row (``row``: its spreadsheet row number), and the rows with
    more cells than the header."""
    width = len(names)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for k, rec in enumerate(body):
        rownum = first_row + k
        if not any(rec):
            continue
        if len(rec) > width and any(rec[width:]):
            problems.append(f"row {rownum}: {len(rec)} cells but the header has {width} columns")
        rec = rec + [""] * (width - len(rec))
        rows.append({"row": rownum, **{names[j]: rec[j] for j in keep}})
    return rows, problems


def _normalise_row(r: dict[str, Any], root: Path) -> list[str]:
    """Normalise one row in place (paths, well name, exclude flag); its problems."""
    problems: list[str] = []
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
            problems.append(f"row {n}: arena {quote_cell(r['arena'])} is not a well name like A1 or H12")
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
    return problems


def _default_fish_ids(rows: list[dict[str, Any]]) -> None:
    """Default fish id: the video's trial name (its stem, made unique when two videos share
    one, e.g. rig1/plate.avi and rig2/plate.avi) and the well."""
    stems = trial_names(list(dict.fromkeys(r["video"] for r in rows)))
    for r in rows:
        if not r.get("fish_id"):
            r["fish_id"] = f"{stems[r['video']]}:{r['arena']}"


def _table_problems(table: pd.DataFrame, seen: dict[str, int]) -> list[str]:
    """Duplicate wells, duplicate fish ids, one video with two protocol logs or configs."""
    problems = _fish_problems(table, repeated_ok=any(
        c in seen for c in ("condition", "trial", "session", "time_since_treatment_h")))
    for col, what in (("protocol", "protocol logs"), ("config", "configs")):
        for vid, grp in table.groupby("video", sort=False):
            files = set(grp[col])
            if len(files) > 1:
                problems.append(
                    f"{rows_text(grp['row'])}: video '{vid}' has different {what} "
                    f"({', '.join(sorted(f or '(none)' for f in files))}); give one per video"
                )
    return problems


def _tidy_table(table: pd.DataFrame, seen: dict[str, int]) -> pd.DataFrame:
    """Numeric doses when every dose is a number; columns in the documented order (per-video
    file columns only when the manifest has them)."""
    if "dose" in table.columns:
        num = pd.to_numeric(table["dose"].replace("", np.nan), errors="coerce")
        if not (num.isna() & (table["dose"] != "")).any():
            table["dose"] = num
    order = ["row", "video", "arena", "group", "fish_id", "exclude", "exclude_reason"]
    rest = [c for c in table.columns if c not in order and c not in _PER_VIDEO]
    used = [c for c in _PER_VIDEO if c in seen]
    return table[order + rest + used].reset_index(drop=True)



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



def arena_span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 6 else f"{names[0]}-{names[-1]}"
