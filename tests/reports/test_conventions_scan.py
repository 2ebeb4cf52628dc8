"""One convention on what people read: no ISO dates ("2026-03-31"), no ISO months ("2026-03") and no raw state
codes in the agency's books PDFs, the dunning letters, the monthly report's trend tables, the manager's worklist
page and the account view; "Aging" spelled one way."""

from __future__ import annotations

import html
import io
import re
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import login
from tests.factories import make_dispute, make_team, make_user
from worklists.models import ItemState

ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
ISO_MONTH = re.compile(r"\b20\d{2}-\d{2}\b")
RAW_STATES = [s.value for s in ItemState if "_" in s.value] + ["awaiting_client", "right_party", "promise_"]


def _pdf_text(data: bytes) -> str:
    return " ".join("\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages).split())


def _visible(page: str) -> str:
    """The text a reader sees: no tags, attributes, scripts or form values."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return " ".join(html.unescape(page).split())


def _clean(text: str, where: str) -> None:
    assert not ISO_DATE.search(text), f"{where}: ISO date {ISO_DATE.search(text).group(0)!r}"
    assert not ISO_MONTH.search(text), f"{where}: ISO month {ISO_MONTH.search(text).group(0)!r}"
    for code in RAW_STATES:
        assert code not in text, f"{where}: raw code {code!r}"


def test_the_books_pdfs_write_dates_in_words(client: FlaskClient, db_session: Any) -> None:
    from tests.books.test_books_documents import _approve, _world

    owner, run, invoice = _world()
    _approve(owner, run)
    login(client, make_user("manager").email)
    statement = _pdf_text(client.get(f"/books/remittances/{run.id}/statement.pdf").data)
    fee_invoice = _pdf_text(client.get(f"/books/fee-invoices/{invoice.id}/invoice.pdf").data)
    _clean(statement, "remittance statement PDF")
    _clean(fee_invoice, "fee invoice PDF")
    assert "1 Apr 2026" in fee_invoice and "31 Mar 2026" in statement


def test_the_dunning_letters_write_dates_in_words(db_session: Any) -> None:
    from clients.models import DebtorContact
    from provider.dunning.models import LetterBatch
    from tests.dunning.helpers import approved_policy
    from tests.dunning.test_messages import _run
    from tests.factories import make_client, make_debtor, make_invoice

    client = make_client()
    approved_policy(client)
    debtor = make_debtor(client, name="Letter Debtor")
    with scoped(TenantScope.agency(), db.session):
        db.session.add(
            DebtorContact(client_id=client.id, debtor_id=debtor.id, kind="postal", value="Hauptstraße 1, 10115 Berlin",
                          is_primary=True)
        )  # fmt: skip
        db.session.commit()
    make_invoice(client, debtor, "LT-1", 50_000, due_date=date(2026, 1, 6))
    _run(client, date(2026, 2, 10))
    with scoped(TenantScope.agency(), db.session):
        batch = db.session.scalars(select(LetterBatch).where(LetterBatch.client_id == client.id)).one()
        text = _pdf_text(batch.pdf)
    assert "LT-1" in text
    _clean(text, "dunning letter PDF")


def test_the_reports_trend_tables_name_their_months(client: FlaskClient, db_session: Any) -> None:
    from tests.reports.ledger_world import march_world
    from tests.reports.test_reports import _generate

    w = march_world(name="Month Names Ltd")
    report = _generate(w.client).report
    login(client, make_user("manager").email)
    page = _visible(client.get(f"/reports/monthly/{report.id}").get_data(as_text=True))
    trend = page.split("DSO and CEI, last 12 months")[1].split("Top debtors")[0]
    _clean(trend, "report trend and stair-step tables")
    assert "Mar \u201926" in trend


def test_the_manager_page_and_the_account_view_use_words_and_one_spelling(client: FlaskClient, db_session: Any) -> None:
    from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
    from worklists import services

    owner = commercial_client(name="Words Client GmbH")
    team = make_team(owner)
    collector = make_user("collector", team=team, name="Wendy Words")
    with working_day():
        debtor = overdue_account(owner, 700_00, name="Words Debtor KG")
        rebuild(owner)
        item = item_of(debtor)
        with scoped(TenantScope.agency(), db.session):
            services.set_state(db.session, item, ItemState.IN_PROGRESS, collector)
            db.session.commit()
    from clients.journal import Invoice

    with scoped(TenantScope.agency(), db.session):
        invoices = list(db.session.scalars(select(Invoice).where(Invoice.debtor_id == debtor.id)))
    make_dispute(owner, debtor, invoices)
    login(client, make_user("manager").email)
    with frozen_time(date_noon()):
        manage = _visible(client.get("/worklists/manage").get_data(as_text=True))
        account = _visible(client.get(f"/clients/{owner.id}/debtors/{debtor.id}/account").get_data(as_text=True))
    assert "Ageing" not in manage and "Aging of work" in manage
    _clean(manage, "worklists manager page")
    _clean(account, "account view")


def date_noon() -> Any:
    from tests.worklists.helpers import NOON

    return NOON
