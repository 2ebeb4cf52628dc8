"""A bank line the import found no debtor for: a person finds who paid, and the payment is recorded with the
line's own reference, date and amount, allocated as the import would have, once (the same answer again is a
replay; another debtor afterwards is refused), and only inside the client and only for such lines."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from clients.journal import Invoice, Payment
from clients.models import Debtor
from clients.payment_imports import assign_debtor, unidentified_lines
from provider.core.audit import AuditEvent
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.clients.test_payment_imports import _import
from tests.clients.test_real_payment_files import CAMT_08, _camt, acme, readable  # noqa: F401 - the fixture
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_invoice, make_user

GIFT_LINE = 4  # the CAMT_08 line from "Nobody Known" (EUR 7.00, GIFT-1), after the batch's two parts and a debit


@pytest.fixture
def statement(acme: Any) -> Any:  # noqa: F811 - the fixture imported above
    batch = _import(acme, _camt("08", CAMT_08), name="camt.xml")  # the unknown payer's line waits, the rest posts
    assert batch.status == "partial", batch.errors
    return batch


def _payment(client_id: int, ref: str) -> Payment | None:
    refs = db.session.scalars(select(Payment.external_ref).where(Payment.client_id == client_id)).all()
    [full] = [r for r in refs if readable(r) == ref] or [None]
    return db.session.scalar(select(Payment).where(Payment.client_id == client_id, Payment.external_ref == full))


def test_the_line_waits_until_a_person_names_the_debtor_then_it_is_paid_and_allocated(
    acme: Any,  # noqa: F811
    statement: Any,
) -> None:
    waiting = unidentified_lines(db.session, statement)
    assert list(waiting) == [GIFT_LINE] == [e["row"] for e in statement.errors]
    line = waiting[GIFT_LINE]
    assert (readable(line.payment_ref), line.amount, line.currency, line.payment) == ("GIFT-1", "7.00", "EUR", None)
    debtor = make_debtor(acme, external_ref="D-9", name="Nobody Known Ltd")
    make_invoice(acme, debtor, "INV-9", 1000)
    payment = assign_debtor(db.session, statement, GIFT_LINE, debtor)
    db.session.commit()
    assert (payment.external_ref, payment.debtor_id, payment.amount_minor) == (line.payment_ref, debtor.id, 700)
    assert str(payment.received_on) == "2026-03-10" and payment.unapplied_minor == 0  # allocated to INV-9
    assert db.session.scalar(select(Invoice.open_minor).where(Invoice.number == "INV-9")) == 300
    assert unidentified_lines(db.session, statement)[GIFT_LINE].payment.id == payment.id
    assert statement.posted_rows == 3  # the batch's two parts, and this line
    with scoped(TenantScope.agency(), db.session):
        audited = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_id == str(payment.id))).all()
    assert "payment.assign_debtor" in audited
    # the same answer again changes nothing; another debtor is refused
    assert assign_debtor(db.session, statement, GIFT_LINE, debtor).id == payment.id
    other = make_debtor(acme, external_ref="D-10", name="Someone Else")
    with pytest.raises(ServiceError, match="already recorded with other details"):
        assign_debtor(db.session, statement, GIFT_LINE, other)
    db.session.rollback()
    gifts = db.session.scalars(select(Payment.external_ref).where(Payment.client_id == acme.id)).all()
    assert [readable(ref) for ref in gifts].count("GIFT-1") == 1


def test_only_a_line_left_out_for_want_of_a_debtor_can_be_assigned(acme: Any, statement: Any) -> None:  # noqa: F811
    debtor = _payment(acme.id, "BATCH-1/1").debtor_id
    for line in (1, 2, 99):  # posted lines and a line the statement does not have
        with pytest.raises(ServiceError, match="not a bank line waiting"):
            assign_debtor(db.session, statement, line, db.session.get_one(Debtor, debtor))
    broken = CAMT_08.replace("GIFT-1", "GIFT-2").replace('<Amt Ccy="EUR">7.00</Amt>', '<Amt Ccy="EUR">7.001</Amt>')
    rejected = _import(acme, _camt("08", broken), name="again.xml")  # a bad amount keeps the statement back
    assert rejected.status == "rejected" and unidentified_lines(db.session, rejected) == {}  # nothing posted there


def test_a_debtor_of_another_client_is_refused(acme: Any, statement: Any) -> None:  # noqa: F811
    stranger = make_debtor(make_client(code="OTHR"), external_ref="D-1", name="Nobody Known")
    with pytest.raises(ServiceError, match="not a debtor of this client"):
        assign_debtor(db.session, statement, GIFT_LINE, stranger)
    assert _payment(acme.id, "GIFT-1") is None


def test_the_pages_find_the_debtor_and_record_the_payment(
    client: FlaskClient,
    acme: Any,  # noqa: F811
    statement: Any,
) -> None:
    debtor = make_debtor(acme, external_ref="D-9", name="Nobody Known Ltd")
    login(client, make_user("manager").email)
    batch_page = f"/clients/{acme.id}/payments/imports/{statement.id}"
    assign_page = f"{batch_page}/lines/{GIFT_LINE}"
    before = client.get(batch_page).get_data(as_text=True)
    assert f'href="{assign_page}"' in before and "1 bank line below" in before
    unmatched = f"/clients/{acme.id}/payments/unmatched"
    waiting = client.get(unmatched).get_data(as_text=True)
    assert "Bank lines waiting for their debtor" in waiting and "GIFT-1" in waiting
    assert f'href="{assign_page}"' in waiting
    page = client.get(f"{assign_page}?q=nobody").get_data(as_text=True)
    assert "GIFT-1" in page and "7.00 EUR" in page and "Nobody Known Ltd" in page
    assert client.get(f"{batch_page}/lines/1").status_code == 404  # a posted line waits for nobody
    token = fresh_csrf(client, assign_page)
    stranger = make_debtor(make_client(code="OTHR"), external_ref="D-X", name="Nobody Known")
    assert client.post(assign_page, data={"csrf_token": token, "debtor_id": stranger.id}).status_code == 404
    response = client.post(assign_page, data={"csrf_token": token, "debtor_id": debtor.id})
    assert response.status_code == 302 and response.headers["Location"].endswith(batch_page)
    assert _payment(acme.id, "GIFT-1").debtor_id == debtor.id
    after = client.get(batch_page).get_data(as_text=True)
    assert "recorded as" in after and re.search(r"payment GIFT-1~[0-9a-f]{16} recorded for Nobody Known Ltd", after)
    assert "Every bank line without a debtor has been recorded by hand" in after
    assert "Bank lines waiting for their debtor" not in client.get(unmatched).get_data(as_text=True)


def test_the_unmatched_page_reads_waiting_lines_in_the_same_queries_for_one_or_three_statements(
    client: FlaskClient,
    acme: Any,  # noqa: F811
    statement: Any,
) -> None:
    from tests.worklists.test_pages import count_queries

    unmatched = f"/clients/{acme.id}/payments/unmatched"
    login(client, make_user("manager").email)

    def queries() -> tuple[int, int]:
        client.get(unmatched)  # warm: the test session's identity map and savepoints settle
        with count_queries() as statements:
            page = client.get(unmatched).get_data(as_text=True)
        return len(statements), page.count(">Find who paid</a>")

    one, shown = queries()
    assert shown == 1
    for n in (2, 3):  # two more statements, each with a line nobody is known for
        _import(
            acme, _camt("08", CAMT_08.replace("GIFT-1", f"GIFT-{n}").replace("BATCH-1", f"BATCH-{n}")), name=f"{n}.xml"
        )
    three, shown = queries()
    assert shown == 3 and three == one
