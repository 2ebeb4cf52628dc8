"""Marshmallow schemas of the API (the OpenAPI document is generated from them).

Money is `amount_minor` (an integer in the currency's minor unit: cents, yen, fils) plus `currency`
(ISO 4217); responses add `amount`, the same value as a decimal string with the currency's exponent
("1234.50" EUR, "1234" JPY, "1.234" KWD). Requests take `amount_minor` only: no floats anywhere.
The debtor schema is the one the back office's forms validate with (clients.schemas.DebtorSchema).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema
from marshmallow.utils import missing as missing_

from clients.journal import PaymentMethod, ReceivedBy
from clients.ledger_queries import BUCKETS
from clients.schemas import DebtorSchema
from provider.api.models import EventType
from provider.api.problems import Rule
from provider.core.money import MAX_MINOR, exponent
from provider.core.validation import Trimmed, Upper, check_currency, timezone_choices

MAX_AMOUNT = MAX_MINOR  # 15 digits, the cap of every file format too (provider.core.money)
MAX_ID = 2**53  # JSON-safe integers
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
EARLIEST_MOMENT, LATEST_MOMENT = datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, tzinfo=UTC)
BATCH_LIMIT = 1_000
PERIOD = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


def _clean_text(value: str | None) -> None:
    if value is None:
        return
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("must be valid Unicode text") from None


NO_NUL = r"^[^\x00]*$"
# Whitespace as Python's str.strip() sees it, spelled out (`\s` differs between regex engines: \x1c-\x1f)
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
NOT_BLANK = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"  # a character that is not whitespace (left once trimmed)


class Text(Trimmed):
    """A trimmed string without NUL or lone surrogates (PostgreSQL refuses both); blank is "" (not None,
    which the length validators would choke on).

    The document states exactly what is accepted: a pattern without NUL (and with a non-blank character when the
    field is required or has a minimum length: blank counts as not sent), and the length limits apply to the
    text as sent as well as trimmed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lengths = [v for v in self.validators if isinstance(v, validate.Length)]
        self.max_sent = min((v.max for v in lengths if v.max is not None), default=None)
        if "pattern" not in self.metadata and not any(isinstance(v, validate.Regexp) for v in self.validators):
            non_blank = self.required or any((v.min or 0) >= 1 or (v.equal or 0) >= 1 for v in lengths)
            self.metadata = {**self.metadata, "pattern": NOT_BLANK if non_blank else NO_NUL}

    def deserialize(self, value, attr=None, data=None, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(value, str) and self.max_sent is not None and len(value) > self.max_sent:
            raise ValidationError(f"Longer than maximum length {self.max_sent}.")
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        _clean_text(text)
        return text or ""


class Code(Upper):
    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        _clean_text(text)
        return text


class Whole(fields.Integer):
    """A JSON integer. JSON Schema's `integer` includes numbers written with a zero fraction (`42.0`): those are
    taken as the integer (exact: every bound here is at most 2^53); other fractions, strings and booleans are not."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(strict=True, **kw)

    def _validated(self, value: Any) -> int:
        if type(value) is float and value.is_integer():
            value = int(value)
        return super()._validated(value)


def Id(**kw: Any) -> fields.Integer:
    return Whole(validate=validate.Range(min=1, max=MAX_ID), **kw)


def QueryId(**kw: Any) -> fields.Integer:
    """An id in a query string (text there, so not `strict`: "42" is 42, "4.2" and "x" are refused)."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kw)


def Amount(**kw: Any) -> fields.Integer:
    return Whole(validate=validate.Range(min=1, max=MAX_AMOUNT), **kw)


DAY_PATTERN = r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"  # 1900-01-01 .. 2999-12-31


def Day(**kw: Any) -> fields.Date:
    """A date the ledger holds; the document states the range as a pattern (JSON Schema has no date bounds)."""
    metadata = {"pattern": DAY_PATTERN, **kw.pop("metadata", {})}
    return fields.Date(validate=validate.Range(min=EARLIEST, max=LATEST), metadata=metadata, **kw)


def Currency(**kw: Any) -> Code:
    """An ISO 4217 code on the current list; the document lists them (lower case and spaces are accepted too)."""
    from provider.core.money import _minor_units

    metadata = {"enum": sorted(_minor_units()), **kw.pop("metadata", {})}
    return Code(validate=check_currency, metadata=metadata, **kw)


@lru_cache(maxsize=1)
def zone_names() -> list[str]:
    """The IANA zones offered (the back office's list: Region/City, no legacy aliases) and UTC."""
    return sorted({*timezone_choices(), "UTC"})


def TimeZone(**kw: Any) -> fields.String:
    """An IANA time zone, null or "" (the client's); the document lists the zones."""
    return fields.String(
        allow_none=True,
        validate=validate.OneOf(["", *zone_names()], error="not an IANA time zone (e.g. Europe/Berlin)"),
        **kw,
    )


@lru_cache(maxsize=512)
def _places(currency: str) -> int:
    return exponent(currency)


def decimal_amount(minor: int, currency: str) -> str:
    places = _places(currency)
    return str((Decimal(minor) / (Decimal(10) ** places)).quantize(Decimal(1).scaleb(-places)))


class UpdatedAt(fields.DateTime):
    """`updated_at`: when the object last changed. The columns are NOT NULL with a server default (0034); the
    fallback to the creation time only serves objects without the column (webhook endpoints)."""

    def __init__(self, *fallbacks: str, **kw: Any) -> None:
        metadata = {"description": "when it last changed (`updated_since` and `sort=updated_at` use it)"}
        super().__init__(metadata=metadata, **kw)
        self.fallbacks = fallbacks

    def get_value(self, obj, attr, accessor=None, default=missing_):  # type: ignore[no-untyped-def]
        value = getattr(obj, "updated_at", None)
        if value is not None:
            return value
        moments = [m for m in (getattr(obj, name, None) for name in self.fallbacks) if m is not None]
        return max(moments) if moments else None


class MoneyOut(Schema):
    amount = fields.Method("_amount", metadata={"description": "decimal string with the currency's exponent"})

    def _amount(self, obj: Any) -> str:
        return decimal_amount(obj.amount_minor, obj.currency)


# --- queries ----------------------------------------------------------------------------------------------


MOMENT_PATTERN = (
    r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"
)


class UtcDateTime(fields.DateTime):
    """An ISO 8601 date-time written with a year 1900-2999 (the document states it as a pattern; the instant may
    then be a few hours outside those years in UTC); one without an offset is read as UTC."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(metadata={"pattern": MOMENT_PATTERN, **kw.pop("metadata", {})}, **kw)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST_MOMENT.year <= moment.year <= LATEST_MOMENT.year:
            raise ValidationError("a moment between 1900 and 2999")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class ListQuery(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=200),
        metadata={"description": "items per page (1-200)", "example": 100},
    )
    cursor = Text(
        load_default=None,
        validate=[validate.Length(max=500), validate.Regexp(r"^[A-Za-z0-9_-]*$", error="not a cursor of this API")],
        metadata={"description": "the previous page's `next_cursor`, with the same `sort` and filters"},
    )
    updated_since = UtcDateTime(
        metadata={
            "description": "only items whose `updated_at` is at or after this moment (ISO 8601; UTC without an "
            "offset). For incremental sync: `sort=updated_at`, and next time pass the largest `updated_at` seen "
            "minus a minute of overlap (de-duplicate by id)",
            "example": "2026-03-01T00:00:00Z",
        }
    )


def sort_field(names: list[str], default: str = "id") -> fields.String:
    names = [*names, "updated_at"]
    choices = [*names, *[f"-{n}" for n in names]]
    return fields.String(
        load_default=default,
        validate=validate.OneOf(choices),
        metadata={"description": "the order of the list: a field, `-field` for descending; ties by id"},
    )


class DebtorQuery(ListQuery):
    sort = sort_field(["id", "name", "external_ref"])
    external_ref = Text(validate=validate.Length(max=64))
    segment = Text(validate=validate.Length(max=40))
    q = Text(validate=validate.Length(max=100), metadata={"description": "name contains"})


class InvoiceQuery(ListQuery):
    sort = sort_field(["id", "due_date", "issue_date", "number", "amount_minor", "open_minor"])
    debtor_id = QueryId()
    number = Text(validate=validate.Length(max=64))
    status = fields.String(validate=validate.OneOf(["open", "settled"]))
    currency = Currency()
    due_before = Day()
    due_after = Day()


class PaymentQuery(ListQuery):
    sort = sort_field(["id", "received_on", "amount_minor"])
    debtor_id = QueryId()
    external_ref = Text(validate=validate.Length(max=64))
    unapplied = fields.Boolean()


class CreditNoteQuery(ListQuery):
    sort = sort_field(["id", "issued_on", "amount_minor"])
    debtor_id = QueryId()


class WorkHistoryQuery(ListQuery):
    sort = sort_field(["id", "occurred_at"], default="-occurred_at")


class DisputeQuery(ListQuery):
    sort = sort_field(["id", "opened_at"])
    debtor_id = QueryId()
    status = fields.String(
        validate=validate.OneOf(["open", "acknowledged", "investigating", "awaiting_client", "resolved", "withdrawn"])
    )


class ReportQuery(ListQuery):
    sort = sort_field(["id", "period", "created_at"])
    period = Text(validate=validate.Regexp(PERIOD, error="a month as YYYY-MM"))
    status = fields.String(validate=validate.OneOf(["current", "superseded"]))


class AsOfQuery(Schema):
    class Meta:
        unknown = RAISE

    as_of = Day(required=True)
    debtor_id = QueryId()


class KpiQuery(Schema):
    class Meta:
        unknown = RAISE

    as_of = Day(required=True)
    days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=366))


# --- inputs ---------------------------------------------------------------------------------------------


class DebtorIn(DebtorSchema):
    """The back office's debtor schema, with the API's text rules (no NUL) on top. The blank-able text fields
    are redeclared with `Text` because the shared `Trimmed` turns "" into None and then runs the length
    validator on None (a TypeError, i.e. a 500; reported to the owners of provider/core/validation.py)."""

    external_ref = Text(required=True, validate=validate.Length(min=1, max=64))
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    segment = Text(load_default="standard", validate=validate.Length(max=40))
    timezone = TimeZone(load_default=None)  # type: ignore[assignment]  # an enum, not the shared trimmed text
    phone = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^(\+?[0-9 ()./-]{5,30})?$", error="not a phone number (digits, spaces, + - ( ))"),
    )

    @post_load
    def _blanks(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {
            **data,
            "segment": data.get("segment") or "standard",
            "timezone": data.get("timezone") or None,
            "phone": data.get("phone") or None,
        }

    @validates_schema
    def _text(self, data: dict[str, Any], **_: Any) -> None:
        for key, value in data.items():
            if isinstance(value, str):
                try:
                    _clean_text(value)
                except ValidationError as exc:
                    raise ValidationError(exc.messages, field_name=key) from None


class DebtorPatch(Schema):
    """A partial update of a debtor: only the fields sent change. `email`/`phone` null removes the primary one."""

    class Meta:
        unknown = RAISE

    external_ref = Text(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the ERP's reference; unique per client"},
    )
    name = Text(validate=validate.Length(min=1, max=200))
    timezone = TimeZone()
    segment = Text(validate=validate.Length(min=1, max=40))
    do_not_contact = fields.Boolean()
    email = fields.Email(allow_none=True, validate=validate.Length(max=300))
    phone = Text(
        allow_none=True,
        validate=validate.Regexp(r"^(\+?[0-9 ()./-]{5,30})?$", error="not a phone number (digits, spaces, + - ( ))"),
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _not_blank(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        """A blank name, reference or segment is refused (the shared text field would read it as "not sent")."""
        if not isinstance(original, dict):
            return
        blank = [k for k in ("external_ref", "name", "segment") if k in original and data.get(k) in (None, "")]
        if blank:
            raise ValidationError({k: ["must not be blank"] for k in blank})

    @post_load
    def _blanks(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        for key in ("timezone", "phone", "email"):
            if key in data and not data[key]:
                data[key] = None
        return data


class InvoiceIn(Schema):
    class Meta:
        unknown = RAISE

    debtor_id = Id(required=True)
    number = Text(required=True, validate=validate.Length(min=1, max=64))
    issue_date = Day(required=True)
    due_date = Day(required=True)
    currency = Currency(required=True)
    amount_minor = Amount(required=True)
    po_reference = Text(load_default="", validate=validate.Length(max=64))

    @validates_schema
    def _dates(self, data: dict[str, Any], **_: Any) -> None:
        """A rule across two fields, which JSON Schema cannot state: a 409 `date-rule` when it is the only error."""
        if data.get("issue_date") and data.get("due_date") and data["due_date"] < data["issue_date"]:
            raise ValidationError(Rule("the due date is before the issue date", "date-rule"), field_name="due_date")


class InvoicePatch(Schema):
    """What the client's ERP may change on a placed invoice; only the fields sent change. Amounts change only
    through the ledger (credit notes, write-offs, reversals), and the number is the placement's key."""

    class Meta:
        unknown = RAISE

    due_date = Day(
        metadata={"description": "renegotiated terms: not before the issue date; refused once the invoice is settled"}
    )
    po_reference = Text(validate=validate.Length(max=64), metadata={"description": "the debtor's purchase order"})


class InvoiceBatchIn(Schema):
    class Meta:
        unknown = RAISE

    invoices = fields.List(fields.Nested(InvoiceIn), required=True, validate=validate.Length(min=1, max=BATCH_LIMIT))


# --- the plainly valid invoice, without marshmallow -------------------------------------------------------
#
# `InvoiceIn` is the definition of a valid invoice and writes every message. A batch of 1,000 rows through
# marshmallow costs more than placing them, so rows that are plainly valid under the schema (exact JSON
# types, known currency, dates in range, lengths within limits) are built here with the same values;
# any other row sends the whole body through the schema, which accepts it or says exactly what is wrong.
# A property test (tests/api/test_invoice_batch.py) holds `plain_invoice` to `InvoiceIn().load`.

_INVOICE_FIELDS = frozenset(InvoiceIn._declared_fields)
_INVOICE_REQUIRED = frozenset(name for name, f in InvoiceIn._declared_fields.items() if f.required)
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


@lru_cache(maxsize=256)
def _plain_currency(code: str) -> bool:
    try:
        check_currency(code)
    except ValidationError:
        return False
    return True


def _plain_text(value: Any, min_len: int, max_len: int) -> str | None:
    """What `Text` loads for a string within the length limits (None: let the schema decide)."""
    if type(value) is not str:
        return None
    text = value.strip()
    if not min_len <= len(text) <= max_len or "\x00" in text:
        return None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return text


def _plain_day(value: Any) -> date | None:
    if type(value) is not str:
        return None
    try:
        day = date.fromisoformat(value)  # what marshmallow's Date does with an ISO string
    except ValueError:
        return None
    return day if EARLIEST <= day <= LATEST else None


def plain_invoice(row: Any) -> dict[str, Any] | None:
    """`InvoiceIn().load(row)` for a plainly valid row, built directly; None for every other row."""
    if type(row) is not dict or not row.keys() >= _INVOICE_REQUIRED or not row.keys() <= _INVOICE_FIELDS:
        return None
    debtor_id, amount, currency = row["debtor_id"], row["amount_minor"], row["currency"]
    if type(debtor_id) is not int or not 1 <= debtor_id <= MAX_ID:
        return None
    if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT:
        return None
    if type(currency) is not str:
        return None
    code = currency.strip().upper()
    if not (_CURRENCY_CODE.fullmatch(code) and _plain_currency(code)):
        return None
    number = _plain_text(row["number"], 1, 64)
    po_reference = _plain_text(row.get("po_reference", ""), 0, 64)
    issue, due = _plain_day(row["issue_date"]), _plain_day(row["due_date"])
    if number is None or po_reference is None or issue is None or due is None or due < issue:
        return None
    return {
        "debtor_id": debtor_id,
        "number": number,
        "issue_date": issue,
        "due_date": due,
        "currency": code,
        "amount_minor": amount,
        "po_reference": po_reference,
    }


def plain_invoice_batch(body: Any) -> dict[str, Any] | None:
    """`InvoiceBatchIn().load(body)` when every row is plainly valid; None otherwise (use the schema)."""
    if type(body) is not dict or body.keys() != {"invoices"}:
        return None
    rows = body["invoices"]
    if type(rows) is not list or not 1 <= len(rows) <= BATCH_LIMIT:
        return None
    loaded = []
    for row in rows:
        invoice = plain_invoice(row)
        if invoice is None:
            return None
        loaded.append(invoice)
    return {"invoices": loaded}


class PaymentIn(Schema):
    class Meta:
        unknown = RAISE

    debtor_id = Id(required=True)
    external_ref = Text(required=True, validate=validate.Length(min=1, max=64))
    received_on = Day(required=True)
    currency = Currency(required=True)
    amount_minor = Amount(required=True)
    method = fields.String(load_default=PaymentMethod.BANK_TRANSFER.value, validate=validate.OneOf(list(PaymentMethod)))
    received_by = fields.String(load_default=ReceivedBy.AGENCY.value, validate=validate.OneOf(list(ReceivedBy)))
    reference = Text(load_default="", validate=validate.Length(max=140))


class AllocationIn(Schema):
    class Meta:
        unknown = RAISE

    invoice_id = Id(metadata={"description": "allocate to this invoice; omit to auto-allocate (named, then oldest)"})
    amount_minor = Amount()
    allocated_on = Day(
        metadata={
            "description": "the allocation's date (with invoice_id); default: the payment's receipt date, or the "
            "invoice's issue date if later. Not before either, not after today in the client's time zone"
        }
    )


class ReversalIn(Schema):
    class Meta:
        unknown = RAISE

    reason = Text(required=True, validate=validate.Length(min=1, max=200))
    reversed_on = Day(
        metadata={
            "description": "the reversal's date; default today (client's time zone). Not before the original "
            "event (nor, for a payment or credit note, the allocations it takes back), not in the future"
        }
    )


class WriteOffIn(Schema):
    class Meta:
        unknown = RAISE

    amount_minor = Amount(metadata={"description": "how much to write off; default: all that is open"})
    reason = Text(required=True, validate=validate.Length(min=1, max=200))
    written_off_on = Day(
        metadata={
            "description": "the write-off's date; default today (client's time zone). Not before the invoice's "
            "issue date, not in the future"
        }
    )


class CreditNoteIn(Schema):
    class Meta:
        unknown = RAISE

    debtor_id = Id(required=True)
    number = Text(required=True, validate=validate.Length(min=1, max=64))
    issued_on = Day(
        required=True,
        metadata={"description": "not in the future (client's time zone); with invoice_id, not before its issue date"},
    )
    currency = Currency(required=True)
    amount_minor = Amount(required=True)
    reason = Text(load_default="", validate=validate.Length(max=200))
    invoice_id = Id(metadata={"description": "allocate at once to this invoice, on the credit note's date"})


class DisputeIn(Schema):
    class Meta:
        unknown = RAISE

    debtor_id = Id(metadata={"description": "the invoices' debtor; optional (taken from the invoices)"})
    reason = fields.String(
        required=True,
        validate=validate.OneOf(
            [
                "pricing",
                "quantity",
                "not_received",
                "damaged",
                "duplicate_billing",
                "already_paid",
                "service_quality",
                "other",
            ]
        ),
    )
    summary = Text(load_default="", validate=validate.Length(max=300))
    amount_minor = Amount(required=True)
    invoice_ids = fields.List(
        Id(),
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "open invoices of one debtor, in one currency"},
    )
    message = Text(
        load_default="",
        validate=validate.Length(max=5000),
        metadata={"description": "a first message of the conversation (from the client)"},
    )


