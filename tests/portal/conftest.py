"""A client company with a small ledger, a worklist history and a neighbour (client B) whose data must
never show in A's portal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from provider.core.clock import now_utc, today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import (
    make_client,
    make_debtor,
    make_dispute,
    make_invoice,
    make_payment,
    make_user,
    make_work_items,
)

INTERNAL_NOTE = "INTERNAL-ONLY collector remark about the debtor"
CALL_NOTE = "call note text the client must not read"
B_MARKERS = ["Bravo Neighbour Ltd", "Bravo Hidden Customer", "BRV-REF-1", "BRV-INV-1", "bravo.admin@example.test"]


@dataclass
class Company:
    client: Any
    admin: Any
    viewer: Any
    late: Any  # debtor with an overdue invoice, worked by the agency
    fresh: Any  # debtor with an invoice not yet due
    formula: Any  # debtor whose name starts with '='
    item_id: int
    b: Any
    b_debtor: Any
    b_admin: Any


def _history(client: Any, debtor: Any, item_id: int) -> None:
    from worklists.models import Promise, WorkAction

    now = now_utc()
    rows = [
        ("call", "right_party", CALL_NOTE, 5),
        ("email", "sent", "e-mail body summary", 4),
        ("note", "", INTERNAL_NOTE, 3),
        ("promise", "", "promised on the phone", 2),
        ("escalate", "", "escalation reason, internal", 1),
    ]
    with scoped(TenantScope.agency(), db.session):
        for kind, outcome, note, days in rows:
            db.session.add(
                WorkAction(
                    client_id=client.id,
                    work_item_id=item_id,
                    debtor_id=debtor.id,
                    kind=kind,
                    outcome=outcome,
                    note=note,
                    occurred_at=now - timedelta(days=days),
                )
            )
        db.session.add(
            Promise(
                client_id=client.id,
                work_item_id=item_id,
                debtor_id=debtor.id,
                currency="EUR",
                amount_minor=250_00,
                threshold_minor=250_00,
                counted_from=today_utc(),
                due_on=today_utc() + timedelta(days=7),
            )
        )
        db.session.commit()


@pytest.fixture
def company(client: FlaskClient, db_session: Any) -> Company:
    acme = make_client(name="Acme Receivables GmbH", code="ACME")
    admin = make_user("client_admin", client=acme, email="boss@acme.test", name="Anna Boss")
    viewer = make_user("client_viewer", client=acme, email="clerk@acme.test", name="Carl Clerk")
    late = make_debtor(acme, name="Late Payer AG", external_ref="LATE-1", segment="key_account")
    fresh = make_debtor(acme, name="Fresh Customer KG", external_ref="FRESH-1")
    formula = make_debtor(acme, name='=HYPERLINK("http://evil.test","x")', external_ref="+EVIL-REF")
    make_invoice(acme, late, "ACME-INV-1", 1_000_00)
    make_invoice(acme, late, "ACME-INV-2", 500_00)
    make_invoice(acme, fresh, "ACME-INV-3", 300_00, due_date=today_utc() + timedelta(days=20))
    make_invoice(acme, formula, "ACME-INV-4", 40_00)
    make_payment(acme, late, "ACME-PAY-AGENCY", 120_00, received_on=today_utc(), received_by="agency")
    make_payment(acme, fresh, "ACME-PAY-CLIENT", 80_00, received_on=today_utc(), received_by="client")
    item_id = make_work_items(acme)[late.id]
    _history(acme, late, item_id)

    b = make_client(
        name="Bravo Neighbour Ltd", code="BRAVO", base_currency="GBP", country="GB", timezone="Europe/London"
    )
    b_debtor = make_debtor(b, name="Bravo Hidden Customer", external_ref="BRV-REF-1")
    b_invoice = make_invoice(b, b_debtor, "BRV-INV-1", 999_00, currency="GBP")
    b_admin = make_user("client_admin", client=b, email="bravo.admin@example.test")
    make_dispute(b, b_debtor, [b_invoice], summary="Bravo dispute")
    make_work_items(b)
    return Company(acme, admin, viewer, late, fresh, formula, item_id, b, b_debtor, b_admin)
