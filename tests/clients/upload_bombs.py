"""Hostile uploads built on the fly (for tests/clients/test_upload_limits.py and bench/upload_bombs.py)."""

from __future__ import annotations

import io
import zipfile

from openpyxl import Workbook

HEADER = ["payment_ref", "debtor_ref", "received_on", "amount", "currency", "method", "received_by", "reference"]


def plain_xlsx(rows: int = 2) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for n in range(rows):
        sheet.append([f"P-{n}", "D-1", "2026-03-10", "1.00", "EUR", "", "", ""])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _rebuilt(parts: dict[str, bytes]) -> bytes:
    """A copy of a plain workbook with some parts replaced or added."""
    source = zipfile.ZipFile(io.BytesIO(plain_xlsx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            target.writestr(info.filename, parts.pop(info.filename, None) or source.read(info.filename))
        for name, data in parts.items():
            target.writestr(name, data)
    return out.getvalue()


SHEET = "xl/worksheets/sheet1.xml"
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def _sheet(dimension: str | None, rows: str) -> bytes:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    head = f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_NS}>{dim}'
    return f"{head}<sheetData>{rows}</sheetData></worksheet>".encode()


def _header_row() -> str:
    cells = "".join(f'<c r="{chr(65 + i)}1" t="inlineStr"><is><t>{h}</t></is></c>' for i, h in enumerate(HEADER))
    return f'<row r="1">{cells}</row>'


def declared_huge_sheet() -> bytes:
    """A few hundred bytes declaring 16384 x 1048576 cells, which a reader fills in."""
    return _rebuilt({SHEET: _sheet("A1:XFD1048576", _header_row() + '<row r="1048576"><c r="XFD1048576"/></row>')})


def padded_rows_sheet(rows: int = 200_000) -> bytes:
    """Declares no size, then has many rows with a value in A and an empty cell in the last column: a reader
    fills each row in to 16,384 cells (billions in all)."""
    body = _header_row() + "".join(
        f'<row r="{n}"><c r="A{n}"><v>1</v></c><c r="XFD{n}" s="0"/></row>' for n in range(2, rows)
    )
    return _rebuilt({SHEET: _sheet(None, body)})


def ratio_bomb(megabytes: int = 300) -> bytes:
    """A member of zeros that unpacks to `megabytes` (about 1,000 to 1)."""
    return _rebuilt({"xl/media/image1.bin": b"\0" * (megabytes * 1024 * 1024)})


def many_members(count: int = 5000) -> bytes:
    return _rebuilt({f"customXml/item{n}.xml": b"<a/>" for n in range(count)})


def big_shared_strings(megabytes: int = 40) -> bytes:
    """Shared strings a reader would load whole: distinct, so they compress only moderately."""
    items = []
    size = n = 0
    while size < megabytes * 1024 * 1024:
        item = f"<si><t>{n:x}{n * 7919:x}</t></si>"
        items.append(item)
        size += len(item)
        n += 1
    sst = f'<?xml version="1.0"?><sst {_NS} count="{n}" uniqueCount="{n}">{"".join(items)}</sst>'
    types = zipfile.ZipFile(io.BytesIO(plain_xlsx())).read("[Content_Types].xml").decode()
    if "sharedStrings" not in types:  # make the reader load it
        override = (
            '<Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        )
        types = types.replace("</Types>", override + "</Types>")
    return _rebuilt({"xl/sharedStrings.xml": sst.encode(), "[Content_Types].xml": types.encode()})
