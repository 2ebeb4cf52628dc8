"""Ledger pages: the filtered invoice list and its CSV export, the invoice page, the debtor statement (HTML, PDF).

Every expectation is computed here from the invoices the test creates (amounts, dates, what was posted), not
read back from the product.
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

from clients import services
from clients.journal import CreditNote, Invoice, JournalTransaction, TxKind
from clients.ledger_list import client_today
from clients.models import Client, Debtor, DebtorContact
from provider.core import jobs
from provider.core.audit import Actor, acting_as
from provider.core.money import format_money
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.formatting import format_day
from tests.clients.ledger_helpers import invoice_row, payment_data
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_user

EXPONENT = {"EUR": 2, "JPY": 0}
CLERK = "clerk@acme.test"


@dataclass
class Spec:
    number: str
    debtor: str  # key into World.debtors
    issued: int  # days before today
    due: int  # days relative to today (negative: in the past)
    amount: int  # minor units
    currency: str = "EUR"
    paid: int = 0
    credited: int = 0
    written_off: int = 0
    on_hold: bool = False

    @property
    def open(self) -> int:
        return self.amount - self.paid - self.credited - self.written_off


SPECS = [
    Spec("INV-001", "wayne", 100, -70, 400_00, paid=100_00),
    Spec("INV-002", "wayne", 5, 25, 250_00),
    Spec("INV-003", "stark", 40, -10, 120_00, paid=120_00),
    Spec("INV-004", "stark", 60, -30, 80_00, credited=80_00),
    Spec("INV-005", "stark", 200, -170, 999_99, written_off=999_99),
    Spec("INV-006", "stark", 20, -1, 50_00, on_hold=True),
    Spec("JPY-100", "wayne", 60, -45, 10_500, currency="JPY"),
    Spec("INV-008", "stark", 30, 0, 60_00),  # due today: still open, not overdue
    Spec("+1", "evil", 3, 27, 10_00),
    Spec("@SUM(A1)", "evil", 3, 27, 20_00),
    Spec("-7", "evil", 3, -2, 30_00),
]


def expected_status(spec: Spec) -> str:
    """The status definitions of clients/ledger_list.py, restated for the data of this test."""
    if spec.open > 0:
        if spec.on_hold:
            return "on_hold"
        return "overdue" if spec.due < 0 else "open"
    parts = {"written_off": spec.written_off, "paid": spec.paid, "credited": spec.credited}
    return max(parts, key=lambda k: (parts[k], k == "written_off", k == "paid"))


def major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-EXPONENT[currency])


def days_past_due(due: date, as_of: date) -> int:
    return max((as_of - due).days, 0)


def bucket(due: date, as_of: date) -> str:
    """DESIGN §7, written out independently of the product's bucket code."""
    days = (as_of - due).days
    if days <= 0:
        return "Current"
    if days <= 30:
        return "1-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    if days <= 120:
        return "91-120"
    return "120+"


@dataclass
class World:
    client: Client
    today: date
    debtors: dict[str, Debtor]
    invoices: dict[str, Invoice]
    specs: dict[str, Spec]
    reversal_id: int
    reversed_id: int
    unapplied: int  # EUR cash of Wayne not allocated

    def issue(self, s: Spec) -> date:
        return self.today - timedelta(days=s.issued)

    def due(self, s: Spec) -> date:
        return self.today + timedelta(days=s.due)


