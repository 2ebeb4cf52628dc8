"""Payment files: CSV or XLSX of payments received, mapped, validated, recorded and allocated; plus cash
application by hand for the payments that stayed unmatched.

A payments file lists money a client's debtors paid: to the client directly (reported by the client) or to
the agency. The job validates every row with marshmallow and reports each problem by row number, column and
reason. By default nothing is posted when any row is invalid; with `post_valid` the valid rows are posted
and the rest are kept in the report for correction. A bank statement's credit lines whose debtor cannot be
found are not invalid: the statement's other lines are posted, and those wait on the batch's page until a
person finds who paid (`assign_debtor`). Rows are posted 1,000 at a time through the ledger's
batch verbs: `record_payments` (one payment and one balanced transaction per row) and `auto_allocate_many`
(the invoice a payment's reference names, then oldest due first); what cannot be allocated stays unapplied
and shows up in the unmatched payments list.

Payments are idempotent on (client, payment reference): a row whose reference is already recorded with the
same details is skipped and counted as "already recorded"; with different details it is a row error. So a
re-uploaded or overlapping file never posts a payment twice. A bank statement's line has no reference of its
own that is unique (banks and payers repeat theirs): its payment reference is its identity in its statement
(`bank_lines.line_ref`), so a repeated reference never refuses a statement, and a line recorded before is a
replay when its date and amount agree, whoever its debtor is found (or was picked by hand) to be.

The batch mapping holds the column names per field plus two upload options: `received_by_default` (the
receiver of rows without one) and `channel`, where the file came from ("portal" uploads may only report
payments made to the client directly: the agency's own receipts are the agency's to record).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema
from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from clients import bank_files, imports
from clients.file_formats import FileDate, FileFormat, amount_problem, not_positive, parse_amount
from clients.imports import BatchStatus, FileRejected, ImportBatch, batch_link, batch_settled, read_rows
from clients.journal import Invoice, JournalTransaction, Payment, PaymentMethod, ReceivedBy
from clients.ledger import BatchRejected, RowError, allocate, auto_allocate_many, record_payments
from clients.models import Client, Debtor
from clients.month_totals import compact_month_totals_job
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.db import commit_chunk, is_sqlite
from provider.core.errors import ServiceError
from provider.core.jobs import enqueue, job
from provider.core.money import MoneyError, format_money, validate_currency
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

KIND = "payments"
MAX_ERRORS = 5_000  # beyond this the report says how many more there were
LOOKUP_CHUNK = 1_000  # references per IN (...) lookup
POST_CHUNK = 1_000  # payments per call of the ledger's batch verbs (progress is reported after each)
SQLITE_POST_CHUNK = 250  # on SQLite each chunk is committed on its own (~0.2 s holding the write lock)
Checkpoint = Callable[[int, int], None]  # (rows done, rows in all): commits the chunk posted so far
FIELDS = ("payment_ref", "debtor_ref", "received_on", "amount", "currency", "method", "received_by", "reference")
REQUIRED = ("payment_ref", "debtor_ref", "received_on", "amount", "currency")
DEFAULT_MAPPING = {f: f for f in FIELDS}
CHANNELS = ("back_office", "portal")
METHODS = tuple(m.value for m in PaymentMethod)
COMPARED = ("debtor_id", "received_on", "currency", "amount_minor", "method", "received_by", "reference")


# --- validating rows --------------------------------------------------------------------------------


class _Choice(fields.String):
    """A word from a fixed list, read forgivingly: 'Bank transfer', 'BANK-TRANSFER' → 'bank_transfer'."""

    def __init__(self, choices: Iterable[str], what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices, self.what = tuple(choices), what

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        word = super()._deserialize(value, attr, data, **kwargs).strip().lower().replace(" ", "_").replace("-", "_")
        if word not in self.choices:
            raise ValidationError(f"{value!r} is not a {self.what}; use one of {', '.join(self.choices)}")
        return word


class PaymentRow(Schema):
    """One payment line of a payments file (after column mapping). `today` is the client's local date."""

    class Meta:
        unknown = EXCLUDE

    payment_ref = fields.String(required=True, validate=lambda s: 0 < len(s.strip()) <= 64)
    debtor_ref = fields.String(required=True, validate=lambda s: 0 < len(s.strip()) <= 64)
    received_on = FileDate(required=True)
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    method = _Choice(METHODS, "payment method", load_default=PaymentMethod.BANK_TRANSFER.value)
    received_by = _Choice((r.value for r in ReceivedBy), "receiver (agency or client)", load_default=None)
    reference = fields.String(load_default="", validate=lambda s: len(s) <= 140)

    def __init__(self, today: date, file_format: FileFormat | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.today = today
        self.file_format = file_format or FileFormat()

    @validates_schema(skip_on_field_errors=False)
    def _amount_and_date(self, data: dict[str, Any], **_: Any) -> None:
        """Every cross-field problem at once (not only the first), so the report names them all."""
        problems: dict[str, list[str]] = {}
        if "received_on" in data and data["received_on"] > self.today:
            problems["received_on"] = [f"{data['received_on']} is in the future (today is {self.today})"]
        if "currency" in data:
            try:
                data["currency"] = validate_currency(data["currency"])
            except MoneyError as exc:
                problems["currency"] = [str(exc)]
        if "amount" in data and "currency" not in problems and "currency" in data:
            try:
                money = parse_amount(data["amount"], data["currency"], self.file_format.decimal_mark)
            except MoneyError as exc:
                problems["amount"] = [amount_problem(exc)]
            else:
                if money.minor <= 0:
                    problems["amount"] = [not_positive(data["amount"])]
                data["amount_minor"] = money.minor
        if problems:
            raise ValidationError(problems)


def map_columns(header: list[str], mapping: dict[str, str]) -> tuple[dict[str, int], list[RowError]]:
    return imports.map_columns(header, mapping, FIELDS, REQUIRED)


def _messages(exc: ValidationError) -> dict[str, str]:
    out = {}
    for name, messages in exc.normalized_messages().items():
        items = messages if isinstance(messages, list) else [str(messages)]
        out[name] = "; ".join(str(m) for m in items).replace("Missing data for required field.", "required")
    return out


@dataclass
class Checked:
    """What reading a file found: rows that passed, every problem, the number of rows, and the debtor
    references of the rows that failed (still checked against the ledger, so that no problem goes unnamed)."""

    good: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    count: int = 0
    other_debtor_refs: list[tuple[int, str]] = field(default_factory=list)


def validate_rows(
    rows: Iterable[tuple[int, list[str]]], positions: dict[str, int], mapping: dict[str, str], today: date
) -> Checked:
    """Check every row on its own and against the others (the rows are read once).

    A payment reference used on several rows is an error on each of them, naming the others: which of the
    rows is right cannot be known, so none is posted.
    """
    schema, out = PaymentRow(today, FileFormat.of(mapping)), Checked()
    lines_of_ref: dict[str, list[int]] = {}
    column = mapping.get
    for line, cells in rows:
        out.count += 1
        if (problem := imports.row_problem(cells)) is not None:  # wider or narrower than the header
            out.errors.append(RowError(line, "row", problem))
            continue
        raw = {f: (cells[i].strip() if i < len(cells) else "") for f, i in positions.items()}
        raw = {k: v for k, v in raw.items() if v != ""}
        if raw.get("payment_ref"):
            lines_of_ref.setdefault(raw["payment_ref"], []).append(line)
        try:
            data = schema.load(raw)
        except ValidationError as exc:
            messages = _messages(exc)
            out.errors += [RowError(line, column(f, f), m) for f, m in sorted(messages.items())]
            if raw.get("debtor_ref") and "debtor_ref" not in messages:
                out.other_debtor_refs.append((line, raw["debtor_ref"]))
            continue
        data["payment_ref"], data["debtor_ref"] = data["payment_ref"].strip(), data["debtor_ref"].strip()
        out.good.append((line, data))
    repeated = {ref: lines for ref, lines in lines_of_ref.items() if len(lines) > 1}
    for ref, lines in repeated.items():
        where = ", ".join(str(n) for n in lines)
        message = f"payment {ref} appears on {len(lines)} rows ({where})"
        out.errors += [RowError(n, column("payment_ref", "payment_ref"), message) for n in lines]
    out.other_debtor_refs += [(line, d["debtor_ref"]) for line, d in out.good if d["payment_ref"] in repeated]
    out.good = [(line, d) for line, d in out.good if d["payment_ref"] not in repeated]
    return out


# --- checking rows against the ledger ---------------------------------------------------------------


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start : start + LOOKUP_CHUNK]


