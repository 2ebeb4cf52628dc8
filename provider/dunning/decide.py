"""The dunning decision for one debtor on one day, as a pure function of facts (no database, no clock).

A debtor's *episode* starts when its oldest invoice still overdue fell due (`anchor_due`). A stage counts as
reached in the episode when it went out on or after that day; paying every invoice that was overdue when a
stage went out starts a new episode (a later invoice is chased from the first stage again).

The stage due today is the **highest** stage whose `days` the oldest overdue invoice has reached. It is due
only when it is beyond the highest stage already reached in the episode (`reached_days`), so:
- a run repeated the same day, or any later day, never sends a stage twice;
- after downtime, a debtor that crossed several stages meanwhile gets the highest one once, never the missed
  ones in a row.

An excluded debtor is skipped with the first reason of `REASONS` that applies; nothing is sent and the stage
stays due, so it goes out on the first day the reason is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

# reason code -> what a person reads (pages, CSV, the client's portal), in the order they are checked
REASONS: dict[str, str] = {
    "recalled": "The client took the account back",
    "do_not_contact": "The debtor is flagged do-not-contact",
    "ceased": "The debtor asked us to cease communication",
    "in_dispute": "Invoices in dispute or on hold",
    "promise": "A promise to pay is in good standing",
    "payment_plan": "A payment plan is in good standing",
    "under_threshold": "The amount is under the client's threshold",
    "no_address": "No address for this channel",
    "bounced": "The e-mail address bounced",
    "contact_hours": "Outside the debtor's contact hours",
    "too_soon": "A reminder went out too recently",
}


def reason_label(code: str) -> str:
    return REASONS.get(code, code.replace("_", " ").capitalize())


@dataclass(frozen=True)
class StageRule:
    position: int
    days: int
    channel: str  # email | letter | task


@dataclass(frozen=True)
class DebtorFacts:
    """What the run knows about one debtor on `today` (client-local date)."""

    oldest_due: date  # due date of the oldest open overdue invoice (the episode's anchor)
    overdue_minor: int  # the largest overdue total among its currencies
    reached_days: int = -1  # days of the highest stage sent in this episode (-1: none)
    last_sent_on: date | None = None  # the last dunning message of any episode
    recalled: bool = False
    do_not_contact: bool = False
    ceased: bool = False
    on_hold: bool = False  # an overdue invoice is on hold or disputed
    promise_ok: bool = False
    plan_ok: bool = False
    has_email: bool = True
    has_postal: bool = True
    bounced: bool = False
    contact_allowed: bool = True  # the contact gate (debtor's local hours) for e-mail now


@dataclass(frozen=True)
class Decision:
    stage: StageRule
    outcome: str  # sent | skipped
    reason: str = ""


def days_past_due(oldest_due: date, today: date) -> int:
    return (today - oldest_due).days


def due_stage(stages: Sequence[StageRule], facts: DebtorFacts, today: date) -> StageRule | None:
    """The highest stage reached by the oldest overdue invoice that was not reached yet in this episode."""
    dpd = days_past_due(facts.oldest_due, today)
    reached = [s for s in stages if s.days <= dpd]
    if not reached:
        return None
    top = max(reached, key=lambda s: s.days)
    return top if top.days > facts.reached_days else None


def exclusion(
    stage: StageRule, facts: DebtorFacts, today: date, *, min_amount_minor: int, min_gap_days: int
) -> str | None:
    """The first reason (a key of REASONS) that forbids this stage for this debtor today, or None."""
    checks = (
        ("recalled", facts.recalled),
        ("do_not_contact", facts.do_not_contact),
        ("ceased", facts.ceased),
        ("in_dispute", facts.on_hold),
        ("promise", facts.promise_ok),
        ("payment_plan", facts.plan_ok),
        ("under_threshold", facts.overdue_minor < min_amount_minor),
        (
            "no_address",
            (stage.channel == "email" and not facts.has_email) or (stage.channel == "letter" and not facts.has_postal),
        ),
        ("bounced", stage.channel == "email" and facts.has_email and facts.bounced),
        ("contact_hours", stage.channel == "email" and not facts.contact_allowed),
        (
            "too_soon",
            stage.channel != "task"
            and facts.last_sent_on is not None
            and (today - facts.last_sent_on).days < min_gap_days,
        ),
    )
    return next((code for code, applies in checks if applies), None)


def decide(
    stages: Sequence[StageRule], facts: DebtorFacts, today: date, *, min_amount_minor: int = 0, min_gap_days: int = 0
) -> Decision | None:
    """None when no stage is due; otherwise the stage due, sent or skipped with its reason."""
    stage = due_stage(stages, facts, today)
    if stage is None:
        return None
    reason = exclusion(stage, facts, today, min_amount_minor=min_amount_minor, min_gap_days=min_gap_days)
    if reason:
        return Decision(stage, "skipped", reason)
    return Decision(stage, "sent")
