"""API v1 invoice details an ERP owns: `PATCH /invoices/{invoice_id}` (due date, purchase-order reference) with
optimistic concurrency, like debtors: the invoice's `ETag` (from GET or a previous PATCH) in `If-Match` makes the
change apply only if the invoice is unchanged since (412 otherwise, nothing written).

Money never changes here: amounts move only through the ledger's transactions (credit notes, write-offs,
reversals; DESIGN §3), and an unknown field such as `amount_minor` is refused like any other (422).
"""

from __future__ import annotations

from typing import Any

from clients import services
from clients.journal import Invoice
from provider.api import schemas as s
from provider.api.base import load, operation, parse_body
from provider.api.debtors import require_match, with_etag
from provider.extensions import db

INVOICE_OUT = s.InvoiceOut()


@operation(
    "/invoices/{invoice_id}",
    "PATCH",
    summary="Update an invoice's due date or PO reference",
    tag="invoices",
    body=s.InvoicePatch,
    response=s.InvoiceOut,
    extra_responses={412: "If-Match does not match the invoice's current ETag: it changed meanwhile; read it again"},
)
def update_invoice(invoice_id: int) -> Any:
    """Only the fields sent change. A due date before the issue date, or a new due date on a settled invoice, is
    refused and nothing is written. With `If-Match: <ETag>` the change applies only if the invoice is unchanged
    since (412 otherwise); its balance moves with payments too, so read it again after a 412. Audited;
    `updated_at` moves."""
    invoice = load(Invoice, invoice_id)
    data = parse_body(s.InvoicePatch())
    db.session.refresh(invoice, with_for_update=True)  # PostgreSQL: two PATCHes with one ETag cannot both pass
    require_match(INVOICE_OUT.dump(invoice), "invoice")
    services.update_invoice_details(db.session, invoice, data)
    return with_etag(INVOICE_OUT.dump(invoice))