class CommentIn(Schema):
    class Meta:
        unknown = RAISE

    body = Text(required=True, validate=validate.Length(min=1, max=5000))


class ProposalDecisionIn(Schema):
    class Meta:
        unknown = RAISE

    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    note = Text(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"description": "optional when approving; the reason, required, when rejecting"},
    )


# --- outputs --------------------------------------------------------------------------------------------


class DebtorOut(Schema):
    id = fields.Integer()
    external_ref = fields.String()
    name = fields.String()
    timezone = fields.String(allow_none=True)
    segment = fields.String()
    do_not_contact = fields.Boolean()
    email = fields.String(allow_none=True, metadata={"description": "the primary e-mail address, or null"})
    phone = fields.String(allow_none=True, metadata={"description": "the primary phone number, or null"})
    created_at = fields.DateTime()
    updated_at = UpdatedAt("created_at")


class InvoiceOut(MoneyOut):
    id = fields.Integer()
    debtor_id = fields.Integer()
    number = fields.String()
    issue_date = fields.Date()
    due_date = fields.Date()
    currency = fields.String()
    amount_minor = fields.Integer()
    adjusted_minor = fields.Integer()
    open_minor = fields.Integer()
    po_reference = fields.String()
    on_hold = fields.Boolean()
    placed_at = fields.DateTime()
    updated_at = UpdatedAt("placed_at")


