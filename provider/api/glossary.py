"""What the API's common field and parameter names mean, with an example each: the OpenAPI document fills a
field's description (and example) from here when its schema gives none, so every field is described."""

from __future__ import annotations

from typing import Any

# name -> (description, example or None)
GLOSSARY: dict[str, tuple[str, Any]] = {
    "id": ("the object's id (unique per kind of object)", 4711),
    "client_id": ("the client (tenant) the object belongs to", 3),
    "debtor_id": ("the debtor (the client's customer) it concerns", 120),
    "invoice_id": ("an invoice of the client", 5501),
    "payment_id": ("a payment of the client", 880),
    "credit_note_id": ("a credit note of the client", 42),
    "dispute_id": ("a dispute of the client", 17),
    "report_id": ("a monthly report of the client", 9),
    "endpoint_id": ("a webhook endpoint of the client", 2),
    "event_id": ("an event (`evt_<n>` in payloads)", 1234),
    "delivery_id": ("one event's delivery to one endpoint", 77),
    "transaction_id": ("a journal transaction", 90210),
    "transaction_ids": ("the journal transactions written", [90210, 90211]),
    "external_ref": ("the reference in the client's own system (ERP); unique per client", "ERP-10023"),
    "number": ("the document's number, unique per client", "INV-2026-0042"),
    "name": ("the name", "Northwind Traders GmbH"),
    "currency": ("ISO 4217 currency code", "EUR"),
    "amount_minor": ("the amount as an integer in the currency's minor unit (cents; yen; fils)", 12050),
    "amount": ("the same amount as a decimal string with the currency's exponent", "120.50"),
    "open_minor": ("what is still open, in minor units", 8050),
    "adjusted_minor": ("credit notes and adjustments posted against it, in minor units (negative reduces)", 0),
    "unapplied_minor": ("what is not allocated to invoices yet, in minor units", 0),
    "overdue_minor": ("what is past due, in minor units", 5000),
    "total_minor": ("the total, in minor units", 12050),
    "paid_minor": ("what was paid, in minor units", 0),
    "proposed_amount_minor": ("the amount of the proposed resolution, in minor units; null when none", None),
    "issue_date": ("the invoice's date", "2026-01-10"),
    "due_date": ("when it falls due", "2026-02-09"),
    "issued_on": ("the credit note's date", "2026-02-01"),
    "received_on": ("when the money was received", "2026-03-01"),
    "reversed_on": ("the reversal's date", "2026-03-05"),
    "written_off_on": ("the write-off's date", "2026-03-05"),
    "as_of": ("the date the figures are as of", "2026-03-31"),
    "created_at": ("when it was created (UTC)", "2026-03-01T09:30:00+00:00"),
    "placed_at": ("when it was placed with the agency (UTC)", "2026-01-11T08:00:00+00:00"),
    "recorded_at": ("when it was recorded (UTC)", "2026-03-01T09:30:00+00:00"),
    "opened_at": ("when it was opened (UTC)", "2026-02-15T10:00:00+00:00"),
    "closed_at": ("when it was closed (UTC); null while open", None),
    "occurred_at": ("when it happened (UTC)", "2026-02-20T14:05:00+00:00"),
    "disabled_at": ("when it was disabled (UTC); null while active", None),
    "next_attempt_at": ("when the next try is due (UTC); null when none is", None),
    "delivered_at": ("when the receiver acknowledged it (UTC); null until then", None),
    "data": ("the items of this page", None),
    "next_cursor": ("pass as `cursor` to get the next page; null on the last page", "eyJzIjoiaWQiLCJ2Ijo1MCwiaSI6NTB9"),
    "type": ("the kind", None),
    "reason": ("why", "pricing"),
    "summary": ("a short summary", "Price differs from the quote"),
    "status": ("the state", None),
    "timezone": ("IANA time zone; null: the client's", "Europe/Berlin"),
    "segment": ("the client's grouping of its debtors", "standard"),
    "do_not_contact": ("the agency must not contact this debtor", False),
    "email": ("an e-mail address", "ap@northwind.example"),
    "phone": ("a phone number", "+49 30 1234567"),
    "po_reference": ("the debtor's purchase order reference", "PO-7781"),
    "on_hold": ("held by an open dispute: not chased", False),
    "method": ("how it was paid", "bank_transfer"),
    "received_by": ("who received the money: the agency or the client directly", "agency"),
    "reference": ("the payment's remittance text", "INV-2026-0042"),
    "payment": ("the payment after the change", None),
    "invoice": ("the invoice after the change", None),
    "invoices": ("the invoices", None),
    "kind": ("what kind of entry", "call"),
    "outcome": ("its outcome", "promise"),
    "note": ("a note", ""),
    "body": ("the message text", "Please see the attached delivery note."),
    "url": ("the receiving URL (https, a public host)", "https://erp.northwind.example/ar-webhooks"),
    "description": ("a description for people", "ERP production"),
    "events": ("the event types", ["payment.posted", "dispute.updated"]),
    "active": ("whether deliveries are sent to it", True),
    "secret": ("the signing secret", "whsec_..."),
    "attempts": ("how many times it was tried", 1),
    "last_status_code": ("the receiver's last HTTP status; null when none answered", 200),
    "resolution": ("how it was resolved; null while open", None),
    "currencies": ("one entry per currency", None),
    "buckets": ("the amount per aging bucket, in minor units", {"Current": 1000, "1-30": 500}),
    "bucket_names": ("the aging buckets, in order", ["Current", "1-30", "31-60", "61-90", "91-120", "120+"]),
    "pdf_sha256": ("SHA-256 of the PDF, hex", None),
    "invoice_ids": ("the invoices", [5501]),
    "messages": ("the conversation", None),
    "placed": ("invoices placed by this call", 2),
    "unchanged": ("rows placed before with the same details", 0),
    "allocations_reversed": ("allocation transactions reversed with it", []),
    "reverses_id": ("the journal transaction it reverses", 90210),
    "period_days": ("the days of the period the KPIs are over", 90),
    "figures": ("the report's figures", None),
    "receivable_minor": ("open receivables (AR) as of the date, in minor units", 1500000),
    "current_minor": ("receivables not yet due, in minor units", 400000),
    "best_possible_dso": ("best possible DSO = current AR / sales x days; null without sales", "12.00"),
    "average_days_delinquent": ("ADD = DSO - best possible DSO; null without sales", "33.00"),
    "from_client": ("written by the client (true) or by the agency (false)", True),
    "decision": ("approve or reject", "approve"),
    "due_before": ("only invoices due before this date", "2026-03-01"),
    "due_after": ("only invoices due after this date", "2026-01-01"),
    "unapplied": ("true: only payments with money not allocated yet; false: only fully allocated ones", True),
    "days": ("the length of the period before `as_of`, in days (1-366)", 90),
    "period": ("a month, YYYY-MM", "2026-02"),
    # the forecast, its backtest, segments and the credit view
    "week": ("the week's number, 1 being the week after the forecast's day", 1),
    "weeks": ("the forecast's weeks, oldest first", None),
    "starts": ("the week's first day", "2026-03-02"),
    "ends": ("the week's last day", "2026-03-08"),
    "horizons": ("the backtest at each horizon (1, 4 and 13 weeks ahead)", None),
    "origins": ("how many past month-end forecasts the backtest compares with what was collected", 12),
    "wape": ("weighted absolute percentage error: the sum of |forecast - actual| over the sum of actual", 0.21),
    "bias": ("the sum of (forecast - actual) over the sum of actual: above 0 the forecast was too high", 0.04),
    "coverage": ("the share of past weeks whose collections fell inside the 80 % interval", 0.79),
    "weeks_checked": ("how many past weeks the figures are computed over", 52),
    "calibration": ("how the 80 % interval was made: from past errors of this client, or from its open invoices", None),
    "reasons": ("why the debtor is in its segment, in words", ["paid 9 of 10 invoices within 5 days of due"]),
    "segment_since": ("the day the debtor entered its present segment", "2026-01-31"),
    "risk_grade": ("A (lowest risk) to E (highest), from payment behaviour and what is owed", "B"),
    "grade_reasons": ("why the debtor has its risk grade, in words", ["pays late but pays"]),
    "credit_limit_minor": ("the suggested credit limit, in minor units", 500000),
    "exposure_minor": ("what the debtor owes now, in minor units", 120050),
    "worsened": ("true when the debtor's behaviour got worse at the last refit", False),
    "months": ("months of the debtor's average monthly invoicing allowed, per risk grade", {"A": 3, "B": 2}),
    "cap_minor": ("the highest limit suggested, in minor units (null: no cap)", 2500000),
    "Idempotency-Key": (
        "makes the POST safe to retry: the same key and body answer the stored response (`Idempotent-Replayed: "
        "true`); another body is a 422; while the first runs, a 409",
        "0b7f7c2e-4b1d-4c9a-9d1e-5f2a7a0c1b11",
    ),
}


def describe(document: dict[str, Any]) -> dict[str, Any]:
    """Fill missing descriptions (and examples) of component properties and operation parameters."""
    for schema in document.get("components", {}).get("schemas", {}).values():
        for name, prop in schema.get("properties", {}).items():
            _fill(prop, name)
    for operations in document.get("paths", {}).values():
        for op in operations.values():
            for param in op.get("parameters", []):
                _fill(param, param.get("name", ""), example_in_schema=False)
    return document


def _fill(target: dict[str, Any], name: str, example_in_schema: bool = True) -> None:
    known = GLOSSARY.get(name)
    if known is None:
        return
    text, example = known
    if "description" not in target and "$ref" not in target and "allOf" not in target:
        target["description"] = text
    if example is not None and "example" not in target and "$ref" not in target and "allOf" not in target:
        target["example"] = example
