"""The monthly report's sections a client buys an agency for: disputes with their root causes and the invoices
behind them, SLA compliance with breaches listed, promises (count and amount), the agency's activity, reminders
and remittances. Never an internal name; an empty section says so in a sentence."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import reports
from sla import disputes as dispute_service
from sla.models import Dispute
from tests.conftest import login
from tests.factories import make_contract_terms, make_dispute, make_team, make_user, make_work_items
from tests.reports.ledger_world import at, march_world, place
from tests.reports.test_reports import pdf_text
from worklists.models import Promise, WorkAction

INTERNAL = re.compile(r"\b(?:sla|worklists|provider|clients)\.\w+|not exposed|Not available yet|_\w+_|\bright_party\b")


def _generate(client: Any, period: str = "2026-03") -> reports.ReportResult:
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        result = reports.generate_report(db.session, client, period)
        db.session.commit()
    return result


def _busy_march() -> Any:
    """March 2026 with two disputes (pricing on invoice G, not received on H; the pricing one resolved), calls of a
    collector and of the client's own user, and promises made, kept and broken."""
    w = march_world(name="Lakeside Motors GmbH")
    make_contract_terms(w.client)
    g = place(w.client, w.d1, "INV-G-7", 12_345, date(2026, 3, 2), date(2026, 3, 20))
    h = place(w.client, w.d2, "INV-H-8", 67_800, date(2026, 3, 3), date(2026, 3, 25))
    with frozen_time(at(date(2026, 3, 4), 10)):
        pricing = make_dispute(w.client, w.d1, [g], reason="pricing", summary="Quoted 10 % less")
    with frozen_time(at(date(2026, 3, 5), 10)):
        make_dispute(w.client, w.d2, [h], reason="not_received", summary="Pallet never arrived", amount_minor=60_000)
    with frozen_time(at(date(2026, 3, 9), 10)), scoped(TenantScope.agency(), db.session):
        dispute = db.session.get(Dispute, pricing.id)
        dispute_service.acknowledge(db.session, dispute)
        dispute_service.investigate(db.session, dispute)
        dispute_service.resolve(db.session, w.client, dispute, "upheld", note="price was agreed")
        db.session.commit()
    items = make_work_items(w.client)
    team = make_team(w.client)
    anna = make_user("collector", team=team, name="Anna Weber")
    portal_user = make_user("client_admin", client=w.client, name="Carl Client")
    item = next(iter(items.values()))
    debtor = next(iter(items))
    with scoped(TenantScope.agency(), db.session):
        for day, outcome, who in (
            (10, "no_answer", anna),
            (11, "right_party", anna),
            (12, "promise_made", anna),
            (13, "right_party", portal_user),  # the client's own user: not the agency's work
        ):
            db.session.add(
                WorkAction(
                    client_id=w.client.id,
                    work_item_id=item,
                    debtor_id=debtor,
                    kind="call",
                    outcome=outcome,
                    user_id=who.id,
                    occurred_at=at(date(2026, 3, day)),
                )
            )
        for amount, status, resolved in ((5_000, "kept", 20), (7_000, "broken", 25), (9_000, "open", None)):
            db.session.add(
                Promise(
                    client_id=w.client.id,
                    work_item_id=item,
                    debtor_id=debtor,
                    currency="EUR",
                    amount_minor=amount,
                    threshold_minor=amount,
                    counted_from=date(2026, 3, 12),
                    due_on=date(2026, 3, 19),
                    status=status,
                    created_at=at(date(2026, 3, 12)),
                    resolved_at=at(date(2026, 3, resolved)) if resolved else None,
                )
            )
        db.session.commit()
    return w


def test_the_report_has_disputes_root_causes_sla_promises_and_activity(db_session: Any) -> None:
    w = _busy_march()
    report = _generate(w.client).report
    ext = report.figures["external"]
    d = ext["disputes"]
    assert (d["opened"], d["resolved"], d["open_total"]) == (2, 1, 1)
    assert d["resolution_target"] and "business day" in d["resolution_target"]
    causes = {r["reason"]: r for r in d["reasons"]}
    assert set(causes) == {"Price differs from the agreed price", "Goods or service not received"}
    assert causes["Goods or service not received"]["amounts"] == {"EUR": 60_000}
    assert [i["number"] for i in causes["Price differs from the agreed price"]["invoices"]] == ["INV-G-7"]
    p = ext["promises"]
    assert (p["made"]["count"], p["kept"]["count"], p["broken"]["count"]) == (3, 1, 1)
    assert p["made"]["amounts"] == {"EUR": 21_000} and p["kept_rate"] == "50.0"
    a = ext["activity"]
    assert a["totals"]["calls"] == 3 and a["totals"]["right_party"] == 2  # the client user's call is not counted
    assert [c["collector"] for c in a["collectors"]] == ["Anna Weber"]
    assert ext["sla"] and all(row["term"][0].isupper() and "_" not in row["term"] for row in ext["sla"])

    _pages, texts = pdf_text(report.pdf)
    text = re.sub(r"\s+", " ", " ".join(texts))
    for words in (
        "Root causes of this month's disputes",
        "INV-G-7",
        "Pallet never arrived",
        "€600.00",  # the disputed amount behind "not received"
        "Promises to pay",
        "€210.00",  # promises made
        "Anna Weber",
        "reached the right person",
        "SLA compliance",
    ):
        assert words in text, words
    assert not INTERNAL.search(text), INTERNAL.search(text)


