"""Tenant-scoped reads of dunning: policies, runs, decisions, and the effect of each stage.

`stage_effects(session, client_id, period)`: per stage of the decisions made in the month `period`
('YYYY-MM'), how many messages went out, bounced and were replied to, and how many of those debtors paid or
promised to pay within 14 days of their message (the stage's effect), with what they paid in the currency
they were chased in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from provider.dunning.models import DunningPolicy, DunningRun, LetterBatch

EFFECT_DAYS = 14


@dataclass(frozen=True)
class StageEffect:
    stage: str
    days_past_due: int
    channel: str
    sent: int
    skipped: int
    bounced: int
    replied: int
    paid: int
    promised: int
    paid_minor: int
    currency: str

    @property
    def paid_pct(self) -> float | None:
        return round(100 * self.paid / self.sent, 1) if self.sent else None


def month_bounds(period: str) -> tuple[date, date]:
    first = date.fromisoformat(f"{period}-01")
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, nxt


def _within(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"{column} BETWEEN d.run_date AND d.run_date + {EFFECT_DAYS}"
    return f"{column} BETWEEN d.run_date AND date(d.run_date, '+{EFFECT_DAYS} day')"


def stage_effects(session: Session, client_id: int, period: str) -> list[StageEffect]:
    start, end = month_bounds(period)
    dialect = session.get_bind().dialect.name
    created = "CAST(p.created_at AS DATE)" if dialect == "postgresql" else "date(p.created_at)"
    # the pieces put in are fixed SQL chosen by dialect and schema; every value is a bound parameter
    sql = f"""
        SELECT s.name, s.days_past_due, s.channel,
               SUM(CASE WHEN d.outcome = 'sent' THEN 1 ELSE 0 END) AS sent,
               SUM(CASE WHEN d.outcome = 'skipped' THEN 1 ELSE 0 END) AS skipped,
               SUM(CASE WHEN m.status = 'bounced' THEN 1 ELSE 0 END) AS bounced,
               SUM(CASE WHEN EXISTS (SELECT 1 FROM comm_events e WHERE e.client_id = d.client_id
                   AND e.message_id = d.message_id AND e.kind = 'replied') THEN 1 ELSE 0 END) AS replied,
               SUM(CASE WHEN d.outcome = 'sent' AND EXISTS (SELECT 1 FROM payments p WHERE p.client_id = d.client_id
                   AND p.debtor_id = d.debtor_id AND {_within(dialect, "p.received_on")}) THEN 1 ELSE 0 END) AS paid,
               SUM(CASE WHEN d.outcome = 'sent' AND EXISTS (SELECT 1 FROM promises p WHERE p.client_id = d.client_id
                   AND p.debtor_id = d.debtor_id AND {_within(dialect, created)}) THEN 1 ELSE 0 END) AS promised,
               SUM(CASE WHEN d.outcome = 'sent' THEN (SELECT COALESCE(SUM(p.amount_minor), 0) FROM payments p
                   WHERE p.client_id = d.client_id AND p.debtor_id = d.debtor_id AND p.currency = d.currency
                   AND {_within(dialect, "p.received_on")}) ELSE 0 END) AS paid_minor,
               MIN(d.currency) AS currency
        FROM dunning_decisions d
        JOIN dunning_stages s ON s.client_id = d.client_id AND s.id = d.stage_id
        LEFT JOIN comm_messages m ON m.client_id = d.client_id AND m.id = d.message_id
        WHERE d.client_id = :c AND d.run_date >= :start AND d.run_date < :end
        GROUP BY s.name, s.days_past_due, s.channel
        ORDER BY s.days_past_due, s.name
    """  # noqa: S608
    rows = session.execute(text(sql), {"c": client_id, "start": start, "end": end})
    return [StageEffect(r[0], int(r[1]), r[2], *(int(v or 0) for v in r[3:10]), r[10] or "") for r in rows]


CHANNEL_WORDS = {"email": "E-mail", "letter": "Letter", "task": "Call by a collector"}


def report_section(session: Session, client_id: int, start: date, end: date) -> list[dict[str, object]]:
    """The monthly report's "Reminders and their effect" section (JSON: it is frozen into the report)."""
    from provider.core.money import format_money

    return [
        {
            "stage": e.stage,
            "days": e.days_past_due,
            "channel": CHANNEL_WORDS.get(e.channel, e.channel),
            "sent": e.sent,
            "skipped": e.skipped,
            "bounced": e.bounced,
            "replied": e.replied,
            "paid": e.paid,
            "promised": e.promised,
            "paid_amount": format_money(e.paid_minor, e.currency) if e.currency else "",
        }
        for e in stage_effects(session, client_id, start.strftime("%Y-%m"))
        if e.sent
    ]


def policies_of(session: Session, client_id: int) -> list[DunningPolicy]:
    return list(
        session.scalars(
            select(DunningPolicy).where(DunningPolicy.client_id == client_id).order_by(DunningPolicy.version.desc())
        )
    )


def runs_of(session: Session, client_id: int, limit: int = 30) -> list[DunningRun]:
    return list(
        session.scalars(
            select(DunningRun)
            .where(DunningRun.client_id == client_id)
            .order_by(DunningRun.run_date.desc())
            .limit(limit)
        )
    )


def batches_of(session: Session, client_id: int, limit: int = 30) -> list[LetterBatch]:
    return list(
        session.scalars(
            select(LetterBatch)
            .where(LetterBatch.client_id == client_id)
            .order_by(LetterBatch.run_date.desc())
            .limit(limit)
        )
    )
