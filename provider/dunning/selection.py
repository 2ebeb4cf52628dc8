"""The set-based read of a dunning run: for one client, a range of debtors at a time, every fact the decision
needs, in a handful of grouped queries (no query per debtor). Both databases.

`facts_for_range(session, client_id, today, lo, hi)` returns one `Candidate` per debtor in [lo, hi] whose
oldest open overdue invoice is at least one day late; the caller decides (provider.dunning.decide) in Python.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from provider.dunning.decide import DebtorFacts


@dataclass
class Candidate:
    debtor_id: int
    name: str
    reference: str
    segment: str
    language: str
    timezone: str | None
    facts: DebtorFacts
    currency: str
    invoice_count: int
    email: str = ""
    postal: str = ""
    item_id: int | None = None
    by_currency: dict[str, int] = field(default_factory=dict)
    behaviour: str = ""  # the payment-behaviour segment of the last forecast refit ('' = not learned yet)


_INVOICES = text(
    """
    SELECT debtor_id, currency, MIN(due_date) AS oldest, SUM(open_minor) AS overdue, COUNT(*) AS n,
           MAX(CASE WHEN on_hold THEN 1 ELSE 0 END) AS held
    FROM invoices
    WHERE client_id = :c AND debtor_id BETWEEN :lo AND :hi AND open_minor > 0 AND due_date < :today
    GROUP BY debtor_id, currency
    """
)
_DEBTORS = text(
    """
    SELECT d.id, d.name, d.external_ref, d.segment, d.language, d.timezone, d.do_not_contact,
           d.recalled_at IS NOT NULL AS recalled, w.id AS item_id, w.ceased_at IS NOT NULL AS ceased,
           COALESCE(b.segment, '') AS behaviour
    FROM debtors d
    LEFT JOIN work_items w ON w.client_id = d.client_id AND w.debtor_id = d.id
    LEFT JOIN debtor_behaviours b ON b.client_id = d.client_id AND b.debtor_id = d.id
    WHERE d.client_id = :c AND d.id BETWEEN :lo AND :hi
    """
)
_PROMISES = text(
    """
    SELECT debtor_id, MAX(CASE WHEN plan_id IS NULL THEN 1 ELSE 0 END) AS promise, MAX(CASE WHEN plan_id IS NULL
           THEN 0 ELSE 1 END) AS plan
    FROM promises
    WHERE client_id = :c AND debtor_id BETWEEN :lo AND :hi AND status = 'open' AND due_on >= :today
    GROUP BY debtor_id
    """
)
_PLANS = text(
    """
    SELECT DISTINCT debtor_id FROM payment_plans
    WHERE client_id = :c AND debtor_id BETWEEN :lo AND :hi AND status = 'active'
    """
)
_SENT = text(
    """
    SELECT debtor_id, run_date, stage_days, outcome FROM dunning_decisions
    WHERE client_id = :c AND debtor_id BETWEEN :lo AND :hi AND (outcome = 'sent' OR run_date = :today)
    """
)
_CONTACTS = text(
    """
    SELECT debtor_id, kind, value FROM debtor_contacts
    WHERE client_id = :c AND debtor_id BETWEEN :lo AND :hi AND kind IN ('email', 'postal')
    ORDER BY debtor_id, is_primary DESC, id
    """
)
_RANGES = text("SELECT id FROM debtors WHERE client_id = :c AND id > :after ORDER BY id LIMIT :n")


def debtor_ranges(session: Session, client_id: int, size: int) -> Any:
    """Consecutive (lo, hi) ranges of the client's debtor ids, `size` debtors each (keyset, flat memory)."""
    after = 0
    while True:
        ids = list(session.execute(_RANGES, {"c": client_id, "after": after, "n": size}).scalars())
        if not ids:
            return
        yield ids[0], ids[-1]
        after = ids[-1]


