"""The contact gate never offers a forbidden contact: property test over zones (DST edges), calls, flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worklists import contact_rules
from worklists.contact_rules import CALL, EMAIL, ContactFacts, ContactPolicy, check

ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",  # half-hour offset
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "Asia/Tokyo",
    "Pacific/Chatham",
    "America/Santiago",
    "UTC",
]
# instants close to DST transitions of 2026 (both hemispheres), plus arbitrary ones
DST_EDGES = [
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # US spring forward
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # US fall back
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # EU spring forward
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # EU fall back
    datetime(2026, 4, 4, 16, 0, tzinfo=UTC),  # Sydney fall back
    datetime(2026, 10, 3, 16, 0, tzinfo=UTC),  # Sydney spring forward
]

instants = st.one_of(
    st.sampled_from(DST_EDGES).flatmap(
        lambda edge: st.integers(-36 * 60, 36 * 60).map(lambda m: edge + timedelta(minutes=m))
    ),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)).map(  # noqa: DTZ001 - naive bounds
        lambda d: d.replace(tzinfo=UTC)
    ),
)
policies = st.one_of(
    st.just(contact_rules.CONSUMER_POLICY),
    st.builds(
        ContactPolicy,
        start_hour=st.integers(0, 12),
        end_hour=st.integers(13, 24),
        max_calls=st.integers(1, 10),
        calls_window_days=st.integers(1, 14),
        cooldown_days=st.integers(0, 14),
    ),
)


def _local_minutes(zone: str, now: datetime) -> int:
    """Oracle: UTC wall clock plus the zone's UTC offset at that instant, in minutes after local midnight."""
    offset = now.astimezone(ZoneInfo(zone)).utcoffset() or timedelta()
    wall = now.astimezone(UTC).replace(tzinfo=None) + offset
    return wall.hour * 60 + wall.minute


@settings(max_examples=400, deadline=None)
@given(
    policy=policies,
    zone=st.sampled_from(ZONES),
    now=instants,
    call_offsets=st.lists(st.integers(1, 20 * 24 * 60), max_size=12),
    conversation=st.one_of(st.none(), st.integers(1, 20 * 24 * 60)),
    dnc=st.booleans(),
    ceased=st.booleans(),
    channel=st.sampled_from([CALL, EMAIL]),
)
def test_the_gate_never_allows_a_forbidden_contact(
    policy: ContactPolicy,
    zone: str,
    now: datetime,
    call_offsets: list[int],
    conversation: int | None,
    dnc: bool,
    ceased: bool,
    channel: str,
) -> None:
    calls = [now - timedelta(minutes=m) for m in call_offsets]
    spoke = now - timedelta(minutes=conversation) if conversation is not None else None
    facts = ContactFacts(zone, dnc, ceased, tuple(calls), spoke)
    verdict = check(policy, facts, channel, now)
    minutes = _local_minutes(zone, now)
    in_hours = policy.start_hour * 60 <= minutes < policy.end_hour * 60
    recent = sum(1 for t in calls if now - t < timedelta(days=policy.calls_window_days))
    cooling = spoke is not None and now - spoke < timedelta(days=policy.cooldown_days)
    forbidden = dnc or ceased or not in_hours or (channel == CALL and (recent >= policy.max_calls or cooling))
    assert verdict.allowed is (not forbidden)
    assert bool(verdict.reasons) is forbidden


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), now=instants)
def test_the_queue_prefilter_only_keeps_zones_the_gate_allows(zone: str, now: datetime) -> None:
    policy = contact_rules.CONSUMER_POLICY
    if zone in contact_rules.zones_open(policy, now):
        assert check(policy, ContactFacts(zone), EMAIL, now).allowed


@pytest.mark.parametrize(
    ("local", "allowed"),
    [("07:59", False), ("08:00", True), ("20:59", True), ("21:00", False), ("02:30", False)],
)
def test_consumer_window_edges_in_new_york(local: str, allowed: bool) -> None:
    hour, minute = map(int, local.split(":"))
    now = datetime(2026, 7, 1, hour, minute, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
    assert check(contact_rules.CONSUMER_POLICY, ContactFacts("America/New_York"), CALL, now).allowed is allowed


def test_an_unknown_zone_fails_closed() -> None:
    verdict = check(contact_rules.CONSUMER_POLICY, ContactFacts("Mars/Olympus"), EMAIL, DST_EDGES[0])
    assert not verdict.allowed and "unknown" in verdict.reasons[0]


def test_commercial_clients_take_their_strategy_and_consumers_never_do() -> None:
    class Loose:
        contact_start_hour, contact_end_hour, max_calls, calls_window_days, cooldown_days = 0, 24, 20, 7, 0

    assert contact_rules.policy_for("commercial", Loose()).end_hour == 24
    assert contact_rules.policy_for("consumer", Loose()) == contact_rules.CONSUMER_POLICY
