"""Placement files: CSV or XLSX of invoices with debtor details, mapped, validated, posted all or nothing.

The uploaded bytes are stored with the batch (any worker host can run the job); the job validates every
row with marshmallow and reports each problem by row number, column and reason. By default nothing is
posted when any row is invalid; with `post_valid` the valid rows are posted and the rest are kept in the
report for correction. Invoices are idempotent on (client, number), so a re-uploaded or overlapping file
never duplicates one; debtors are matched (or created) by their external reference.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import datetime
from enum import StrEnum
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    insert,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, deferred, mapped_column

from clients.ledger import BatchRejected, RowError, place_invoices
from clients.models import Client, Debtor
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.jobs import enqueue, job
from provider.core.money import Money, MoneyError
from provider.core.tenancy import ClientOwned, TenantScope, scoped
from provider.extensions import db

CHUNK = 5_000
MAX_ERRORS = 5_000  # beyond this the report says how many more there were
FIELDS = ("invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency", "po_reference")
REQUIRED = ("invoice_number", "debtor_ref", "issue_date", "due_date", "amount", "currency")
DEFAULT_MAPPING = {f: f for f in FIELDS}


class BatchStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    POSTED = "posted"
    PARTIAL = "partial"
    REJECTED = "rejected"


class ImportBatch(ClientOwned, db.Model):
    """One uploaded file and what became of it (progress, counts, every rejected row)."""

    __tablename__ = "import_batches"
    __table_args__ = (
        CheckConstraint("kind IN ('placements', 'payments')", name="kind"),
        Index(None, "client_id", "created_at"),
    )

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(12))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    mapping: Mapped[dict[str, str]] = mapped_column(JSON)
    post_valid: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default=BatchStatus.QUEUED.value)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    posted_rows: Mapped[int] = mapped_column(Integer, default=0)
    skipped_rows: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class FileRejected(ValueError):
    """The upload is not a readable CSV/XLSX file (the message says why)."""


# --- reading files ----------------------------------------------------------------------------------


def read_rows(filename: str, content: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and data rows (with their line/row numbers as a spreadsheet shows them)."""
    if filename.lower().endswith(".xlsx") or content[:2] == b"PK":
        return _read_xlsx(content)
    if b"\x00" in content[:65536]:
        raise FileRejected("this is not a CSV file (it contains binary data); upload a .csv or .xlsx export")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = content.decode("cp1252")
        except UnicodeDecodeError:
            raise FileRejected("the file is neither UTF-8 nor Windows-1252 text") from None
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows = [(i, row) for i, row in enumerate(reader, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise FileRejected("the file is empty")
    header = [h.strip() for h in rows[0][1]]
    return header, rows[1:]


def _read_xlsx(content: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise FileRejected(f"the spreadsheet cannot be read ({type(exc).__name__})") from None
    sheet = book.worksheets[0]
    rows = []
    for i, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = ["" if v is None else (v.date().isoformat() if isinstance(v, datetime) else str(v)) for v in values]
        if any(c.strip() for c in cells):
            rows.append((i, cells))
    book.close()
    if not rows:
        raise FileRejected("the spreadsheet's first sheet is empty")
    return [h.strip() for h in rows[0][1]], rows[1:]


# --- validating rows --------------------------------------------------------------------------------


class PlacementRow(Schema):
    """One invoice line of a placement file (after column mapping)."""

    class Meta:
        unknown = EXCLUDE

    invoice_number = fields.String(required=True, validate=lambda s: 0 < len(s.strip()) <= 64)
    debtor_ref = fields.String(required=True, validate=lambda s: 0 < len(s.strip()) <= 64)
    debtor_name = fields.String(load_default="")
    issue_date = fields.Date(required=True, error_messages={"invalid": "not a valid date; use YYYY-MM-DD"})
    due_date = fields.Date(required=True, error_messages={"invalid": "not a valid date; use YYYY-MM-DD"})
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    po_reference = fields.String(load_default="")

    @validates_schema
    def _amount_and_dates(self, data: dict[str, Any], **_: Any) -> None:
        try:
            money = Money.parse(data["amount"], data["currency"].strip())
        except MoneyError as exc:
            field = "currency" if "ISO 4217" in str(exc) else "amount"
            raise ValidationError(str(exc), field) from None
        if money.minor <= 0:
            raise ValidationError("must be a positive amount", "amount")
        if data["due_date"] < data["issue_date"]:
            raise ValidationError(
                f"due date {data['due_date']} is before the issue date {data['issue_date']}", "due_date"
            )
        data["amount_minor"], data["currency"] = money.minor, money.currency


def map_columns(header: list[str], mapping: dict[str, str]) -> tuple[dict[str, int], list[RowError]]:
    """Where each field is in the file; a missing required column is an error for row 1."""
    positions = {h.strip().lower(): i for i, h in enumerate(header)}
    found, errors = {}, []
    for field in FIELDS:
        source = (mapping.get(field) or field).strip().lower()
        if source in positions:
            found[field] = positions[source]
        elif field in REQUIRED:
            errors.append(RowError(1, mapping.get(field) or field, f"column missing (needed for {field})"))
    return found, errors


def validate_rows(
    header: list[str], rows: list[tuple[int, list[str]]], mapping: dict[str, str]
) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    positions, errors = map_columns(header, mapping)
    if errors:
        return [], errors
    schema, good = PlacementRow(), []
    seen: dict[str, int] = {}
    for line, cells in rows:
        raw = {f: (cells[i].strip() if i < len(cells) else "") for f, i in positions.items()}
        raw = {k: v for k, v in raw.items() if v != ""}
        try:
            data = schema.load(raw)
        except ValidationError as exc:
            for field, messages in sorted(exc.normalized_messages().items()):
                column = mapping.get(field, field)
                text = "; ".join(messages if isinstance(messages, list) else [str(messages)])
                errors.append(RowError(line, column, text.replace("Missing data for required field.", "required")))
            continue
        number = data["invoice_number"].strip()
        if number in seen:
            errors.append(
                RowError(
                    line,
                    mapping.get("invoice_number", "invoice_number"),
                    f"invoice {number} appears twice in this file (row {seen[number]})",
                )
            )
            continue
        seen[number] = line
        good.append((line, data))
    return good, errors


# --- posting ----------------------------------------------------------------------------------------


def _debtor_ids(session: Session, client: Client, rows: list[dict[str, Any]]) -> dict[str, int]:
    refs = {r["debtor_ref"].strip(): r.get("debtor_name") or r["debtor_ref"] for r in rows}
    known = dict(
        session.execute(
            select(Debtor.external_ref, Debtor.id).where(Debtor.client_id == client.id, Debtor.external_ref.in_(refs))
        ).all()
    )
    missing = [
        {
            "client_id": client.id,
            "external_ref": ref,
            "name": name.strip()[:200],
            "segment": "standard",
            "do_not_contact": False,
        }
        for ref, name in refs.items()
        if ref not in known
    ]
    if missing:
        session.execute(insert(Debtor), missing)
        known.update(
            session.execute(
                select(Debtor.external_ref, Debtor.id).where(
                    Debtor.client_id == client.id, Debtor.external_ref.in_([m["external_ref"] for m in missing])
                )
            ).all()
        )
    return known


def _post_chunk(
    session: Session, client: Client, chunk: list[tuple[int, dict[str, Any]]]
) -> tuple[int, int, list[RowError]]:
    """Returns (posted, skipped as already placed, errors) for one chunk, posting it all or not at all."""
    debtors = _debtor_ids(session, client, [d for _, d in chunk])
    rows = [
        {
            "debtor_id": debtors[d["debtor_ref"].strip()],
            "number": d["invoice_number"].strip(),
            "issue_date": d["issue_date"],
            "due_date": d["due_date"],
            "currency": d["currency"],
            "amount_minor": d["amount_minor"],
            "po_reference": d.get("po_reference") or "",
        }
        for _, d in chunk
    ]
    try:
        placed = place_invoices(session, client, rows)
    except BatchRejected as exc:
        lines = [line for line, _ in chunk]
        return 0, 0, [RowError(lines[e.row - 1], e.field, e.message) for e in exc.errors]
    return len(placed), len(rows) - len(placed), []


def start_placement_import(
    session: Session,
    client: Client,
    filename: str,
    content: bytes,
    mapping: dict[str, str] | None = None,
    post_valid: bool = False,
    user_id: int | None = None,
) -> ImportBatch:
    """Store the upload and queue the import job (after commit)."""
    batch = ImportBatch(
        client_id=client.id,
        kind="placements",
        filename=filename[:200],
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        mapping=mapping or DEFAULT_MAPPING,
        post_valid=post_valid,
        created_by=user_id,
        errors=[],
    )
    session.add(batch)
    session.flush()
    audit.record(session, "import.start", batch, after={"filename": batch.filename, "sha256": batch.sha256})
    enqueue(import_placements_job, batch.id, client.id, job_id=f"import:{client.id}:{batch.id}")
    return batch


def _finish(batch: ImportBatch, status: BatchStatus, errors: list[RowError]) -> None:
    batch.status = status.value
    batch.error_count = len(errors)
    batch.errors = [{"row": e.row, "column": e.field, "message": e.message} for e in errors[:MAX_ERRORS]]
    batch.finished_at = now_utc()


def _report_progress(session: Session, batch: ImportBatch, processed: int) -> None:
    """Publish progress outside the import's own transaction, so the progress bar moves while it runs.

    PostgreSQL only: SQLite has one writer at a time, so there the figures appear when the import ends.
    """
    batch.processed_rows = processed
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    with bind.engine.connect() as conn:
        conn.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": str(batch.client_id)})
        conn.execute(
            text("UPDATE import_batches SET processed_rows = :n, status = 'running' WHERE id = :id"),
            {"n": processed, "id": batch.id},
        )
        conn.commit()


def _post_all(
    session: Session, client: Client, batch: ImportBatch, good: list[tuple[int, dict[str, Any]]]
) -> list[RowError]:
    errors: list[RowError] = []
    for start in range(0, len(good), CHUNK):
        chunk = good[start : start + CHUNK]
        posted, skipped, chunk_errors = _post_chunk(session, client, chunk)
        if chunk_errors and batch.post_valid:  # drop the rows the ledger refused, post the rest of the chunk
            bad = {e.row for e in chunk_errors}
            posted, skipped, more = _post_chunk(session, client, [(n, d) for n, d in chunk if n not in bad])
            chunk_errors += more
        errors += chunk_errors
        if errors and not batch.post_valid:
            break
        batch.posted_rows += posted
        batch.skipped_rows += skipped
        _report_progress(session, batch, start + len(chunk))
    return errors


def run_placement_import(session: Session, batch: ImportBatch) -> ImportBatch:
    """Validate the whole file; post it (all, or the valid rows when asked) in chunks with progress."""
    client = session.get_one(Client, batch.client_id)
    batch.status = BatchStatus.RUNNING.value
    try:
        header, rows = read_rows(batch.filename, batch.content)
    except FileRejected as exc:
        _finish(batch, BatchStatus.REJECTED, [RowError(1, "file", str(exc))])
        return batch
    batch.total_rows = len(rows)
    good, errors = validate_rows(header, rows, batch.mapping)
    if not (errors and not batch.post_valid):
        savepoint = session.begin_nested()  # every chunk or none, unless the user chose "post the valid rows"
        errors += _post_all(session, client, batch, good)
        if errors and not batch.post_valid:
            savepoint.rollback()
        else:
            savepoint.commit()
    if errors and not batch.post_valid:
        batch.posted_rows = batch.skipped_rows = 0
        status = BatchStatus.REJECTED
    else:
        status = BatchStatus.PARTIAL if errors else BatchStatus.POSTED
    batch.processed_rows = len(rows)
    _finish(batch, status, sorted(errors, key=lambda e: (e.row, e.field)))
    return batch


@job(queue="imports", timeout=3600, retries=1)
def import_placements_job(batch_id: int, client_id: int) -> str:
    with scoped(TenantScope.single(client_id), db.session):
        batch = db.session.get_one(ImportBatch, batch_id)
        if batch.status not in (BatchStatus.QUEUED.value, BatchStatus.RUNNING.value):
            return batch.status  # at-least-once delivery: a finished batch is never run twice
        run_placement_import(db.session, batch)
        audit.record(
            db.session,
            "import.finish",
            batch,
            after={"status": batch.status, "posted": batch.posted_rows, "errors": batch.error_count},
        )
        db.session.flush()  # inside the tenant scope (the job's commit runs after the scope has ended)
        return batch.status


__all__ = ["FIELDS", "FileRejected", "ImportBatch", "read_rows", "run_placement_import", "start_placement_import"]
