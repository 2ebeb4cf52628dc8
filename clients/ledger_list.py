"""A client's ledger as a list: filters, statuses, sorting, totals and the CSV export, all set-based SQL.

Invoice status (exactly one per invoice, computed in SQL as of a date, normally today in the client's zone):

    on_hold      open_minor > 0 and the invoice is on hold (disputed; collection paused)
    overdue      open_minor > 0, not on hold, due date before the as-of date
    open         open_minor > 0, not on hold, not yet past due
    paid         open_minor = 0, and allocations from payments settled the largest part
    credited     open_minor = 0, and credit notes settled the largest part (or adjustments took it to zero)
    written_off  open_minor = 0, and write-offs settled the largest part

"Largest part" compares the journal entries carrying the invoice id on UNAPPLIED (payments allocated),
CREDITS (credit notes allocated) and WRITE_OFF, net of reversals; ties go to written_off, then paid. The
filter `outstanding` selects the three open statuses together.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import aliased

from clients.journal import Account, Invoice, JournalEntry
from clients.ledger_queries import bucket_of
from clients.models import Client, Debtor
from provider.core.clock import now_utc
from provider.core.money import MoneyError, current_currencies, exponent, validate_currency
from provider.extensions import db
from provider.ui import PER_PAGE_CHOICES, Page


class InvoiceStatus(StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    ON_HOLD = "on_hold"
    PAID = "paid"
    CREDITED = "credited"
    WRITTEN_OFF = "written_off"


OUTSTANDING = "outstanding"
STATUS_FILTERS = {
    OUTSTANDING: "Outstanding (open, overdue or on hold)",
    InvoiceStatus.OPEN.value: "Open, not yet due",
    InvoiceStatus.OVERDUE.value: "Overdue",
    InvoiceStatus.ON_HOLD.value: "On hold",
    InvoiceStatus.PAID.value: "Paid",
    InvoiceStatus.CREDITED.value: "Credited",
    InvoiceStatus.WRITTEN_OFF.value: "Written off",
}


def client_today(client: Client) -> date:
    """Today's date in the client's time zone (statements and "overdue" are about the client's calendar)."""
    return now_utc().astimezone(ZoneInfo(client.timezone)).date()


# --- filters ----------------------------------------------------------------------------------------


@dataclass
class LedgerFilters:
    """Parsed filter arguments. A bad value is reported in `errors` and left out (the filter is ignored)."""

    number: str = ""
    debtor: str = ""
    debtor_id: int | None = None
    status: str = ""
    currency: str = ""
    issued_from: date | None = None
    issued_to: date | None = None
    due_from: date | None = None
    due_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return any(v not in (None, "") for k, v in vars(self).items() if k != "errors")


FILTER_ARGS = (
    "number",
    "debtor",
    "debtor_id",
    "status",
    "currency",
    "issued_from",
    "issued_to",
    "due_from",
    "due_to",
    "amount_min",
    "amount_max",
)
_LABELS = {
    "issued_from": "Issued from",
    "issued_to": "Issued to",
    "due_from": "Due from",
    "due_to": "Due to",
    "amount_min": "Amount from",
    "amount_max": "Amount to",
}


def _date_arg(args: Mapping[str, str], key: str, errors: list[str]) -> date | None:
    raw = (args.get(key) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{_LABELS[key]}: “{raw}” is not a date; use YYYY-MM-DD. This filter was ignored.")
        return None


def _amount_arg(args: Mapping[str, str], key: str, errors: list[str]) -> Decimal | None:
    raw = (args.get(key) or "").strip()
    if not raw:
        return None
    plain = raw.replace(",", "").replace(" ", "").replace("_", "")
    try:  # digits and one decimal point, 15 digits at most: no exponent, NaN or amount no ledger can hold
        value = Decimal(plain) if re.fullmatch(r"-?\d{1,15}(\.\d{0,3})?", plain, flags=re.ASCII) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        errors.append(f"{_LABELS[key]}: “{raw}” is not an amount; write it like 1250.50. This filter was ignored.")
        return None
    if value < 0:
        errors.append(f"{_LABELS[key]}: amounts are never negative. This filter was ignored.")
        return None
    return value


def _range(low: Any, high: Any, what: str, errors: list[str]) -> tuple[Any, Any]:
    if low is not None and high is not None and low > high:
        errors.append(f"{what}: “{low}” is more than “{high}”. This range was ignored.")
        return None, None
    return low, high


def parse_filters(args: Mapping[str, str]) -> LedgerFilters:
    """Read the filter arguments of a ledger URL; never raises, every problem becomes a message."""
    errors: list[str] = []
    status = (args.get("status") or "").strip()
    if status and status not in STATUS_FILTERS:
        errors.append(f"Status: “{status}” is not a status. This filter was ignored.")
        status = ""
    currency = (args.get("currency") or "").strip().upper()
    if currency:
        try:
            currency = validate_currency(currency)
        except MoneyError:
            errors.append(f"Currency: “{currency}” is not an ISO 4217 currency code. This filter was ignored.")
            currency = ""
    debtor_id = None
    if (raw_id := (args.get("debtor_id") or "").strip()) and raw_id.isdigit():
        debtor_id = int(raw_id)
    elif raw_id:
        errors.append(f"Debtor: “{raw_id}” is not a debtor number. This filter was ignored.")
    issued = _range(_date_arg(args, "issued_from", errors), _date_arg(args, "issued_to", errors), "Issue date", errors)
    due = _range(_date_arg(args, "due_from", errors), _date_arg(args, "due_to", errors), "Due date", errors)
    amounts = _range(_amount_arg(args, "amount_min", errors), _amount_arg(args, "amount_max", errors), "Amount", errors)
    return LedgerFilters(
        number=(args.get("number") or "").strip()[:64],
        debtor=(args.get("debtor") or "").strip()[:200],
        debtor_id=debtor_id,
        status=status,
        currency=currency,
        issued_from=issued[0],
        issued_to=issued[1],
        due_from=due[0],
        due_to=due[1],
        amount_min=amounts[0],
        amount_max=amounts[1],
        errors=errors,
    )


# --- SQL expressions --------------------------------------------------------------------------------

invoice_amount = Invoice.amount_minor + Invoice.adjusted_minor  # what the invoice is for now (original + adjustments)


def closed_status_expression() -> Any:
    """Correlated subquery: how a closed invoice was settled (paid / credited / written_off), per the journal."""
    entry = aliased(JournalEntry)

    def settled(account: Account) -> Any:
        return func.coalesce(func.sum(case((entry.account == account.value, entry.amount_minor), else_=0)), 0)

    paid, credited, written_off = settled(Account.UNAPPLIED), settled(Account.CREDITS), settled(Account.WRITE_OFF)
    return (
        select(
            case(
                (and_(written_off > 0, written_off >= paid, written_off >= credited), InvoiceStatus.WRITTEN_OFF.value),
                (and_(paid > 0, paid >= credited), InvoiceStatus.PAID.value),
                else_=InvoiceStatus.CREDITED.value,
            )
        )
        .where(
            entry.client_id == Invoice.client_id,
            entry.invoice_id == Invoice.id,
            entry.account.in_([Account.UNAPPLIED.value, Account.CREDITS.value, Account.WRITE_OFF.value]),
        )
        .scalar_subquery()
    )


def status_expression(as_of: date) -> Any:
    """SQL CASE giving each invoice its `InvoiceStatus` as of a date (see the module docstring)."""
    is_open = Invoice.open_minor > 0
    return case(
        (and_(is_open, Invoice.on_hold.is_(True)), InvoiceStatus.ON_HOLD.value),
        (and_(is_open, Invoice.due_date < as_of), InvoiceStatus.OVERDUE.value),
        (is_open, InvoiceStatus.OPEN.value),
        else_=closed_status_expression(),
    )


def _status_condition(status: str, as_of: date) -> ColumnElement[bool]:
    is_open = Invoice.open_minor > 0
    not_held = Invoice.on_hold.is_(False)
    if status == OUTSTANDING:
        return is_open
    if status == InvoiceStatus.ON_HOLD:
        return and_(is_open, Invoice.on_hold.is_(True))
    if status == InvoiceStatus.OVERDUE:
        return and_(is_open, not_held, Invoice.due_date < as_of)
    if status == InvoiceStatus.OPEN:
        return and_(is_open, not_held, Invoice.due_date >= as_of)
    return and_(Invoice.open_minor == 0, closed_status_expression() == status)


@cache
def _currencies_by_exponent() -> dict[int, tuple[str, ...]]:
    groups: dict[int, list[str]] = {}
    for code in sorted(current_currencies()):
        try:
            groups.setdefault(exponent(code), []).append(code)
        except MoneyError:
            continue
    return {e: tuple(codes) for e, codes in groups.items()}


def _amount_condition(value: Decimal, at_least: bool, currency: str) -> ColumnElement[bool]:
    """invoice_amount >= value (or <=), the major-unit value scaled by each currency's ISO 4217 exponent.

    A bound finer than the currency's minor unit rounds inwards (JPY >= 10.5 means >= 11), which is exact.
    """

    def bound(exp: int) -> int:
        return int(value.scaleb(exp).to_integral_value(ROUND_CEILING if at_least else ROUND_FLOOR))

    def compare(exp: int) -> ColumnElement[bool]:
        return invoice_amount >= bound(exp) if at_least else invoice_amount <= bound(exp)

    if currency:
        return compare(exponent(currency))
    groups = _currencies_by_exponent()
    others = [code for exp, codes in groups.items() if exp != 2 for code in codes]
    parts = [and_(Invoice.currency.in_(codes), compare(exp)) for exp, codes in groups.items() if exp != 2]
    parts.append(and_(Invoice.currency.not_in(others), compare(2)))
    return or_(*parts)


def _conditions(client_id: int, filters: LedgerFilters, as_of: date) -> tuple[list[Any], bool]:
    """The WHERE clauses of a filtered ledger, and whether they need the debtors table joined."""
    where: list[Any] = [Invoice.client_id == client_id]
    needs_debtor = False
    if filters.number:
        where.append(func.lower(Invoice.number).contains(filters.number.lower(), autoescape=True))
    if filters.debtor:
        needs_debtor = True
        text = filters.debtor.lower()
        where.append(
            or_(
                func.lower(Debtor.name).contains(text, autoescape=True),
                func.lower(Debtor.external_ref).contains(text, autoescape=True),
            )
        )
    if filters.debtor_id is not None:
        where.append(Invoice.debtor_id == filters.debtor_id)
    if filters.status:
        where.append(_status_condition(filters.status, as_of))
    if filters.currency:
        where.append(Invoice.currency == filters.currency)
    for column, low, high in (
        (Invoice.issue_date, filters.issued_from, filters.issued_to),
        (Invoice.due_date, filters.due_from, filters.due_to),
    ):
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    if filters.amount_min is not None:
        where.append(_amount_condition(filters.amount_min, True, filters.currency))
    if filters.amount_max is not None:
        where.append(_amount_condition(filters.amount_max, False, filters.currency))
    return where, needs_debtor


def _debtor_join() -> Any:
    return and_(Debtor.client_id == Invoice.client_id, Debtor.id == Invoice.debtor_id)


# --- the list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerTotal:
    currency: str
    count: int
    amount: int
    open: int


def ledger_totals(client_id: int, filters: LedgerFilters, as_of: date) -> list[LedgerTotal]:
    """Count, amount and open of the filtered invoices per currency, in one grouped query."""
    where, needs_debtor = _conditions(client_id, filters, as_of)
    stmt = select(Invoice.currency, func.count(), func.sum(invoice_amount), func.sum(Invoice.open_minor))
    if needs_debtor:
        stmt = stmt.join(Debtor, _debtor_join())
    rows = db.session.execute(stmt.where(*where).group_by(Invoice.currency).order_by(Invoice.currency))
    return [LedgerTotal(c, int(n), int(a or 0), int(o or 0)) for c, n, a, o in rows]


def _overdue_key(as_of: date) -> Any:
    """Sorts like days overdue, descending: the due date of a past-due open invoice, else the as-of date."""
    return case((and_(Invoice.open_minor > 0, Invoice.due_date < as_of), Invoice.due_date), else_=literal(as_of, Date))


def _sort_columns(as_of: date) -> dict[str, tuple[Any, bool]]:
    """Sort key -> (column, inverted). `overdue` is inverted: more days overdue is an earlier due date."""
    return {
        "number": (Invoice.number, False),
        "debtor": (Debtor.name, False),
        "issued": (Invoice.issue_date, False),
        "due": (Invoice.due_date, False),
        "amount": (invoice_amount, False),
        "open": (Invoice.open_minor, False),
        "overdue": (_overdue_key(as_of), True),
    }


DEFAULT_SORT = ("issued", "desc")


def ledger_select(client_id: int, filters: LedgerFilters, as_of: date, sort: str, direction: str) -> Select[Any]:
    """The rows of the filtered ledger in a total order (ties broken by invoice id, in the same direction)."""
    where, _ = _conditions(client_id, filters, as_of)
    columns = _sort_columns(as_of)
    if sort not in columns:
        sort, direction = DEFAULT_SORT
    column, inverted = columns[sort]
    descending = (direction == "desc") != inverted
    tiebreak_desc = direction == "desc"
    return (
        select(
            Invoice.id,
            Invoice.number,
            Invoice.debtor_id,
            Debtor.name.label("debtor_name"),
            Debtor.external_ref.label("debtor_ref"),
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.currency,
            Invoice.amount_minor,
            invoice_amount.label("amount"),
            Invoice.open_minor,
            Invoice.on_hold,
            Invoice.po_reference,
            status_expression(as_of).label("status"),
        )
        .join(Debtor, _debtor_join())
        .where(*where)
        .order_by(column.desc() if descending else column.asc(), Invoice.id.desc() if tiebreak_desc else Invoice.id)
    )


@dataclass(frozen=True)
class LedgerLine:
    """One invoice of the ledger list, with what is derived from the as-of date."""

    row: Any
    days_overdue: int
    bucket: str | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)


def ledger_line(row: Any, as_of: date) -> LedgerLine:
    overdue = (as_of - row.due_date).days if row.open_minor > 0 else 0
    return LedgerLine(row, max(overdue, 0), bucket_of(row.due_date, as_of) if row.open_minor > 0 else None)


def ledger_page(
    client_id: int, filters: LedgerFilters, as_of: date, args: Mapping[str, Any], default_per_page: int = 50
) -> tuple[Page, list[LedgerTotal]]:
    """One page of the filtered ledger and the totals of the whole filtered set: two queries, any page size."""
    per_page = _int(args.get("per_page"), default_per_page)
    if per_page not in PER_PAGE_CHOICES:
        per_page = default_per_page
    page = max(_int(args.get("page"), 1), 1)
    totals = ledger_totals(client_id, filters, as_of)
    count = sum(t.count for t in totals)
    items: list[LedgerLine] = []
    if count > (page - 1) * per_page:
        stmt = ledger_select(client_id, filters, as_of, args.get("sort", ""), args.get("dir", "asc"))
        rows = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page))
        items = [ledger_line(row, as_of) for row in rows]
    return Page(items=items, page=page, per_page=per_page, total=count), totals


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# --- CSV export -------------------------------------------------------------------------------------

