"""Deterministic, idempotent demo agency: staff, teams, six clients in different currencies, debtors.

Running it twice changes nothing; running it with a bigger --scale adds only the missing debtors.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select

from clients import services as client_services
from clients.models import Client, ContactKind, Debtor, DebtorContact, DebtType
from clients.money_ops_demo import seed_money_ops_demo
from provider import services
from provider.books.demo import seed_books_demo
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.tenancy import TenantScope, scoped
from provider.demo_ledger import seed_ledger
from provider.extensions import db
from provider.models import Team, TeamClient, User
from sla.demo import seed_sla_demo
from worklists.jobs import seed_worklists

DEMO_PASSWORD = "demo-password"  # noqa: S105 - published demo credential
DEBTORS_PER_CLIENT = 500
INVOICES_PER_CLIENT = 6_667  # about 40,000 invoices over 18 months across the six clients
CHUNK = 5_000

CLIENTS: list[dict[str, str]] = [
    {
        "code": "NWIND",
        "name": "Northwind Medical Supplies Inc.",
        "base_currency": "USD",
        "timezone": "America/New_York",
        "country": "US",
        "debt_type": DebtType.CONSUMER.value,
    },
    {
        "code": "RHEIN",
        "name": "Rheinland Maschinenbau GmbH",
        "base_currency": "EUR",
        "timezone": "Europe/Berlin",
        "country": "DE",
        "debt_type": DebtType.COMMERCIAL.value,
    },
    {
        "code": "THAMES",
        "name": "Thames Utilities Ltd",
        "base_currency": "GBP",
        "timezone": "Europe/London",
        "country": "GB",
        "debt_type": DebtType.CONSUMER.value,
    },
    {
        "code": "SAKURA",
        "name": "Sakura Logistics K.K.",
        "base_currency": "JPY",
        "timezone": "Asia/Tokyo",
        "country": "JP",
        "debt_type": DebtType.COMMERCIAL.value,
    },
    {
        "code": "OUTBK",
        "name": "Outback Building Supplies Pty Ltd",
        "base_currency": "AUD",
        "timezone": "Australia/Sydney",
        "country": "AU",
        "debt_type": DebtType.COMMERCIAL.value,
    },
    {
        "code": "MAPLE",
        "name": "Maple Leaf Telecom Corp.",
        "base_currency": "CAD",
        "timezone": "America/Toronto",
        "country": "CA",
        "debt_type": DebtType.CONSUMER.value,
    },
]
TEAMS = {"Team Atlantic": ["NWIND", "RHEIN", "THAMES"], "Team Pacific": ["SAKURA", "OUTBK", "MAPLE"]}
STAFF = [
    ("admin@demo.test", "Ada Admin", "admin", None),
    ("maria.manager@demo.test", "Maria Lopez", "manager", None),
    ("tom.manager@demo.test", "Tom Becker", "manager", None),
] + [
    (f"collector{i}@demo.test", name, "collector", "Team Atlantic" if i <= 4 else "Team Pacific")
    for i, name in enumerate(
        [
            "Ana Silva",
            "Ben Okafor",
            "Chloe Martin",
            "Dev Patel",
            "Emi Tanaka",
            "Finn Murphy",
            "Gia Rossi",
            "Hugo Klein",
        ],
        start=1,
    )
]

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "Yuki",
    "Hans",
    "Sofia",
    "Liam",
    "Olivia",
    "Noah",
    "Amelia",
    "Lukas",
    "Emma",
    "Kenji",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Müller",
    "Schmidt",
    "Sato",
    "Suzuki",
    "Taylor",
    "Wilson",
    "O'Brien",
    "Nguyen",
    "Fischer",
    "Walker",
    "Young",
    "King",
]
BIZ_A = [
    "Apex",
    "Blue River",
    "Cedar",
    "Delta",
    "Evergreen",
    "Falcon",
    "Granite",
    "Harbor",
    "Iron Bridge",
    "Juniper",
    "Keystone",
    "Lakeside",
    "Meridian",
    "Northstar",
    "Oakwood",
    "Pioneer",
    "Quarry",
    "Redwood",
]
BIZ_B = [
    "Construction",
    "Foods",
    "Logistics",
    "Clinic",
    "Hotels",
    "Retail",
    "Engineering",
    "Farms",
    "Motors",
    "Pharmacy",
    "Builders",
    "Textiles",
    "Print",
    "Energy",
]
SUFFIX = {"US": "LLC", "DE": "GmbH", "GB": "Ltd", "JP": "K.K.", "AU": "Pty Ltd", "CA": "Inc."}
SEGMENTS_CONSUMER = ["standard", "standard", "standard", "hardship", "high-balance", "new"]
SEGMENTS_COMMERCIAL = ["sme", "sme", "enterprise", "public-sector", "key-account"]


# the demo's second language of each client's dunning templates (the first is English)
SECOND_LANGUAGE = {"DE": "de", "CA": "fr", "US": "es", "GB": "fr", "AU": "fr", "JP": "fr"}


def _demo_language(client: Client, rng: random.Random) -> str:
    """German for the German client; elsewhere one debtor in five speaks the client's second language."""
    second = SECOND_LANGUAGE.get(client.country, "fr")
    if client.country == "DE":
        return "de"
    return second if rng.random() < 0.2 else "en"


