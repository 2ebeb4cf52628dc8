"""The breach sweep: set-based marking of running clocks past their deadline, and exactly-once notification.

Run by `sweep_sla_clocks_job` (periodic). Twice, or by two workers at once, it notifies once: the marking
UPDATE only takes rows whose `breached_at` is still NULL (PostgreSQL re-checks that after waiting for a
concurrent writer's row lock; SQLite serialises writers), so each breach is marked by exactly one transaction,
which alone notifies it. UNIQUE (client_id, clock_id, kind) on the notifications is the backstop: on PostgreSQL
the sweep skips a clock that has a notification already (NOT EXISTS: a plain insert, cheaper than the
speculative insertion of ON CONFLICT), the other paths use `ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from blinker import Namespace
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from provider.core.audit import AuditEvent, current_actor
from provider.core.clock import now_utc
from sla import labels
from sla.models import ClockState, SlaClock, SlaClockEvent, SlaNotification

CHUNK = 5_000
breaches_notified = Namespace().signal("breaches-notified")  # send(session) after each sweep


# PostgreSQL: the whole sweep is one statement (data-modifying CTEs), nothing travels through Python. The
# notification insert needs no ON CONFLICT: a clock marked here had `breached_at` NULL under our row lock, so no
# other transaction notifies it (notify_breaches only takes clocks already breached, and `_move` marks before it
# notifies); NOT EXISTS skips one notified by anything else.
def _sql_case(column: str, words: dict[str, str], lower: bool = False) -> str:
    """A CASE that gives a code's words in SQL (the same words as `sla.labels`; constants, quotes doubled)."""
    whens = " ".join(
        f"WHEN '{code}' THEN '{(label.lower() if lower else label).replace(chr(39), chr(39) * 2)}'"
        for code, label in words.items()
    )
    return f"CASE {column} {whens} ELSE replace({column}, '_', ' ') END"


_BREACH_MESSAGE = (
    f"{_sql_case('code', labels.TERMS)} || ': SLA breached (' || {_sql_case('subject_type', labels.SUBJECTS, True)}"
    " || ' no. ' || subject_id || ')'"
)
_PG_SWEEP = text(
    """
WITH marked AS (
    UPDATE sla_clocks SET breached_at = deadline_at
    WHERE state = 'running' AND breached_at IS NULL AND deadline_at < :now
    RETURNING id, client_id, code, subject_type, subject_id, allowance_us / 1000000 AS elapsed_s, deadline_at
), history AS (
    INSERT INTO sla_clock_events (client_id, clock_id, at, event, state, elapsed_s, deadline_at, actor_label, note)
    SELECT client_id, id, deadline_at, 'breach', 'running', elapsed_s, deadline_at, :actor, '' FROM marked
), notified AS (
    INSERT INTO sla_notifications (client_id, clock_id, kind, message, created_at)
    SELECT client_id, id, 'breach',
           __BREACH_MESSAGE__, :stamp
    FROM marked m
    WHERE NOT EXISTS (
        SELECT FROM sla_notifications n WHERE n.client_id = m.client_id AND n.clock_id = m.id AND n.kind = 'breach'
    )
    RETURNING client_id, clock_id
), audited AS (
    INSERT INTO audit_events
        (occurred_at, actor_user_id, actor_label, action, object_type, object_id, client_id, changes)
    SELECT :stamp, :actor_id, :actor, 'sla.breach', 'SlaClock', clock_id::text, client_id,
           '{"after": {"notified": true}}'::jsonb
    FROM notified
)
SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM notified)
""".replace("__BREACH_MESSAGE__", _BREACH_MESSAGE)
)


def sweep(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Mark every running clock whose deadline has passed as breached; notify each breach once."""
    now = now or now_utc()
    if session.get_bind().dialect.name == "postgresql":
        actor = current_actor()
        params = {"now": now, "actor": actor.label, "actor_id": actor.user_id, "stamp": now_utc()}
        breached, notified = session.execute(_PG_SWEEP, params).one()
        breaches_notified.send(session)
        return {"breached": int(breached), "notified": int(notified)}
    marked = session.execute(
        update(SlaClock)
        .where(
            SlaClock.state == ClockState.RUNNING.value,
            SlaClock.breached_at.is_(None),
            SlaClock.deadline_at < now,
        )
        .values(breached_at=SlaClock.deadline_at)
        .returning(SlaClock.id, SlaClock.client_id, SlaClock.allowance_us, SlaClock.deadline_at)
        .execution_options(synchronize_session=False)
    ).all()
    label = current_actor().label
    for i in range(0, len(marked), CHUNK):
        session.execute(
            insert(SlaClockEvent),
            [
                {
                    "client_id": r.client_id,
                    "clock_id": r.id,
                    "at": r.deadline_at,
                    "event": "breach",
                    "state": ClockState.RUNNING.value,
                    "elapsed_s": r.allowance_us // 1_000_000,  # at the breach the allowance is used up
                    "deadline_at": r.deadline_at,
                    "actor_label": label,
                    "note": "",
                }
                for r in marked[i : i + CHUNK]
            ],
        )
    notified = notify_breaches(session, [r.id for r in marked])
    breaches_notified.send(session)
    return {"breached": len(marked), "notified": notified}


def notify_breaches(session: Session, clock_ids: Sequence[int]) -> int:
    """One notification (and one audit event) per breached clock; a clock already notified is skipped."""
    total = 0
    for i in range(0, len(clock_ids), CHUNK):
        chunk = list(clock_ids[i : i + CHUNK])
        rows = session.execute(
            select(SlaClock.id, SlaClock.client_id, SlaClock.code, SlaClock.subject_type, SlaClock.subject_id).where(
                SlaClock.id.in_(chunk), SlaClock.breached_at.is_not(None)
            )
        ).all()
        if not rows:
            continue
        values = [
            {
                "client_id": r.client_id,
                "clock_id": r.id,
                "kind": "breach",
                "message": f"{labels.term(r.code)}: SLA breached ({labels.subject(r.subject_type)} no. {r.subject_id})",
                "created_at": now_utc(),
            }
            for r in rows
        ]
        new = _insert_once(session, values)
        total += len(new)
        if new:
            _audit(session, new)
    return total


def _insert_once(session: Session, values: list[dict[str, Any]]) -> list[Any]:
    dialect = session.get_bind().dialect.name
    factory = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        factory(SlaNotification.__table__)
        .values(values)
        .on_conflict_do_nothing(index_elements=["client_id", "clock_id", "kind"])
        .returning(SlaNotification.__table__.c.client_id, SlaNotification.__table__.c.clock_id)
    )
    return list(session.execute(stmt).all())


def _audit(session: Session, new: list[Any]) -> None:
    actor = current_actor()
    session.execute(
        insert(AuditEvent),
        [
            {
                "actor_user_id": actor.user_id,
                "actor_label": actor.label,
                "action": "sla.breach",
                "object_type": "SlaClock",
                "object_id": str(r.clock_id),
                "client_id": r.client_id,
                "changes": {"after": {"notified": True}},
                "occurred_at": now_utc(),
            }
            for r in new
        ],
    )
