"""The books overview: fees per client and month (chart and table), one line per client; managers only."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask.testing import FlaskClient

from provider.books.posting import bring_up_to_date
from provider.core.clock import frozen_time
from provider.core.permissions import ROLE_PERMISSIONS, Permission, Role
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import give_schedule
from tests.conftest import login
from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_team, make_user


def _client_with_fees(name: str, amounts: list[tuple[date, int]]) -> Any:
    client = make_client(name=name)
    give_schedule(client)  # 15 %
    debtor = make_debtor(client)
    with frozen_time(datetime(2026, 1, 5, 9, tzinfo=UTC)):
        make_invoice(client, debtor, "INV-1", 1_000_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2))
    for n, (day, amount) in enumerate(amounts):
        with frozen_time(datetime(day.year, day.month, day.day, 10, tzinfo=UTC)):
            make_payment(client, debtor, f"P{n}", amount, received_on=day)
    with scoped(TenantScope.single(client.id), db.session):
        bring_up_to_date(db.session, client.id)
        db.session.commit()
    return client


def test_fees_per_client_and_month_in_the_chart_and_its_table(client: FlaskClient, db_session: Any) -> None:
    _client_with_fees("Alpha Freight", [(date(2026, 2, 10), 10_000), (date(2026, 3, 3), 20_000)])
    _client_with_fees("Beta Foods", [(date(2026, 3, 20), 40_000)])
    login(client, make_user("manager").email)
    with frozen_time(datetime(2026, 3, 31, 12, tzinfo=UTC)):
        page = client.get("/books")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "data:image/svg+xml;base64," in html
    assert "Fees earned per client and month (EUR)" in html
    # Alpha: 15.00 in February, 30.00 in March, 45.00 in total; Beta: 60.00 in March
    alpha = html.split("Alpha Freight</a>", 1)[1].split("</tr>", 1)[0]
    assert "€15.00" in alpha and "€30.00" in alpha and "€45.00" in alpha
    beta = html.split("Beta Foods</a>", 1)[1].split("</tr>", 1)[0]
    assert "€60.00" in beta and "€15.00" not in beta
    assert html.index("Beta Foods") < html.index("Alpha Freight")  # biggest first
    assert 'href="/books"' in html  # in the navigation
    assert ">Feb 2026<" in html and ">Mar 2026<" in html


def test_each_currency_has_its_own_chart_and_table(client: FlaskClient, db_session: Any) -> None:
    _client_with_fees("Alpha Freight", [(date(2026, 3, 3), 20_000)])
    _client_with_fees("Beta Foods", [(date(2026, 3, 20), 40_000)])
    dollars = make_client(name="Gamma Inc", base_currency="USD")
    give_schedule(dollars, currency="USD")
    debtor = make_debtor(dollars)
    with frozen_time(datetime(2026, 1, 5, 9, tzinfo=UTC)):
        make_invoice(
            dollars, debtor, "I-1", 500_000, currency="USD", issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2)
        )
    with frozen_time(datetime(2026, 3, 10, 9, tzinfo=UTC)):
        make_payment(dollars, debtor, "U1", 10_000, currency="USD", received_on=date(2026, 3, 10))
    with scoped(TenantScope.single(dollars.id), db.session):
        bring_up_to_date(db.session, dollars.id)
        db.session.commit()
    login(client, make_user("manager").email)
    with frozen_time(datetime(2026, 3, 31, 12, tzinfo=UTC)):
        euros = client.get("/books").get_data(as_text=True)  # two clients in EUR, one in USD: EUR first
        usd = client.get("/books?currency=usd").get_data(as_text=True)
    fees_table = euros.split("Fees earned per client and month</caption>", 1)[1].split("</table>", 1)[0]
    assert "Gamma Inc" not in fees_table and "Alpha Freight" in fees_table
    assert "Fees earned per client and month (USD)" in usd
    usd_table = usd.split("Fees earned per client and month</caption>", 1)[1].split("</table>", 1)[0]
    assert "Gamma Inc" in usd_table and "$15.00" in usd_table and "Alpha Freight" not in usd_table


def test_books_permissions_go_to_managers_and_admins_only(client: FlaskClient, db_session: Any) -> None:
    readers = {role for role, perms in ROLE_PERMISSIONS.items() if Permission.BOOKS_READ in perms}
    managers = {role for role, perms in ROLE_PERMISSIONS.items() if Permission.BOOKS_MANAGE in perms}
    assert readers == managers == {Role.ADMIN, Role.MANAGER}
    owner = make_client(name="Alpha Freight")
    login(client, make_user("collector", team=make_team(owner)).email)
    assert client.get("/books").status_code == 404
    assert 'href="/books"' not in client.get("/clients").get_data(as_text=True)
    viewer = client.application.test_client()
    login(viewer, make_user("client_viewer", client=owner).email)
    assert viewer.get("/books").status_code == 404
    assert 'href="/portal/remittances"' in viewer.get("/portal/remittances").get_data(as_text=True)