def test_an_empty_month_says_so_in_each_section_and_names_nothing_internal(db_session: Any, client: Any) -> None:
    w = march_world()
    report = _generate(w.client).report
    _pages, texts = pdf_text(report.pdf)
    text = re.sub(r"\s+", " ", " ".join(texts))
    for sentence in (
        "No dispute was opened, resolved or open on your accounts this month.",
        "No promise to pay was made, kept or broken on your accounts this month.",
        "The agency recorded no calls, e-mails or letters on your accounts this month.",
        "No reminder was sent to your debtors this month.",
    ):
        assert sentence in text, sentence
    assert not INTERNAL.search(text), INTERNAL.search(text)


def test_the_sla_section_lists_each_breach(db_session: Any) -> None:
    w = march_world()
    make_contract_terms(w.client)
    g = place(w.client, w.d1, "INV-LATE", 10_000, date(2026, 3, 1), date(2026, 3, 2))
    with frozen_time(at(date(2026, 3, 2), 10)):
        make_dispute(w.client, w.d1, [g], reason="damaged")
    report = _generate(w.client).report  # never acknowledged: the acknowledgement and resolution SLAs breach
    breaches = report.figures["external"]["breaches"]
    assert breaches and {b["term"] for b in breaches} >= {"Dispute acknowledged"}
    assert all(b["subject"].startswith("Dispute no.") and w.d1.name in b["subject"] for b in breaches)
    _pages, texts = pdf_text(report.pdf)
    assert "Breaches" in " ".join(texts)


def test_the_report_page_and_the_portal_copy_show_the_sections(db_session: Any, client: Any) -> None:
    w = _busy_march()
    report = _generate(w.client).report
    staff = make_user("manager")
    login(client, staff.email)
    page = client.get(f"/reports/monthly/{report.id}").get_data(as_text=True)
    assert "Root causes of this month" in page and "INV-H-8" in page and "Anna Weber" in page
    assert "Not available yet" not in page and "is not exposed" not in page
    assert page.count("<h1") == 1


def test_the_run_page_refreshes_itself_while_a_report_is_still_to_come(db_session: Any, client: Any) -> None:
    from provider.reporting.models import ReportRun

    w = march_world()
    with scoped(TenantScope.agency(), db.session):
        run = ReportRun(period="2026-03", client_ids=[w.client.id], trigger="manual", created_by="test")
        db.session.add(run)  # its job not in the outbox yet (the dispatcher has not written it)
        db.session.commit()
        run_id = run.id
    login(client, make_user("manager").email)
    page = client.get(f"/reports/runs/{run_id}").get_data(as_text=True)
    assert '<meta name="auto-refresh"' in page and "March 2026" in page
    _generate(w.client)
    page = client.get(f"/reports/runs/{run_id}").get_data(as_text=True)
    assert '<meta name="auto-refresh"' not in page  # all stored: nothing left to follow


def test_the_kpi_page_says_which_period_its_dso_covers(db_session: Any, client: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    login(client, make_user("manager").email)
    with frozen_time(at(date(2026, 4, 20), 12)):
        mid = client.get(f"/reports/clients/{w.client.id}?as_of=2026-04-15").get_data(as_text=True)
        whole = client.get(f"/reports/clients/{w.client.id}?as_of=2026-03-31").get_data(as_text=True)
    assert "April 2026 to 15 Apr 2026, the month so far" in mid
    assert "the agency dashboard shows the last full month" in mid
    assert "the month so far" not in whole  # a whole month needs no note
    assert mid.count("<h1") == 1 and 'type="month"' in mid


def test_the_agency_dashboard_charts_the_work_queues(db_session: Any, client: Any) -> None:
    w = march_world()
    make_work_items(w.client)
    login(client, make_user("manager").email)
    page = client.get("/reports/dashboard").get_data(as_text=True)
    assert "Work queues: volume and age" in page and 'class="chart-img"' in page
    section = page[page.index("Work queues: volume and age") :]
    assert "<table" in section and "Never contacted" in section and "in_progress" not in section