CSV_HEADER = (
    "invoice_number",
    "debtor_ref",
    "debtor_name",
    "issue_date",
    "due_date",
    "currency",
    "original_amount",
    "amount",
    "open_amount",
    "status",
    "on_hold",
    "days_overdue",
    "aging_bucket",
    "po_reference",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 1000


def safe_cell(text: str) -> str:
    """Neutralise spreadsheet formula injection (OWASP): a leading ' before = + - @ tab or carriage return.

    Applied to every text cell that comes from data (numbers, names, references). The numeric and date
    cells this module formats itself from integers and dates are not passed through it: they cannot carry
    a formula, and a negative amount must stay a number.
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


def major_units(minor: int, currency: str) -> str:
    """Minor units as a plain decimal string in major units: 123456 USD -> '1234.56', -5 KWD -> '-0.005'."""
    exp = exponent(currency)
    return f"{Decimal(int(minor)).scaleb(-exp):.{exp}f}"


def _csv_record(line: LedgerLine) -> list[str]:
    row = line.row
    return [
        safe_cell(row.number),
        safe_cell(row.debtor_ref),
        safe_cell(row.debtor_name),
        row.issue_date.isoformat(),
        row.due_date.isoformat(),
        row.currency,
        major_units(row.amount_minor, row.currency),
        major_units(row.amount, row.currency),
        major_units(row.open_minor, row.currency),
        safe_cell(row.status or ""),
        "yes" if row.on_hold else "no",
        str(line.days_overdue),
        line.bucket or "",
        safe_cell(row.po_reference or ""),
    ]


def export_rows(client_id: int, filters: LedgerFilters, as_of: date, sort: str, direction: str) -> Iterator[str]:
    """The filtered ledger as CSV text chunks: a BOM, the header, then rows fetched CHUNK at a time
    (a server-side cursor on PostgreSQL), so memory stays flat however long the ledger is."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    yield "\ufeff" + buffer.getvalue()
    stmt = ledger_select(client_id, filters, as_of, sort, direction).execution_options(yield_per=CHUNK)
    for partition in db.session.execute(stmt).partitions():
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_csv_record(ledger_line(row, as_of)) for row in partition)
        yield buffer.getvalue()