class PlacedInvoiceOut(Schema):
    id = fields.Integer()
    number = fields.String()


class InvoiceBatchOut(Schema):
    placed = fields.Integer(metadata={"description": "invoices placed by this call"})
    unchanged = fields.Integer(metadata={"description": "rows placed before with the same details (skipped)"})
    invoices = fields.List(
        fields.Nested(PlacedInvoiceOut),
        metadata={"description": "id and number of each invoice placed by this call, in request order"},
    )


class PaymentOut(MoneyOut):
    id = fields.Integer()
    debtor_id = fields.Integer()
    external_ref = fields.String()
    received_on = fields.Date()
    currency = fields.String()
    amount_minor = fields.Integer()
    unapplied_minor = fields.Integer()
    method = fields.String()
    received_by = fields.String()
    reference = fields.String()
    recorded_at = fields.DateTime()
    updated_at = UpdatedAt("recorded_at")


class AllocationOut(Schema):
    payment = fields.Nested(PaymentOut)
    transaction_ids = fields.List(fields.Integer())


class ReversalOut(Schema):
    transaction_id = fields.Integer(metadata={"description": "the reversing journal transaction"})
    reverses_id = fields.Integer(metadata={"description": "the journal transaction it reverses"})
    reversed_on = fields.Date()
    allocations_reversed = fields.List(
        fields.Integer(), metadata={"description": "allocation transactions reversed with it (same DB transaction)"}
    )


