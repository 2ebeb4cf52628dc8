"""Scoring: explainable terms, currency normalisation, rebuild creates, rescoring reopens and closes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_client, make_debtor, make_invoice, make_payment
from tests.worklists.helpers import TODAY, commercial_client, item_of, overdue_account, rebuild, working_day
from worklists import scoring
from worklists.models import ItemState, SegmentWeight, Strategy, WorkItem


def test_rebuild_makes_one_item_per_overdue_account_with_its_terms(db_session: Any) -> None:
    with working_day():
        client = commercial_client()
        late = overdue_account(client, 12_000_00, due=date(2025, 12, 1))  # 99 days: band 4
        other = overdue_account(client, 150_00, due=date(2026, 3, 1))  # 9 days: band 1
        not_due = make_debtor(client)
        make_invoice(client, not_due, "NOT-DUE", 999_00, issue_date=date(2026, 3, 1), due_date=date(2026, 4, 1))
        rebuild(client)
        a, b = item_of(late), item_of(other)
        assert item_of(not_due) is None
        assert a.terms() == {
            "amount": 40,
            "days": 40,
            "broken": 0,
            "promise_due": 0,
            "sla": 0,
            "segment": 0,
            "client": 0,
            "behaviour": 0,  # no payment behaviour learned yet (tests/forecast/test_segments_wiring.py)
        }
        assert a.score == 80 and a.overdue_minor == 12_000_00 and a.currency == "EUR" and a.overdue_norm == 12_000
        assert b.terms()["amount"] == 10 and b.terms()["days"] == 10 and b.score == 20
        assert a.state == ItemState.NEW.value and a.days_past_due(TODAY) == 99
        assert a.contact_tz == "Europe/Berlin"


def test_amounts_in_different_currencies_compare_through_the_reference_rates(db_session: Any) -> None:
    with working_day():
        eur = commercial_client()
        jpy = commercial_client(base_currency="JPY", timezone="Asia/Tokyo", country="JP")
        big_yen = overdue_account(jpy, 1_000_000)  # JPY 1,000,000 ≈ 6,200 reference units
        small_eur = overdue_account(eur, 1_000_00)  # EUR 1,000
        rebuild(eur, jpy)
        assert item_of(big_yen).overdue_norm == 6_200
        assert item_of(small_eur).overdue_norm == 1_000
        assert item_of(big_yen).term_amount > item_of(small_eur).term_amount


def test_an_account_owing_in_several_currencies_is_scored_on_their_sum_in_its_main_currency(
    db_session: Any,
) -> None:
    with working_day():
        client = commercial_client()

        def invoice(debtor: Any, number: str, amount: int, currency: str, due: date) -> None:
            make_invoice(
                client, debtor, number, amount, currency=currency, due_date=due, issue_date=due - timedelta(days=30)
            )

        mixed = make_debtor(client)
        invoice(mixed, "E-1", 100_00, "EUR", date(2026, 2, 1))
        invoice(mixed, "U-1", 5_000_00, "USD", date(2026, 1, 10))
        invoice(mixed, "U-2", 1_000_00, "USD", date(2026, 2, 20))
        # the main currency is the largest *normalised* amount: JPY 1,000,000 ≈ 6,200 beats EUR 5,000
        yen = make_debtor(client)
        invoice(yen, "J-1", 1_000_000, "JPY", date(2026, 2, 1))
        invoice(yen, "E-2", 5_000_00, "EUR", date(2026, 2, 1))
        single = overdue_account(client, 700_00)
        rebuild(client)
        a, b, c = item_of(mixed), item_of(yen), item_of(single)
        assert (a.currency, a.overdue_minor, a.overdue_norm) == ("USD", 6_000_00, 100 + 5_520)
        assert a.oldest_due_on == date(2026, 1, 10)
        assert (b.currency, b.overdue_minor, b.overdue_norm) == ("JPY", 1_000_000, 6_200 + 5_000)
        assert (c.currency, c.overdue_minor, c.overdue_norm) == ("EUR", 700_00, 700)
        with scoped(TenantScope.agency(), db.session):
            assert scoring.rescore(db.session, [client.id])["written"] == 0  # stable: nothing to rewrite


def test_strategy_weights_segments_and_client_boost(db_session: Any) -> None:
    with working_day():
        client = commercial_client()
        risky = overdue_account(client, 600_00, segment="high_risk")
        with scoped(TenantScope.agency(), db.session):
            db.session.add(Strategy(client_id=client.id, weight_amount=3, client_boost=7))
            db.session.add(SegmentWeight(client_id=client.id, segment="high_risk", points=15))
            db.session.commit()
        rebuild(client)
        item = item_of(risky)
        assert item.term_amount == 6 and item.term_segment == 15 and item.term_client == 7
        assert item.score == sum(item.terms().values())


def test_held_invoices_are_out_of_the_score_and_paid_accounts_close(db_session: Any) -> None:
    from clients import services

    with working_day():
        client = commercial_client()
        debtor = overdue_account(client, 300_00)
        rebuild(client)
        assert item_of(debtor).overdue_minor == 300_00
        payment = make_payment(client, debtor, "P-1", 300_00)
        with scoped(TenantScope.agency(), db.session):
            services.auto_allocate(db.session, client, payment)
            db.session.commit()
        rebuild(client)
        assert item_of(debtor).state == ItemState.CLOSED.value
        make_invoice(client, debtor, "INV-AGAIN", 50_00, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
        rebuild(client)
        item = item_of(debtor)
        assert item.state == ItemState.NEW.value and item.overdue_minor == 50_00 and item.closed_at is None


def test_rescoring_an_unchanged_account_writes_nothing(db_session: Any) -> None:
    with working_day():
        client = commercial_client()
        overdue_account(client)
        with scoped(TenantScope.agency(), db.session):
            first = scoring.rescore(db.session, [client.id])
            again = scoring.rescore(db.session, [client.id])
            db.session.commit()
        assert first["written"] == 1 and again["written"] == 0


def test_a_debtor_can_only_have_one_item(db_session: Any) -> None:
    with working_day():
        client = make_client()
        overdue_account(client)
        rebuild(client)
        rebuild(client)
        with scoped(TenantScope.agency(), db.session):
            assert (
                db.session.scalar(select(func.count()).select_from(WorkItem).where(WorkItem.client_id == client.id))
                == 1
            )


@given(st.integers(min_value=0, max_value=10**9))
def test_amount_band_is_monotonic(norm: int) -> None:
    assert scoring.amount_band(norm) <= scoring.amount_band(norm + 1)
    assert 0 <= scoring.amount_band(norm) <= len(scoring.AMOUNT_BANDS)


@pytest.mark.parametrize(("days", "band"), [(0, 0), (1, 1), (30, 1), (31, 2), (90, 3), (91, 4), (181, 5), (366, 6)])
def test_day_bands(days: int, band: int) -> None:
    assert scoring.day_band(days) == band


def test_the_nightly_job_rebuilds_every_active_client_in_one_pass(db_session: Any) -> None:
    from worklists import jobs

    with working_day():
        first_client, second_client = commercial_client(), commercial_client()
        debtors = [overdue_account(first_client), overdue_account(second_client)]
        first = jobs.rebuild_worklists_job()
        again = jobs.rebuild_worklists_job()  # the same day: nothing changed, nothing written
    assert all(item_of(d) is not None and item_of(d).state == ItemState.NEW.value for d in debtors)
    assert first["written"] >= 2 and again["written"] == 0
