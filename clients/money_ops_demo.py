"""Demo data of late-payment charges and remittance bank accounts: the German client (RHEIN) charges statutory EU
interest and EUR 40 compensation, the British one (THAMES) statutory UK interest with the banded compensation, both
since their contract began, accrued through today; every client has a bank account for its base currency. A client
that already has them is left alone."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from clients import bank_details, interest
from clients.interest_models import LatePaymentTerms
from clients.models import Client
from provider.core.clock import today_utc
from provider.extensions import db

# well-known valid sample accounts (the IBAN registry's examples, the ABA's published check-digit example)
ACCOUNTS: dict[str, dict[str, Any]] = {
    "EUR": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
    "GBP": {"iban": "GB29NWBK60161331926819", "bic": "NWBKGB2LXXX"},
    "USD": {"routing_number": "021000021", "account_number": "000123456789"},
}
CHARGES = {
    "RHEIN": {"basis": "statutory_eu", "compensation": "eu_flat"},
    "THAMES": {"basis": "statutory_uk", "compensation": "uk_banded"},
}


def seed_money_ops_demo(clients: list[Client]) -> dict[str, int]:
    """Bank accounts and late-payment charges of the demo clients (commits)."""
    from sla.models import ContractTerms

    accounts = charged = 0
    for client in clients:
        if not bank_details.bank_accounts(db.session, client.id):
            sample = ACCOUNTS.get(client.base_currency, {"iban": "CH9300762011623852957"})
            bank_details.save_bank_account(
                db.session,
                client,
                {"currency": client.base_currency, "holder": client.name[:70], **sample},
            )
            accounts += 1
        settings = CHARGES.get(client.code)
        has_terms = db.session.scalar(sa.select(sa.func.count()).where(LatePaymentTerms.client_id == client.id))
        if settings is None or has_terms:
            continue
        terms = db.session.scalar(
            sa.select(ContractTerms).where(ContractTerms.client_id == client.id).order_by(ContractTerms.effective_from)
        )
        if terms is None:
            continue
        # the demo's history starts with the contract: recorded as if set on its first day
        row = LatePaymentTerms(
            client_id=client.id, terms_id=terms.id, effective_from=terms.effective_from, **interest._validated(settings)
        )
        db.session.add(row)
        db.session.flush()
        result = interest.accrue(db.session, client, today_utc(), checkpoint=db.session.commit)
        charged += result.postings
    db.session.commit()
    return {"bank_accounts": accounts, "charge_postings": charged}