class PaymentReversalOut(ReversalOut):
    payment = fields.Nested(PaymentOut)


class WriteOffOut(Schema):
    transaction_id = fields.Integer()
    written_off_on = fields.Date()
    amount_minor = fields.Integer()
    invoice = fields.Nested(InvoiceOut)


class CreditNoteOut(MoneyOut):
    id = fields.Integer()
    debtor_id = fields.Integer()
    number = fields.String()
    issued_on = fields.Date()
    currency = fields.String()
    amount_minor = fields.Integer()
    unapplied_minor = fields.Integer()
    reason = fields.String()
    recorded_at = fields.DateTime()
    updated_at = UpdatedAt("recorded_at")


class WorkActionOut(Schema):
    id = fields.Integer()
    debtor_id = fields.Integer()
    kind = fields.String()
    outcome = fields.String()
    note = fields.String()
    occurred_at = fields.DateTime()
    updated_at = UpdatedAt("occurred_at")


class DisputeOut(MoneyOut):
    id = fields.Integer()
    debtor_id = fields.Integer()
    reason = fields.String()
    status = fields.String()
    summary = fields.String()
    currency = fields.String()
    amount_minor = fields.Integer()
    opened_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    resolution = fields.String(allow_none=True)
    proposed_resolution = fields.String(
        allow_none=True,
        metadata={
            "description": "a resolution the agency proposes and waits for the client to approve or reject "
            "(credit_note, partially_upheld or written_off); null when none is pending"
        },
    )
    proposed_amount_minor = fields.Integer(allow_none=True)
    proposal_note = fields.String(metadata={"description": "the agency's explanation of its proposal"})
    updated_at = UpdatedAt("opened_at")


