"""`flask cron` keeps running through a Redis restart (without persistence) and queues work again after it."""

from __future__ import annotations

import time

import pytest

from provider.core.jobs import QUEUES
from tests.faults import work
from tests.faults.conftest import FaultWorld

pytestmark = pytest.mark.faults

OUTAGE_SECONDS = 35  # longer than cron's tick (30 s), so at least one tick meets the outage


def _queued(world: FaultWorld) -> int:
    redis = world.redis.client()
    try:
        return sum(int(redis.llen(f"rq:queue:{name}")) for name in QUEUES)
    finally:
        redis.close()


def test_cron_lives_through_a_redis_restart_and_queues_again(world: FaultWorld) -> None:
    cron = world.cron()
    work.wait_until("cron queueing the periodic jobs it catches up", lambda: _queued(world) > 0, timeout=60)

    world.redis.stop()
    time.sleep(OUTAGE_SECONDS)
    assert cron.alive, f"flask cron exited during the Redis outage:\n{cron.output()}"
    world.redis.start()  # empty: what cron had queued is gone

    took = work.wait_until("cron queueing again after Redis returned", lambda: _queued(world) > 0, timeout=75)
    assert cron.alive, f"flask cron exited after Redis returned:\n{cron.output()}"
    print(f"cron queued again {took:.1f} s after Redis returned")
