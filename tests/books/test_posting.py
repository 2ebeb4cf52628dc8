"""Posting payments to the agency's books: fees, tax, trust, direct payments, unpriced and re-priced fees,
reversals, idempotency, append-only rows, and the job queued in the payment's transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select, text, update

from clients.corrections import reverse_document
from provider.books.models import AgencyEntry, AgencyTransaction, FeeStatus, PaymentFee
from provider.books.posting import balances, bring_up_to_date, held_in_trust
from provider.books.services import ScheduleInvalid, TierInput, add_fee_schedule
from provider.core.audit import AppendOnlyViolation
from provider.core.clock import frozen_time
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import by_kind, give_schedule, unbalanced
from tests.factories import make_client, make_debtor, make_invoice, make_payment

PLACED = datetime(2026, 2, 1, 9, tzinfo=UTC)


def _placed(client: Any, due: date, amount: int = 100_000) -> Any:
    debtor = make_debtor(client)
    with frozen_time(PLACED):
        make_invoice(client, debtor, f"INV-{debtor.id}", amount, issue_date=date(2025, 9, 1), due_date=due)
    return debtor


def _catch_up(client: Any) -> Any:
    with scoped(TenantScope.single(client.id), db.session):
        done = bring_up_to_date(db.session, client.id)
        db.session.commit()
    return done


def _fee(client: Any, payment: Any) -> PaymentFee:
    return db.session.scalars(
        select(PaymentFee).where(PaymentFee.client_id == client.id, PaymentFee.payment_id == payment.id)
    ).one()


def test_a_payment_to_the_agency_is_held_in_trust_less_its_fee_and_tax(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)  # 15 % up to 90 days past due at placement, 25 % beyond; tax 20 %
    young, old = _placed(client, date(2026, 1, 2)), _placed(client, date(2025, 10, 1))  # 30 and 123 days
    p1 = make_payment(client, young, "P1", 10_001)
    p2 = make_payment(client, old, "P2", 20_000)
    done = _catch_up(client)
    assert (done.payments, done.unpriced, done.transactions) == (2, 0, 2)
    f1, f2 = _fee(client, p1), _fee(client, p2)
    assert (f1.age_days, f1.rate_bp, f1.fee_minor, f1.tax_minor) == (30, 1500, 1500, 300)  # 1500.15 -> 1500
    assert (f2.age_days, f2.rate_bp, f2.fee_minor, f2.tax_minor) == (123, 2500, 5000, 1000)
    books = balances(db.session, client.id)
    assert books[("trust_bank", "EUR")] == 30_001
    assert books[("fees_earned", "EUR")] == -6_500 and books[("tax_payable", "EUR")] == -1_300
    assert held_in_trust(db.session, client.id) == {"EUR": 30_001 - 7_800}
    entries = db.session.scalars(
        select(AgencyEntry).where(AgencyEntry.client_id == client.id, AgencyEntry.account == "fees_earned")
    ).all()
    assert sorted(e.payment_id for e in entries) == sorted([p1.id, p2.id])  # every fee traceable to its payment
    assert unbalanced(client.id) == []


def test_a_payment_made_directly_to_the_client_makes_a_fee_receivable(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    debtor = _placed(client, date(2026, 1, 2))
    make_payment(client, debtor, "D1", 10_000, received_by="client")
    _catch_up(client)
    books = balances(db.session, client.id)
    assert books[("fees_receivable", "EUR")] == 1_200  # 10 % + 20 % tax
    assert ("trust_bank", "EUR") not in books and held_in_trust(db.session, client.id) == {}


def test_running_twice_posts_once(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    make_payment(client, _placed(client, date(2026, 1, 2)), "P1", 5_000)
    assert _catch_up(client).transactions == 1
    assert _catch_up(client).transactions == 0
    assert db.session.scalar(select(AgencyTransaction.id).where(AgencyTransaction.client_id == client.id).limit(2))


def test_without_a_schedule_the_payment_posts_unpriced_and_is_priced_once_one_exists(db_session: Any) -> None:
    client = make_client()
    debtor = _placed(client, date(2026, 1, 2))
    payment = make_payment(client, debtor, "P1", 10_000)
    done = _catch_up(client)
    assert (done.payments, done.unpriced) == (1, 1)
    row = _fee(client, payment)
    assert row.status == FeeStatus.UNPRICED.value and row.reason == "no fee schedule in force on 2026-03-01"
    assert held_in_trust(db.session, client.id) == {"EUR": 10_000}  # the client's ledger was not blocked
    give_schedule(client)
    assert _catch_up(client).repriced == 1
    db.session.refresh(row)
    assert (row.status, row.fee_minor, row.tax_minor) == ("priced", 1_500, 300)
    assert held_in_trust(db.session, client.id) == {"EUR": 8_200}
    assert by_kind(client.id)[("fee", "fees_earned", "EUR")] == -1_500


def test_an_age_no_tier_covers_is_unpriced_with_the_age_in_the_reason(db_session: Any) -> None:
    client = make_client()
    give_schedule(client, tiers=[TierInput(0, 30, 1000, 800)])
    payment = make_payment(client, _placed(client, date(2025, 10, 1)), "P1", 10_000)
    _catch_up(client)
    row = _fee(client, payment)
    assert row.status == "unpriced" and "123 days past due" in row.reason


def test_a_reversed_payment_reverses_its_fee_and_its_trust(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    debtor = _placed(client, date(2026, 1, 2))
    payment = make_payment(client, debtor, "P1", 10_000)
    direct = make_payment(client, debtor, "D1", 4_000, received_by="client")
    _catch_up(client)
    with scoped(TenantScope.single(client.id), db.session):
        reverse_document(db.session, client, payment, "bounced")
        reverse_document(db.session, client, direct, "cheque returned")
        db.session.commit()
    assert _catch_up(client).reversals == 2
    books = balances(db.session, client.id)
    assert all(v == 0 for v in books.values()), books
    assert unbalanced(client.id) == []


def test_a_reversal_of_an_unpriced_payment_voids_its_fee(db_session: Any) -> None:
    client = make_client()
    payment = make_payment(client, _placed(client, date(2026, 1, 2)), "P1", 10_000)
    _catch_up(client)
    with scoped(TenantScope.single(client.id), db.session):
        reverse_document(db.session, client, payment, "bounced")
        db.session.commit()
    give_schedule(client)
    _catch_up(client)
    assert _fee(client, payment).status == FeeStatus.VOID.value
    assert all(v == 0 for v in balances(db.session, client.id).values())


def test_the_books_refuse_changes(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    make_payment(client, _placed(client, date(2026, 1, 2)), "P1", 10_000)
    _catch_up(client)
    with scoped(TenantScope.single(client.id), db.session):
        entry = db.session.scalars(select(AgencyEntry).where(AgencyEntry.client_id == client.id)).first()
        assert entry is not None
        with pytest.raises(AppendOnlyViolation):
            db.session.execute(update(AgencyEntry).values(amount_minor=1))
        entry.amount_minor += 1
        with pytest.raises(AppendOnlyViolation):
            db.session.flush()
        db.session.rollback()


def test_the_app_role_has_no_update_on_the_books(db_session: Any) -> None:
    if db.session.connection().dialect.name != "postgresql":
        pytest.skip("privileges are a PostgreSQL matter")
    rights = db.session.execute(
        text(
            "SELECT has_table_privilege(current_user, 'agency_entries', 'UPDATE'),"
            " has_table_privilege(current_user, 'agency_transactions', 'DELETE'),"
            " has_table_privilege(current_user, 'agency_entries', 'INSERT')"
        )
    ).one()
    assert tuple(rights) == (False, False, True)


def test_posting_a_payment_queues_the_books_job_in_its_transaction(db_session: Any) -> None:
    client = make_client()
    make_payment(client, _placed(client, date(2026, 1, 2)), "P1", 10_000)
    row = db.session.scalars(select(BackgroundJob).where(BackgroundJob.key == f"books:{client.id}")).one()
    assert row.path == "provider.books.jobs.post_books_job" and row.args == [client.id]


def test_a_bad_schedule_names_every_problem_and_writes_nothing(db_session: Any) -> None:
    client = make_client()
    tiers = [TierInput(0, 90, 1500, 1000), TierInput(60, None, 20_000, 1000)]
    with scoped(TenantScope.agency(), db.session), pytest.raises(ScheduleInvalid) as refused:
        add_fee_schedule(
            db.session, client, effective_from=date(2026, 1, 1), currency="EUX", tiers=tiers, tax_rate_bp=-1
        )
    errors = refused.value.errors
    assert set(errors) == {"currency", "tax_rate", "tiers"}
    assert "rates 1 and 2 overlap: an account would match both" in errors["tiers"]
    assert "rate 2: the rate must be between 0 % and 100 %" in errors["tiers"]


def test_many_new_payments_are_posted_in_rounds_with_the_same_result(
    db_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provider.books import posting

    monkeypatch.setattr(posting, "CHUNK", 2)  # 5 payments: three rounds of pricing and posting
    client = make_client()
    give_schedule(client)
    young, old = _placed(client, date(2026, 1, 2)), _placed(client, date(2025, 10, 1))
    payments = [make_payment(client, young if n % 2 else old, f"P{n}", 10_000 + n) for n in range(4)]
    payments.append(make_payment(client, young, "D1", 5_000, received_by="client"))
    with scoped(TenantScope.single(client.id), db.session):
        reverse_document(db.session, client, payments[1], "bounced")  # before the books saw it
        db.session.commit()
    done = _catch_up(client)
    assert (done.payments, done.reversals, done.transactions) == (5, 1, 6)
    assert not unbalanced(client.id)
    fees = [_fee(client, p) for p in payments]
    assert [f.fee_minor for f in fees] == [2500, 1500, 2500, 1500, 500]  # 25 %, 15 % (rounded), direct 10 %
    kept = sum(10_000 + n - fees[n].fee_minor - fees[n].tax_minor for n in (0, 2, 3))
    assert held_in_trust(db.session, client.id) == {"EUR": kept}
    assert _catch_up(client).transactions == 0  # nothing twice