class CommentOut(Schema):
    id = fields.Integer()
    dispute_id = fields.Integer()
    body = fields.String()
    from_client = fields.Boolean()
    created_at = fields.DateTime()


class DisputeDetailOut(DisputeOut):
    invoice_ids = fields.List(fields.Integer())
    messages = fields.List(fields.Nested(CommentOut), metadata={"description": "the conversation, oldest first"})


class ReportOut(Schema):
    id = fields.Integer()
    period = fields.String(metadata={"description": "the month, YYYY-MM"})
    version = fields.Integer(metadata={"description": "1, then n+1 for each re-issue"})
    status = fields.String(metadata={"description": "current, or superseded by a later version"})
    as_of = fields.Date()
    pages = fields.Integer(attribute="pdf_pages", metadata={"description": "pages of the PDF"})
    pdf_sha256 = fields.String()
    created_at = fields.DateTime(attribute="generated_at")
    updated_at = UpdatedAt("generated_at")


class ReportDetailOut(ReportOut):
    figures = fields.Dict(metadata={"description": "the report's figures, frozen when it was made"})
    summary = fields.List(fields.String(), metadata={"description": "the summary, one line per item"})


class AgingCurrencyOut(Schema):
    currency = fields.String()
    buckets = fields.Dict(keys=fields.String(validate=validate.OneOf(BUCKETS)), values=fields.Integer())
    total_minor = fields.Integer()
    overdue_minor = fields.Integer()


