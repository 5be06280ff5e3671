"""Atomic writing of tables and files.

Every output file is written to a temporary file in the same folder and then renamed over
the target (``os.replace`` is atomic on POSIX), so an interrupted run never leaves a
half-written table under its final name. Write errors (read-only folder, full disk) become
:class:`fishtrack.errors.OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a table is made or read (issue 15: the tracker's
    import pandas as pd  # spill module loads before pandas)

from fishtrack.errors import FishtrackError, OutputError

__all__ = ["atomic_path", "write_bytes", "write_text", "write_table", "write_table_parts",
           "ArrowSpill", "SpillFile", "SpillReader", "read_table", "require_columns"]


def _explain_oserror(err: OSError, path: Path) -> OutputError:
    if err.errno == errno.ENOSPC:
        why = "the disk is full; free space or choose another --out folder"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder is not writable; choose another --out folder or fix its permissions"
    else:
        why = err.strerror or str(err)
    return OutputError(f"cannot write: {why}", path=path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _explain_oserror(err, path) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give normal file permissions
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        raise _explain_oserror(err, path) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def _write_with(path: Path, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return path


def write_table(df: pd.DataFrame, path: str | Path, *, csv: bool = False) -> Path:
    """Write ``df`` to ``path`` (``.parquet`` or ``.csv``); with ``csv=True`` and a Parquet
    path, also write the ``.csv`` next to it. Returns the main path."""
    path = Path(path)
    if path.suffix == ".parquet":
        _write_with(path, lambda t: df.to_parquet(t, index=False, engine="pyarrow"))
        if csv:
            _write_with(path.with_suffix(".csv"), lambda t: df.to_csv(t, index=False))
    elif path.suffix == ".csv":
        _write_with(path, lambda t: df.to_csv(t, index=False))
    else:
        raise ValueError(f"unsupported table suffix {path.suffix!r}")
    return path


def _arrow_table(df: pd.DataFrame, schema=None):
    """``df`` as an Arrow table (no index); text columns as strings, also when a block holds
    only missing values, so every block of one table has the same schema."""
    import pyarrow as pa

    if schema is None:
        table = pa.Table.from_pandas(df, preserve_index=False)
        fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) and
                  df[f.name].dtype == object else f for f in table.schema]
        schema = pa.schema(fields, metadata=table.schema.metadata)
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False), schema


def _numpy_arrow_column(values):
    """A 1-D NumPy column as ``pa.Table.from_pandas`` makes it (NaN of a float column and
    None of a text column as missing values), without importing pandas; None when it is of
    another kind (the pandas path converts it).

    pyarrow's own converters (``pa.array``, ``pa.table``) import pandas for any NumPy array
    (its pandas shim asks whether the array is a categorical), ~40 MB a tracking process
    does not otherwise need (issue 15): the buffers are handed over as they are
    (``from_buffers``), booleans and validity bit-packed, text through a dictionary."""
    import numpy as np
    import pyarrow as pa

    def bits(mask):
        return pa.py_buffer(np.packbits(mask, bitorder="little"))

    values = np.asarray(values)
    n = len(values)
    if values.ndim != 1:
        return None
    if values.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), n, [None, bits(values)])
    if values.dtype.kind in "iuf":
        values = np.ascontiguousarray(values)
        valid = ~np.isnan(values) if values.dtype.kind == "f" else None
        nulls = 0 if valid is None else n - int(np.count_nonzero(valid))
        return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), n,
                                     [bits(valid) if nulls else None, pa.py_buffer(values)],
                                     null_count=nulls)
    if values.dtype != object or not all(isinstance(v, str) for v in set(values.tolist())):
        return None
    words, codes = np.unique(values.astype(str), return_inverse=True)
    data = [w.encode() for w in words.tolist()]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in data])]).astype(np.int32)
    dictionary = pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets),
                                             pa.py_buffer(b"".join(data)))
    return dictionary.take(pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(
        np.ascontiguousarray(codes.ravel(), dtype=np.int64))]))


def _numpy_arrow_table(columns: dict, schema=None):
    """``columns`` (a mapping of equal-length NumPy columns) as :func:`_arrow_table` makes
    them from a DataFrame of them, without pandas (:func:`_numpy_arrow_column`), and the
    schema (``schema`` if given); None when a column is of another kind or its type is not
    ``schema``'s."""
    import pyarrow as pa

    arrays = [_numpy_arrow_column(v) for v in columns.values()]
    if any(a is None for a in arrays):
        return None
    table = pa.Table.from_arrays(arrays, names=[str(k) for k in columns])
    if schema is not None and not table.schema.equals(schema, check_metadata=False):
        return None
    return table, schema or table.schema