def _seed_dunning(clients: list[Client]) -> None:
    """An approved dunning policy per client (standard steps, texts in English and a second language), as its
    client admin approved it in the portal; the hourly schedule runs it (or "Run today's dunning now")."""
    from provider.dunning import services as dunning
    from provider.dunning.models import DunningPolicy
    from provider.reporting.schedule import client_today

    for client in clients:
        if db.session.scalar(select(DunningPolicy.id).where(DunningPolicy.client_id == client.id).limit(1)):
            continue
        admin = db.session.scalar(select(User).where(User.client_id == client.id, User.role == "client_admin"))
        policy = dunning.propose_policy(
            db.session,
            client,
            effective_from=client_today(client, now_utc()) - timedelta(days=1),
            min_amount_minor=10_00,
            notes="Standard sequence: two e-mails, a letter, then a call.",
            second_language=SECOND_LANGUAGE.get(client.country, "fr"),
        )
        if admin is not None:
            with audit.acting_as(audit.Actor(admin.id, admin.email)):
                dunning.approve_policy(db.session, policy, admin, "Approved for the demo")


def _debtor_rows(client: Client, start: int, stop: int, rng_seed: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(start, stop):
        rng = random.Random(rng_seed * 1_000_003 + n)  # noqa: S311 - per-row seed: same debtor at any scale
        if client.debt_type == DebtType.CONSUMER.value:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            segment = rng.choice(SEGMENTS_CONSUMER)
        else:
            name = f"{rng.choice(BIZ_A)} {rng.choice(BIZ_B)} {SUFFIX.get(client.country, 'Ltd')}"
            segment = rng.choice(SEGMENTS_COMMERCIAL)
        rows.append(
            {
                "client_id": client.id,
                "external_ref": f"{client.code}-{n:06d}",
                "name": name,
                "timezone": None,
                "segment": segment,
                "language": _demo_language(client, rng),
                "do_not_contact": rng.random() < 0.02,
            }
        )
    return rows


def _contact_rows(client: Client, debtors: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    rows = []
    for debtor_id, ref, name in debtors:
        local = "".join(ch for ch in name.lower() if ch.isalnum())[:20] or "debtor"
        number = int(ref.rsplit("-", 1)[-1])
        rows.append(
            {
                "client_id": client.id,
                "debtor_id": debtor_id,
                "kind": ContactKind.EMAIL.value,
                "value": f"{local}.{number}@example.com",
                "label": "billing",
                "is_primary": True,
            }
        )
        rows.append(
            {
                "client_id": client.id,
                "debtor_id": debtor_id,
                "kind": ContactKind.PHONE.value,
                "value": f"+1 555 {number % 1000:03d} {number % 10000:04d}",
                "label": "main",
                "is_primary": True,
            }
        )
        rows.append(
            {
                "client_id": client.id,
                "debtor_id": debtor_id,
                "kind": ContactKind.POSTAL.value,
                "value": f"{number % 200 + 1} Demo Street, {10000 + number % 90000} Demo City",
                "label": "billing",
                "is_primary": True,
            }
        )
    return rows


def _ensure_clients() -> list[Client]:
    existing = {c.code: c for c in db.session.scalars(select(Client))}
    for spec in CLIENTS:
        if spec["code"] not in existing:
            existing[spec["code"]] = client_services.create_client(db.session, dict(spec))
    return [existing[spec["code"]] for spec in CLIENTS]


def _ensure_teams(clients: list[Client]) -> dict[str, Team]:
    by_code = {c.code: c for c in clients}
    teams = {t.name: t for t in db.session.scalars(select(Team))}
    for name, codes in TEAMS.items():
        team = teams.get(name) or services.create_team(db.session, name)
        teams[name] = team
        granted = set(db.session.scalars(select(TeamClient.client_id).where(TeamClient.team_id == team.id)))
        services.set_team_clients(db.session, team, granted | {by_code[c].id for c in codes})
    return teams


def _ensure_users(clients: list[Client], teams: dict[str, Team]) -> list[tuple[str, str]]:
    have = set(db.session.scalars(select(User.email)))
    logins: list[tuple[str, str]] = []
    for email, name, role, team in STAFF:
        logins.append((email, role))
        if email not in have:
            services.create_user(
                db.session,
                {
                    "email": email,
                    "name": name,
                    "role": role,
                    "password": DEMO_PASSWORD,
                    "team_id": teams[team].id if team else None,
                },
            )
    for client in clients:
        for role, who in (("client_admin", "admin"), ("client_viewer", "viewer")):
            email = f"{who}@{client.code.lower()}.demo.test"
            logins.append((email, role))
            if email not in have:
                services.create_user(
                    db.session,
                    {
                        "email": email,
                        "name": f"{client.code.title()} {who.title()}",
                        "role": role,
                        "client_id": client.id,
                        "password": DEMO_PASSWORD,
                    },
                )
    return logins


def _ensure_debtors(client: Client, wanted: int, seed: int) -> int:
    have = db.session.scalar(select(func.count(Debtor.id)).where(Debtor.client_id == client.id)) or 0
    created = 0
    for start in range(have, wanted, CHUNK):
        stop = min(start + CHUNK, wanted)
        rows = _debtor_rows(client, start, stop, seed + client.id)
        db.session.execute(insert(Debtor), rows)
        refs = [r["external_ref"] for r in rows]
        new = db.session.execute(
            select(Debtor.id, Debtor.external_ref, Debtor.name).where(
                Debtor.client_id == client.id, Debtor.external_ref.in_(refs)
            )
        ).all()
        db.session.execute(insert(DebtorContact), _contact_rows(client, [tuple(r) for r in new]))
        created += len(rows)
    if created:
        audit.record(
            db.session,
            "debtor.bulk_create",
            "Debtor",
            client_id=client.id,
            object_id="*",
            after={"count": created, "source": "demo"},
        )
    return created


def _seed_reporting(clients: list[Client]) -> None:
    """What the daily snapshot job and the monthly report job would have made by now (idempotent): today's
    snapshot and a report for each month of the demo's ledger, oldest first (each month's SLA outcomes are
    closed in order, as the monthly job closes them)."""
    from clients.journal import Invoice
    from provider.reporting import formulas as f
    from provider.reporting.jobs import take_snapshot
    from provider.reporting.reports import generate_report
    from provider.reporting.schedule import client_today

    for client in clients:
        take_snapshot(client)
        first_of_month = client_today(client, now_utc()).replace(day=1)
        first_issue = db.session.scalar(select(func.min(Invoice.issue_date)).where(Invoice.client_id == client.id))
        month = (first_issue or first_of_month - timedelta(days=1)).replace(day=1)
        while month < first_of_month:
            generate_report(db.session, client, month.strftime("%Y-%m"))
            db.session.commit()  # one month at a time: a long first seed keeps what it made
            month = f.add_months(month, 1)


def _seed_forecast(clients: list[Client]) -> None:
    """What the nightly refit would have made by now: each client's debtors' behaviour and its forecast (a client
    already refitted today is left as it is)."""
    from provider.forecast.models import CashForecast
    from provider.forecast.services import refit_client

    refitted = []
    for client in clients:
        with scoped(TenantScope.single(client.id), db.session):
            done = db.session.scalar(select(func.count(CashForecast.id)).where(CashForecast.client_id == client.id))
            if not done:
                refit_client(db.session, client.id)
                db.session.commit()
                refitted.append(client.id)
    if refitted:  # the worklist's behaviour term, as the next nightly rescoring would give it
        from worklists.scoring import rescore

        rescore(db.session, refitted)
        db.session.commit()


def seed_demo(scale: int = 1, seed: int = 20261123, invoices_per_client: int = INVOICES_PER_CLIENT) -> dict[str, Any]:
    """Create whatever of the demo agency is missing and commit. Returns counts and the demo logins.

    `scale` multiplies the debtors; the ledger (about `invoices_per_client` invoices for each client that
    has none yet, with their payments, credit notes and write-offs) does not grow with it."""
    with audit.acting_as(audit.Actor.system("demo")), scoped(TenantScope.agency(), db.session):
        clients = _ensure_clients()
        teams = _ensure_teams(clients)
        logins = _ensure_users(clients, teams)
        created = sum(_ensure_debtors(c, DEBTORS_PER_CLIENT * scale, seed) for c in clients)
        db.session.commit()
        invoices = seed_ledger(clients, invoices_per_client, seed)
        db.session.commit()
        seed_sla_demo(clients)  # contract terms, disputes and their SLA clocks
        seed_worklists([c.id for c in clients])  # the overdue accounts' work items, as the nightly job builds them
        seed_books_demo(clients)  # fee schedules, the agency's books, remittances and fee invoices
        _seed_reporting(clients)  # today's KPI snapshot and a report per month, as the scheduled jobs make them
        _seed_dunning(clients)  # an approved dunning policy per client: the hourly schedule runs it
        from provider.comms.demo import seed_demo_mail

        seed_demo_mail([c.id for c in clients])  # sent by the web process to its loopback mail server
        seed_money_ops_demo(clients)  # late-payment charges (RHEIN, THAMES) and remittance bank accounts
        db.session.commit()
        _seed_forecast(clients)  # behaviour segments, credit view and the 13-week forecast, as the nightly refit
        total = db.session.scalar(select(func.count(Debtor.id))) or 0
    return {
        "clients": len(clients),
        "debtors": total,
        "created_debtors": created,
        "created_invoices": invoices,
        "users": len(logins),
        "logins": logins,
    }