def build_world() -> World:
    acme = make_client(name="Acme Trading", code="ACME", base_currency="EUR")
    debtors = {
        "wayne": make_debtor(acme, name="Wayne Holdings", external_ref="W-1"),
        "stark": make_debtor(acme, name="Stark Industries", external_ref="S-2"),
        "evil": make_debtor(acme, name='=HYPERLINK("http://evil")', external_ref="-EVIL"),
    }
    today = client_today(acme)
    with scoped(TenantScope.agency(), db.session):
        db.session.add(
            DebtorContact(
                client_id=acme.id, debtor_id=debtors["wayne"].id, kind="postal", value="1007 Mountain Drive\nGotham"
            )
        )
        rows = [
            invoice_row(
                debtors[s.debtor].id,
                s.number,
                s.amount,
                currency=s.currency,
                issue_date=today - timedelta(days=s.issued),
                due_date=today + timedelta(days=s.due),
            )
            for s in SPECS
        ]
        placed = {inv.number: inv for inv in services.place_invoices(db.session, acme, rows)}
        with acting_as(Actor(None, CLERK)):
            for s in SPECS:
                inv = placed[s.number]
                if s.paid:
                    pay = services.record_payment(
                        db.session,
                        acme,
                        payment_data(inv.debtor_id, f"PAY-{s.number}", s.paid, received_on=today - timedelta(days=3)),
                    ).payment
                    services.allocate(db.session, acme, pay, inv, s.paid, on=today - timedelta(days=3))
                if s.credited:
                    services.issue_credit_note(
                        db.session,
                        acme,
                        {
                            "debtor_id": inv.debtor_id,
                            "number": f"CN-{s.number}",
                            "issued_on": today - timedelta(days=2),
                            "currency": s.currency,
                            "amount_minor": s.credited,
                            "invoice_id": inv.id,
                        },
                    )
                if s.written_off:
                    services.write_off(db.session, acme, inv, reason="insolvent")
                if s.on_hold:
                    inv.on_hold = True
            # a payment put on INV-002 by mistake, then reversed: INV-002 stays fully open
            wrong = services.record_payment(
                db.session, acme, payment_data(debtors["wayne"].id, "PAY-WRONG", 40_00, received_on=today)
            ).payment
            allocation = services.allocate(db.session, acme, wrong, placed["INV-002"], 40_00, on=today)
            reversal = services.reverse(db.session, acme, allocation, "wrong invoice")
        db.session.commit()
    return World(
        acme, today, debtors, placed, {s.number: s for s in SPECS}, reversal.id, allocation.id, unapplied=40_00
    )


@pytest.fixture
def world(db_session: Any) -> World:
    return build_world()


@pytest.fixture
def manager(client: FlaskClient, db_session: Any) -> FlaskClient:
    make_user("manager", email="mgr@example.test")
    login(client, "mgr@example.test")
    return client


_ROW_LINK = re.compile(r'/invoices/\d+">([^<]+)</a>')


