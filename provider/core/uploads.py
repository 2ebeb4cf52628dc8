"""Uploaded files are measured before they are parsed.

A zip-based upload (XLSX today; any later zip format) is judged from its central directory alone
(`zipfile.ZipFile.infolist`, nothing decompressed): refused when it has more members, more uncompressed bytes,
a member more compressed, or a shared-strings/styles part bigger than the limits allow. Python's zipfile never
yields more bytes from a member than the directory declares, so the declared sizes bound what any reader can
get out of it. The sheets' declared dimensions (`<dimension ref=...>`, read from the first bytes of each sheet
through a streaming decompressor) are checked too, and `SheetGuard` holds a reader to the cell budget while it
iterates (openpyxl fills the gaps between far-apart cells with empty ones, so a 7 KB sheet can ask for 10^10).

A CSV row may have at most MAX_COLUMNS cells of at most MAX_CELL_CHARS characters each.

Limits come from the app's configuration (UPLOAD_MAX_UNZIPPED_MB, UPLOAD_MAX_MEMBERS, UPLOAD_MAX_RATIO,
UPLOAD_MAX_CELLS), with the same defaults outside an app. Every refusal is an `UploadRefused` whose message says
what was too big, in words for the person who uploaded the file.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any

MAX_COLUMNS = 1000  # cells in a CSV or sheet row
MAX_CELL_CHARS = 32_767  # Excel's own limit for a cell
PART_LIMIT = 16 * 1024 * 1024  # shared strings, styles and other parts a reader loads whole (30 MB of strings: 250 MB)
RATIO_FLOOR = 1024 * 1024  # members smaller than this may be compressed as much as they like
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"([A-Z]{1,3})(\d{1,7})(?::([A-Z]{1,3})(\d{1,7}))?\"")
_STREAMED = re.compile(r"^xl/worksheets/[^/]+\.xml$")


class UploadRefused(ValueError):
    """The upload is bigger than the limits (the message says which and by how much)."""


@dataclass(frozen=True)
class Limits:
    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_members: int = 2000
    max_ratio: int = 200
    max_cells: int = 5_000_000

    @classmethod
    def current(cls) -> Limits:
        from flask import current_app, has_app_context

        if not has_app_context():
            return cls()
        c = current_app.config
        return cls(
            max_unzipped_bytes=int(c.get("UPLOAD_MAX_UNZIPPED_BYTES", cls.max_unzipped_bytes)),
            max_members=int(c.get("UPLOAD_MAX_MEMBERS", cls.max_members)),
            max_ratio=int(c.get("UPLOAD_MAX_RATIO", cls.max_ratio)),
            max_cells=int(c.get("UPLOAD_MAX_CELLS", cls.max_cells)),
        )


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def check_zip(content: bytes, limits: Limits | None = None) -> None:
    """Refuse (UploadRefused) a zip whose directory promises more than the limits; reads no member whole."""
    limits = limits or Limits.current()
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise UploadRefused(f"the file cannot be read as a workbook ({exc})") from None
    with archive:
        if len(members) > limits.max_members:
            raise UploadRefused(f"the workbook has {len(members):,} parts; at most {limits.max_members:,} are read")
        total = sum(m.file_size for m in members)
        if total > limits.max_unzipped_bytes:
            raise UploadRefused(
                f"the workbook unpacks to {_mb(total)}; at most {_mb(limits.max_unzipped_bytes)} are read "
                "(save it without unused sheets or formatting, or as CSV)"
            )
        for m in members:
            ratio = m.file_size / max(m.compress_size, 1)
            if m.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
                raise UploadRefused(
                    f"a part of the workbook ({m.filename}) is compressed {ratio:,.0f} to 1; at most "
                    f"{limits.max_ratio} to 1 is read (a file built to unpack to much more than it looks)"
                )
            if not _STREAMED.match(m.filename) and m.file_size > PART_LIMIT:
                raise UploadRefused(
                    f"a part of the workbook ({m.filename}) unpacks to {_mb(m.file_size)}; at most "
                    f"{_mb(PART_LIMIT)} are read"
                )
            if _STREAMED.match(m.filename):
                _check_dimension(archive, m, limits)


def _column(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n


def _check_dimension(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits) -> None:
    """The sheet's declared size, from its first 4 KB (a streaming read: the rest is never decompressed)."""
    try:
        with archive.open(member) as stream:
            head = stream.read(4096)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise UploadRefused(f"a sheet of the workbook cannot be read ({exc})") from None
    found = _DIMENSION.search(head)
    if not found or not found.group(3):
        return
    rows = int(found.group(4)) - int(found.group(2)) + 1
    cols = _column(found.group(3)) - _column(found.group(1)) + 1
    if rows > 0 and cols > 0 and rows * cols > limits.max_cells:
        raise UploadRefused(
            f"a sheet declares {rows:,} rows by {cols:,} columns ({rows * cols:,} cells); at most "
            f"{limits.max_cells:,} cells are read"
        )


class SheetGuard:
    """Counts the cells a sheet reader produces (gaps filled in included) and refuses past the budget."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits.current()
        self.cells = 0

    def row(self, number: int, values: Any) -> None:
        self.cells += max(len(values), 1)  # an empty row filled in still costs a step
        if self.cells > self.limits.max_cells:
            raise UploadRefused(
                f"the sheet reaches row {number:,} with {self.cells:,} cells (empty ones between filled cells "
                f"count); at most {self.limits.max_cells:,} are read"
            )


def check_csv_row(number: int, cells: list[str]) -> None:
    """A row of a CSV file (or of a sheet, as text): at most MAX_COLUMNS cells up to its last filled one, none
    longer than MAX_CELL_CHARS."""
    used = len(cells)
    while used > MAX_COLUMNS and not cells[used - 1].strip():
        used -= 1
    if used > MAX_COLUMNS:
        raise UploadRefused(f"row {number} has {used:,} cells; at most {MAX_COLUMNS:,} are read")
    for cell in cells:
        if len(cell) > MAX_CELL_CHARS:
            raise UploadRefused(
                f"row {number} has a cell of {len(cell):,} characters; at most {MAX_CELL_CHARS:,} are read "
                "(a closing quote missing?)"
            )
