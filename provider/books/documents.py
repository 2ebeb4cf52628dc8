"""Remittance statements and fee invoices as PDF documents (WeasyPrint, A4, offline).

The agency is the issuer (name, address and tax number from the settings AGENCY_NAME, AGENCY_ADDRESS,
AGENCY_TAX_ID), the client the addressee (its name and the billing address of the fee schedule in force at the
end of the period). The figures come from the books: a statement's lines are `statement_lines` of the run's range,
an invoice's `invoice_lines` of its range, and their totals are the run's and the invoice's stored totals (which
`draft_runs` and `issue_fee_invoice` computed from the same lines).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from clients.models import Client
from provider.books.invoices import InvoiceLine, invoice_lines
from provider.books.models import FeeInvoice, FeeSchedule, RemittanceRun
from provider.books.remittance import STATUS_LABELS, statement_lines


@dataclass(frozen=True)
class Party:
    name: str
    lines: list[str]
    tax_id: str = ""


@dataclass(frozen=True)
class TaxLine:
    rate_bp: int
    base_minor: int  # the fees taxed at this rate
    tax_minor: int

    @property
    def label(self) -> str:
        return f"Tax on fees at {percent(self.rate_bp)}"


def percent(bp: int) -> str:
    whole, rest = divmod(bp, 100)
    return f"{whole} %" if not rest else f"{whole}.{rest:02d}".rstrip("0") + " %"


def agency() -> Party:
    config = current_app.config
    address = str(config.get("AGENCY_ADDRESS", "") or "")
    return Party(
        str(config.get("AGENCY_NAME", "AR Ops Collections")),
        [line for line in address.splitlines() if line.strip()],
        str(config.get("AGENCY_TAX_ID", "") or ""),
    )


def _schedules(session: Session, client_id: int) -> list[FeeSchedule]:
    return list(
        session.scalars(
            select(FeeSchedule).where(FeeSchedule.client_id == client_id).order_by(FeeSchedule.effective_from)
        )
    )


def _in_force(schedules: list[FeeSchedule], on: date) -> FeeSchedule | None:
    found = None
    for s in schedules:
        if s.effective_from <= on:
            found = s
    return found


def addressee(session: Session, client: Client, on: date) -> Party:
    schedules = _schedules(session, client.id)
    schedule = _in_force(schedules, on) or (schedules[0] if schedules else None)
    lines = schedule.bill_to.splitlines() if schedule is not None and schedule.bill_to else []
    return Party(client.name, lines or [f"Client code {client.code}"])


def tax_lines(session: Session, client_id: int, lines: list[InvoiceLine]) -> list[TaxLine]:
    """The invoice's tax, one line per rate: each line is taxed at the rate of the schedule in force on its day
    (the day its fee was priced for); the amounts are the lines' own (rounded per payment), so they add up to the
    invoice's tax."""
    schedules = _schedules(session, client_id)
    base: dict[int, int] = defaultdict(int)
    tax: dict[int, int] = defaultdict(int)
    for x in lines:
        schedule = _in_force(schedules, x.occurred_on)
        rate = schedule.tax_rate_bp if schedule is not None else 0
        base[rate] += x.fee_minor
        tax[rate] += x.tax_minor
    return [TaxLine(rate, base[rate], tax[rate]) for rate in sorted(base) if base[rate] or tax[rate]]


def statement_html(session: Session, run: RemittanceRun, client: Client) -> str:
    lines = statement_lines(session, client.id, run.currency, run.from_tx_id, run.upto_tx_id)
    return render_template(
        "books/statement_pdf.html",
        run=run,
        client=client,
        lines=lines,
        agency=agency(),
        to=addressee(session, client, run.period_end),
        status_label=STATUS_LABELS[run.status],
        totals={
            "amount": sum(x.amount_minor for x in lines),
            "fee": sum(x.fee_minor for x in lines),
            "tax": sum(x.tax_minor for x in lines),
            "net": sum(x.net_minor for x in lines),
        },
    )


def invoice_html(session: Session, invoice: FeeInvoice, client: Client) -> str:
    lines = invoice_lines(session, client.id, invoice.currency, invoice.from_tx_id, invoice.upto_tx_id)
    return render_template(
        "books/invoice_pdf.html",
        invoice=invoice,
        client=client,
        lines=lines,
        agency=agency(),
        to=addressee(session, client, invoice.period_end),
        taxes=tax_lines(session, client.id, lines),
    )


def render_pdf(html: str) -> bytes:
    from clients.ledger_views import render_pdf as statement_pdf  # statement.css, no URL fetched

    return statement_pdf(html)


def statement_filename(run: RemittanceRun, client: Client) -> str:
    return f"remittance-{client.code}-{run.period_end.isoformat()}-{run.currency}.pdf"


def invoice_filename(invoice: FeeInvoice, client: Client) -> str:
    return f"fee-invoice-{invoice.number}-{client.code}.pdf"


def pdf_response_headers(name: str) -> dict[str, Any]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}
