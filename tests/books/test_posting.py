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


def test_a_catch_up_up_to_a_day_posts_only_the_payments_received_by_then(db_session: Any) -> None:
    """`received_until` (the month-end run's cut-off) on both databases: the later payment waits for the next one."""
    client = make_client()
    give_schedule(client)
    debtor = _placed(client, date(2026, 1, 2))
    early = make_payment(client, debtor, "P-EARLY", 10_000, received_on=date(2026, 3, 1))
    late = make_payment(client, debtor, "P-LATE", 20_000, received_on=date(2026, 3, 20))
    with scoped(TenantScope.single(client.id), db.session):
        done = bring_up_to_date(db.session, client.id, received_until=date(2026, 3, 10))
        db.session.commit()
    assert (done.payments, done.transactions) == (1, 1)
    assert _fee(client, early).fee_minor == 1_500  # 15 %
    assert db.session.scalar(select(PaymentFee.id).where(PaymentFee.payment_id == late.id)) is None
    assert _catch_up(client).payments == 1  # and the next catch-up without a cut-off posts the later one
    assert unbalanced(client.id) == []


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


def test_the_set_based_pricing_agrees_with_the_rules_payment_by_payment(db_session: Any) -> None:
    """New payments are priced by one INSERT ... SELECT; each fee row must be what `pricing.price` says for it:
    schedule versions by day received, tiers by age and placed amount, the age never below 0, only the first
    placement day counting, a payment in another currency than the schedule's, half-even rounding of fee and
    tax, and direct rates. What the SQL cannot price is left to the Python path (unpriced, with its reason)."""
    from provider.books import pricing
    from provider.books.posting import _account_for, load_schedules, placement_accounts

    client = make_client()
    tiers = [
        TierInput(0, 90, 1500, 1000, 0, 150_000),
        TierInput(0, 90, 1700, 1100, 150_001, None),
        TierInput(91, 365, 2500, 2000),
    ]
    give_schedule(client, tiers, tax_rate_bp=2500)
    give_schedule(client, [TierInput(0, 365, 3000, 1200)], tax_rate_bp=2500, effective_from=date(2026, 3, 10))
    young, old = _placed(client, date(2026, 1, 2)), _placed(client, date(2025, 10, 1))
    big, early = _placed(client, date(2026, 1, 2), 200_000), _placed(client, date(2026, 3, 1))  # age -28 -> 0
    stale = make_debtor(client)  # 762 days past due at placement: no tier
    with frozen_time(PLACED):
        make_invoice(client, stale, "OLD-1", 100_000, issue_date=date(2023, 12, 1), due_date=date(2024, 1, 1))
    later = _placed(client, date(2026, 1, 2), 100_000)
    with frozen_time(datetime(2026, 2, 20, 9, tzinfo=UTC)):  # a later placement day does not count
        make_invoice(client, later, "LATE-1", 900_000, issue_date=date(2025, 1, 1), due_date=date(2025, 1, 1))
    payments = []
    for n, (debtor, amount) in enumerate(
        [
            (young, 10),
            (young, 30),
            (young, 10_001),
            (old, 26),
            (big, 40),
            (early, 7_777),
            (stale, 5_000),
            (later, 9),
            (young, 2),
        ]
    ):
        for day in (date(2026, 3, 1), date(2026, 3, 12)):
            for by in ("agency", "client"):
                payments.append(
                    make_payment(client, debtor, f"S{n}{day.day}{by}", amount, received_on=day, received_by=by)
                )
    payments.append(make_payment(client, young, "USD1", 20_000, currency="USD"))
    payments.append(make_payment(client, big, "USD2", 20_000, currency="USD"))
    done = _catch_up(client)
    assert done.payments == len(payments)
    with scoped(TenantScope.single(client.id), db.session):
        schedules = load_schedules(db.session, client.id)
        accounts = placement_accounts(db.session, client.id, {p.debtor_id for p in payments})
        for p in payments:
            direct = p.received_by == "client"
            account = _account_for(accounts, p.debtor_id, p.currency)
            quote = pricing.price(schedules, account, p.received_on, p.currency, p.amount_minor, direct)
            row = _fee(client, p)
            got = (row.status, row.schedule_id, row.tier_id, row.rate_bp, row.tax_rate_bp, row.fee_minor, row.tax_minor)
            want = (
                "priced" if quote.priced else "unpriced",
                quote.schedule_id,
                quote.tier_id,
                quote.rate_bp,
                quote.tax_rate_bp,
                quote.fee_minor,
                quote.tax_minor,
            )
            assert got == want, p.external_ref
            if quote.priced:
                assert (row.age_days, row.placed_minor, row.reason) == (account.age_days, account.amount_minor, "")
        assert not unbalanced(client.id)
        fees = db.session.scalars(select(PaymentFee).where(PaymentFee.client_id == client.id)).all()
    by_ref = {p.id: p.external_ref for p in payments}
    fee_of = {by_ref[f.payment_id]: (f.fee_minor, f.tax_minor) for f in fees}
    assert fee_of["S01agency"] == (2, 0)  # 1.5 -> 2 (half to even), tax 0.5 -> 0
    assert fee_of["S11agency"] == (4, 1)  # 4.5 -> 4, tax 1.0
    # the stale debtor's four (no version has a tier that old) and the two in USD (tiers with amount bounds take
    # only the schedule's currency, and the one without bounds is for older accounts)
    assert sum(1 for f in fees if f.status == "unpriced") == 6
    assert _catch_up(client).transactions == 0


def test_new_payments_are_posted_in_a_fixed_number_of_statements(
    db_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many new payments: the books are priced and posted set-based, not in rounds of `CHUNK` payments
    (which the payments the SQL cannot price still take)."""
    from sqlalchemy import event

    from provider.books import posting

    monkeypatch.setattr(posting, "CHUNK", 2)
    client = make_client()
    give_schedule(client)
    young = _placed(client, date(2026, 1, 2))
    counts = []
    for n in (3, 30):
        for k in range(n):
            make_payment(client, young, f"N{n}-{k}", 1_000 + k, received_by="client" if k % 3 == 0 else "agency")
        statements: list[str] = []
        engine = db.session.get_bind()
        listen = statements_into(statements)
        event.listen(engine, "before_cursor_execute", listen)
        try:
            done = _catch_up(client)
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        assert done.payments == n and not unbalanced(client.id)
        counts.append(sum(1 for s in statements if "analyze" not in s.lower() and "pg_class" not in s))
    assert counts[0] == counts[1]


def statements_into(statements: list[str]) -> Any:
    def listen(*args: Any) -> None:
        statements.append(args[2])

    return listen