def _debtor_ids(session: Session, client: Client, refs: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(refs)):
        found.update(
            session.execute(
                select(Debtor.external_ref, Debtor.id).where(
                    Debtor.client_id == client.id, Debtor.external_ref.in_(chunk)
                )
            ).all()
        )
    return found


def _recorded(session: Session, client: Client, refs: set[str]) -> dict[str, Payment]:
    found: dict[str, Payment] = {}
    for chunk in _chunks(sorted(refs)):
        stmt = select(Payment).where(Payment.client_id == client.id, Payment.external_ref.in_(chunk))
        found.update((p.external_ref, p) for p in session.scalars(stmt))
    return found


# a bank line's reference is its identity in its statement (bank_lines.line_ref): recorded under it means
# this very line was recorded, whoever the debtor was found (or picked by hand) to be
STATEMENT_COMPARED = ("received_on", "currency", "amount_minor")


def _differences(row: dict[str, Any], payment: Payment, compared: Sequence[str] = COMPARED) -> list[str]:
    """What differs between a file row and the payment recorded under its reference, in words."""
    labels = {"received_on": "date", "amount_minor": "amount", "received_by": "received by"}
    out = []
    for key in compared:
        now, was = row[key], getattr(payment, key)
        if now == was or (key == "amount_minor" and row["currency"] != payment.currency):
            continue  # a different currency already says the amount differs
        if key == "debtor_id":
            out.append("another debtor")
        elif key == "amount_minor":
            out.append(
                f"amount {format_money(now, row['currency'])} here, {format_money(was, payment.currency)} recorded"
            )
        else:
            out.append(f"{labels.get(key, key)} {now or '(none)'} here, {was or '(none)'} recorded")
    return out