def facts_for_range(
    session: Session, client_id: int, today: date, lo: int, hi: int, *, decided_today: set[int] | None = None
) -> list[Candidate]:
    """The candidates of one debtor range. Debtors already decided on `today` are left out (a re-run)."""
    params = {"c": client_id, "lo": lo, "hi": hi, "today": today}
    grouped: dict[int, dict[str, tuple[date, int, int, int]]] = defaultdict(dict)
    for debtor_id, currency, oldest, overdue, n, held in session.execute(_INVOICES, params):
        grouped[debtor_id][currency] = (_as_date(oldest), int(overdue), int(n), int(held))
    if not grouped:
        return []
    promise: dict[int, bool] = {}
    plan: set[int] = set()
    for debtor_id, has_promise, has_plan_instalment in session.execute(_PROMISES, params):
        promise[debtor_id] = bool(has_promise)
        if has_plan_instalment:
            plan.add(debtor_id)
    plan |= set(session.execute(_PLANS, params).scalars())
    sent: dict[int, list[tuple[date, int]]] = defaultdict(list)
    today_done: set[int] = set(decided_today or ())
    for debtor_id, run_date, stage_days, outcome in session.execute(_SENT, params):
        run_day = _as_date(run_date)
        if run_day == today:
            today_done.add(debtor_id)
        if outcome == "sent":
            sent[debtor_id].append((run_day, int(stage_days)))
    contacts: dict[int, dict[str, str]] = defaultdict(dict)
    for debtor_id, kind, value in session.execute(_CONTACTS, params):
        contacts[debtor_id].setdefault(kind, value)
    out = []
    for row in session.execute(_DEBTORS, params):
        by_currency = grouped.get(row.id)
        if not by_currency or row.id in today_done:
            continue
        oldest = min(v[0] for v in by_currency.values())
        currency = max(by_currency, key=lambda c: by_currency[c][1])
        history = sent.get(row.id, [])
        reached = max((days for day, days in history if day >= oldest), default=-1)
        last = max((day for day, _days in history), default=None)
        email, postal = contacts[row.id].get("email", ""), contacts[row.id].get("postal", "")
        facts = DebtorFacts(
            oldest_due=oldest,
            overdue_minor=by_currency[currency][1],
            reached_days=reached,
            last_sent_on=last,
            recalled=bool(row.recalled),
            do_not_contact=bool(row.do_not_contact),
            ceased=bool(row.ceased),
            on_hold=any(v[3] for v in by_currency.values()),
            promise_ok=promise.get(row.id, False),
            plan_ok=row.id in plan,
            has_email=bool(email),
            has_postal=bool(postal),
        )
        out.append(
            Candidate(
                debtor_id=row.id,
                name=row.name,
                reference=row.external_ref,
                segment=row.segment,
                language=row.language,
                timezone=row.timezone,
                facts=facts,
                currency=currency,
                invoice_count=sum(v[2] for v in by_currency.values()),
                email=email,
                postal=postal,
                item_id=row.item_id,
                by_currency={c: v[1] for c, v in by_currency.items()},
                behaviour=row.behaviour,
            )
        )
    return out


_OPEN_INVOICES = text(
    """
    SELECT debtor_id, number, due_date, currency, open_minor FROM invoices
    WHERE client_id = :c AND debtor_id BETWEEN :lo AND :hi AND open_minor > 0 AND due_date < :today
    ORDER BY debtor_id, due_date, id
    """
)


def overdue_lines(
    session: Session, client_id: int, today: date, lo: int, hi: int, wanted: set[int]
) -> dict[int, list[tuple[str, date, str, int]]]:
    """The overdue invoices of the debtors in `wanted` (within [lo, hi]) for their messages."""
    lines: dict[int, list[tuple[str, date, str, int]]] = defaultdict(list)
    if not wanted:
        return lines
    params = {"c": client_id, "lo": lo, "hi": hi, "today": today}
    for debtor_id, number, due, currency, open_minor in session.execute(_OPEN_INVOICES, params):
        if debtor_id in wanted:
            lines[debtor_id].append((number, _as_date(due), currency, int(open_minor)))
    return lines


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