class AgingOut(Schema):
    as_of = fields.Date()
    bucket_names = fields.List(fields.String())
    currencies = fields.List(fields.Nested(AgingCurrencyOut))


class KpiCurrencyOut(Schema):
    currency = fields.String()
    receivable_minor = fields.Integer()
    current_minor = fields.Integer()
    overdue_minor = fields.Integer()
    sales_minor = fields.Integer(metadata={"description": "invoices placed in the period"})
    dso = fields.String(allow_none=True, metadata={"description": "standard DSO = AR / sales x days"})
    best_possible_dso = fields.String(allow_none=True)
    average_days_delinquent = fields.String(allow_none=True)


class KpiOut(Schema):
    as_of = fields.Date()
    period_days = fields.Integer()
    currencies = fields.List(fields.Nested(KpiCurrencyOut))


def page_of(item: type[Schema]) -> type[Schema]:
    """The list envelope {"data": [...], "next_cursor": "..."|null} of `item`."""
    name = item.__name__.removesuffix("Out") + "Page"
    return type(
        name,
        (Schema,),
        {"data": fields.List(fields.Nested(item)), "next_cursor": fields.String(allow_none=True)},
    )


# --- events and webhook endpoints -----------------------------------------------------------------------


class EventQuery(ListQuery):
    sort = sort_field(["id"])
    type = fields.String(
        validate=validate.OneOf([*(e.value for e in EventType), "webhook.test"]),
        metadata={"description": "only events of this type"},
    )


