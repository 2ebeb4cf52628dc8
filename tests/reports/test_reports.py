"""Monthly reports: frozen figures, re-issue keeps both versions, the PDF reads back right and is offline."""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from provider.core.clock import frozen_time
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import reports
from provider.reporting.models import MonthlyReport
from tests.reports.ledger_world import at, march_world, pay

REPORT_DAY = at(date(2026, 4, 1), 12)


def _generate(client: Any, period: str = "2026-03", when: Any = REPORT_DAY) -> reports.ReportResult:
    with frozen_time(when), scoped(TenantScope.agency(), db.session):
        result = reports.generate_report(db.session, client, period)
        db.session.commit()
    return result


def pdf_text(pdf: bytes) -> tuple[int, list[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), [page.extract_text() or "" for page in reader.pages]


def test_the_report_freezes_its_figures_and_regenerating_returns_the_same(db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    first = _generate(w.client)
    assert first.created
    report = first.report
    eur = report.figures["currencies"]["EUR"]["current"]
    assert (eur["dso"], eur["cei"], eur["ar_end"], eur["collected_agency"]) == ("43.92", "33.33", 340_000, 40_000)
    # later postings (P4 was keyed in on 10 April, backdated to March) do not change it ...
    again = _generate(w.client, when=at(date(2026, 5, 3)))
    assert not again.created and again.report.id == report.id
    assert again.report.pdf_sha256 == report.pdf_sha256
    # ... and the journal still reproduces its inputs at its as-of date and posting cut-off
    assert reports.reproduces(report)


def test_reissue_keeps_both_versions_and_takes_in_later_postings(db_session: Any) -> None:
    w = march_world()
    v1 = _generate(w.client).report
    with frozen_time(at(date(2026, 4, 12))), scoped(TenantScope.agency(), db.session):
        v2 = reports.reissue_report(db.session, w.client, "2026-03", "late bank file for March").report
        db.session.commit()
    rows = db.session.scalars(
        select(MonthlyReport).where(MonthlyReport.client_id == w.client.id).order_by(MonthlyReport.version)
    ).all()
    assert [(r.version, r.status) for r in rows] == [(1, "superseded"), (2, "current")]
    assert v1.figures["currencies"]["EUR"]["current"]["ar_end"] == 340_000
    assert v2.figures["currencies"]["EUR"]["current"]["ar_end"] == 335_000  # P4 (posted 04-10) now counts
    assert v2.reason == "late bank file for March"


def test_a_report_needs_a_finished_month_and_a_reason_to_reissue(db_session: Any) -> None:
    w = march_world()
    with pytest.raises(ServiceError, match="not over"):
        _generate(w.client, "2026-04", when=at(date(2026, 4, 20)))
    _generate(w.client)
    with pytest.raises(ServiceError, match="why"), scoped(TenantScope.agency(), db.session):
        reports.reissue_report(db.session, w.client, "2026-03", "  ")


def test_the_pdf_is_valid_has_its_pages_and_text_and_no_remote_url(db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    pay(w.client, w.d2, "P9", 1_000, date(2026, 3, 31), None)
    report = _generate(w.client).report
    assert report.pdf.startswith(b"%PDF-")
    pages, texts = pdf_text(report.pdf)
    assert pages == report.pdf_pages == 4
    first, second, third, last = (re.sub(r"\s+", " ", t) for t in texts)
    assert "Harbour Freight Ltd" in first and "AR Ops Collections" in first
    assert "MONTHLY PERFORMANCE REPORT" in first and "March 2026" in first and "31 Mar 2026" in first
    assert "€410.00 paid to the agency" in first  # the summary: P1 40,000 + P9 1,000 (unallocated) cash
    assert "43.92 days" in first and "33.33 %" in first  # tiles
    assert "€3,400.00" in first  # aging total
    assert "DSO and CEI, last 12 months" in second and "74.50 d" in second
    assert "stair-step" in second and "40.0%" in second
    assert "Top debtors by overdue amount" in third and "Dora Debtor One" in third
    everything = " ".join((first, second, third, last))
    assert "No dispute was opened" in everything  # every section says what it has, in words
    assert "Not available yet" not in everything and "queries" not in everything
    assert "N = number of months" in last  # the CEI formula is printed
    assert "Page 4 of 4" in last
    for marker in (b"http://", b"https://", b"/URI", b"file:"):
        assert marker not in report.pdf
