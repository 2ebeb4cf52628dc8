"""Uploads are measured before they are parsed: zip bombs of every shape are refused with a reason, quickly and
without unpacking them; CSV rows and cells are capped. (Peak memory: bench/upload_bombs.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from clients.journal import Payment
from provider.core import uploads
from provider.extensions import db
from tests.clients import upload_bombs
from tests.clients.test_payment_imports import HEADER, _import
from tests.factories import make_client, make_debtor, make_invoice

BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "declared-huge-sheet": (upload_bombs.declared_huge_sheet, "cells are read"),
    "padded-rows": (upload_bombs.padded_rows_sheet, "empty ones between filled cells count"),
    "ratio": (lambda: upload_bombs.ratio_bomb(100), "to 1 is read"),
    "unpacked-size": (lambda: upload_bombs.ratio_bomb(300), "unpacks to 300 MB"),
    "many-members": (upload_bombs.many_members, "parts; at most"),
    "shared-strings": (upload_bombs.big_shared_strings, "sharedStrings.xml"),
}


@pytest.fixture
def acme(db_session: Any) -> Any:
    client = make_client(base_currency="EUR", code="ACME")
    make_invoice(client, make_debtor(client, external_ref="D-1"), "INV-1", 10000)
    return client


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_zip_bomb_is_refused_with_a_reason(acme: Any, name: str) -> None:
    build, reason = BOMBS[name]
    content = build()
    assert len(content) < 10 * 1024 * 1024  # well within MAX_UPLOAD_MB
    started = time.monotonic()
    batch = _import(acme, content, name="payments.xlsx")
    took = time.monotonic() - started
    assert batch.status == "rejected"
    assert any(reason in e["message"] for e in batch.errors), batch.errors
    assert db.session.scalars(select(Payment).where(Payment.client_id == acme.id)).all() == []
    print(f"{name}: {len(content):,} bytes refused in {took:.2f} s")


def test_a_plain_workbook_still_imports(acme: Any) -> None:
    batch = _import(acme, upload_bombs.plain_xlsx(3), name="payments.xlsx")
    assert batch.status == "posted", batch.errors


def test_the_limits_are_configurable(app: Flask, acme: Any) -> None:
    content = upload_bombs.plain_xlsx(2000)
    before = app.config["UPLOAD_MAX_CELLS"]
    app.config["UPLOAD_MAX_CELLS"] = 500
    try:
        with pytest.raises(uploads.UploadRefused, match="2,001 rows by 8 columns"):
            uploads.check_zip(content)
        batch = _import(acme, content, name="payments.xlsx")
    finally:
        app.config["UPLOAD_MAX_CELLS"] = before
    assert batch.status == "rejected"
    assert any("at most 500 cells are read" in e["message"] for e in batch.errors), batch.errors


def test_the_directory_decides_without_unpacking() -> None:
    limits = uploads.Limits(max_unzipped_bytes=10 * 1024 * 1024)
    with pytest.raises(uploads.UploadRefused, match="unpacks to"):
        uploads.check_zip(upload_bombs.ratio_bomb(20), limits)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ('P-1,D-1,2026-03-10,1.00,EUR,,,"' + "x" * 100_000 + '"\n', "characters; at most"),
        ("P-1,D-1,2026-03-10,1.00,EUR,,," + ",x" * 2000 + "\n", "cells; at most"),
    ],
    ids=["huge-cell", "wide-row"],
)
def test_csv_rows_and_cells_are_capped(acme: Any, row: str, reason: str) -> None:
    batch = _import(acme, HEADER + row)
    assert batch.status == "rejected"
    assert any(reason in e["message"] for e in batch.errors), batch.errors