def _unknown_debtor(client: Client, line: int, ref: str, mapping: dict[str, str]) -> RowError:
    return RowError(
        line,
        mapping.get("debtor_ref", "debtor_ref"),
        f"no debtor of {client.code} has reference {ref} (place the debtor's invoices first, or correct the reference)",
    )


def check_against_ledger(
    session: Session,
    client: Client,
    good: list[tuple[int, dict[str, Any]]],
    mapping: dict[str, str],
    other_debtor_refs: Sequence[tuple[int, str]] = (),
    statement: bool = False,
) -> tuple[list[tuple[int, dict[str, Any]]], int, list[RowError]]:
    """Resolve debtors and find payments recorded before: (rows to post, rows already recorded, errors).
    `other_debtor_refs` (rows refused already) are only checked for an unknown debtor. The lines of a bank
    `statement` recorded before are replays when their date and amount agree (see STATEMENT_COMPARED)."""
    column = mapping.get
    debtors = _debtor_ids(session, client, {d["debtor_ref"] for _, d in good} | {r for _, r in other_debtor_refs})
    recorded = _recorded(session, client, {d["payment_ref"] for _, d in good})
    fresh, skipped = [], 0
    errors = [_unknown_debtor(client, line, ref, mapping) for line, ref in other_debtor_refs if ref not in debtors]
    for line, data in good:
        if data["debtor_ref"] not in debtors:
            errors.append(_unknown_debtor(client, line, data["debtor_ref"], mapping))
            continue
        data["debtor_id"] = debtors[data["debtor_ref"]]
        earlier = recorded.get(data["payment_ref"])
        if earlier is None:
            fresh.append((line, data))
            continue
        different = _differences(data, earlier, STATEMENT_COMPARED if statement else COMPARED)
        if not different:
            skipped += 1
        else:
            errors.append(
                RowError(
                    line,
                    column("payment_ref", "payment_ref"),
                    f"payment {data['payment_ref']} was already recorded with other details: {'; '.join(different)}",
                )
            )
    return fresh, skipped, errors


# --- posting ----------------------------------------------------------------------------------------


def _ledger_data(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "debtor_id": data["debtor_id"],
        "external_ref": data["payment_ref"],
        "received_on": data["received_on"],
        "currency": data["currency"],
        "amount_minor": data["amount_minor"],
        "method": data["method"],
        "received_by": data["received_by"],
        "reference": data["reference"],
    }


# the ledger's field names → the file's fields (for errors the ledger raises while posting)
_LEDGER_FIELDS = {"external_ref": "payment_ref", "key": "payment_ref", "debtor_id": "debtor_ref", "amount": "amount"}


def _post_rows(
    session: Session,
    client: Client,
    batch: ImportBatch,
    rows: list[tuple[int, dict[str, Any]]],
    progress: tuple[int, int],
    checkpoint: Checkpoint | None = None,
) -> tuple[int, int, list[RowError]]:
    """Record and auto-allocate the rows through the ledger's batch verbs, a chunk at a time:
    (posted, replayed, errors). A chunk the ledger refuses is reported row by row; with "post the valid
    rows" the refused rows are dropped and the rest of the chunk is posted. `checkpoint` (SQLite's
    in-process job) is called after each chunk and commits it."""
    done_before, total = progress
    posted, replayed, errors = 0, 0, []
    size = POST_CHUNK if checkpoint is None else SQLITE_POST_CHUNK
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        while chunk:
            try:
                results = record_payments(session, client, [_ledger_data(d) for _, d in chunk])
            except BatchRejected as exc:
                refused = {e.row for e in exc.errors}
                for e in exc.errors:
                    field = _LEDGER_FIELDS.get(e.field, e.field)
                    errors.append(RowError(chunk[e.row - 1][0], batch.mapping.get(field, field), e.message))
                if not batch.post_valid:
                    return posted, replayed, errors  # nothing of this file will be posted: stop here
                chunk = [row for i, row in enumerate(chunk, start=1) if i not in refused]
                continue
            fresh = [r.payment for r in results if not r.replayed]
            auto_allocate_many(session, client, fresh)
            posted += len(fresh)
            replayed += len(results) - len(fresh)
            break
        done = done_before + min(start + size, len(rows))
        imports.publish_progress(session, batch.id, batch.client_id, imports.Tally(total=total, checked=done))
        if checkpoint is not None:
            checkpoint(done, total)
    return posted, replayed, errors


def _client_today(client: Client) -> date:
    return now_utc().astimezone(ZoneInfo(client.timezone)).date()


def _finish(batch: ImportBatch, status: BatchStatus, counts: tuple[int, int, int, int], errors: list[RowError]) -> None:
    batch.total_rows, batch.processed_rows, batch.posted_rows, batch.skipped_rows = counts
    batch.status = status.value
    errors = sorted(errors, key=lambda e: (e.row, e.field))
    batch.error_count = len(errors)
    batch.errors = [{"row": e.row, "column": e.field, "message": e.message} for e in errors[:MAX_ERRORS]]
    batch.finished_at = now_utc()


