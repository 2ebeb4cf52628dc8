"""`flask demo`: a deterministic, idempotent demo agency."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from clients.journal import CreditNote, Invoice, Payment
from clients.models import Client, Debtor
from provider.core.tenancy import TenantScope, scoped
from provider.demo import DEMO_PASSWORD, _debtor_rows, seed_demo
from provider.extensions import db
from provider.models import Team, User
from tests.clients.ledger_helpers import cache_mismatches, unbalanced_transactions
from tests.conftest import login

SMALL_LEDGER = 150  # invoices per client (the real demo has about 6,700)


def test_demo_builds_the_agency_once(client: FlaskClient) -> None:
    first = seed_demo(invoices_per_client=SMALL_LEDGER)
    with scoped(TenantScope.agency(), db.session):
        clients = db.session.scalars(select(Client).order_by(Client.code)).all()
        assert len(clients) == 6
        assert {"USD", "EUR", "GBP", "JPY"} <= {c.base_currency for c in clients}
        assert {c.debt_type for c in clients} == {"consumer", "commercial"}
        assert len({c.timezone for c in clients}) == 6
        assert db.session.scalar(select(func.count(Debtor.id))) == 3000 == first["debtors"]
        roles = dict(db.session.execute(select(User.role, func.count()).group_by(User.role)).all())
        assert roles == {"admin": 1, "manager": 2, "collector": 8, "client_admin": 6, "client_viewer": 6}
        teams = db.session.scalars(select(Team)).all()
        assert len(teams) == 2 and all(len(t.members) == 4 and len(t.clients) == 3 for t in teams)
        sample = db.session.scalar(select(Debtor.name).where(Debtor.external_ref == "NWIND-000042"))
        invoices = db.session.scalar(select(func.count(Invoice.id)))
        assert invoices == first["created_invoices"] and 0.7 * 6 * SMALL_LEDGER < invoices < 1.3 * 6 * SMALL_LEDGER
        ledger = _ledger_shape()
        assert ledger["paid"] > ledger["part_paid"] > 0 and ledger["open"] > 0
        assert ledger["to_agency"] > ledger["to_client"] > 0
        assert ledger["credit_notes"] > 0
        for c in clients:
            assert unbalanced_transactions(c.id) == [] and cache_mismatches(c.id) == []

        _dunning_is_ready(clients)
        # the nightly forecast refit's behaviour segments reach the worklist score
        from worklists.models import WorkItem

        behaviour = dict(db.session.execute(select(WorkItem.behaviour_segment, func.count()).group_by(
            WorkItem.behaviour_segment)).all())  # fmt: skip
        assert len(set(behaviour) - {""}) >= 3, behaviour
        assert db.session.scalar(select(func.count(WorkItem.id)).where(WorkItem.term_behaviour != 0))
        _a_report_for_each_month(clients)

    second = seed_demo(invoices_per_client=SMALL_LEDGER)
    assert second["created_debtors"] == 0 and second["debtors"] == 3000
    assert second["created_invoices"] == 0
    with scoped(TenantScope.agency(), db.session):
        assert db.session.scalar(select(func.count(User.id))) == 23
        assert db.session.scalar(select(Debtor.name).where(Debtor.external_ref == "NWIND-000042")) == sample
        assert db.session.scalar(select(func.count(Invoice.id))) == invoices and _ledger_shape() == ledger

    assert login(client, "viewer@sakura.demo.test", DEMO_PASSWORD).status_code == 302
    assert "Sakura Logistics" in client.get("/portal/").get_data(as_text=True)


def _a_report_for_each_month(clients: list[Client]) -> None:
    """The reports archive holds every month of the demo ledger up to last month, each one current version."""
    from provider.reporting.models import MonthlyReport

    for c in clients:
        periods = list(
            db.session.scalars(
                select(MonthlyReport.period).where(MonthlyReport.client_id == c.id).order_by(MonthlyReport.period)
            )
        )
        first = db.session.scalar(select(func.min(Invoice.issue_date)).where(Invoice.client_id == c.id))
        assert first is not None and periods[0] == first.strftime("%Y-%m")
        assert len(periods) == len(set(periods)) >= 17  # 18 months of ledger, the month under way not reported


def _dunning_is_ready(clients: list[Client]) -> None:
    """Every demo client has an approved dunning policy with texts in English and one other language, and a run
    decides for its overdue debtors (without e-mail statements here, which take a PDF each)."""
    from datetime import timedelta

    from provider.core.clock import now_utc
    from provider.dunning.models import DunningDecision, DunningTemplate
    from provider.dunning.run import client_today, policy_in_force, run_client

    for c in clients:
        policy = policy_in_force(db.session, c.id, client_today(c, now_utc()))
        assert policy is not None and policy.status == "approved"
        languages = set(
            db.session.scalars(
                select(DunningTemplate.language).where(
                    DunningTemplate.client_id == c.id, DunningTemplate.stage_id.in_([s.id for s in policy.stages])
                )
            )
        )
        assert len(languages) == 2 and "en" in languages
    client = clients[0]
    run_client(db.session, client.id, client_today(client, now_utc()) + timedelta(days=1), attach_statement=False)
    outcomes = set(db.session.scalars(select(DunningDecision.outcome).where(DunningDecision.client_id == client.id)))
    assert "sent" in outcomes
    db.session.info.pop("pending_jobs", None)
    db.session.rollback()


def _ledger_shape() -> dict[str, int]:
    def count(*where: object) -> int:
        return db.session.scalar(select(func.count(Invoice.id)).where(*where)) or 0

    def payments(by: str) -> int:
        return db.session.scalar(select(func.count(Payment.id)).where(Payment.received_by == by)) or 0

    return {
        "paid": count(Invoice.open_minor == 0),
        "part_paid": count(Invoice.open_minor > 0, Invoice.open_minor < Invoice.amount_minor),
        "open": count(Invoice.open_minor == Invoice.amount_minor),
        "to_agency": payments("agency"),
        "to_client": payments("client"),
        "credit_notes": db.session.scalar(select(func.count(CreditNote.id))) or 0,
    }


def test_demo_rows_do_not_depend_on_the_scale() -> None:
    client = Client(id=7, code="X", debt_type="consumer", country="US")
    assert _debtor_rows(client, 10, 20, 99) == _debtor_rows(client, 0, 20, 99)[10:]
