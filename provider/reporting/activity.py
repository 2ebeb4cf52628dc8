"""The agency's work on a client's accounts in a month, for the monthly report: promises to pay (made, kept,
broken: count and amount) and the agency staff's activity (calls, right-party contacts, e-mails and letters).

Read-only, set-based: a few GROUP BYs over the client's month (in its time zone). Only agency staff count:
an action recorded by a client's own user (the portal) is not the agency's activity. Results are JSON (they
are frozen into the report) with amounts in minor units per currency.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from clients.models import Client
from provider.comms.models import Message
from provider.core.permissions import STAFF_ROLES
from provider.models import User
from sla.months import month_bounds
from worklists.models import CONVERSATIONS, ActionKind, Promise, PromiseStatus, WorkAction

RIGHT_PARTY = sorted(o.value for o in CONVERSATIONS)
STAFF = sorted(r.value for r in STAFF_ROLES)


def _month(session: Session, client_id: int, start: date) -> tuple[datetime, datetime]:
    client = session.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    return month_bounds(client.timezone, start.year, start.month)


def promise_stats(session: Session, client_id: int, start: date, end: date) -> dict[str, Any]:
    """{"made", "kept", "broken", "open_at_end": {"count", "amounts"}, each {"count", "amounts": {cur: minor}},
    "kept_rate": "x.y" | None} — made by creation in the month, kept and broken by resolution in the month."""
    lo, hi = _month(session, client_id, start)
    p = Promise
    out: dict[str, Any] = {k: {"count": 0, "amounts": {}} for k in ("made", "kept", "broken", "open_at_end")}

    def add(key: str, rows: Any) -> None:
        for currency, n, amount in rows:
            out[key]["count"] += int(n)
            out[key]["amounts"][currency] = out[key]["amounts"].get(currency, 0) + int(amount or 0)

    grouped = (p.currency, func.count(), func.sum(p.amount_minor))
    add(
        "made",
        session.execute(
            select(*grouped).where(p.client_id == client_id, p.created_at >= lo, p.created_at < hi).group_by(p.currency)
        ),
    )
    for status in (PromiseStatus.KEPT.value, PromiseStatus.BROKEN.value):
        add(
            status,
            session.execute(
                select(*grouped)
                .where(p.client_id == client_id, p.status == status, p.resolved_at >= lo, p.resolved_at < hi)
                .group_by(p.currency)
            ),
        )
    add(
        "open_at_end",
        session.execute(
            select(*grouped)
            .where(
                p.client_id == client_id,
                p.created_at < hi,
                p.status != PromiseStatus.CANCELLED.value,
                (p.resolved_at.is_(None)) | (p.resolved_at >= hi),
            )
            .group_by(p.currency)
        ),
    )
    decided = out["kept"]["count"] + out["broken"]["count"]
    out["kept_rate"] = f"{100 * out['kept']['count'] / decided:.1f}" if decided else None
    return out


def collector_activity(session: Session, client_id: int, start: date, end: date) -> dict[str, Any]:
    """{"totals": {"accounts", "calls", "right_party", "emails", "letters", "promises"}, "collectors": [{"collector",
    "calls", "right_party", "emails", "promises", "accounts"}]} — staff actions and messages sent in the month."""
    lo, hi = _month(session, client_id, start)
    a = WorkAction
    is_call = a.kind == ActionKind.CALL.value
    rows = session.execute(
        select(
            User.name,
            func.count().filter(is_call),
            func.count().filter(and_(is_call, a.outcome.in_(RIGHT_PARTY))),
            func.count().filter(a.kind == ActionKind.EMAIL.value),
            func.count().filter(a.kind == ActionKind.PROMISE.value),
            func.count(func.distinct(a.debtor_id)),
        )
        .join(User, User.id == a.user_id)
        .where(a.client_id == client_id, a.occurred_at >= lo, a.occurred_at < hi, User.role.in_(STAFF))
        .group_by(User.name)
        .order_by(User.name)
    ).all()
    accounts = session.scalar(
        select(func.count(func.distinct(a.debtor_id)))
        .join(User, User.id == a.user_id)
        .where(a.client_id == client_id, a.occurred_at >= lo, a.occurred_at < hi, User.role.in_(STAFF))
    )
    m = Message
    sent_at = func.coalesce(m.sent_at, m.dispatched_at)
    messages = dict(
        session.execute(
            select(m.channel, func.count())
            .where(m.client_id == client_id, m.debtor_id.is_not(None), sent_at >= lo, sent_at < hi)
            .group_by(m.channel)
        ).all()
    )
    collectors: list[dict[str, Any]] = [
        {"collector": name, "calls": c, "right_party": rp, "emails": e, "promises": p, "accounts": n}
        for name, c, rp, e, p, n in rows
    ]
    return {
        "totals": {
            "accounts": int(accounts or 0),
            "calls": sum(r["calls"] for r in collectors),
            "right_party": sum(r["right_party"] for r in collectors),
            "emails": int(messages.get("email") or 0) + sum(r["emails"] for r in collectors),
            "letters": int(messages.get("letter") or 0),
            "promises": sum(r["promises"] for r in collectors),
        },
        "collectors": collectors,
    }