@dataclass
class PaymentTable:
    """The payment rows of an upload, and how to read them."""

    header: list[str]
    rows: Iterable[tuple[int, list[str]]]
    mapping: dict[str, Any]  # the column names and file format the rows are read with
    unresolved: dict[int, str] = field(default_factory=dict)  # bank line -> why no debtor was found
    statement: dict[str, Any] = field(default_factory=dict)  # a bank statement: its format and line counts
    debit_lines: list[Any] = field(default_factory=list)  # a bank statement's debits (remittances paid out)


def payment_table(session: Session, client: Client, batch: ImportBatch, find_debtors: bool = True) -> PaymentTable:
    """A bank statement (CAMT.053, MT940) is turned into rows of the standard columns, each line's debtor
    looked up in the ledger unless `find_debtors` is false; a CSV or XLSX file is read with the batch's own
    mapping. Raises FileRejected for an unreadable file."""
    if bank_files.sniff(batch.content) is None and not batch.filename.lower().endswith(bank_files.EXTENSIONS):
        fmt, is_header = FileFormat.of(batch.mapping), imports.header_test(batch.mapping, REQUIRED)
        header, rows = read_rows(batch.filename, batch.content, fmt.decimal_mark, is_header)
        return PaymentTable(header, rows, batch.mapping)
    statement = bank_files.read_statement(batch.content)
    if find_debtors:
        _resolve_debtors(session, client, statement.lines)
    mapping = {
        **DEFAULT_MAPPING,
        **FileFormat().as_mapping(),
        "received_by_default": batch.mapping.get("received_by_default") or ReceivedBy.AGENCY.value,
        "channel": batch.mapping.get("channel") or "back_office",
    }
    unresolved = {
        line.line: (
            f"{NO_DEBTOR} ({line.currency} {line.amount} on {line.booked_on or 'no date'} "
            f"from {line.payer or 'an unnamed payer'}: "
            f"{line.remittance[:80] or 'no remittance text'!r}): it names no invoice number or debtor "
            "reference of this client and the payer's name matches no single debtor"
        )
        for line in statement.lines
        if not line.debtor_ref
    }
    rows = [
        (
            line.line,
            [
                line.payment_ref,
                line.debtor_ref,
                line.booked_on.isoformat() if line.booked_on else "",
                format(line.amount, "f"),
                line.currency,
                PaymentMethod.BANK_TRANSFER.value,
                "",
                line.remittance[:140],
            ],
        )
        for line in statement.lines
    ]
    info = {"format": statement.format, "credits": len(statement.lines), "debits": statement.debits}
    return PaymentTable(list(FIELDS), rows, mapping, unresolved, info, statement.debit_lines)


NO_DEBTOR = "no debtor found for this bank line"


def _resolve_debtors(session: Session, client: Client, lines: list[bank_files.BankLine]) -> None:
    """Find each statement line's debtor in the client's ledger (see `bank_files.resolve_debtors`)."""
    words = sorted(set().union(*(bank_files.tokens(f"{line.remittance} {line.hints}") for line in lines)))
    payers = sorted({bank_files.name_key(line.payer) for line in lines if line.payer})
    invoice_debtor: dict[str, str] = {}
    known_refs: set[str] = set()
    by_name: dict[str, str | None] = {}
    on_debtor = (Debtor.client_id == Invoice.client_id) & (Debtor.id == Invoice.debtor_id)
    for i in range(0, len(words), 5_000):
        chunk = words[i : i + 5_000]
        invoice_debtor.update(
            session.execute(
                select(Invoice.number, Debtor.external_ref)
                .join(Debtor, on_debtor)
                .where(Invoice.client_id == client.id, Invoice.number.in_(chunk))
            ).all()
        )
        known_refs.update(
            session.scalars(
                select(Debtor.external_ref).where(Debtor.client_id == client.id, Debtor.external_ref.in_(chunk))
            )
        )
    for i in range(0, len(payers), 5_000):
        name = func.replace(func.lower(Debtor.name), " ", "")
        rows = session.execute(
            select(name, Debtor.external_ref).where(Debtor.client_id == client.id, name.in_(payers[i : i + 5_000]))
        ).all()
        for name, ref in rows:
            by_name[name] = None if name in by_name else ref  # two debtors of that name: not this way
    bank_files.resolve_debtors(lines, invoice_debtor, known_refs, by_name)


