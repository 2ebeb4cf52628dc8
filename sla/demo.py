"""Demo data for SLAs: the standard contract for every client, and disputes in every state over the last
weeks (some acknowledged late), swept so the dashboard shows breaches. Idempotent: a client that already
has contract terms is left alone."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import select

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core.clock import frozen_time, now_utc
from provider.extensions import db
from sla import disputes
from sla.models import ContractTerms, DisputeReason
from sla.services import add_contract_terms
from sla.snapshots import backfill
from sla.sweep import sweep

DISPUTES_PER_CLIENT = 9
# the path each demo dispute walks, with the hours between steps
SCRIPTS = [
    [],
    [("acknowledge", 30)],
    [("acknowledge", 2), ("investigate", 20)],
    [("acknowledge", 3), ("investigate", 5), ("ask_client", 30)],
    [("acknowledge", 1), ("investigate", 4), ("ask_client", 6), ("client_answered", 50)],
    [("acknowledge", 2), ("investigate", 8), ("resolve:credit_note", 70)],
    [("acknowledge", 4), ("investigate", 8), ("resolve:upheld", 100)],
    [("withdraw", 5)],
    [("acknowledge", 2), ("investigate", 6), ("propose:credit_note", 10)],  # waits for the client's approval
]


def seed_sla_demo(clients: list[Client], seed: int = 20261128) -> int:
    """Contract terms + demo disputes for clients without terms. Returns the number of disputes opened."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
    opened = 0
    for client in clients:
        if db.session.scalar(select(ContractTerms.id).where(ContractTerms.client_id == client.id).limit(1)):
            continue
        add_contract_terms(db.session, client, date(2024, 1, 1), notes="standard agency contract")
        invoices = db.session.scalars(
            select(Invoice)
            .where(Invoice.client_id == client.id, Invoice.open_minor > 0, Invoice.on_hold.is_(False))
            .order_by(Invoice.due_date.desc(), Invoice.id)
            .limit(DISPUTES_PER_CLIENT)
        ).all()
        for n, invoice in enumerate(invoices):
            opened += _one(client, invoice, SCRIPTS[n % len(SCRIPTS)], rng)
    sweep(db.session, now_utc())
    backfill(db.session, clients)  # the daily SLA snapshots of the past days: the dashboard's at-risk trend
    db.session.commit()
    return opened


def _one(client: Client, invoice: Invoice, script: list[tuple[str, int]], rng: random.Random) -> int:
    at = now_utc() - timedelta(hours=rng.randint(24, 24 * 20))
    debtor = db.session.get(Debtor, invoice.debtor_id)
    reason = rng.choice(list(DisputeReason)).value
    with frozen_time(at):
        dispute = disputes.open_dispute(
            db.session,
            client,
            debtor,
            {
                "reason": reason,
                "summary": f"Debtor disputes {invoice.number}",
                "invoice_ids": [invoice.id],
                "amount_minor": max(invoice.open_minor // rng.choice((1, 2, 4)), 1),
            },
        )
    for action, hours in script:
        at += timedelta(hours=hours)
        if at > now_utc():
            break
        with frozen_time(at):
            _step(client, dispute, action)
    return 1


def _step(client: Client, dispute: disputes.Dispute, action: str) -> None:
    if action.startswith("resolve:"):
        outcome = action.split(":", 1)[1]
        disputes.resolve(db.session, client, dispute, outcome, note="demo resolution")
    elif action.startswith("propose:"):
        outcome = action.split(":", 1)[1]
        disputes.propose(
            db.session, dispute, outcome, note="The goods were damaged in transit: we suggest crediting the amount."
        )
    elif action == "ask_client":
        disputes.ask_client(db.session, dispute, "Could you send the signed delivery note?")
    elif action == "client_answered":
        disputes.client_answers(db.session, dispute, "Attached to the ticket, see the evidence.")
    else:
        getattr(disputes, action)(db.session, dispute)