def write_table_parts(parts: Iterable, path: str | Path, *, csv: bool = False) -> Path:
    """Write a Parquet table given as consecutive blocks of rows (one row group each) without
    holding it whole; atomically, like :func:`write_table` (also the ``.csv`` with ``csv``).
    Read back, it equals ``pd.concat(parts, ignore_index=True)`` written by
    :func:`write_table`. At least one block (it may be empty) must be given.

    A block is a DataFrame or a ``pyarrow.Table`` (written as it is, cast to the first
    block's schema: no pandas copy of it; e.g. the streamed tracks, straight from the spill
    file). The schema is the first block's (from its first rows when it is an Arrow table).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(path))
        tmp_csv = stack.enter_context(atomic_path(path.with_suffix(".csv"))) if csv else None
        writer = None
        schema = None
        try:
            for k, df in enumerate(parts):
                if isinstance(df, pa.Table):
                    if schema is None:  # the schema the pandas path gives (types, metadata)
                        schema = _arrow_table(df.slice(0, 4096).to_pandas())[1]
                    table = df.cast(schema)
                else:
                    table, schema = _arrow_table(df, schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table)
                if tmp_csv is not None:
                    frame = df.to_pandas() if isinstance(df, pa.Table) else df
                    frame.to_csv(tmp_csv, index=False, header=k == 0, mode="w" if k == 0 else "a")
                    del frame
                del table, df
            if writer is None:
                raise ValueError(f"{path}: no rows to write (not even an empty block)")
        finally:
            if writer is not None:
                writer.close()
    return path


def _temp_file(folder: str | Path, prefix: str, suffix: str) -> Path:
    """A new empty file of a unique name in ``folder`` (created if needed)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{prefix}.", suffix=suffix, dir=folder)
        os.close(fd)
    except OSError as err:
        raise _explain_oserror(err, folder / prefix) from None
    return Path(name)


