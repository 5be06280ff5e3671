"""The trial folder: the contract between tracking and every later stage.

A trial folder (``fishtrack track --out DIR``, ``OUT/trials/<name>/`` of ``fishtrack run``, or
the ``--out`` of ``fishtrack import``) holds

=================== =========================================================================
``tracks.parquet``  one row per frame per fish (docs/data_model.md)
``bouts.csv``       one row per swim bout
``epochs.csv``      one row per state epoch
``provenance.json`` what produced the folder (:class:`Provenance`); written last, so its
                    presence marks a complete folder
``corrections.csv`` optional: a human's corrections of epochs (:mod:`fishtrack.corrections`)
=================== =========================================================================

:class:`TrialFolder` is the one reader and writer of these files: the pipeline writes through
it, and the experiment runner, ``fishtrack verify``, the exporters, the importers and the
napari plugin read through it, so no other module names a trial file. A folder written by
``fishtrack import`` holds only ``tracks.parquet`` and ``provenance.json`` (``source:
"import"``) until it is classified.

This module sits between ``io``/``config`` and the pipeline: it imports neither the stages
nor the shells on top of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from fishtrack.config import Config, Phase, config_hash, parse_config
from fishtrack.corrections import FILENAME as CORRECTIONS
from fishtrack.corrections import load_corrections
from fishtrack.errors import FishtrackError, OutputError
from fishtrack.io.provenance import file_identity, read_provenance, write_provenance
from fishtrack.io.tables import (
    read_table,
    require_columns,
    write_bytes,
    write_table,
    write_table_parts,
)

__all__ = [
    "TRACKS",
    "BOUTS",
    "EPOCHS",
    "PROVENANCE",
    "CORRECTIONS",
    "TABLES",
    "FILES",
    "IMPORTED_FILES",
    "IDENTITY_KEYS",
    "TRACKING_SECTIONS",
    "BEHAVIOUR_SECTIONS",
    "FolderStatus",
    "Provenance",
    "TrialResult",
    "TrialFolder",
    "input_identity",
    "settings_hash",
]

TRACKS = "tracks.parquet"
BOUTS = "bouts.csv"
EPOCHS = "epochs.csv"
PROVENANCE = "provenance.json"
TABLES = (TRACKS, BOUTS, EPOCHS)
"""The tables whose size and SHA-256 ``provenance.json`` records (``outputs``)."""
FILES = (*TABLES, PROVENANCE)
"""Files a complete trial folder holds (``provenance.json`` is written last)."""
IMPORTED_FILES = (TRACKS, PROVENANCE)
"""Files of a folder written by ``fishtrack import`` (before it is classified)."""
IDENTITY_KEYS = ("size_bytes", "sha256_first_mib", "sha256_listing", "sha256_content")
"""Keys of an input identity that must match for a trial to be current."""

TRACKING_SECTIONS = ("video", "arenas", "tracking")
"""Config sections whose change means the video must be tracked again."""
BEHAVIOUR_SECTIONS = ("behaviour", "protocol")
"""Config sections whose change means the tracks must be scored again (not re-tracked)."""
_SPEED_ONLY = {"video": ("chunk_size",)}
"""Settings that change speed or memory but not results: ignored when deciding to redo."""
_KEY_COLUMNS = ("arena", "fish")
"""Identifier columns, always read as text."""

FolderStatus = Literal["current", "reclassify", "stale", "missing"]


def settings_hash(config: Mapping[str, Any], sections: Iterable[str]) -> str:
    """SHA-256 of the given sections of a config mapping (``Config.model_dump(mode="json")``),
    without the speed-only ``video.chunk_size``."""
    part = {k: config.get(k) for k in sections}
    for sec, fields in _SPEED_ONLY.items():
        if isinstance(part.get(sec), dict):
            part[sec] = {k: v for k, v in part[sec].items() if k not in fields}
    blob = json.dumps(part, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# provenance.json


class Provenance(Mapping[str, Any]):
    """``provenance.json``, typed: what produced a trial folder.

    The keys fishtrack writes (docs/data_model.md) are read through the properties below;
    the mapping itself (:attr:`data`) is kept as read, so unknown keys and the key order
    survive a rewrite. A key this class has no property for (one a newer stage writes) is
    read as from a mapping (``prov.get("key")``; read-only).
    """

    def __init__(self, data: Mapping[str, Any] | None = None, *, path: Path | None = None):
        self.data: dict[str, Any] = dict(data or {})
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Provenance({self.path or 'not written'}, {len(self.data)} keys)"

    @classmethod
    def read(cls, path: str | Path) -> Provenance:
        """Read ``path``; :class:`FishtrackError` when it is missing, unreadable, not JSON or
        not a JSON object."""
        path = Path(path)
        data = read_provenance(path)
        if not isinstance(data, dict):
            raise FishtrackError(f"{path}: provenance.json does not hold a JSON object")
        return cls(data, path=path)

    def write(self, path: str | Path | None = None) -> Path:
        """Write atomically to ``path`` (default: where it was read from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to write provenance.json to")
        return write_provenance(target, self.data)

    # what produced the folder ---------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The effective config as recorded (``Config.model_dump(mode="json")``)."""
        return _mapping(self.data.get("config"))

    @property
    def config_hash(self) -> str | None:
        return self.data.get("config_hash")

    @property
    def input(self) -> dict[str, Any]:
        """The input's identity: ``name``, ``path``, ``abs_path``, ``size_bytes`` and a hash
        (:func:`input_identity`)."""
        return _mapping(self.data.get("input"))

    @property
    def frames_read(self) -> int:
        return int(self.data.get("frames_read") or 0)

    @property
    def damaged_frames(self) -> list:
        rec = self.data.get("damaged_frames")
        return list(rec) if isinstance(rec, list) else []

    @property
    def video(self) -> dict[str, Any]:
        """``n_frames, fps, width, height, codec, duration_s, frame_count_method``."""
        return _mapping(self.data.get("video"))

    @property
    def fps(self) -> float | None:
        return self.video.get("fps")

    @property
    def duration_s(self) -> float | None:
        return self.video.get("duration_s")

    @property
    def arenas(self) -> list[dict[str, Any]]:
        """One record per arena (``name, row, col, shape, cx, cy, radius, bbox, ...``)."""
        rec = self.data.get("arenas")
        return [a for a in rec if isinstance(a, dict)] if isinstance(rec, list) else []

    @property
    def arena_names(self) -> list[str]:
        return [str(a["name"]) for a in self.arenas if a.get("name")]

    @property
    def summary(self) -> dict[str, Any]:
        return _mapping(self.data.get("summary"))

    @property
    def created_utc(self) -> str | None:
        return self.data.get("created_utc")

    @property
    def outputs(self) -> dict[str, Any] | None:
        """``{table: {size_bytes, sha256}}`` when recorded."""
        rec = self.data.get("outputs")
        return rec if isinstance(rec, dict) else None

    @property
    def is_imported(self) -> bool:
        """Written by ``fishtrack import`` (``source: "import"``)."""
        return self.data.get("source") == "import"

    @property
    def import_info(self) -> dict[str, Any]:
        """What ``fishtrack import`` read (tool, keypoint mapping, thresholds, notes)."""
        return _mapping(self.data.get("import"))

    # settings the folder was scored with ---------------------------------------------------

    def recorded_config(self) -> Config:
        """The recorded config, validated (defaults of fields added since filled in)."""
        where = str(self.path) if self.path is not None else "provenance"
        return parse_config(self.config, where)

    def scoring(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``(behaviour, protocol)`` the tables were scored with: a re-scoring's settings,
        else the recorded config's (as recorded)."""
        cfg = self.config
        behaviour = self.data.get("behaviour_config", cfg.get("behaviour"))
        protocol = self.data.get("protocol", cfg.get("protocol"))
        return behaviour or {}, list(protocol or [])

    def phases(self) -> list[Phase]:
        """The protocol the tables were scored with. Raises :class:`FishtrackError`,
        ``TypeError`` or ``ValueError`` when the recorded config or protocol is not valid."""
        protocol = self.recorded_config().protocol
        if "protocol" in self.data:  # re-scored with another protocol
            protocol = [Phase(**p) for p in self.data["protocol"]]
        return protocol

    def same_tracking(self, config: Config) -> bool:
        """The video, arenas and tracking settings equal ``config``'s (False when the recorded
        config is not valid)."""
        try:
            old = self.recorded_config().model_dump(mode="json")
        except FishtrackError:
            return False
        new = config.model_dump(mode="json")
        return settings_hash(old, TRACKING_SECTIONS) == settings_hash(new, TRACKING_SECTIONS)

    def same_scoring(self, config: Config, *, protocol: bool = True) -> bool:
        """The behaviour settings (and, with ``protocol``, the protocol) the tables were scored
        with equal ``config``'s (defaults of fields added since filled in)."""
        try:
            old = self.recorded_config().model_dump(mode="json")
            behaviour = self.data.get("behaviour_config", old.get("behaviour"))
            scored = {
                "behaviour": parse_config({"behaviour": behaviour}).behaviour.model_dump(mode="json"),
                "protocol": self.data.get("protocol", old.get("protocol")),
            }
        except FishtrackError:
            return False
        sections = BEHAVIOUR_SECTIONS if protocol else ("behaviour",)
        new = config.model_dump(mode="json")
        return settings_hash(scored, sections) == settings_hash(new, sections)

    def record_scoring(self, config: Config, seconds: float, noise: dict | None = None) -> None:
        """Record a re-scoring with ``config``'s behaviour settings and protocol, and the
        measurement noise the behaviour stage found (``behaviour_noise``)."""
        self.data["behaviour_config"] = config.behaviour.model_dump(mode="json")
        self.data["behaviour_noise"] = noise
        self.data["protocol"] = [p.model_dump(mode="json") for p in config.protocol]
        self.data.setdefault("timings_s", {})["classify"] = round(seconds, 3)

    def for_run(self, folder: TrialFolder, config: Config) -> Provenance:
        """An imported ``folder``'s provenance as a run's trial records it: the run's config,
        the folder's content identity as the input (the import's own input is kept in
        ``import.source_input``) and no re-scoring yet."""
        data = dict(self.data)
        info = dict(data.get("import") or {})
        info["trial_folder"] = str(folder.path)
        info["source_input"] = data.get("input")
        data["import"] = info
        data["input"] = folder.content_identity()
        data["config"] = config.model_dump(mode="json")
        data["config_hash"] = config_hash(config)
        data.pop("behaviour_config", None)
        data.pop("protocol", None)
        return Provenance(data)


# --------------------------------------------------------------------------------------------
# what a tracked video produced


@dataclass
class TrialResult:
    """Everything one tracked video produced (what :meth:`TrialFolder.write` writes)."""

    tracks: pd.DataFrame
    bouts: pd.DataFrame | None = None
    epochs: pd.DataFrame | None = None
    arenas: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tracks_parts: Callable[[], Iterable[pd.DataFrame]] | None = None
    """Streamed results (``track_to_folder(stream=True)``): yields the tracks table in
    consecutive blocks of rows (``tracks`` is then empty); :meth:`TrialFolder.write` writes
    them one row group at a time."""


# --------------------------------------------------------------------------------------------
# the folder


class TrialFolder:
    """One trial folder: its files, read and written in one place.

    ``provenance()`` is read once per object; :meth:`write` and :meth:`rescore` update it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._provenance: Provenance | None = None

    def __repr__(self) -> str:
        return f"TrialFolder({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def tracks_path(self) -> Path:
        return self.path / TRACKS

    @property
    def bouts_path(self) -> Path:
        return self.path / BOUTS

    @property
    def epochs_path(self) -> Path:
        return self.path / EPOCHS

    @property
    def provenance_path(self) -> Path:
        return self.path / PROVENANCE

    @property
    def corrections_path(self) -> Path:
        return self.path / CORRECTIONS

    # what is there -----------------------------------------------------------------------

    def has_tracks(self) -> bool:
        return self.tracks_path.is_file()

    def is_complete(self) -> bool:
        """Every file of :data:`FILES` is present."""
        return not self.missing()

    def present(self, names: Iterable[str] = FILES) -> list[str]:
        """Which of ``names`` exist in the folder (in the order given)."""
        return [n for n in names if (self.path / n).exists()]

    def missing(self, names: Iterable[str] = FILES) -> list[str]:
        """Which of ``names`` do not exist in the folder (in the order given)."""
        return [n for n in names if not (self.path / n).exists()]

    def is_imported(self) -> bool:
        """A folder written by ``fishtrack import``: :data:`IMPORTED_FILES` present and the
        provenance says ``source: "import"`` (False, never an error, otherwise)."""
        if not self.path.is_dir() or not all((self.path / n).is_file() for n in IMPORTED_FILES):
            return False
        try:
            return self.provenance().is_imported
        except FishtrackError:
            return False

    # reading ---------------------------------------------------------------------------------

    def provenance(self) -> Provenance:
        """The folder's :class:`Provenance` (:class:`FishtrackError` when missing or invalid)."""
        if self._provenance is None:
            self._provenance = Provenance.read(self.provenance_path)
        return self._provenance

    def tracks(self, columns: Iterable[str] | None = None, *,
               require: Iterable[str] = ()) -> pd.DataFrame:
        """The per-frame table: every column, or those of ``columns`` the file has.

        Raises
        ------
        FishtrackError
            The file is missing or unreadable, or lacks a column of ``require``.
        """
        path = self.tracks_path
        if not path.exists():
            raise FishtrackError(f"{path}: file not found")
        if columns is None:
            df = read_table(path)
        else:
            try:
                names = pq.ParquetFile(path).schema_arrow.names
                df = pd.read_parquet(path, columns=[c for c in columns if c in names],
                                     engine="pyarrow")
            except Exception as err:  # noqa: BLE001 - unreadable file: one clear line
                raise FishtrackError(
                    f"{path}: cannot read table ({type(err).__name__}: {err})") from None
        require_columns(df, require, str(path))
        return _keys_as_text(df)

    def bouts(self, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """``bouts.csv`` (an empty table when the folder has none)."""
        return _read_csv(self.bouts_path, columns)

    def epochs(self, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """``epochs.csv`` (an empty table when the folder has none)."""
        return _read_csv(self.epochs_path, columns)

    def corrections(self) -> pd.DataFrame:
        """``corrections.csv`` (:func:`fishtrack.corrections.load_corrections`; an empty
        table when there is none)."""
        return load_corrections(self.corrections_path)

    def digests(self) -> dict[str, dict]:
        """``{table: {size_bytes, sha256}}`` of the tables present."""
        out = {}
        for name in TABLES:
            p = self.path / name
            if p.is_file():
                out[name] = {"size_bytes": p.stat().st_size, "sha256": _sha256(p)}
        return out

    def content_identity(self) -> dict[str, Any]:
        """Identity of an imported folder by content: name, size and the SHA-256 of its
        ``tracks.parquet`` and ``provenance.json`` (names and bytes), so a folder re-imported
        with other tracks is noticed even when its file names and sizes stay the same."""
        h = hashlib.sha256()
        size = 0
        for name in IMPORTED_FILES:
            h.update(name.encode() + b"\0")
            with open(self.path / name, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
                    size += len(block)
            h.update(b"\0")
        return {"name": self.path.name, "path": str(self.path),
                "abs_path": os.path.abspath(self.path), "size_bytes": size,
                "n_files": len(IMPORTED_FILES), "sha256_content": h.hexdigest()}

    def status(self, video: str | Path, config: Config) -> FolderStatus:
        """Whether the folder already holds the outputs for ``video`` with ``config``.

        ``current``: every file present, the input identity (size, hash of the first MiB; an
        imported trial folder: hash of its content) and the tracking and behaviour settings
        (the ``video``, ``arenas``, ``tracking``, ``behaviour``, ``protocol`` sections, without
        the speed-only ``video.chunk_size``) match. ``reclassify``: only ``behaviour`` or
        ``protocol`` changed (the tracks are re-scored, not re-tracked). ``stale``: the video
        or the tracking settings changed. ``missing``: no complete trial folder.
        """
        if not self.is_complete():
            return "missing"
        try:
            prov = self.provenance()
            ident = input_identity(video)
        except (FishtrackError, OSError):
            return "missing"
        inp = prov.input
        if any(inp.get(k) != ident.get(k) for k in IDENTITY_KEYS):
            return "stale"
        if not prov.same_tracking(config):
            return "stale"
        if not prov.same_scoring(config):
            return "reclassify"
        return "current"

    # writing -----------------------------------------------------------------------------

    def write(self, result: TrialResult, *, csv: bool = False, digests: bool = True) -> None:
        """Write ``result`` (each file atomically), ``provenance.json`` last.

        An old ``provenance.json`` is removed first: until the new one is written the folder
        is marked incomplete (never new tables under an old run's provenance). A table the
        result does not have (no bouts or epochs) is removed, so no stale table stays. With
        ``digests`` the provenance records the tables' size and SHA-256 (``outputs``). With
        ``csv``, ``tracks.csv`` is written too.
        """
        self._remove(self.provenance_path)
        if result.tracks_parts is not None:
            write_table_parts(result.tracks_parts(), self.tracks_path, csv=csv)
        else:
            write_table(result.tracks, self.tracks_path, csv=csv)
        for table, path in ((result.bouts, self.bouts_path), (result.epochs, self.epochs_path)):
            if table is not None:
                write_table(table, path)
            else:
                self._remove(path)
        if digests:
            result.provenance["outputs"] = self.digests()
        self._provenance = Provenance(result.provenance, path=self.provenance_path)
        self._provenance.write()

    def write_tracks_copy(self, source: TrialFolder) -> None:
        """Copy ``source``'s ``tracks.parquet`` here byte for byte (atomically)."""
        write_bytes(self.tracks_path, source.tracks_path.read_bytes())

    def write_provenance(self, prov: Provenance) -> None:
        """Write ``prov`` as this folder's ``provenance.json`` (atomically)."""
        self._provenance = Provenance(prov.data, path=self.provenance_path)
        self._provenance.write()

    def rescore(self, scores: Any, prov: Provenance) -> None:
        """Replace the tables with a re-scoring's (``scores.tracks``, ``.bouts``, ``.epochs``:
        :func:`fishtrack.behaviour.classify`'s result), then write ``prov`` with the tables'
        digests (the provenance is updated in place, never removed: it holds the config the
        tracks were made with)."""
        write_table(scores.tracks, self.tracks_path)
        write_table(scores.bouts, self.bouts_path)
        write_table(scores.epochs, self.epochs_path)
        prov.data["outputs"] = self.digests()
        self.write_provenance(prov)

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise OutputError(f"cannot replace the old file ({err.strerror})", path=path) from None


def input_identity(path: str | Path) -> dict[str, Any]:
    """The identity a trial's provenance records for its input: the content identity of a
    folder written by ``fishtrack import`` (:meth:`TrialFolder.content_identity`), else
    :func:`fishtrack.io.provenance.file_identity` (a video, stack or image folder)."""
    folder = TrialFolder(path)
    if folder.is_imported():
        return folder.content_identity()
    return file_identity(path)


def _mapping(value: Any) -> dict[str, Any]:
    """A copy of ``value`` when it is a JSON object, else an empty one (a damaged file)."""
    return dict(value) if isinstance(value, dict) else {}


def _keys_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """``arena`` and ``fish`` as text (missing values stay missing)."""
    for col in _KEY_COLUMNS:
        if col in df.columns:
            s = df[col]
            df[col] = s.astype(str).where(s.notna(), s)
    return df


def _read_csv(path: Path, columns: Iterable[str] | None) -> pd.DataFrame:
    """A trial's CSV table, ``arena`` and ``fish`` read as text; empty when absent."""
    if not path.exists():
        return pd.DataFrame()
    wanted = None if columns is None else set(columns)
    try:
        return pd.read_csv(path, usecols=None if wanted is None else (lambda c: c in wanted),
                           dtype={k: str for k in _KEY_COLUMNS})
    except Exception as err:  # noqa: BLE001 - any parse failure becomes one clear line
        raise FishtrackError(f"{path}: cannot read table ({type(err).__name__}: {err})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
