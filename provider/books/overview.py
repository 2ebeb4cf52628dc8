"""The agency's books across its clients: fees earned per client and month, and one line per client (held in
trust, fees this month, payments waiting for a fee, the latest remittance). Reads through the session's tenant
scope, so a user sees the clients they may see."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from clients.models import Client
from provider.books.models import AgencyAccount, AgencyEntry, AgencyTransaction, PaymentFee, RemittanceRun
from provider.extensions import db

A = AgencyAccount
TOP_CLIENTS = 8  # clients drawn as their own series; the rest are summed as "Other clients"


def last_months(today: date, count: int = 12) -> list[str]:
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def _month(column: Any) -> Any:
    return func.substr(func.cast(column, db.String), 1, 7)


@dataclass
class FeeRow:
    client_id: int
    name: str
    currency: str
    by_month: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_month.values())


def fees_by_client_and_month(session: Session, months: list[str]) -> list[FeeRow]:
    """Fees earned (net of reversed fees, flat fees included) per client, currency and month; biggest first."""
    e, t = AgencyEntry, AgencyTransaction
    month = _month(t.occurred_on)
    first = date.fromisoformat(months[0] + "-01")
    rows = session.execute(
        select(e.client_id, Client.name, e.currency, month, -func.sum(e.amount_minor))
        .join(t, and_(t.client_id == e.client_id, t.id == e.transaction_id))
        .join(Client, Client.id == e.client_id)
        .where(e.account == A.FEES_EARNED.value, t.occurred_on >= first)
        .group_by(e.client_id, Client.name, e.currency, month)
    ).all()
    out: dict[tuple[int, str], FeeRow] = {}
    for client_id, name, currency, m, amount in rows:
        row = out.setdefault((client_id, currency), FeeRow(client_id, name, currency))
        row.by_month[m] = int(amount)
    return sorted(out.values(), key=lambda r: (r.currency, -r.total, r.name))


def chart_series(rows: list[FeeRow], months: list[str], currency: str) -> list[tuple[str, list[int]]]:
    mine = [r for r in rows if r.currency == currency and r.total]
    series = [(r.name, [r.by_month.get(m, 0) for m in months]) for r in mine[:TOP_CLIENTS]]
    rest = mine[TOP_CLIENTS:]
    if rest:
        series.append(("Other clients", [sum(r.by_month.get(m, 0) for r in rest) for m in months]))
    return series


def currencies(rows: list[FeeRow]) -> list[str]:
    """The currencies with fees, the one with the most clients first (then alphabetical): amounts of different
    currencies are never added up or drawn on one axis."""
    clients: dict[str, int] = defaultdict(int)
    for r in rows:
        clients[r.currency] += 1
    return sorted(clients, key=lambda c: (-clients[c], c))


def month_label(month: str) -> str:
    """2026-03 -> Mar 2026"""
    return date.fromisoformat(month + "-01").strftime("%b %Y")


def client_lines(session: Session, client_ids: list[int], month: str) -> dict[int, dict[str, Any]]:
    """Per client of the page: held in trust and fees this month (per currency), payments waiting for a fee,
    the latest remittance."""
    out: dict[int, dict[str, Any]] = {c: {"held": {}, "fees": {}, "waiting": 0, "latest": None} for c in client_ids}
    if not client_ids:
        return out
    e, t = AgencyEntry, AgencyTransaction
    held = session.execute(
        select(e.client_id, e.currency, -func.sum(e.amount_minor))
        .where(e.client_id.in_(client_ids), e.account == A.TRUST_LIABILITY.value)
        .group_by(e.client_id, e.currency)
    )
    for client_id, currency, amount in held:
        if amount:
            out[client_id]["held"][currency] = int(amount)
    fees = session.execute(
        select(e.client_id, e.currency, -func.sum(e.amount_minor))
        .join(t, and_(t.client_id == e.client_id, t.id == e.transaction_id))
        .where(e.client_id.in_(client_ids), e.account == A.FEES_EARNED.value, _month(t.occurred_on) == month)
        .group_by(e.client_id, e.currency)
    )
    for client_id, currency, amount in fees:
        out[client_id]["fees"][currency] = int(amount)
    waiting = session.execute(
        select(PaymentFee.client_id, func.count())
        .where(PaymentFee.client_id.in_(client_ids), PaymentFee.status == "unpriced")
        .group_by(PaymentFee.client_id)
    )
    for client_id, count in waiting:
        out[client_id]["waiting"] = int(count)
    latest_ids = (
        select(func.max(RemittanceRun.id))
        .where(RemittanceRun.client_id.in_(client_ids), RemittanceRun.status != "cancelled")
        .group_by(RemittanceRun.client_id)
    )
    for run in session.scalars(select(RemittanceRun).where(RemittanceRun.id.in_(latest_ids))):
        out[run.client_id]["latest"] = run
    return out