def run_payment_import(session: Session, batch: ImportBatch, checkpoint: Checkpoint | None = None) -> ImportBatch:
    """Validate the whole file, then record and allocate its payments: all or none, or the valid rows.

    With a `checkpoint` (SQLite's in-process job, see `import_payments_job`) the payments are posted and
    committed a chunk at a time once the whole file was checked against the ledger. The ledger checks each
    chunk again as it posts it, so only a conflicting payment recorded by someone else meanwhile can stop
    the file: before its first chunk nothing is posted (rejected as usual); later, what was posted stays
    and the batch says so (partly posted, the refused lines named); a corrected file posts the rest."""
    client = session.get_one(Client, batch.client_id)
    try:
        table = payment_table(session, client, batch)
    except FileRejected as exc:
        _finish(batch, BatchStatus.REJECTED, (0, 0, 0, 0), [RowError(1, "file", str(exc))])
        return batch
    mapping, unresolved = table.mapping, table.unresolved
    if table.debit_lines:  # the client's approved remittances whose payment the statement shows are paid
        from clients.payouts import match_debits

        paid = match_debits(session, table.debit_lines, client.id)
        if paid:
            table.statement["remittances_paid"] = [m.run.id for m in paid]
    if table.statement:  # what the statement held, and the columns its rows were given (the report names them)
        batch.mapping = {**mapping, "bank_statement": table.statement}
    positions, errors = map_columns(table.header, mapping)
    if errors:
        _finish(batch, BatchStatus.REJECTED, (0, 0, 0, 0), errors)
        return batch
    try:
        checked = validate_rows(table.rows, positions, mapping, _client_today(client))
    except FileRejected as exc:  # the rows are read as a stream: a file can turn out unreadable halfway
        _finish(batch, BatchStatus.REJECTED, (0, 0, 0, 0), [RowError(1, "file", str(exc))])
        return batch
    total = checked.count
    errors = [  # a bank line without a debtor: say why instead of "required"
        RowError(e.row, e.field, unresolved[e.row]) if e.row in unresolved and e.field == "debtor_ref" else e
        for e in checked.errors
    ]
    good, more = _with_receiver(checked.good, mapping)
    errors += more
    fresh, skipped, more = check_against_ledger(
        session, client, good, mapping, checked.other_debtor_refs, statement=bool(table.statement)
    )
    errors += more
    if table.statement:  # a waiting line of a statement uploaded before, recorded by hand since: a replay
        errors, recorded_since = _recorded_since(session, client, table, errors)
        skipped += recorded_since
    posted = 0
    # a statement's lines whose debtor was not found do not hold back the others: they wait on the batch's
    # page for a person to find who paid (`assign_debtor`); any other problem keeps every row back by default
    waiting_only = bool(table.statement) and bool(errors) and all(e.message.startswith(NO_DEBTOR) for e in errors)
    committed = False  # chunks were committed: what was posted stays, whatever comes after
    if (batch.post_valid or not errors or waiting_only) and checkpoint is not None:
        posted, replayed, more = _post_rows(session, client, batch, fresh, (total - len(fresh), total), checkpoint)
        errors += more
        skipped += replayed
        committed = posted > 0
        waiting_only = waiting_only and not more
    elif batch.post_valid or not errors or waiting_only:
        savepoint = session.begin_nested()  # every row or none, unless the user chose "post the valid rows"
        posted, replayed, more = _post_rows(session, client, batch, fresh, (total - len(fresh), total))
        errors += more
        skipped += replayed
        if more and not batch.post_valid:
            savepoint.rollback()
            posted, waiting_only = 0, False
        else:
            savepoint.commit()
    if errors and not batch.post_valid and not waiting_only and not committed:
        _finish(batch, BatchStatus.REJECTED, (total, total, 0, 0), errors)
    else:
        status = BatchStatus.PARTIAL if errors else BatchStatus.POSTED
        _finish(batch, status, (total, total, posted, skipped), errors)
    return batch


def _recorded_since(
    session: Session, client: Client, table: PaymentTable, errors: list[RowError]
) -> tuple[list[RowError], int]:
    """Drop the "no debtor found" of bank lines whose payment is recorded already: (other errors, how many)."""
    waiting = {e.row for e in errors if e.row in table.unresolved and e.message.startswith(NO_DEBTOR)}
    if not waiting:
        return errors, 0
    at = FIELDS.index("payment_ref")
    refs = {line: cells[at] for line, cells in table.rows if line in waiting}  # a statement's rows are a list
    recorded = _recorded(session, client, set(refs.values()))
    done = {line for line, ref in refs.items() if ref in recorded}
    return [e for e in errors if not (e.row in done and e.message.startswith(NO_DEBTOR))], len(done)


def _with_receiver(
    rows: list[tuple[int, dict[str, Any]]], mapping: dict[str, str]
) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    """Fill in the default receiver; through the portal a client reports only payments made to itself."""
    default = mapping.get("received_by_default") or ReceivedBy.AGENCY.value
    portal = mapping.get("channel") == "portal"
    good, errors = [], []
    for line, data in rows:
        data["received_by"] = data.get("received_by") or default
        if portal and data["received_by"] != ReceivedBy.CLIENT.value:
            message = "only payments made to you directly can be reported here; the agency records its own receipts"
            errors.append(RowError(line, mapping.get("received_by", "received_by"), message))
        else:
            good.append((line, data))
    return good, errors


