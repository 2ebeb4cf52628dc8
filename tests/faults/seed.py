"""Seed a fault test's database through the app's own services, in a process of its own, committed.

Run as `python -m tests.faults.seed` with the app's environment (DATABASE_URL etc.); prints one JSON object
with the ids the scenario needs. A separate process keeps the test process free of a second app (the rate
limiter and the database extension are process-wide singletons that would point at the test's own Redis).
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta

from provider.app import create_app
from provider.core import jobs
from provider.core.audit import Actor, acting_as
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import (
    PASSWORD,
    make_api_token,
    make_client,
    make_debtor,
    make_invoice,
    make_user,
    make_work_items,
)
from tests.reports.ledger_world import march_world

MANAGER = "manager@faults.test"


def seed(promise: bool = False) -> dict[str, object]:
    with acting_as(Actor.system("fault-test seed")), scoped(TenantScope.agency(), db.session):
        make_user("manager", email=MANAGER)
        acme = make_client(name="Acme Fault Ltd", code="FAULT", base_currency="EUR")
        d1 = make_debtor(acme, external_ref="D-1", name="Dora One")
        d2 = make_debtor(acme, external_ref="D-2", name="Dan Two")
        make_invoice(acme, d1, "OPEN-1", 10_000)
        make_invoice(acme, d1, "OPEN-2", 5_000, due_date=date(2026, 3, 4))
        make_invoice(acme, d2, "OPEN-3", 20_000)
        token = make_api_token(acme, access="read")
        reports = march_world()  # a client whose March 2026 report has figures worth rendering
        if promise:
            _promise_to_pay(acme, d1.id)
        return {
            "client_id": acme.id,
            "debtor_id": d2.id,
            "report_client_id": reports.client.id,
            "manager": MANAGER,
            "password": PASSWORD,
            "api_token": token,
        }


def _promise_to_pay(client: object, debtor_id: int) -> None:
    """A collector records D-1's promise to pay 100.00 within a week (payments of D-1 are checked against it)."""
    from provider.core.clock import today_utc
    from provider.models import User
    from worklists.models import WorkItem
    from worklists.promises import record_promise

    items = make_work_items(client)  # type: ignore[arg-type]
    collector = make_user("manager", email="collector@faults.test")
    item = db.session.get_one(WorkItem, items[debtor_id])
    record_promise(db.session, item, db.session.get_one(User, collector.id), 10_000, today_utc() + timedelta(days=7))
    db.session.commit()


def main() -> None:
    app = create_app()
    # The seed's own jobs (rescoring after the seeded payments, ...) run here, one after the other, once the seed
    # has committed: a scenario starts with no work waiting, so only the work it starts is in flight.
    app.config["JOBS_MODE"] = "eager"
    with app.app_context():
        result = seed(promise="--promise" in sys.argv)
        db.session.commit()
        with acting_as(Actor.system("fault-test seed")):
            jobs.drain()
        db.session.remove()
        db.engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