def listed(client: FlaskClient, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    return [html.unescape(n) for n in _ROW_LINK.findall(response.get_data(as_text=True))]


def ledger_url(world: World, **args: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in args.items())
    return f"/clients/{world.client.id}/ledger?per_page=100&{query}"


# --- the list -----------------------------------------------------------------------------------------


def test_each_invoice_gets_the_status_its_journal_says(manager: FlaskClient, world: World) -> None:
    for status in ("open", "overdue", "on_hold", "paid", "credited", "written_off"):
        want = {s.number for s in SPECS if expected_status(s) == status}
        assert want, status  # the data covers every status
        assert set(listed(manager, ledger_url(world, status=status))) == want, status
    outstanding = {s.number for s in SPECS if s.open > 0}
    assert set(listed(manager, ledger_url(world, status="outstanding"))) == outstanding
    assert set(listed(manager, ledger_url(world))) == {s.number for s in SPECS}


def test_filters_narrow_to_what_the_data_says(manager: FlaskClient, world: World) -> None:
    def check(want: set[str], **args: Any) -> None:
        assert set(listed(manager, ledger_url(world, **args))) == want, args

    check({s.number for s in SPECS if s.debtor == "wayne"}, debtor="wayne")
    check({s.number for s in SPECS if s.debtor == "stark"}, debtor="s-2")  # by reference, any case
    check({s.number for s in SPECS if s.debtor == "wayne"}, debtor_id=world.debtors["wayne"].id)
    check({s.number for s in SPECS if "inv-00" in s.number.lower()}, number="inv-00")
    check({"INV-006"}, number="6")
    check({s.number for s in SPECS if s.currency == "JPY"}, currency="jpy")
    lo, hi = world.today - timedelta(days=60), world.today - timedelta(days=5)
    check({s.number for s in SPECS if lo <= world.issue(s) <= hi}, issued_from=lo, issued_to=hi)
    lo, hi = world.today - timedelta(days=45), world.today
    check({s.number for s in SPECS if lo <= world.due(s) <= hi}, due_from=lo, due_to=hi)
    amount_lo, amount_hi = Decimal("50"), Decimal("400")
    check(
        {s.number for s in SPECS if amount_lo <= major(s.amount, s.currency) <= amount_hi},
        amount_min="50",
        amount_max="400.00",
    )
    # a bound finer than the currency's minor unit: JPY 10,499.5 means at least 10,500 yen
    check({s.number for s in SPECS if s.currency == "JPY"}, currency="JPY", amount_min="10499.5")
    check(
        {s.number for s in SPECS if s.debtor == "stark" and expected_status(s) == "overdue"},
        debtor="stark",
        status="overdue",
    )


def test_invalid_filters_are_named_and_ignored(manager: FlaskClient, world: World) -> None:
    url = ledger_url(
        world,
        issued_from="2026-13-01",
        amount_min="abc",
        status="bogus",
        currency="XYZ",
        due_from="2026-03-01",
        due_to="2026-01-01",
        debtor_id="x1",
        amount_max="-5",
    )
    response = manager.get(url)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in (
        "Issued from: “2026-13-01” is not a date",
        "Amount from: “abc” is not an amount",
        "Status: “bogus” is not a status",
        "Currency: “XYZ” is not an ISO 4217 currency code",
        "Due date: “2026-03-01” is more than “2026-01-01”",
        "Debtor: “x1” is not a debtor number",
        "Amount to: amounts are never negative",
    ):
        assert text in body, text
    assert set(listed(manager, url)) == {s.number for s in SPECS}


def test_totals_per_currency_cover_the_filtered_set(manager: FlaskClient, world: World) -> None:
    body = manager.get(ledger_url(world, status="outstanding")).get_data(as_text=True)
    open_specs = [s for s in SPECS if s.open > 0]
    for currency in ("EUR", "JPY"):
        mine = [s for s in open_specs if s.currency == currency]
        amount = format_money(sum(s.amount for s in mine), currency)
        open_ = format_money(sum(s.open for s in mine), currency)
        assert re.search(
            rf"<td>{currency}</td>\s*<td class=\"num\">{len(mine)}</td>\s*<td class=\"num\">{re.escape(amount)}</td>"
            rf"\s*<td class=\"num\"><strong>{re.escape(open_)}</strong>",
            body,
        ), currency


def test_sorting_and_paging_are_total_and_stable(manager: FlaskClient, world: World) -> None:
    wayne = world.debtors["wayne"]
    bulk = [
        invoice_row(wayne.id, f"BULK-{i:02d}", 77_00, issue_date=world.today, due_date=world.today) for i in range(30)
    ]
    with scoped(TenantScope.agency(), db.session):
        services.place_invoices(db.session, world.client, bulk)
        db.session.commit()
    every = {s.number for s in SPECS} | {r["number"] for r in bulk}
    for sort, direction in (("amount", "desc"), ("due", "asc"), ("number", "asc"), ("debtor", "desc")):
        base = f"/clients/{world.client.id}/ledger?sort={sort}&dir={direction}&per_page=25"
        pages = [listed(manager, f"{base}&page={n}") for n in (1, 2)]
        assert len(pages[0]) == 25 and len(pages[0]) + len(pages[1]) == len(every), sort
        assert set(pages[0]) | set(pages[1]) == every and not set(pages[0]) & set(pages[1]), sort
        assert pages[0] == listed(manager, f"{base}&page=1"), "the same request gives the same order"
    numbers = listed(manager, f"/clients/{world.client.id}/ledger?sort=number&dir=asc&per_page=100")
    assert numbers == sorted(numbers)


def test_sort_by_days_overdue(manager: FlaskClient, world: World) -> None:
    got = listed(manager, ledger_url(world, sort="overdue", dir="desc", status="outstanding"))

    def days(n: str) -> int:
        return days_past_due(world.due(world.specs[n]), world.today)

    assert [days(n) for n in got] == sorted((days(n) for n in got), reverse=True)
    assert got[0] == "INV-001"


def test_the_list_runs_the_same_queries_for_any_page_size(manager: FlaskClient, world: World) -> None:
    wayne = world.debtors["wayne"]
    rows = [
        invoice_row(wayne.id, f"Q-{i:03d}", 10_00 + i, issue_date=world.today, due_date=world.today) for i in range(120)
    ]
    with scoped(TenantScope.agency(), db.session):
        services.place_invoices(db.session, world.client, rows)
        db.session.commit()
    counts = {}
    jobs.drain()  # the jobs the world's payments queued (worklist rescoring) run now, not inside a measured request
    manager.get(f"/clients/{world.client.id}/ledger")  # warm up: the first request of a session loads more
    for per_page in (25, 100, 200):
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])  # noqa: B023 - the listener is removed before the next loop

        engine = db.session.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = manager.get(f"/clients/{world.client.id}/ledger?per_page={per_page}&sort=debtor")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        assert len(_ROW_LINK.findall(response.get_data(as_text=True))) == min(per_page, len(SPECS) + len(rows))
        counts[per_page] = len(statements)
    assert counts[25] == counts[100] == counts[200], (counts, statements)
    assert counts[25] <= 10, counts


