"""How a placement file is read: the columns of each field, fixed values, payment terms, line-level files.

A *plan* is made once per file from its header and the batch's mapping (the client's saved choices):

- the columns come from an export preset (`clients.export_presets`, chosen or detected from the header) or
  from the column names the client gave; a field may instead have a fixed value for every row (`const_<field>`,
  e.g. the currency or the debtor), used where the file has no column or an empty cell for it;
- the due date may come from the client's payment terms (`due_days`): issue date + that many days, where the
  file has no due date;
- an open balance is read where the export has one: the `balance` column, else `amount` - `paid`; `tax` is
  added to the amount (net + tax exports); an invoice whose open balance is zero is left out as paid;
- line-level files (`lines`: "sum" adds the lines' amounts, "same" expects each line to repeat the invoice's
  total) become one invoice per number; lines that disagree on the debtor, currency or dates are a problem
  on the line that disagrees, and that invoice is not placed.

What cannot be read is said once, precisely: a column the file does not have is named with the header's own
columns beside it; a row's problems name its row, column and reason. Nothing is guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from marshmallow import ValidationError

from clients.export_presets import LINE_MODES, PRESETS, Preset, Rule, column_key, columns_in, detect
from clients.file_formats import DATE_FORMATS, FileFormat
from clients.ledger import RowError
from clients.placement_stage import StageRow
from provider.core.money import format_money

FIELDS = ("invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency", "po_reference")
EXTRA_FIELDS = ("paid", "balance", "tax")  # read only where mapped (a preset, or a column name given)
REQUIRED = ("invoice_number", "debtor_ref", "issue_date", "due_date", "amount", "currency")
CONSTANT_FIELDS = ("debtor_ref", "debtor_name", "currency", "po_reference")
MAX_TERMS_DAYS = 365
WHAT = {  # a field as the messages name it
    "invoice_number": "invoice number",
    "debtor_ref": "debtor reference",
    "debtor_name": "debtor name",
    "issue_date": "issue date",
    "due_date": "due date",
    "amount": "amount",
    "currency": "currency",
    "po_reference": "PO reference",
    "paid": "amount paid",
    "balance": "open balance",
    "tax": "tax amount",
}


def due_days_of(mapping: dict[str, Any]) -> int | None:
    text = str(mapping.get("due_days") or "").strip()
    return int(text) if text.isdigit() and int(text) <= MAX_TERMS_DAYS else None


def options_problems(mapping: dict[str, Any]) -> list[str]:
    """What is wrong with the reading options of an upload form (empty: nothing)."""
    problems = []
    preset = str(mapping.get("preset") or "auto")
    if preset not in ("auto", "none") and preset not in PRESETS:
        problems.append("export preset: choose one from the list")
    days = str(mapping.get("due_days") or "").strip()
    if days and due_days_of(mapping) is None:
        problems.append(f"payment terms: a whole number of days from 0 to {MAX_TERMS_DAYS}, not {days!r}")
    if str(mapping.get("lines") or "auto") not in ("auto", *LINE_MODES):
        problems.append("rows per invoice: choose one of the options")
    return problems


@dataclass
class Plan:
    """Where each field is read from, and how (see the module's docstring)."""

    header_row: int
    preset: Preset | None
    positions: dict[str, int]
    names: dict[str, str]  # field -> the column it is read from (or what the problems call it)
    constants: dict[str, str]
    due_days: int | None
    lines: str
    rules: list[tuple[int, Rule]]
    file_format: FileFormat
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def simple(self) -> bool:
        """One row per invoice, every field from its own column: the import's fast row checker reads it."""
        return (
            self.preset is None
            and not self.constants
            and self.due_days is None
            and not self.lines
            and not any(f in self.positions for f in EXTRA_FIELDS)
        )

    def column(self, field_name: str) -> str:
        """The column a field is read from, as the file names it (a fixed value: the field in words)."""
        return self.names.get(field_name) or WHAT.get(field_name, field_name)

    def read_as(self) -> dict[str, Any]:
        """What the batch keeps of the plan, for its page: the preset and the columns used."""
        return {
            "preset": self.preset.key if self.preset else "",
            "preset_label": self.preset.label if self.preset else "",
            "columns": {f: self.names[f] for f in self.positions},
            "constants": self.constants,
            "due_days": self.due_days,
            "lines": self.lines,
            "date_format": self.file_format.date_format,
            "notes": self.notes,
        }


def _chosen_preset(mapping: dict[str, Any], header: list[str]) -> Preset | None:
    key = str(mapping.get("preset") or "auto")
    if key == "auto":
        return detect(header)
    return PRESETS.get(key)


def _names(preset: Preset | None, mapping: dict[str, Any], header: list[str]) -> dict[str, str]:
    if preset is not None:
        return {f: n for f, n in columns_in(preset, header).items() if n}
    names = {f: str(mapping.get(f) or f).strip() for f in FIELDS}
    names.update({f: str(mapping[f]).strip() for f in EXTRA_FIELDS if str(mapping.get(f) or "").strip()})
    return names


def make_plan(header: list[str], mapping: dict[str, Any], base_currency: str, header_row: int = 1) -> Plan:
    """The plan for a file with this header (the errors say what is missing; nothing is read then)."""
    preset = _chosen_preset(mapping, header)
    names = _names(preset, mapping, header)
    constants = {
        f: str(mapping.get(f"const_{f}") or "").strip()
        for f in CONSTANT_FIELDS
        if str(mapping.get(f"const_{f}") or "").strip()
    }
    notes: list[str] = []
    if preset is not None:
        how = "chosen" if mapping.get("preset") == preset.key else "recognised from the header"
        notes.append(f"Read as {preset.label} ({how}).")
        if preset.notes:
            notes.append(preset.notes)
    has_currency = any(column_key(h) == column_key(names.get("currency", "")) for h in header if h.strip())
    if preset is not None and preset.currency_from_client and "currency" not in constants and not has_currency:
        constants["currency"] = base_currency
        notes.append(f"The export has no currency column: amounts are read in {base_currency}, the client's currency.")
    date_format = str(mapping.get("date_format") or "")
    if preset is not None and date_format in ("", "iso"):  # ISO dates are read in any format: "iso" adds nothing
        date_format = preset.date_format
    date_format = date_format or "iso"
    decimal_mark = str(mapping.get("decimal_mark") or "") or (preset.decimal_mark if preset else ".")
    lines = str(mapping.get("lines") or "auto")
    lines = (preset.lines if preset else "") if lines == "auto" else lines
    plan = Plan(
        header_row=header_row,
        preset=preset,
        positions={},
        names=names,
        constants=constants,
        due_days=due_days_of(mapping),
        lines=lines,
        rules=[],
        file_format=FileFormat(date_format if date_format in DATE_FORMATS else "iso", decimal_mark),
        notes=notes,
    )
    if lines:
        notes.append(f"Rows per invoice: {LINE_MODES[lines]}.")
    has_due = any(column_key(h) == column_key(names.get("due_date", "")) for h in header if h.strip())
    if preset is not None and not has_due and plan.due_days is None:
        plan.due_days = 0  # the product's export has no due dates: due on receipt, unless terms are given
        notes.append(
            "This export has no due dates and no payment terms were given: each invoice is due on its issue "
            "date (due on receipt). Give the client's payment terms in days to date them."
        )
    elif plan.due_days is not None:
        notes.append(f"Where the file has no due date: the issue date + {plan.due_days} days (payment terms).")
    _locate(plan, header)
    if preset is not None:
        where = {column_key(h): i for i, h in enumerate(header) if h.strip()}
        plan.rules = [(where[column_key(r.column)], r) for r in preset.rules if column_key(r.column) in where]
    return plan


def _locate(plan: Plan, header: list[str]) -> None:
    """Find each field's column; a required field with no column, fixed value or rule is one problem, named
    once with the columns the header does have."""
    at: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        if h.strip():
            at.setdefault(column_key(h), []).append(i)
    for field_name in (*FIELDS, *EXTRA_FIELDS):
        name = plan.names.get(field_name, "")
        found = at.get(column_key(name), []) if name else []
        if len(found) > 1:
            where = " and ".join(str(i + 1) for i in found)
            plan.errors.append(
                RowError(plan.header_row, name, f"column {name!r} appears twice (columns {where}); rename one of them")
            )
        elif found:
            plan.positions[field_name] = found[0]
        elif field_name in REQUIRED and not _supplied(plan, field_name):
            what = WHAT.get(field_name, field_name)
            plan.errors.append(RowError(plan.header_row, name or what, _missing(plan, field_name, name, header)))


def _supplied(plan: Plan, field_name: str) -> bool:
    return field_name in plan.constants or (field_name == "due_date" and plan.due_days is not None)


def _missing(plan: Plan, field_name: str, name: str, header: list[str]) -> str:
    shown = ", ".join(h for h in header if h.strip())
    if len(shown) > 300:
        shown = shown[:300] + "…"
    what = WHAT.get(field_name, field_name)
    if name:
        text = f"column missing: no column {name!r} for the {what} (the header, row {plan.header_row}, has: {shown})"
    else:
        text = f"column missing: this export has no {what} column (the header, row {plan.header_row}, has: {shown})"
    if field_name == "due_date":
        return text + "; name the due date column, or give the client's payment terms in days"
    if field_name in CONSTANT_FIELDS:
        return text + f"; name the column, or give a fixed {what} for every row"
    return text + "; name the column that holds it"


# --- reading rows ---------------------------------------------------------------------------------------


@dataclass
class ReadRow:
    """One row read under a plan, before lines are added up and the open balance is worked out."""

    line: int
    number: str
    debtor_ref: str
    debtor_name: str
    issue_date: date
    due_date: date
    currency: str
    amount_minor: int
    paid_minor: int | None
    balance_minor: int | None
    po_reference: str
    payment: bool = False


@dataclass
class LeftOut:
    reason: str


def row_values(plan: Plan, cells: list[str]) -> dict[str, str]:
    """The row's text per field: its column's cell, else the fixed value (empty cells are absent)."""
    raw = {f: (cells[i].strip() if i < len(cells) else "") for f, i in plan.positions.items()}
    for f, value in plan.constants.items():
        if not raw.get(f):
            raw[f] = value
    return {k: v for k, v in raw.items() if v != ""}


def classify(plan: Plan, cells: list[str]) -> tuple[str, str]:
    """("", "") for an invoice row; else what the preset's rules make of it: ("leave_out"|"refuse"|"payment",
    why)."""
    payment = ""
    for i, r in plan.rules:
        value = cells[i] if i < len(cells) else ""
        if r.action == "only" and not r.matches(value):
            return "leave_out", r.reason
        if r.action in ("leave_out", "refuse") and r.matches(value):
            return r.action, r.reason
        if r.action == "payment" and r.matches(value):
            payment = r.reason
    return ("payment", payment) if payment else ("", "")


def read_row(plan: Plan, schema: Any, line: int, cells: list[str]) -> ReadRow | LeftOut | list[RowError]:
    """A row read under the plan: its values, why it is left out, or its problems."""
    kind, why = classify(plan, cells)
    if kind == "leave_out":
        return LeftOut(why)
    if kind == "refuse":
        number = cells[plan.positions["invoice_number"]] if "invoice_number" in plan.positions else ""
        return [RowError(line, plan.column("invoice_number"), f"invoice {number.strip()} {why}")]
    try:
        data = schema.load(row_values(plan, cells))
    except ValidationError as exc:
        errors = []
        for name, messages in sorted(exc.normalized_messages().items()):
            text = "; ".join(messages if isinstance(messages, list) else [str(messages)])
            errors.append(
                RowError(line, plan.column(name), text.replace("Missing data for required field.", "required"))
            )
        return errors
    issue = data["issue_date"]
    due = data.get("due_date") or issue + timedelta(days=plan.due_days or 0)
    return ReadRow(
        line,
        data["invoice_number"].strip(),
        data["debtor_ref"].strip(),
        (data.get("debtor_name") or "").strip()[:200],
        issue,
        due,
        data["currency"],
        data["amount_minor"] + data.get("tax_minor", 0),
        data.get("paid_minor"),
        data.get("balance_minor"),
        (data.get("po_reference") or "").strip(),
        payment=kind == "payment",
    )


def settle(plan: Plan, row: ReadRow) -> StageRow | LeftOut | RowError:
    """The invoice a row (or an invoice's lines added up) places: its open balance, checked."""
    money = lambda minor: format_money(minor, row.currency)  # noqa: E731
    paid = row.paid_minor or 0
    open_minor = row.balance_minor if row.balance_minor is not None else row.amount_minor - paid
    if row.paid_minor is not None and row.paid_minor > row.amount_minor and row.balance_minor is None:
        message = (
            f"invoice {row.number}: paid {money(row.paid_minor)} is more than its amount {money(row.amount_minor)}"
        )
        return RowError(row.line, plan.column("paid" if "paid" in plan.positions else "amount"), message)
    if open_minor == 0 and (row.paid_minor is not None or row.balance_minor is not None or plan.lines):
        return LeftOut("paid in full" if row.amount_minor else "nothing to collect (zero)")
    if open_minor <= 0:
        where = "balance" if row.balance_minor is not None else "amount"
        what = money(open_minor)
        return RowError(
            row.line,
            plan.column(where),
            f"invoice {row.number}: must be a positive amount, not {what} (a credit? credits are not imported here)",
        )
    if row.due_date < row.issue_date:
        return RowError(
            row.line, plan.column("due_date"), f"due date {row.due_date} is before the issue date {row.issue_date}"
        )
    return StageRow(
        row.line,
        row.number,
        row.debtor_ref,
        row.debtor_name,
        row.issue_date,
        row.due_date,
        row.currency,
        open_minor,
        row.po_reference,
    )


# --- line-level files -------------------------------------------------------------------------------------

_COMPARED = (
    ("debtor_ref", "debtor_ref", "debtor"),
    ("currency", "currency", "currency"),
    ("issue_date", "issue_date", "issue date"),
    ("due_date", "due_date", "due date"),
)
_TOTALS = (("amount_minor", "amount", "total"), ("paid_minor", "paid", "paid"), ("balance_minor", "balance", "balance"))


@dataclass
class Invoice:
    first: ReadRow | None = None
    payments: list[ReadRow] = field(default_factory=list)
    bad: bool = False


class LineGroups:
    """The lines of each invoice of a line-level file, added up (or checked to repeat the invoice's total)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.invoices: dict[str, Invoice] = {}

    @staticmethod
    def invoice() -> Invoice:
        return Invoice()

    def add(self, row: ReadRow) -> RowError | None:
        inv = self.invoices.setdefault(row.number, Invoice())
        if row.payment:
            inv.payments.append(row)
            return self._differs(inv.first, row, _COMPARED[:2]) if inv.first else None
        if inv.first is None:
            inv.first = replace(row)
            return None
        compared = _COMPARED + (_TOTALS if self.plan.lines == "same" else _TOTALS[1:])
        problem = self._differs(inv.first, row, compared)
        if problem is not None:
            inv.bad = True
            return problem
        if self.plan.lines == "sum":
            inv.first.amount_minor += row.amount_minor
        return None

    def _differs(self, first: ReadRow, row: ReadRow, compared: tuple[tuple[str, str, str], ...]) -> RowError | None:
        for attr, field_name, what in compared:
            here, there = getattr(row, attr), getattr(first, attr)
            if here != there:
                if attr.endswith("_minor"):
                    here = "none" if here is None else format_money(here, row.currency)
                    there = "none" if there is None else format_money(there, first.currency)
                return RowError(
                    row.line,
                    self.plan.column(field_name),
                    f"invoice {row.number}: {what} {here} on this line, {there} on its line in row {first.line}; "
                    "the lines of one invoice must agree",
                )
        return None

    def settled(self, left_out: Counter[str]) -> tuple[list[StageRow], list[RowError]]:
        rows, errors = [], []
        for number, inv in self.invoices.items():
            if inv.bad:
                continue
            if inv.first is None:
                line = inv.payments[0].line
                errors.append(
                    RowError(
                        line, self.plan.column("invoice_number"), f"only payments of invoice {number} are in the file"
                    )
                )
                continue
            total = inv.first
            if inv.payments:  # payment lines (negative) are what was paid of it
                paid = (inv.first.paid_minor or 0) - sum(p.amount_minor for p in inv.payments)
                total = replace(inv.first, paid_minor=paid)
            outcome = settle(self.plan, total)
            if isinstance(outcome, StageRow):
                rows.append(outcome)
            elif isinstance(outcome, LeftOut):
                left_out[outcome.reason] += 1
            else:
                errors.append(outcome)
        rows.sort(key=lambda r: r.line)
        return rows, errors
