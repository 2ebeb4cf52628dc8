"""Contact rules as a gate: may this debtor be contacted on this channel now, and if not, why not.

Consumer-debt clients (fixed, the law): contact only between 08:00 and 21:00 in the debtor's local time
(21:00 itself is outside); at most 7 call attempts in 7 days per account and no call within 7 days
after a conversation; do-not-contact and cease-communication flags stop all contact.
Commercial clients: the same shape, with hours and limits from the client's `Strategy`.

The gate is a pure function of (policy, facts, channel, now) so it can be property-tested; the queue
prefilters in SQL with `zones_open(...)` and then asks `check(...)` about every account it offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from clients.models import DebtType

CALL = "call"
EMAIL = "email"
CHANNELS = (CALL, EMAIL)


@dataclass(frozen=True)
class ContactPolicy:
    start_hour: int = 8  # local time, inclusive
    end_hour: int = 21  # local time, exclusive (24 = until midnight)
    max_calls: int = 7
    calls_window_days: int = 7
    cooldown_days: int = 7


CONSUMER_POLICY = ContactPolicy()


def policy_for(debt_type: str, strategy: object | None = None) -> ContactPolicy:
    """Consumer clients always get the statutory rules; commercial clients their strategy's (or the same)."""
    if debt_type == DebtType.CONSUMER.value or strategy is None:
        return CONSUMER_POLICY
    return ContactPolicy(
        start_hour=strategy.contact_start_hour,  # type: ignore[attr-defined]
        end_hour=strategy.contact_end_hour,  # type: ignore[attr-defined]
        max_calls=strategy.max_calls,  # type: ignore[attr-defined]
        calls_window_days=strategy.calls_window_days,  # type: ignore[attr-defined]
        cooldown_days=strategy.cooldown_days,  # type: ignore[attr-defined]
    )


@dataclass(frozen=True)
class ContactFacts:
    timezone: str
    do_not_contact: bool = False
    ceased: bool = False
    call_times: Sequence[datetime] = field(default_factory=tuple)  # call attempts (any outcome), UTC
    last_conversation_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reasons: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.allowed


def local_time(timezone: str, now: datetime) -> datetime | None:
    try:
        return now.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def in_window(policy: ContactPolicy, timezone: str, now: datetime) -> bool:
    local = local_time(timezone, now)
    if local is None:
        return False  # an unknown zone fails closed
    start = time(policy.start_hour)
    return local.time() >= start and (policy.end_hour >= 24 or local.time() < time(policy.end_hour))


def check(policy: ContactPolicy, facts: ContactFacts, channel: str, now: datetime) -> Verdict:
    """Every reason the contact is forbidden now (none: allowed)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    reasons = []
    if facts.do_not_contact:
        reasons.append("the debtor is flagged do-not-contact")
    if facts.ceased:
        reasons.append("the debtor asked us to cease communication")
    local = local_time(facts.timezone, now)
    if local is None:
        reasons.append(f"the debtor's time zone {facts.timezone!r} is unknown")
    elif not in_window(policy, facts.timezone, now):
        end = "midnight" if policy.end_hour >= 24 else f"{policy.end_hour:02d}:00"
        reasons.append(
            f"it is {local:%H:%M} for the debtor ({facts.timezone}); contact only {policy.start_hour:02d}:00-{end}"
        )
    if channel == CALL:
        since = now - timedelta(days=policy.calls_window_days)
        recent = sum(1 for t in facts.call_times if since < t <= now)
        if recent >= policy.max_calls:
            reasons.append(
                f"{recent} call attempts in the last {policy.calls_window_days} days (limit {policy.max_calls})"
            )
        if facts.last_conversation_at is not None and now - facts.last_conversation_at < timedelta(
            days=policy.cooldown_days
        ):
            reasons.append(
                f"spoke with the debtor on {facts.last_conversation_at:%Y-%m-%d %H:%M} UTC;"
                f" no call for {policy.cooldown_days} days after a conversation"
            )
    return Verdict(not reasons, tuple(reasons))


@lru_cache(maxsize=1)
def _all_zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if not z.startswith(("posix/", "right/"))))


@lru_cache(maxsize=64)
def _zones_open_at(start_hour: int, end_hour: int, minute: datetime) -> frozenset[str]:
    policy = ContactPolicy(start_hour=start_hour, end_hour=end_hour)
    # open for the whole minute: at its first and its last second (no window edge falls inside a minute)
    last = minute + timedelta(seconds=59)
    return frozenset(z for z in _all_zones() if in_window(policy, z, minute) and in_window(policy, z, last))


def zones_open(policy: ContactPolicy, now: datetime) -> frozenset[str]:
    """The IANA zones in which contact is allowed now (for the queue's SQL prefilter)."""
    return _zones_open_at(policy.start_hour, policy.end_hour, now.replace(second=0, microsecond=0))