class EventDeliveryOut(Schema):
    delivery_id = fields.Integer(attribute="id", metadata={"description": "the `X-AR-Delivery` header of its POSTs"})
    endpoint_id = fields.Integer()
    status = fields.String(metadata={"description": "pending (first try or a retry is due), succeeded or dead"})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True, metadata={"description": "the receiver's last HTTP status"})
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)


class EventOut(Schema):
    id = fields.Integer()
    event_id = fields.Method(
        "_event_id",
        metadata={"type": "string", "description": "`evt_<id>`: the payload's `id` and the `X-AR-Event-Id` header"},
    )
    type = fields.String(attribute="event_type", metadata={"description": "the event type (see the webhooks)"})
    created_at = fields.DateTime()
    updated_at = UpdatedAt("created_at")
    payload = fields.Dict(metadata={"description": "the body POSTed to the endpoints, exactly"})

    def _event_id(self, event: Any) -> str:
        return f"evt_{event.id}"


class EventDetailOut(EventOut):
    deliveries = fields.List(fields.Nested(EventDeliveryOut), metadata={"description": "one per endpoint"})


class ReplayIn(Schema):
    class Meta:
        unknown = RAISE

    endpoint_id = Id(required=True, metadata={"description": "send the event (again) to this endpoint"})


class ReplayOut(Schema):
    event_id = fields.String()
    delivery_id = fields.Integer()
    queued = fields.Boolean(metadata={"description": "false when a replay of this delivery is already waiting"})


class WebhookEndpointIn(Schema):
    class Meta:
        unknown = RAISE

    url = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=500),
            validate.Regexp(r"^https?://[!-~]+$", error="an http(s) URL (https in production), in ASCII, no spaces"),
        ],
        metadata={"example": "https://erp.example/ar"},
    )
    events = fields.List(
        fields.String(validate=validate.OneOf([e.value for e in EventType])),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "the event types to receive"},
    )
    description = Text(load_default="", validate=validate.Length(max=200))


class WebhookEndpointOut(Schema):
    id = fields.Integer()
    url = fields.String()
    description = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = UpdatedAt("disabled_at", "created_at")
    disabled_at = fields.DateTime(allow_none=True)


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret = fields.String(
        metadata={
            "description": "the signing secret (`whsec_...`), shown in this answer and on the portal's endpoint page",
            "readOnly": True,
        }
    )


class TestEventOut(Schema):
    event_id = fields.String()
    delivery_id = fields.Integer()


class RotateSecretIn(Schema):
    class Meta:
        unknown = RAISE

    overlap_hours = Whole(
        load_default=24,
        validate=validate.Range(min=0, max=168),
        metadata={"description": "how long the old secret keeps signing beside the new one (0-168 hours)"},
    )


class RotatedSecretOut(WebhookEndpointCreatedOut):
    previous_secret_until = fields.DateTime(
        allow_none=True, metadata={"description": "until when deliveries also carry a signature with the old secret"}
    )
