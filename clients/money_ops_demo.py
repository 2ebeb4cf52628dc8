"""Demo data of late-payment charges and remittance bank accounts: the German client (RHEIN) charges statutory EU
interest and EUR 40 compensation, the British one (THAMES) statutory UK interest with the banded compensation, both
since their contract began, accrued through today; every client has a bank account for its base currency. A client
that already has them is left alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from clients import bank_details, interest
from clients.interest_models import LatePaymentTerms
from clients.journal import Payment
from clients.models import Client
from clients.trust_models import RunPayout, TrustAccount
from provider.books.models import AgencyEntry, AgencyTransaction
from provider.core import audit
from provider.core.clock import frozen_time, today_utc
from provider.core.tenancy import TenantScope, scoped
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
    payout = seed_payout_demo(clients)
    return {"bank_accounts": accounts, "charge_postings": charged, "payout": payout}


# the agency's trust accounts (other well-known sample accounts than the clients')
TRUST_ACCOUNTS = [
    {"currency": "EUR", "name": "Demo Agency Trust Account", "account": "AT611904300234573201", "bic": "BKAUATWW"},
    {"currency": "GBP", "name": "Demo Agency Client Account", "account": "GB82WEST12345698765432"},
    {"currency": "USD", "name": "Demo Agency Trust", "account": "987654321", "routing_number": "021000021"},
]


def _camt(iban: str, day: date, opening: int, lines: list[tuple[int, str, str]]) -> bytes:
    """A CAMT.053 statement of the trust account for one day: lines are (signed minor units, end-to-end id or
    remittance text, the bank's reference)."""

    def amount(minor: int) -> str:
        return f"{abs(minor) // 100}.{abs(minor) % 100:02d}"

    def bal(code: str, minor: int) -> str:
        sign = "CRDT" if minor >= 0 else "DBIT"
        return (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount(minor)}</Amt>'
            f"<CdtDbtInd>{sign}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    def entry(minor: int, text: str, ref: str) -> str:
        details = (
            f"<Refs><EndToEndId>{text}</EndToEndId></Refs>" if minor < 0 else f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf>"
        )
        return (
            f'<Ntry><Amt Ccy="EUR">{amount(minor)}</Amt><CdtDbtInd>{"DBIT" if minor < 0 else "CRDT"}</CdtDbtInd>'
            f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
            f"<AcctSvcrRef>{ref}</AcctSvcrRef><NtryDtls><TxDtls>{details}</TxDtls></NtryDtls></Ntry>"
        )

    closing = opening + sum(m for m, _, _ in lines)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>DEMO-{day}</MsgId><CreDtTm>{day}T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>DEMO-TRUST-{day}</Id><Acct><Id><IBAN>{iban}</IBAN></Id></Acct>"
        f"{bal('OPBD', opening)}{bal('CLBD', closing)}{''.join(entry(*x) for x in lines)}</Stmt></BkToCstmrStmt>"
        "</Document>"
    ).encode()


def seed_payout_demo(clients: list[Client]) -> str:
    """The agency's trust accounts; RHEIN's latest remittance prepared by Maria, approved by Tom, its payout file
    downloaded, paid as the imported trust statement shows; that day's trust reconciliation. Idempotent."""
    from clients import payouts, trust
    from provider.books.models import FeeSchedule, RemittanceRun
    from provider.books.remittance import draft_runs
    from provider.books.services import TierInput, add_fee_schedule
    from provider.models import User

    for account in TRUST_ACCOUNTS:
        if db.session.scalar(sa.select(TrustAccount.id).where(TrustAccount.currency == account["currency"])) is None:
            trust.save_trust_account(db.session, account)
    rhein = next((c for c in clients if c.code == "RHEIN"), None)
    users = {u.email: u for u in db.session.scalars(sa.select(User).where(User.email.like("%.manager@demo.test")))}
    maria, tom = users.get("maria.manager@demo.test"), users.get("tom.manager@demo.test")
    if rhein is None or maria is None or tom is None:
        return "no RHEIN client or demo managers"
    if db.session.scalar(sa.select(RunPayout.id).where(RunPayout.client_id == rhein.id).limit(1)):
        return "already seeded"
    today = today_utc()
    end = today.replace(day=1) - timedelta(days=1)
    with scoped(TenantScope.single(rhein.id), db.session):
        if not db.session.scalar(sa.select(FeeSchedule.id).where(FeeSchedule.client_id == rhein.id).limit(1)):
            add_fee_schedule(
                db.session,
                rhein,
                effective_from=date(today.year - 3, 1, 1),
                currency="EUR",
                tiers=[TierInput(0, None, rate_bp=1500, direct_rate_bp=1000)],
                tax_rate_bp=1900,
                remittance_cycle="monthly",
            )
        run = db.session.scalar(
            sa.select(RemittanceRun)
            .where(
                RemittanceRun.client_id == rhein.id, RemittanceRun.currency == "EUR", RemittanceRun.status == "draft"
            )
            .order_by(RemittanceRun.period_end.desc())
        )
        if run is None:
            runs = draft_runs(db.session, rhein.id, "monthly", end.replace(day=1), end)
            run = next((r for r in runs if r.currency == "EUR" and r.status == "draft"), None)
        db.session.commit()
        if run is None or run.remit_minor <= 0:
            return "no EUR remittance to pay"
        # paid yesterday (or today), after the last payment the run covers: the trust account held it all by then
        covered = db.session.scalar(
            sa.select(sa.func.max(AgencyTransaction.occurred_on)).where(
                AgencyTransaction.client_id == rhein.id, AgencyTransaction.id <= run.upto_tx_id
            )
        )
        day = min(max((covered or run.period_end) + timedelta(days=1), today - timedelta(days=1)), today)
        at = datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=9)
        with frozen_time(at), audit.acting_as(audit.Actor(maria.id, maria.email)):
            payouts.prepare(db.session, run)
        with frozen_time(at.replace(hour=11)), audit.acting_as(audit.Actor(tom.id, tom.email)):
            payouts.approve(db.session, run)
            payouts.download(db.session, run)
        db.session.commit()
        remit, netted = run.remit_minor, run.netted_minor
        e2e, sweep = payouts.end_to_end_id(run), payouts.fees_reference(run)
    with scoped(TenantScope.agency(), db.session):
        # the trust account's statement of that day: what it held the evening before, the day's payments to the
        # agency (with their references), the remittance and the fees the run kept leaving it
        opening = trust._account_sums(db.session, day - timedelta(days=1), "EUR").get("trust_bank", 0)
        e, t = AgencyEntry, AgencyTransaction
        moves = db.session.execute(
            sa.select(e.amount_minor, Payment.external_ref)
            .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
            .join(Payment, (Payment.client_id == t.client_id) & (Payment.id == t.payment_id))
            .where(e.account == "trust_bank", e.currency == "EUR", t.occurred_on == day)
            .order_by(t.id)
        ).all()
        lines = [(int(amount), f"payment {ref}", ref) for amount, ref in moves]
        lines.append((-remit, e2e, f"DEMO-{day:%Y%m%d}-R"))
        if netted:
            lines.append((-netted, sweep, f"DEMO-{day:%Y%m%d}-F"))
        statement = _camt("AT611904300234573201", day, opening, lines)
        with frozen_time(at.replace(hour=18)), audit.acting_as(audit.Actor(tom.id, tom.email)):
            trust.import_trust_statement(db.session, statement, f"trust-{day}.xml")
        trust.reconcile_all(db.session, day)
        db.session.commit()
    return f"remittance {run.id} paid on {day}"
