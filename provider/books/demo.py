"""Demo seeding of the agency's books: a fee schedule per demo client, the books replayed month by month over the
demo ledger's payments, and the last four months' remittances (two paid, one approved, one draft) and fee
invoices, as the monthly jobs would have made them. Idempotent: a client with a fee schedule is left alone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from clients.models import Client
from provider.books.invoices import issue_fee_invoice, post_period_fees, receivable_currencies
from provider.books.models import FeeSchedule
from provider.books.posting import bring_up_to_date
from provider.books.remittance import approve_run, draft_runs, mark_run_paid
from provider.books.services import TierInput, add_fee_schedule
from provider.core.clock import frozen_time, today_utc
from provider.core.money import exponent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

TAX_BP = {"US": 0, "DE": 1900, "GB": 2000, "JP": 1000, "AU": 1000, "CA": 500}
BILL_TO = {
    "NWIND": "Accounts Payable\n400 Park Avenue South\nNew York, NY 10016\nUnited States",
    "RHEIN": "Kreditorenbuchhaltung\nRheinuferstraße 12\n40213 Düsseldorf\nGermany",
    "THAMES": "Finance Department\n1 Riverside Walk\nLondon SE1 9PX\nUnited Kingdom",
    "SAKURA": "Accounting Division\n2-7-1 Marunouchi, Chiyoda-ku\nTokyo 100-0005\nJapan",
    "OUTBK": "Accounts Payable\n88 George Street\nSydney NSW 2000\nAustralia",
    "MAPLE": "Accounts Payable\n200 Bay Street\nToronto ON M5J 2J2\nCanada",
}
TIERS = [
    TierInput(0, 90, rate_bp=1500, direct_rate_bp=1000),
    TierInput(91, 180, rate_bp=2000, direct_rate_bp=1500),
    TierInput(181, None, rate_bp=2500, direct_rate_bp=2000),
]


def _months_before(today: date, count: int) -> list[tuple[date, date]]:
    """The `count` complete months before `today`'s, oldest first."""
    out = []
    end = today.replace(day=1) - timedelta(days=1)
    for _ in range(count):
        out.append((end.replace(day=1), end))
        end = end.replace(day=1) - timedelta(days=1)
    return out[::-1]


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def seed_books_demo(clients: list[Client]) -> int:
    """Books for the demo clients that have no fee schedule yet; returns how many clients were seeded."""
    seeded = 0
    today = today_utc()
    months = _months_before(today, 4)
    for client in clients:
        with scoped(TenantScope.single(client.id), db.session):
            if db.session.scalar(select(FeeSchedule.id).where(FeeSchedule.client_id == client.id).limit(1)):
                continue
            add_fee_schedule(
                db.session,
                client,
                effective_from=date(today.year - 3, 1, 1),
                currency=client.base_currency,
                tiers=TIERS,
                tax_rate_bp=TAX_BP.get(client.country, 0),
                remittance_cycle="monthly",
                per_letter_minor=150 if exponent(client.base_currency) == 2 else 0,  # 1.50 a letter posted
                bill_to=BILL_TO.get(client.code, ""),
                note="Standard contingency schedule",
            )
            for n, (start, end) in enumerate(months):
                with frozen_time(_at(end + timedelta(days=1), 6)):
                    runs = draft_runs(db.session, client.id, "monthly", start, end, received_until=end)
                    post_period_fees(db.session, client.id, start, end)
                    for currency in receivable_currencies(db.session, client.id):
                        issue_fee_invoice(
                            db.session, client.id, currency, start, end, end + timedelta(days=1), received_until=end
                        )
                for run in runs:
                    if n < 3:  # the oldest two paid, the third approved, the newest left a draft
                        with frozen_time(_at(end + timedelta(days=2), 10)):
                            approve_run(db.session, run, "maria.manager@demo.test")
                    if n < 2:
                        with frozen_time(_at(end + timedelta(days=3), 15)):
                            mark_run_paid(db.session, run, end + timedelta(days=3), f"TRF-{client.code}-{end:%Y%m}")
            bring_up_to_date(db.session, client.id)  # this month's payments so far
            db.session.commit()
            seeded += 1
    return seeded
