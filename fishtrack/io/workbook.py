"""Excel workbooks (``.xlsx``, ``.xlsm``) read as tables of text cells.

Values only: :func:`read_sheet` opens the workbook with openpyxl in read-only, values-only mode
(``read_only=True, data_only=True``), so a formula cell gives the value Excel last saved for
it (nothing is evaluated) and macros are never run. Every cell becomes text the way a CSV
export would write it: numbers without a spurious ``.0``, dates as ``YYYY-MM-DD`` (with the
time when there is one), booleans ``TRUE`` / ``FALSE``, empty cells ``""``.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

from fishtrack.errors import FishtrackError

__all__ = ["OLE2_MAGIC", "ZIP_MAGIC", "is_workbook", "read_sheet"]

ZIP_MAGIC = b"PK\x03\x04"
"""First bytes of a zip archive (``.xlsx``, ``.xlsm``, ``.ods`` ...)."""
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""First bytes of an OLE2 compound file (old ``.xls``, or a password-protected ``.xlsx``)."""

_MAX_ROWS = 1_000_000


def is_workbook(head: bytes) -> bool:
    """True when the file's first bytes are those of a zip or OLE2 (spreadsheet) file."""
    return head.startswith((ZIP_MAGIC, OLE2_MAGIC))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _refuse_other_formats(path: Path, head: bytes, error: type[FishtrackError]) -> None:
    if head.startswith(OLE2_MAGIC):
        raise error(
            "is an old Excel .xls workbook or a password-protected one; save it (without a "
            "password) as .xlsx, or as 'CSV UTF-8'",
            path=path,
        )
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            mime = z.read("mimetype").decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError) as err:
        raise error(
            f"looks like a zip file (an Excel workbook?) but cannot be opened ({err}); save it "
            "again as .xlsx, or as 'CSV UTF-8'",
            path=path,
        ) from None
    if "opendocument" in mime:
        raise error(
            "is an OpenDocument spreadsheet (.ods); save it as .xlsx, or as 'CSV UTF-8'",
            path=path,
        )
    if "xl/workbook.xml" not in names:
        raise error(
            "is a zip file but not an Excel workbook (no xl/workbook.xml); give the manifest as "
            ".xlsx or CSV",
            path=path,
        )


def read_sheet(
    path: str | Path,
    sheet: str | None = None,
    *,
    error: type[FishtrackError] = FishtrackError,
) -> tuple[str, list[list[str]]]:
    """The cells of one worksheet as text, one list per spreadsheet row (row 1 first).

    Parameters
    ----------
    path
        ``.xlsx`` / ``.xlsm`` workbook.
    sheet
        Sheet name (exact, else case-insensitive), or its 1-based position as text (``"2"``);
        None: the first worksheet.
    error
        Class of the one-line errors raised (they name the file and, where it applies, the
        sheets it has).

    Returns
    -------
    (sheet name, rows)
        Empty rows are kept (as empty lists) so row numbers match the spreadsheet's.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    _refuse_other_formats(path, head, error)
    try:
        import openpyxl
    except ImportError:
        raise error(
            "is an Excel workbook; reading it needs the Python package openpyxl "
            "(pip install openpyxl), or save it as 'CSV UTF-8'",
            path=path,
        ) from None
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about unsupported extensions
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except Exception as err:  # noqa: BLE001 - any reader failure is one clear line
        raise error(
            f"cannot be read as an Excel workbook ({type(err).__name__}: {err}); save it again "
            "as .xlsx, or as 'CSV UTF-8'",
            path=path,
        ) from None
    try:
        sheets = list(wb.worksheets)
        names = [ws.title for ws in sheets]
        listing = ", ".join(f"'{n}'" for n in names) or "none"
        if not sheets:
            raise error("the workbook has no worksheet", path=path)
        if sheet is None:
            ws = sheets[0]
        else:
            want = str(sheet).strip()
            match = [ws for ws in sheets if ws.title == want] or \
                [ws for ws in sheets if ws.title.strip().lower() == want.lower()]
            if not match and want.isdigit() and 1 <= int(want) <= len(sheets):
                match = [sheets[int(want) - 1]]
            if not match:
                raise error(f"has no sheet '{want}' (sheets: {listing})", path=path)
            ws = match[0]
        rows: list[list[str]] = []
        try:
            for k, values in enumerate(ws.iter_rows(values_only=True)):
                if k >= _MAX_ROWS:
                    raise error(f"sheet '{ws.title}' has more than {_MAX_ROWS} rows", path=path)
                rows.append([_cell_text(v) for v in values])
        except FishtrackError:
            raise
        except Exception as err:  # noqa: BLE001
            raise error(
                f"sheet '{ws.title}' cannot be read ({type(err).__name__}: {err})", path=path
            ) from None
        while rows and not any(rows[-1]):
            rows.pop()
        return ws.title, rows
    finally:
        wb.close()