def start_payment_import(
    session: Session,
    client: Client,
    filename: str,
    content: bytes,
    mapping: dict[str, str] | None = None,
    post_valid: bool = False,
    received_by: str = ReceivedBy.AGENCY.value,
    channel: str = "back_office",
    user_id: int | None = None,
) -> ImportBatch:
    """Store the upload and queue the import job (after commit). `received_by` is the default for rows
    without one; `channel` is where the file came from ('portal' uploads report payments to the client)."""
    if received_by not in {r.value for r in ReceivedBy}:
        raise ServiceError("received by must be 'agency' or 'client'", field="received_by")
    if channel not in CHANNELS:
        raise ServiceError(f"unknown upload channel {channel!r}", field="channel")
    columns = {f: (v or f) for f, v in {**DEFAULT_MAPPING, **(mapping or {})}.items() if f in FIELDS}
    file_format = FileFormat.requested(mapping)
    batch = ImportBatch(
        client_id=client.id,
        kind=KIND,
        filename=filename[:200],
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        mapping={**columns, **file_format.as_mapping(), "received_by_default": received_by, "channel": channel},
        post_valid=post_valid,
        created_by=user_id,
        errors=[],
    )
    session.add(batch)
    session.flush()
    audit.record(
        session, "import.start", batch, after={"kind": KIND, "filename": batch.filename, "sha256": batch.sha256}
    )
    enqueue(import_payments_job, batch.id, client.id, job_id=f"import:{client.id}:{batch.id}")
    return batch


@job(queue="imports", timeout=3600, retries=0, title="Payment file import", on_settled=batch_settled, link=batch_link)
def import_payments_job(batch_id: int, client_id: int) -> str:
    with scoped(TenantScope.single(client_id), db.session):
        batch = db.session.get_one(ImportBatch, batch_id)
        if batch.kind != KIND or batch.status not in (BatchStatus.QUEUED.value, BatchStatus.RUNNING.value):
            return batch.status  # at-least-once delivery: a finished batch is never run twice
        run_payment_import(db.session, batch, _sqlite_checkpoint(batch))
        enqueue(compact_month_totals_job, client_id, job_id=f"month-totals:{client_id}")
        audit.record(
            db.session,
            "import.finish",
            batch,
            after={"status": batch.status, "posted": batch.posted_rows, "errors": batch.error_count},
        )
        db.session.flush()  # inside the tenant scope (the job's commit runs after the scope has ended)
        return batch.status


def _sqlite_checkpoint(batch: ImportBatch) -> Checkpoint | None:
    """On SQLite (one writer at a time) the job commits its work a chunk at a time, so that sign-ins and
    saves wait a fraction of a second for the write lock instead of the whole import (and never time out
    with "database is locked"). It marks the batch running first, and after each chunk publishes the
    progress with it. PostgreSQL keeps one transaction: its writers do not queue behind the import."""
    if not is_sqlite(db.session):
        return None
    batch.status = BatchStatus.RUNNING.value
    commit_chunk(db.session, read_next=True)  # the file is read and checked without holding the write lock

    def checkpoint(done: int, total: int) -> None:
        batch.total_rows, batch.processed_rows = total, done
        commit_chunk(db.session)

    return checkpoint


# --- what a batch's payments became -----------------------------------------------------------------


def batch_summary(session: Session, batch: ImportBatch) -> list[dict[str, Any]]:
    """Per currency: how many of the file's payments are recorded, their total, what is allocated and what
    is still unapplied now. Payments are not linked to their batch (no column yet), so they are found by
    the payment references the file holds; a payment the file only repeated counts too."""
    if batch.status not in (BatchStatus.POSTED.value, BatchStatus.PARTIAL.value):
        return []
    client = session.get_one(Client, batch.client_id)
    try:
        table = payment_table(session, client, batch, find_debtors=False)  # only the payment references
    except FileRejected:
        return []
    positions, problems = map_columns(table.header, table.mapping)
    if problems:
        return []
    at = positions["payment_ref"]
    refs = {cells[at].strip() for _, cells in table.rows if at < len(cells) and cells[at].strip()}
    sums: dict[str, dict[str, Any]] = {}
    for payment in _recorded(session, client, refs).values():
        s = sums.setdefault(payment.currency, {"currency": payment.currency, "count": 0, "amount": 0, "unapplied": 0})
        s["count"] += 1
        s["amount"] += payment.amount_minor
        s["unapplied"] += payment.unapplied_minor
    return [{**s, "allocated": s["amount"] - s["unapplied"]} for _, s in sorted(sums.items())]


# --- bank lines without a debtor -----------------------------------------------------------------------


@dataclass(frozen=True)
class UnidentifiedLine:
    """A credit line of a posted bank statement whose debtor the import could not find (`cells`: its row in
    the payments import's columns, FIELDS), and the payment a person recorded for it since (None while it
    waits)."""

    line: int
    cells: tuple[str, ...]
    payment: Payment | None

    def _cell(self, name: str) -> str:
        return self.cells[FIELDS.index(name)]

    @property
    def payment_ref(self) -> str:
        return self._cell("payment_ref")

    @property
    def received_on(self) -> str:
        return self._cell("received_on")

    @property
    def amount(self) -> str:
        return self._cell("amount")

    @property
    def currency(self) -> str:
        return self._cell("currency")

    @property
    def remittance(self) -> str:
        return self._cell("reference")


