"""The dunning decision as a pure function, driven through random calendars with hypothesis.

A simulated book of debtors lives through a random sequence of days: invoices fall due, runs happen or are
missed (downtime), debtors pay, promise, dispute. Each day that runs applies `decide` and records what it sent
exactly like the run does (highest stage reached per episode). Checked after every day:
- never two messages for one (debtor, stage, episode);
- every debtor due a stage and not excluded has been sent exactly the highest stage it is due, once;
- an excluded debtor got nothing that day and its reason is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from provider.dunning.decide import REASONS, DebtorFacts, StageRule, decide, due_stage

STAGES = [StageRule(1, 3, "email"), StageRule(2, 14, "email"), StageRule(3, 30, "letter"), StageRule(4, 45, "task")]
START = date(2026, 1, 1)


@dataclass
class Sim:
    oldest_due: date | None
    paid_on: date | None = None
    dispute_from: date | None = None
    promise_until: date | None = None
    sent: list[tuple[date, int, date]] = field(default_factory=list)  # (day, stage days, anchor)
    skipped: list[tuple[date, str]] = field(default_factory=list)


def facts_of(sim: Sim, today: date) -> DebtorFacts | None:
    if sim.oldest_due is None or sim.oldest_due >= today or (sim.paid_on and sim.paid_on <= today):
        return None
    reached = max((days for day, days, _a in sim.sent if day >= sim.oldest_due), default=-1)
    last = max((day for day, _d, _a in sim.sent), default=None)
    return DebtorFacts(
        oldest_due=sim.oldest_due,
        overdue_minor=10_000,
        reached_days=reached,
        last_sent_on=last,
        on_hold=sim.dispute_from is not None and sim.dispute_from <= today,
        promise_ok=sim.promise_until is not None and today <= sim.promise_until,
    )


debtor_plan = st.fixed_dictionaries(
    {
        "due_offset": st.integers(-60, 40),
        "pays_after": st.one_of(st.none(), st.integers(0, 90)),
        "dispute_after": st.one_of(st.none(), st.integers(0, 90)),
        "promise": st.one_of(st.none(), st.tuples(st.integers(0, 90), st.integers(1, 20))),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    debtors=st.lists(debtor_plan, min_size=1, max_size=12),
    runs=st.lists(st.booleans(), min_size=1, max_size=100),  # False: the day is missed (downtime)
    twice=st.lists(st.booleans(), min_size=100, max_size=100),  # True: the day's run is repeated
)
def test_random_calendars_hold_the_rules(debtors: list[dict], runs: list[bool], twice: list[bool]) -> None:
    sims = []
    for plan in debtors:
        due = START + timedelta(days=plan["due_offset"])
        sims.append(
            Sim(
                oldest_due=due,
                paid_on=due + timedelta(days=plan["pays_after"]) if plan["pays_after"] is not None else None,
                dispute_from=START + timedelta(days=plan["dispute_after"])
                if plan["dispute_after"] is not None
                else None,
                promise_until=(START + timedelta(days=plan["promise"][0] + plan["promise"][1]))
                if plan["promise"]
                else None,
            )
        )
    for n, runs_today in enumerate(runs):
        today = START + timedelta(days=n)
        if not runs_today:
            continue
        for _repeat in range(2 if twice[n] else 1):
            for sim in sims:
                facts = facts_of(sim, today)
                if facts is None:
                    continue
                if any(day == today for day, _r in sim.skipped) or any(day == today for day, _d, _a in sim.sent):
                    continue  # one decision per debtor and day (the unique key of dunning_decisions)
                decision = decide(STAGES, facts, today)
                if decision is None:
                    continue
                if decision.outcome == "sent":
                    sim.sent.append((today, decision.stage.days, facts.oldest_due))
                else:
                    assert decision.reason in REASONS
                    sim.skipped.append((today, decision.reason))
        for sim in sims:
            keys = [(days, anchor) for _day, days, anchor in sim.sent]
            assert len(keys) == len(set(keys)), "a stage went out twice"
            facts = facts_of(sim, today)
            if facts is None:
                continue
            excluded = facts.on_hold or facts.promise_ok
            highest = max(
                (s for s in STAGES if s.days <= (today - facts.oldest_due).days), key=lambda s: s.days, default=None
            )
            if highest is None:
                continue
            if excluded:
                if due_stage(STAGES, facts, today) is not None:
                    assert any(day == today for day, _r in sim.skipped), "an excluded debtor's reason was not recorded"
                    assert not any(day == today for day, _d, _a in sim.sent)
            else:
                sent_days = [days for day, days, anchor in sim.sent if anchor == facts.oldest_due]
                assert highest.days in sent_days, "a debtor due a stage did not get the highest one"
                assert sent_days.count(highest.days) == 1


def test_after_downtime_only_the_highest_due_stage_goes_out_once() -> None:
    facts = DebtorFacts(oldest_due=date(2026, 1, 1), overdue_minor=5000)
    decision = decide(STAGES, facts, date(2026, 2, 20))  # 50 days late, nothing sent yet
    assert decision is not None and decision.stage.days == 45 and decision.outcome == "sent"
    after = DebtorFacts(oldest_due=date(2026, 1, 1), overdue_minor=5000, reached_days=45)
    assert decide(STAGES, after, date(2026, 2, 21)) is None


def test_reasons_in_their_order() -> None:
    base = DebtorFacts(oldest_due=date(2026, 1, 1), overdue_minor=5000)
    today = date(2026, 1, 10)
    cases = [
        (DebtorFacts(**{**base.__dict__, "recalled": True, "on_hold": True}), "recalled"),
        (DebtorFacts(**{**base.__dict__, "do_not_contact": True}), "do_not_contact"),
        (DebtorFacts(**{**base.__dict__, "ceased": True}), "ceased"),
        (DebtorFacts(**{**base.__dict__, "on_hold": True, "promise_ok": True}), "in_dispute"),
        (DebtorFacts(**{**base.__dict__, "promise_ok": True}), "promise"),
        (DebtorFacts(**{**base.__dict__, "plan_ok": True}), "payment_plan"),
        (DebtorFacts(**{**base.__dict__, "has_email": False}), "no_address"),
        (DebtorFacts(**{**base.__dict__, "bounced": True}), "bounced"),
        (DebtorFacts(**{**base.__dict__, "contact_allowed": False}), "contact_hours"),
        (DebtorFacts(**{**base.__dict__, "last_sent_on": date(2026, 1, 8)}), "too_soon"),
    ]
    for facts, reason in cases:
        decision = decide(STAGES, facts, today, min_gap_days=7)
        assert decision is not None and (decision.outcome, decision.reason) == ("skipped", reason)
    under = decide(STAGES, base, today, min_amount_minor=10_000)
    assert under is not None and under.reason == "under_threshold"
    assert decide(STAGES, base, today).outcome == "sent"  # type: ignore[union-attr]


def test_a_new_episode_starts_after_everything_overdue_was_paid() -> None:
    # stage 1 went out on Jan 5 for invoices due Jan 1; they were paid; an invoice due Feb 1 is now late
    facts = DebtorFacts(oldest_due=date(2026, 2, 1), overdue_minor=5000, reached_days=-1, last_sent_on=date(2026, 1, 5))
    decision = decide(STAGES, facts, date(2026, 2, 5))
    assert decision is not None and decision.stage.days == 3 and decision.outcome == "sent"