# --- CSV ----------------------------------------------------------------------------------------------


def read_csv(response: Any) -> list[dict[str, str]]:
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode()), "UTF-8 with BOM, for Excel"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_csv_export_is_streamed_complete_and_escaped(manager: FlaskClient, world: World) -> None:
    response = manager.get(f"/clients/{world.client.id}/ledger.csv?sort=number")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv" and response.mimetype_params.get("charset") == "utf-8"
    assert f'filename="ledger-ACME-{world.today.isoformat()}.csv"' in response.headers["Content-Disposition"]
    rows = read_csv(response)
    by_number = {r["invoice_number"]: r for r in rows}
    escaped = {"+1": "'+1", "@SUM(A1)": "'@SUM(A1)", "-7": "'-7"}
    assert set(by_number) == {escaped.get(s.number, s.number) for s in SPECS}
    for s in SPECS:
        row = by_number[escaped.get(s.number, s.number)]
        assert row["currency"] == s.currency
        assert row["original_amount"] == f"{major(s.amount, s.currency):.{EXPONENT[s.currency]}f}"
        assert row["open_amount"] == f"{major(s.open, s.currency):.{EXPONENT[s.currency]}f}"
        assert row["issue_date"] == world.issue(s).isoformat() and row["due_date"] == world.due(s).isoformat()
        assert row["status"] == expected_status(s)
        assert row["days_overdue"] == str(days_past_due(world.due(s), world.today) if s.open else 0)
        if s.debtor == "evil":
            assert row["debtor_name"] == '\'=HYPERLINK("http://evil")'
            assert row["debtor_ref"] == "'-EVIL"
    for row in rows:  # no cell can start a formula
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values()), row


def test_csv_export_uses_the_same_filters(manager: FlaskClient, world: World) -> None:
    response = manager.get(f"/clients/{world.client.id}/ledger.csv?status=overdue&debtor=wayne&amount_min=abc")
    numbers = {r["invoice_number"] for r in read_csv(response)}
    assert numbers == {s.number for s in SPECS if s.debtor == "wayne" and expected_status(s) == "overdue"}


# --- the invoice page ---------------------------------------------------------------------------------


def test_invoice_page_shows_header_history_with_actor_and_reversal(manager: FlaskClient, world: World) -> None:
    inv = world.invoices["INV-002"]
    body = manager.get(f"/clients/{world.client.id}/invoices/{inv.id}").get_data(as_text=True)
    for text in (
        "INV-002",
        "Wayne Holdings",
        format_money(250_00, "EUR"),
        format_day(world.due(world.specs["INV-002"])),  # dates in the reader's locale (British English by default)
        "invoice placed",
        "allocation",
        "reversal",
        CLERK,
        f'reversed by <a href="#tx-{world.reversal_id}">#{world.reversal_id}</a>',
        f'of <a href="#tx-{world.reversed_id}">#{world.reversed_id}</a>',
        "reverses #",
        "PAY-WRONG",
        format_money(-40_00, "EUR"),
    ):
        assert text in body, text
    paid = world.invoices["INV-001"]
    page = manager.get(f"/clients/{world.client.id}/invoices/{paid.id}").get_data(as_text=True)
    assert "PAY-INV-001" in page and format_money(100_00, "EUR") in page and "overdue" in page
    assert "61-90" in page  # due 70 days ago


