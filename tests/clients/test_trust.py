"""Trust reconciliation: bank (imported statements' closing balance) = trust ledger = the clients' trust
balances, per currency and day; a seeded difference is listed with its causes; the CLI and the nightly job."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask

from clients import payouts, trust
from clients.interest_jobs import reconcile_trust_job
from clients.trust_models import TrustReconciliation
from provider.books.posting import bring_up_to_date
from provider.core.clock import frozen_time
from provider.core.jobs import PERIODIC_JOBS
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import give_schedule
from tests.clients.test_payment_imports import _import
from tests.clients.test_payouts import TRUST_IBAN, approved, as_user, camt, credit, debit, trust_account, world
from tests.factories import make_client, make_debtor, make_invoice, make_payment


def _client_with_invoice() -> tuple[Any, Any]:
    client = make_client(base_currency="EUR")
    give_schedule(client)  # 15 % fee, 20 % tax on it
    debtor = make_debtor(client, external_ref="D-T1")
    with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
        make_invoice(client, debtor, "INV-T1", 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2))
    return client, debtor


def _trust_import(content: bytes) -> trust.TrustImport:
    with scoped(TenantScope.agency(), db.session):
        got = trust.import_trust_statement(db.session, content, "trust.xml")
        db.session.commit()
    return got


def _reconcile(day: date) -> TrustReconciliation:
    with scoped(TenantScope.agency(), db.session):
        row = trust.reconcile(db.session, day, "EUR")
        db.session.commit()
    return row


def test_bank_ledger_and_clients_agree_when_every_line_is_recorded(db_session: Any) -> None:
    trust_account()
    client, _ = _client_with_invoice()
    day1 = camt(TRUST_IBAN, "0.00", "100.00", [credit("100.00", "C-1", "INV-T1", day="2026-03-10")], day="2026-03-10")
    with frozen_time(datetime(2026, 3, 11, tzinfo=UTC)):
        batch = _import(client, day1, name="march10.xml")  # the client's import records the payment
    assert batch.status == "posted", batch.errors
    assert _trust_import(day1).balances == 1
    row = _reconcile(date(2026, 3, 10))
    assert (row.status, row.bank_minor, row.ledger_minor, row.clients_minor) == ("agrees", 10_000, 10_000, 10_000)
    assert row.details["components"] == {"held": 8_200, "clearing": 0, "fees_in_trust": 1_800, "due_from_clients": 0}
    assert row.details["causes"] == {}


def test_a_seeded_difference_is_listed_with_its_causes(db_session: Any) -> None:
    trust_account()
    client, debtor = _client_with_invoice()
    day1 = camt(TRUST_IBAN, "0.00", "100.00", [credit("100.00", "C-1", "INV-T1", day="2026-03-10")], day="2026-03-10")
    with frozen_time(datetime(2026, 3, 11, tzinfo=UTC)):
        _import(client, day1, name="march10.xml")
    _trust_import(day1)
    # the next day: a credit nobody recorded, a bank charge, and a payment recorded by hand that the bank lacks
    day2 = camt(
        TRUST_IBAN,
        "100.00",
        "120.00",
        [
            credit("50.00", "C-2", "unknown payer", day="2026-03-11"),
            debit("30.00", "NOTPROVIDED", "FEE-1", "2026-03-11"),
        ],
        day="2026-03-11",
    )
    _trust_import(day2)
    make_payment(client, debtor, "CASH-DESK-1", 2_500, received_on=date(2026, 3, 11))
    with scoped(TenantScope.single(client.id), db.session):
        bring_up_to_date(db.session, client.id)  # what the books job does after every payment
        db.session.commit()
    row = _reconcile(date(2026, 3, 11))
    assert (row.status, row.bank_minor, row.ledger_minor) == ("differs", 12_000, 12_500)
    assert row.ledger_minor == row.clients_minor  # the books agree with themselves
    causes = row.details["causes"]
    assert {k: (v["count"], v["total_minor"]) for k, v in causes.items()} == {
        "bank_not_recorded": (1, 5_000),
        "recorded_not_in_bank": (1, -2_500),
        "debit_not_matched": (1, -3_000),
    }
    assert "unknown payer" in causes["bank_not_recorded"]["items"][0]
    assert "CASH-DESK-1" in causes["recorded_not_in_bank"]["items"][0]
    assert sum(v["total_minor"] for v in causes.values()) == row.bank_minor - row.ledger_minor
    # the day before still agrees, and is kept apart
    assert _reconcile(date(2026, 3, 10)).status == "agrees"


def test_a_remittance_marked_paid_by_hand_but_not_in_the_bank_is_a_cause(db_session: Any) -> None:
    trust_account()
    client, run = world()
    _, approver = approved(client, run)
    as_user(approver, client.id, payouts.mark_paid_manually, run, date(2026, 4, 2), "PHONE-1")
    _trust_import(camt(TRUST_IBAN, "100.00", "100.00", [], day="2026-04-02"))
    row = _reconcile(date(2026, 4, 2))
    causes = row.details["causes"]
    assert causes["paid_not_in_bank"]["total_minor"] == 10_000  # EUR 82.00 remitted + EUR 18.00 fees moved
    assert (
        "remittance" in causes["paid_not_in_bank"]["items"][0] and "PHONE-1" in causes["paid_not_in_bank"]["items"][0]
    )


def test_no_statement_is_said_so(db_session: Any) -> None:
    trust_account()
    _client_with_invoice()
    row = _reconcile(date(2026, 3, 10))
    assert row.status == "no_statement" and "no statement" in row.details["note"]


def test_the_cli_and_the_nightly_job_store_one_result_per_day(app: Flask, db_session: Any) -> None:
    assert any(p.path == "clients.interest_jobs.reconcile_trust_job" for p in PERIODIC_JOBS)
    trust_account()
    client, _ = _client_with_invoice()
    day1 = camt(TRUST_IBAN, "0.00", "100.00", [credit("100.00", "C-1", "INV-T1", day="2026-03-10")], day="2026-03-10")
    with frozen_time(datetime(2026, 3, 11, tzinfo=UTC)):
        _import(client, day1, name="march10.xml")
    _trust_import(day1)
    with frozen_time(datetime(2026, 3, 11, 3, 40, tzinfo=UTC)):
        assert reconcile_trust_job() == ["EUR 2026-03-10: agrees"]
        reconcile_trust_job()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(TrustReconciliation)) == 1
    result = app.test_cli_runner().invoke(args=["trust", "reconcile", "--date", "2026-03-10", "--currency", "EUR"])
    assert result.exit_code == 0, result.output
    assert "EUR 2026-03-10: agrees · bank €100.00 · trust ledger €100.00 · clients €100.00" in result.output
    bad = app.test_cli_runner().invoke(args=["trust", "reconcile", "--date", "10/03/2026"])
    assert bad.exit_code != 0 and "is not a date like" in bad.output
