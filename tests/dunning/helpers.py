"""Builders shared by the dunning tests: an approved policy through the real services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from provider.core.tenancy import TenantScope, scoped
from provider.dunning import services
from provider.dunning.models import DunningPolicy
from provider.extensions import db
from tests.factories import make_user


def approved_policy(
    client: Any,
    stages: Sequence[services.StageSpec] = services.STANDARD_STAGES,
    *,
    effective_from: date = date(2025, 1, 1),
    min_amount_minor: int = 0,
    min_gap_days: int = 0,
) -> DunningPolicy:
    admin = make_user("client_admin", client=client)
    with scoped(TenantScope.agency(), db.session):
        policy = services.propose_policy(
            db.session, client, effective_from=effective_from, stages=stages, min_amount_minor=min_amount_minor,
            min_gap_days=min_gap_days,
        )  # fmt: skip
        services.approve_policy(db.session, policy, admin, "fine")
        db.session.commit()
    return policy


TASKS = (
    services.StageSpec("Reminder call", 3, "task"),
    services.StageSpec("Second call", 14, "task"),
    services.StageSpec("Final call", 30, "task"),
)