def test_invoice_numbers_link_from_the_debtor_page_and_the_list(manager: FlaskClient, world: World) -> None:
    inv = world.invoices["INV-001"]
    href = f"/clients/{world.client.id}/invoices/{inv.id}"
    debtor_page = manager.get(f"/clients/{world.client.id}/debtors/{world.debtors['wayne'].id}").get_data(as_text=True)
    assert href in debtor_page
    assert f"/clients/{world.client.id}/debtors/{world.debtors['wayne'].id}/statement" in debtor_page
    assert href in manager.get(ledger_url(world)).get_data(as_text=True)


def test_another_clients_invoice_is_a_plain_404(manager: FlaskClient, world: World) -> None:
    other = make_client()
    missing = manager.get(f"/clients/{other.id}/invoices/987654321")
    foreign = manager.get(f"/clients/{other.id}/invoices/{world.invoices['INV-001'].id}")
    assert foreign.status_code == missing.status_code == 404


# --- statements ---------------------------------------------------------------------------------------


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables_of(body: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(body)
    return {" | ".join(t[0]): t[1:] for t in parser.tables if t}


def expected_statement(world: World, as_of: date, paid_after: bool = False) -> dict[str, Any]:
    """Open items of Wayne as of a date, from the specs: payments dated 3 days ago count only if on or before."""
    items = []
    for s in SPECS:
        if s.debtor != "wayne" or world.issue(s) > as_of:
            continue
        paid = s.paid if world.today - timedelta(days=3) <= as_of else 0
        open_ = s.amount - paid - s.credited - s.written_off
        if open_ > 0:
            items.append((s, open_))
    agings: dict[str, dict[str, int]] = {}
    for s, open_ in items:
        row = agings.setdefault(s.currency, {})
        name = bucket(world.due(s), as_of)
        row[name] = row.get(name, 0) + open_
    return {"items": items, "agings": agings}


def test_statement_html_matches_balances_and_aging(manager: FlaskClient, world: World) -> None:
    wayne = world.debtors["wayne"]
    body = manager.get(f"/clients/{world.client.id}/debtors/{wayne.id}/statement").get_data(as_text=True)
    want = expected_statement(world, world.today)
    tables = tables_of(body)
    items = next(rows for head, rows in tables.items() if "Original amount" in head)
    assert [r[0] for r in items] == [s.number for s, _ in sorted(want["items"], key=lambda x: world.due(x[0]))]
    for (s, open_), row in zip(sorted(want["items"], key=lambda x: world.due(x[0])), items, strict=True):
        due = world.due(s)
        assert row[1:7] == [
            world.issue(s).isoformat(),
            due.isoformat(),
            format_money(s.amount, s.currency),
            format_money(open_, s.currency),
            str(days_past_due(due, world.today) or ""),
            bucket(due, world.today),
        ]
        assert open_ == world.invoices[s.number].open_minor  # the same figure as the account page
    aging = next(rows for head, rows in tables.items() if head.startswith("Currency | Current"))
    names = ["Current", "1-30", "31-60", "61-90", "91-120", "120+"]
    for row in aging:
        got = want["agings"][row[0]]
        assert row[1:7] == [format_money(got.get(n, 0), row[0]) for n in names]
        assert row[7] == format_money(sum(got.values()), row[0])
    due = next(rows for head, rows in tables.items() if "Total due" in head)
    eur_open = sum(o for s, o in want["items"] if s.currency == "EUR")
    assert ["EUR", format_money(eur_open, "EUR"), "-" + format_money(world.unapplied, "EUR"),
            format_money(eur_open - world.unapplied, "EUR")] in due  # fmt: skip
    assert "1007 Mountain Drive" in body and "Acme Trading" in body and "PAY-WRONG" in body


def test_statement_as_of_a_past_date_uses_the_journal_up_to_then(manager: FlaskClient, world: World) -> None:
    wayne = world.debtors["wayne"]
    as_of = world.today - timedelta(days=4)
    body = manager.get(f"/clients/{world.client.id}/debtors/{wayne.id}/statement?as_of={as_of.isoformat()}").get_data(
        as_text=True
    )
    want = expected_statement(world, as_of)
    items = next(rows for head, rows in tables_of(body).items() if "Original amount" in head)
    assert {r[0]: r[4] for r in items} == {s.number: format_money(o, s.currency) for s, o in want["items"]}
    assert "PAY-WRONG" not in body  # received today
    bad = manager.get(f"/clients/{world.client.id}/debtors/{wayne.id}/statement?as_of=31.12.2025")
    assert bad.status_code == 200 and "is not a date; use YYYY-MM-DD" in bad.get_data(as_text=True)


def test_statement_pdf_is_a_real_a4_pdf_with_the_numbers(manager: FlaskClient, world: World) -> None:
    from pypdf import PdfReader

    wayne = world.debtors["wayne"]
    response = manager.get(f"/clients/{world.client.id}/debtors/{wayne.id}/statement.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert f'filename="statement-ACME-W-1-{world.today.isoformat()}.pdf"' in response.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(response.get_data()))
    box = reader.pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210, 297)
    text = " ".join(page.extract_text() for page in reader.pages)
    want = expected_statement(world, world.today)
    eur_due = sum(o for s, o in want["items"] if s.currency == "EUR") - world.unapplied
    for needle in ("Wayne Holdings", "Acme Trading", format_money(eur_due, "EUR"), "Page 1 of"):
        assert needle in text, needle
    for s, _ in want["items"]:
        assert s.number in text


# --- the portal ---------------------------------------------------------------------------------------


def test_portal_shows_only_the_users_own_company(client: FlaskClient, world: World) -> None:
    other = make_client(name="Other Corp", code="OTHER")
    stranger = make_debtor(other, name="Stranger Debtor")
    with scoped(TenantScope.agency(), db.session):
        (theirs,) = services.place_invoices(db.session, other, [invoice_row(stranger.id, "THEIRS-1", 5_00)])
        db.session.commit()
        theirs_id, stranger_id = theirs.id, stranger.id  # read now: the portal user's scope cannot refresh them
    make_user("client_viewer", client=world.client, email="viewer@acme.test")
    login(client, "viewer@acme.test")
    assert set(listed(client, "/portal/ledger?per_page=100")) == {s.number for s in SPECS}
    assert set(listed(client, "/portal/ledger?per_page=100&q=THEIRS&number=THEIRS")) == set()
    rows = read_csv(client.get("/portal/ledger.csv"))
    assert "THEIRS-1" not in {r["invoice_number"] for r in rows} and len(rows) == len(SPECS)
    mine = world.invoices["INV-001"]
    assert "PAY-INV-001" in client.get(f"/portal/invoices/{mine.id}").get_data(as_text=True)
    wayne = world.debtors["wayne"]
    assert "Wayne Holdings" in client.get(f"/portal/debtors/{wayne.id}/statement").get_data(as_text=True)
    assert client.get(f"/portal/debtors/{wayne.id}/statement.pdf").mimetype == "application/pdf"
    debtor_page = client.get(f"/portal/debtors/{wayne.id}").get_data(as_text=True)
    assert f"/portal/invoices/{mine.id}" in debtor_page and f"/portal/debtors/{wayne.id}/statement" in debtor_page
    for url in (
        f"/portal/invoices/{theirs_id}",
        f"/portal/debtors/{stranger_id}/statement",
        f"/portal/debtors/{stranger_id}/statement.pdf",
    ):
        assert client.get(url).status_code == 404, url
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})


def test_reversal_and_credit_documents_exist(world: World) -> None:
    """Guards the fixture: the data really holds a reversal and a credit note (else the tests above prove less)."""
    with scoped(TenantScope.agency(), db.session):
        kinds = set(db.session.scalars(select(JournalTransaction.kind)))
        assert {TxKind.REVERSAL.value, TxKind.WRITE_OFF.value, TxKind.CREDIT_NOTE.value} <= kinds
        assert db.session.scalar(select(CreditNote.number)) == "CN-INV-004"
