"""A remittance's life in a process of its own, for the kill -9 test (tests/clients/test_remittance_killed.py).

`python -m tests.clients.remittance_driver STEP` with the app's environment (DATABASE_URL ...):

seed     a EUR client with a fee schedule, 40 payments in March 2026, bank details, the agency's trust account,
         two managers; prints the ids as JSON
run      the March remittance run job (draft the run, the month's flat fees, fee invoices), committed once
prepare  the first manager prepares the run for payment
approve  the second manager approves it (books posting + payout file)
paid     the trust account's statement showing the debit is imported (marks the run paid)

With `AR_PAUSE_AT=<step>` the step prints `PAUSED <step>` once its postings are made and sleeps before it
commits, so the test can SIGKILL it there; run again without the variable it completes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from provider.app import create_app
from provider.core.audit import Actor, acting_as
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

TRUST_IBAN = "DE89370400440532013000"
PAYMENTS = 40


def _pause(step: str) -> None:
    if os.environ.get("AR_PAUSE_AT") == step:
        print(f"PAUSED {step}", flush=True)
        time.sleep(120)


def _after(module: Any, name: str, step: str) -> None:
    """Make `module.name` pause after it ran (its postings flushed, not committed)."""
    original = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        db.session.flush()
        _pause(step)
        return result

    setattr(module, name, wrapped)


def seed() -> dict[str, Any]:
    from clients import trust
    from clients.bank_details import save_bank_account
    from tests.books.helpers import give_schedule
    from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_user

    with acting_as(Actor.system("kill test seed")), scoped(TenantScope.agency(), db.session):
        first, second = make_user("manager"), make_user("manager")
        client = make_client(name="Killed Run GmbH", code="KILL", base_currency="EUR")
        give_schedule(client)
        debtor = make_debtor(client, external_ref="D-K")
        with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
            make_invoice(client, debtor, "INV-K", 10_000_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2))
        for n in range(PAYMENTS):
            make_payment(client, debtor, f"K-{n}", 1_000 + n, received_on=date(2026, 3, 1 + n % 28))
        save_bank_account(
            db.session, client, {"currency": "EUR", "holder": "Killed Run GmbH", "iban": "NL91ABNA0417164300"}
        )
        trust.save_trust_account(db.session, {"currency": "EUR", "name": "Agency Trust", "account": TRUST_IBAN})
        db.session.commit()
        return {"client": client.id, "first": [first.id, first.email], "second": [second.id, second.email]}


def _run_row(client_id: int) -> Any:
    from provider.books.models import RemittanceRun

    return db.session.scalar(
        sa.select(RemittanceRun).where(RemittanceRun.client_id == client_id, RemittanceRun.status != "cancelled")
    )


def step(name: str, ids: dict[str, Any]) -> str:
    from clients import payouts, trust
    from provider.books import invoices
    from provider.books.jobs import remittance_run_job

    client_id = ids["client"]
    if name == "run":
        _after(invoices, "post_period_fees", "run")
        with acting_as(Actor.system("kill test")), frozen_time(datetime(2026, 4, 1, 3, tzinfo=UTC)):
            result = remittance_run_job(client_id, "monthly", "2026-03-01", "2026-03-31")
            db.session.commit()
        return json.dumps(result)
    who = ids["first"] if name == "prepare" else ids["second"]
    with (
        acting_as(Actor(who[0], who[1])),
        scoped(TenantScope.single(client_id), db.session),
        frozen_time(datetime(2026, 4, 2, 10, tzinfo=UTC)),
    ):
        run = _run_row(client_id)
        if name == "prepare":
            payouts.prepare(db.session, run)
        elif name == "approve":
            _after(payouts, "approve_run", "approve")
            payouts.approve(db.session, run)
        db.session.commit()
        if name != "paid":
            return run.status
        remit = f"{run.remit_minor // 100}.{run.remit_minor % 100:02d}"
        e2e = payouts.end_to_end_id(run)
    statement = (
        '<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
        "<BkToCstmrStmt><GrpHdr><MsgId>K-1</MsgId><CreDtTm>2026-04-03T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>K-S-1</Id><Acct><Id><IBAN>{TRUST_IBAN}</IBAN></Id></Acct>"
        '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">100000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        "<Dt><Dt>2026-04-03</Dt></Dt></Bal>"
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{100000 - run.remit_minor / 100:.2f}</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-04-03</Dt></Dt></Bal>"
        f'<Ntry><Amt Ccy="EUR">{remit}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        "<BookgDt><Dt>2026-04-03</Dt></BookgDt><AcctSvcrRef>BANK-K-1</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"
        "</Stmt></BkToCstmrStmt></Document>"
    ).encode()
    _after(payouts, "mark_run_paid", "paid")
    with acting_as(Actor(who[0], who[1])), scoped(TenantScope.agency(), db.session):
        with frozen_time(datetime(2026, 4, 4, tzinfo=UTC)):
            got = trust.import_trust_statement(db.session, statement, "trust-april.xml")
        db.session.commit()
    return json.dumps(got.remittances_paid)


def main() -> None:
    app = create_app()
    with app.app_context():
        if sys.argv[1] == "seed":
            print(json.dumps(seed()), flush=True)
        else:
            print(step(sys.argv[1], json.loads(sys.argv[2])), flush=True)


if __name__ == "__main__":
    main()