def _left_out(batch: ImportBatch) -> set[int]:
    """The lines of a posted (or partly posted) statement left out for want of a debtor."""
    if not batch.mapping.get("bank_statement") or batch.status not in (
        BatchStatus.POSTED.value,
        BatchStatus.PARTIAL.value,
    ):
        return set()
    return {e["row"] for e in batch.errors if str(e.get("message", "")).startswith(NO_DEBTOR)}


def _unidentified_cells(session: Session, batch: ImportBatch) -> dict[int, tuple[str, ...]]:
    """The cells of those lines (`_left_out`), by line: the statement is read again."""
    wanted = _left_out(batch)
    if not wanted:
        return {}
    table = payment_table(session, session.get_one(Client, batch.client_id), batch, find_debtors=False)
    return {line: tuple(cells) for line, cells in table.rows if line in wanted}  # a statement's columns: FIELDS


def _with_payments(
    session: Session, client: Client, cells: dict[tuple[int, int], tuple[str, ...]]
) -> dict[tuple[int, int], UnidentifiedLine]:
    """UnidentifiedLines of (batch id, line) cells, with the payments recorded for them since (one lookup)."""
    at = FIELDS.index("payment_ref")
    recorded = _recorded(session, client, {row[at] for row in cells.values()})
    return {key: UnidentifiedLine(key[1], row, recorded.get(row[at])) for key, row in sorted(cells.items())}


def unidentified_lines(session: Session, batch: ImportBatch) -> dict[int, UnidentifiedLine]:
    """The lines of a posted (or partly posted) bank statement that were left out for want of a debtor, by
    line number, each with the payment recorded for it since, if any. Empty for any other batch: a CSV row
    names its debtor, and from a rejected statement nothing was posted."""
    cells = {(batch.id, line): row for line, row in _unidentified_cells(session, batch).items()}
    client = session.get_one(Client, batch.client_id)
    return {line: found for (_, line), found in _with_payments(session, client, cells).items()}


WAITING_STATEMENTS = 20  # the latest statements with problems looked at for lines waiting for their debtor


def waiting_lines(session: Session, client: Client) -> list[tuple[ImportBatch, UnidentifiedLine]]:
    """The bank lines still waiting for a person to find who paid, in the client's latest statements with
    problems (newest first; each statement read again, so only the latest WAITING_STATEMENTS are looked at)."""
    batches = session.scalars(
        select(ImportBatch)
        .where(
            ImportBatch.client_id == client.id,
            ImportBatch.kind == KIND,
            ImportBatch.status.in_([BatchStatus.POSTED.value, BatchStatus.PARTIAL.value]),
            ImportBatch.error_count > 0,
        )
        .order_by(ImportBatch.id.desc())
        .limit(WAITING_STATEMENTS)
    ).all()
    by_id = {batch.id: batch for batch in batches}
    statements = [batch.id for batch in batches if _left_out(batch)]
    if statements:  # their files in one query (the column is deferred: one query per statement otherwise)
        session.scalars(
            select(ImportBatch).options(undefer(ImportBatch.content)).where(ImportBatch.id.in_(statements))
        ).all()
    cells = {(batch.id, line): row for batch in batches for line, row in _unidentified_cells(session, batch).items()}
    found = _with_payments(session, client, cells)
    newest_first = sorted(found.items(), key=lambda item: (-item[0][0], item[0][1]))
    return [(by_id[batch_id], line) for (batch_id, _), line in newest_first if line.payment is None]


def assign_debtor(session: Session, batch: ImportBatch, line: int, debtor: Debtor) -> Payment:
    """Record the payment of an unidentified bank line (see `unidentified_lines`) for the debtor a person
    found, with the line's own reference, date, amount and remittance text, and allocate it as the import
    would have (the invoice the text names, else oldest due first). Idempotent: the same debtor again
    returns the payment recorded the first time; another debtor once it is recorded is refused."""
    lines = unidentified_lines(session, batch)
    if line not in lines:
        raise ServiceError(f"row {line} of this statement is not a bank line waiting for its debtor", field="row")
    if debtor.client_id != batch.client_id:
        raise ServiceError(f"debtor #{debtor.id} is not a debtor of this client", field="debtor_id")
    client = session.get_one(Client, batch.client_id)
    row = list(lines[line].cells)
    row[FIELDS.index("debtor_ref")] = debtor.external_ref
    mapping = batch.mapping  # the statement's columns, as the import gave them (FIELDS)
    checked = validate_rows([(line, row)], {f: i for i, f in enumerate(FIELDS)}, mapping, _client_today(client))
    good, errors = _with_receiver(checked.good, mapping)
    fresh, _, more = check_against_ledger(session, client, good, mapping)
    errors = checked.errors + errors + more
    if not errors and fresh:
        _, _, errors = _post_rows(session, client, batch, fresh, (0, 1))
    if errors:
        raise ServiceError(f"row {line}: {errors[0].message}", field="debtor_id")
    payment = _recorded(session, client, {lines[line].payment_ref})[lines[line].payment_ref]
    if not fresh:  # recorded for this debtor before: the same answer, nothing new to audit
        return payment
    batch.posted_rows += 1  # a payment of this file, recorded by hand
    audit.record(
        session,
        "payment.assign_debtor",
        payment,
        after={"batch_id": batch.id, "row": line, "debtor_id": debtor.id, "payment_ref": payment.external_ref},
    )
    return payment