class _Spill:
    """A temporary file next to the outputs (``path``), removed by :meth:`remove` (or leaving
    the ``with`` block) with its companions."""

    path: Path
    _companions: list | tuple = ()  # spill files removed with this one (SpillFile.companion)

    def close(self) -> None:  # pragma: no cover - every kind of spill file has its own
        raise NotImplementedError

    def remove(self) -> None:
        """Delete the file (also after a failed write: cleaning up raises nothing new)."""
        try:
            self.close()
        except OutputError:
            pass
        finally:
            self.path.unlink(missing_ok=True)
            for f in self._companions:
                f.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class SpillFile(_Spill):
    """A temporary Parquet file next to the outputs that a stage appends blocks of rows to
    (one row group each) and reads back block by block: tables larger than memory pass
    between stages through it. Removed by :meth:`remove` (or leaving the ``with`` block)."""

    def __init__(self, folder: str | Path, prefix: str = ".spill"):
        self.path = _temp_file(folder, prefix, ".parquet")
        self._writer = None
        self._schema = None
        self.rows = 0
        self._companions: list[SpillFile | ArrowSpill] = []

    def companion(self, prefix: str = ".spill") -> SpillFile:
        """Another spill file in the same folder, removed with this one at the latest."""
        f = SpillFile(self.path.parent, prefix=prefix)
        self._companions.append(f)
        return f

    def arrow_companion(self, prefix: str = ".spill") -> ArrowSpill:
        """A temporary Arrow IPC file (:class:`ArrowSpill`) in the same folder, removed with
        this one at the latest."""
        f = ArrowSpill(self.path.parent, prefix=prefix)
        self._companions.append(f)
        return f

    def write(self, columns: dict | pd.DataFrame, *, group_rows: int | None = None) -> None:
        """Append a block (a DataFrame or a mapping of equal-length columns): one row group,
        or with ``group_rows`` row groups of that many rows (the last one shorter), each
        read back as a block of its own (:meth:`arrow_blocks`): what a reader holds.

        A mapping of NumPy columns (the tracker's blocks) is converted without pandas
        (:func:`_numpy_arrow_table`: the same values and types), so a tracking process need
        not import it."""
        import pyarrow.parquet as pq

        made = None if hasattr(columns, "iloc") else _numpy_arrow_table(columns, self._schema)
        if made is None:
            import pandas as pd

            df = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(columns, copy=False)
            made = _arrow_table(df, self._schema)
        table, self._schema = made
        try:
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, self._schema)
            self._writer.write_table(table, row_group_size=max(1, group_rows or table.num_rows))
        except OSError as err:
            raise _explain_oserror(err, self.path) from None
        self.rows += table.num_rows

    @property
    def columns(self) -> list[str]:
        """Column names of the blocks written (none yet: empty)."""
        return [] if self._schema is None else list(self._schema.names)

    def close(self) -> None:
        """Finish the file (its footer); write errors become :class:`OutputError`."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError as err:
                raise _explain_oserror(err, self.path) from None

    def blocks(self, columns: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
        """The blocks as written (one DataFrame per row group), only ``columns`` if given."""
        for table in self.arrow_blocks(columns):
            yield table.to_pandas()

    def arrow_blocks(self, columns: Iterable[str] | None = None) -> Iterator:
        """The blocks as written, as ``pyarrow.Table`` s (no pandas copy), only ``columns``."""
        import pyarrow.parquet as pq

        self.close()
        if self._schema is None:
            return
        pf = pq.ParquetFile(self.path)
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        for i in range(pf.num_row_groups):
            yield pf.read_row_group(i, columns=cols)

    def reader(self, columns: Iterable[str] | None = None) -> SpillReader:
        """A forward reader of the rows written, any number at a time (:class:`SpillReader`)."""
        self.close()
        return SpillReader(self.path if self._schema is not None else None, columns)


class ArrowSpill(_Spill):
    """A temporary Arrow IPC file that blocks of rows are appended to (one record batch each)
    and that is read back whole, without decoding (:meth:`read`).

    Many can be open for writing at once in small memory: an IPC writer keeps one offset per
    batch, where a Parquet writer keeps every row group's column metadata until it is closed
    (48 Parquet part files open while a 30-minute 48-well recording was copied into them
    held ~150 MB, and the process kept it; docs/architecture.md "Memory")."""

    def __init__(self, folder: str | Path, prefix: str = ".spill"):
        self.path = _temp_file(folder, prefix, ".arrow")
        self._sink = self._writer = self._schema = None
        self.rows = 0

    def write(self, df) -> None:
        """Append a block of rows (the same columns every time): a DataFrame, or a
        ``pyarrow.Table`` (written as it is, cast to the first block's schema)."""
        import pyarrow as pa

        if isinstance(df, pa.Table):
            self._schema = self._schema or df.schema
            table = df if df.schema.equals(self._schema) else df.cast(self._schema)
        else:
            table, self._schema = _arrow_table(df, self._schema)
        try:
            if self._writer is None:
                self._sink = pa.OSFile(str(self.path), "wb")
                self._writer = pa.ipc.new_file(self._sink, self._schema)
            self._writer.write_table(table)
        except OSError as err:
            raise _explain_oserror(err, self.path) from None
        self.rows += len(df)

    def close(self) -> None:
        """Finish the file (its footer); write errors become :class:`OutputError`."""
        writer, sink, self._writer, self._sink = self._writer, self._sink, None, None
        try:
            if writer is not None:
                writer.close()
        except OSError as err:
            raise _explain_oserror(err, self.path) from None
        finally:
            if sink is not None:
                sink.close()

    def read(self) -> pd.DataFrame:
        """Every row written, as one DataFrame (empty without any)."""
        import pandas as pd
        import pyarrow as pa

        self.close()
        if self._schema is None:
            return pd.DataFrame()
        with pa.OSFile(str(self.path), "rb") as src:
            table = pa.ipc.open_file(src).read_all()
        df = table.to_pandas()
        del table  # not held with the DataFrame
        return df


class SpillReader:
    """The rows of a spill file read forward, ``take(n)`` at a time; holds one row group (and
    what is left of the previous one), so blocks written small are read in small memory."""

    def __init__(self, path: Path | None, columns: Iterable[str] | None = None):
        import pyarrow.parquet as pq

        self._buf: list[pd.DataFrame] = []
        self._n = 0
        if path is None:
            self._groups: Iterator[pd.DataFrame] = iter(())
            return
        pf = pq.ParquetFile(path)
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        self._groups = (pf.read_row_group(i, columns=cols).to_pandas()
                        for i in range(pf.num_row_groups))

    def take(self, n: int) -> pd.DataFrame:
        """The next ``n`` rows (index from 0); ValueError when fewer are left."""
        import pandas as pd

        while self._n < n or not self._buf:
            df = next(self._groups, None)
            if df is None:
                if self._n < n:
                    raise ValueError(f"spill file: {n} rows asked, {self._n} left")
                break
            self._buf.append(df)
            self._n += len(df)
        if not self._buf:
            return pd.DataFrame()
        cat = self._buf[0] if len(self._buf) == 1 else pd.concat(self._buf, ignore_index=True)
        out = cat.iloc[:n].reset_index(drop=True)
        rest = cat.iloc[n:].reset_index(drop=True)
        self._buf, self._n = [rest], len(rest)
        return out


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet or CSV table written by fishtrack, with a clear error if unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FishtrackError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, engine="pyarrow")
        return pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - any parse failure becomes one clear line
        raise FishtrackError(f"{path}: cannot read table ({type(err).__name__}: {err})") from None


def require_columns(df: pd.DataFrame, columns: Iterable[str], source: str, *, hint: str = "") -> None:
    """Raise :class:`FishtrackError` ``"SOURCE: missing column(s) A, B"`` (then ``hint``) when
    ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FishtrackError(f"{source}: missing column(s) {', '.join(missing)}{hint}")