# --- cash application by hand -----------------------------------------------------------------------


class AllocationRejected(ServiceError):
    """Some lines of a manual allocation are refused; nothing was allocated. `errors` maps invoice id (or
    None for the whole form) to the reason."""

    def __init__(self, errors: dict[int | None, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def allocatable_invoices(session: Session, payment: Payment) -> list[Invoice]:
    """The debtor's open invoices in the payment's currency, in the order auto-allocation would use:
    those the payment's reference names first, then oldest due first (on-hold invoices included, shown
    as such: they cannot take money until their dispute is settled)."""
    invoices = list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.client_id == payment.client_id,
                Invoice.debtor_id == payment.debtor_id,
                Invoice.currency == payment.currency,
                Invoice.open_minor > 0,
            )
            .order_by(Invoice.due_date, Invoice.id)
        )
    )
    reference = payment.reference.lower()
    named = [inv for inv in invoices if inv.number and inv.number.lower() in reference]
    return named + [inv for inv in invoices if inv not in named]


def suggested_split(payment: Payment, invoices: list[Invoice]) -> dict[int, int]:
    """How auto-allocation would spread the unapplied money over `invoices` (in their order)."""
    left, split = payment.unapplied_minor, {}
    for inv in invoices:
        if left <= 0:
            break
        if inv.on_hold:
            continue
        split[inv.id] = min(left, inv.open_minor)
        left -= split[inv.id]
    return split


def allocation_problems(
    session: Session, client: Client, payment: Payment, amounts: dict[int, int]
) -> dict[int | None, str]:
    """What `allocate_by_hand` would refuse in these amounts (by invoice id; None for the whole), writing nothing."""
    return _check_allocation(session, client, payment, {i: m for i, m in amounts.items() if m})[1]


def _check_allocation(
    session: Session, client: Client, payment: Payment, amounts: dict[int, int]
) -> tuple[dict[int, Invoice], dict[int | None, str]]:
    if not amounts:
        return {}, {None: "enter the amount to allocate to at least one invoice"}
    session.refresh(payment)
    invoices = {
        inv.id: inv
        for inv in session.scalars(select(Invoice).where(Invoice.client_id == client.id, Invoice.id.in_(amounts)))
    }
    errors: dict[int | None, str] = {}
    for inv_id, minor in amounts.items():
        inv = invoices.get(inv_id)
        if inv is None or inv.debtor_id != payment.debtor_id or inv.currency != payment.currency:
            errors[inv_id] = "not an open invoice of this debtor in the payment's currency"
        elif minor < 0:
            errors[inv_id] = "must be a positive amount"
        elif inv.on_hold:
            errors[inv_id] = f"invoice {inv.number} is on hold (disputed)"
        elif minor > inv.open_minor:
            errors[inv_id] = f"only {format_money(inv.open_minor, inv.currency)} is open on invoice {inv.number}"
    total = sum(amounts.values())
    if total > payment.unapplied_minor:
        errors[None] = (
            f"the amounts add up to {format_money(total, payment.currency)} but only "
            f"{format_money(payment.unapplied_minor, payment.currency)} of the payment is unapplied"
        )
    return invoices, errors


def allocate_by_hand(
    session: Session, client: Client, payment: Payment, amounts: dict[int, int], on: date | None = None
) -> list[JournalTransaction]:
    """Apply one payment to several invoices of its debtor at once: every line, or none.

    Refuses (with `AllocationRejected`, before the first write) an invoice that is not an open invoice of the
    payment's debtor and currency, one on hold, an amount above an invoice's open amount, and a total above
    what is left of the payment; a refusal by the ledger after the first write undoes every line. Dated `on`,
    by default as automatic allocation dates them (the payment's receipt, or the invoice's issue if later).
    """
    if payment.client_id != client.id:
        raise ServiceError("an allocation cannot cross clients")
    amounts = {inv_id: minor for inv_id, minor in amounts.items() if minor}
    invoices, errors = _check_allocation(session, client, payment, amounts)
    if errors:
        raise AllocationRejected(errors)
    done = []
    current = None
    try:
        with session.begin_nested():
            for inv_id, minor in amounts.items():
                current = inv_id
                done.append(allocate(session, client, payment, invoices[inv_id], minor, on))
    except ServiceError as exc:
        raise AllocationRejected({current: str(exc)}) from None
    audit.record(
        session,
        "payment.allocate",
        payment,
        after={"invoices": {invoices[i].number: m for i, m in amounts.items()}, "unapplied": payment.unapplied_minor},
    )
    return done


__all__ = [
    "FIELDS",
    "AllocationRejected",
    "allocatable_invoices",
    "allocate_by_hand",
    "allocation_problems",
    "batch_summary",
    "import_payments_job",
    "run_payment_import",
    "start_payment_import",
    "suggested_split",
]
