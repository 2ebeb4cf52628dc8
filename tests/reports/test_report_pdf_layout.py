"""The report PDF's layout and its renderer: the header and tiles as on the page, the stylesheet parsed once,
the garbage collector paused only while a PDF is laid out."""

from __future__ import annotations

import gc
import os
import threading
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from weasyprint.formatting_structure import boxes

from bench.reports import long_report_top
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import render as rd
from provider.reporting import reports
from tests.reports.ledger_world import at, march_world


def _report_html(client: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The HTML a generated report's PDF is made from."""
    seen: list[str] = []
    real = rd.render_pdf

    def spy(html: str) -> tuple[bytes, int]:
        seen.append(html)
        return real(html)

    monkeypatch.setattr(rd, "render_pdf", spy)
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        reports.generate_report(db.session, client, "2026-03")
        db.session.rollback()
    (html,) = seen
    return html


def _boxes(page: Any, css_class: str) -> list[Any]:
    """The boxes of a page whose element has `css_class`."""
    return [
        box
        for box in page._page_box.descendants()
        if box.element is not None and css_class in (box.element.get("class") or "").split()
    ]


def _right(box: Any) -> float:
    return float(box.border_box_x() + box.border_width())


def test_pdf_tiles_are_four_equal_columns_on_two_rows(db_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    html = _report_html(march_world(name="Harbour Freight Ltd").client, monkeypatch)
    with rd.cyclic_gc_paused():
        page = rd.layout_pdf(html).pages[0]
    tiles = _boxes(page, "rp-tile")
    (container,) = _boxes(page, "rp-tiles")
    rows: dict[float, list[Any]] = defaultdict(list)
    for tile in tiles:
        rows[round(tile.border_box_y(), 1)].append(tile)
    assert len(tiles) == 8 and [len(r) for r in rows.values()] == [4, 4]
    widths = {round(t.border_width(), 1) for t in tiles}
    assert len(widths) == 1 and widths.pop() > container.width / 5  # one width, a quarter of the row less the gaps
    for row in rows.values():
        assert {round(t.border_height(), 1) for t in row} == {round(row[0].border_height(), 1)}
        assert _right(max(row, key=_right)) == pytest.approx(container.border_box_x() + container.width, abs=0.5)


def test_pdf_header_has_the_month_list_at_its_top_right(db_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    html = _report_html(march_world(name="Harbour Freight Ltd").client, monkeypatch)
    with rd.cyclic_gc_paused():
        page = rd.layout_pdf(html).pages[0]
    (head,) = _boxes(page, "rp-head")
    (meta,) = _boxes(page, "rp-meta")
    title = _boxes(page, "rp-client")[0]  # the heading (its line box follows)
    assert _right(meta) == pytest.approx(head.content_box_x() + head.width, abs=0.5)
    assert meta.border_box_y() == pytest.approx(head.content_box_y(), abs=0.5)
    assert meta.border_box_y() + meta.border_height() <= head.content_box_y() + head.height  # above the rule
    assert title.border_box_y() > head.content_box_y()  # the client's name under the label, at the left
    assert title.content_box_x() == pytest.approx(head.content_box_x(), abs=0.5)
    values = [box for box in meta.descendants() if box.element_tag == "dd" and isinstance(box, boxes.InlineBox)]
    assert len(values) == 3  # Month, As of, Currency, each value ending at the right edge
    assert {round(_right(v)) for v in values} == {round(_right(meta))}
    assert len({round(v.border_box_y()) for v in values}) == 3  # one line each


def test_render_pdf_pauses_the_collector_and_restores_it(db_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    html = _report_html(march_world(name="Harbour Freight Ltd").client, monkeypatch)
    during: list[bool] = []
    real = rd.layout_pdf

    def watch(h: str) -> Any:
        during.append(gc.isenabled())
        return real(h)

    monkeypatch.setattr(rd, "layout_pdf", watch)
    was = gc.isenabled()
    try:
        gc.enable()
        pdf, pages = rd.render_pdf(html)
        assert gc.isenabled() and pdf.startswith(b"%PDF-") and pages == 4
        gc.disable()  # a caller that turned it off keeps it off
        rd.render_pdf(html)
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert during == [False, False]


def test_the_collector_comes_back_when_the_last_of_concurrent_renders_ends() -> None:
    assert gc.isenabled()
    inner_started, outer_may_end = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other_render() -> None:
        with rd.cyclic_gc_paused():
            inner_started.set()
            outer_may_end.wait(5)
        seen.append(gc.isenabled())

    with rd.cyclic_gc_paused():
        thread = threading.Thread(target=other_render)
        thread.start()
        inner_started.wait(5)
    seen.append(gc.isenabled())  # the first render ended while the other one still lays out
    outer_may_end.set()
    thread.join(5)
    assert seen == [False, True] and gc.isenabled()


def test_a_failed_render_turns_the_collector_back_on() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), rd.cyclic_gc_paused():
        raise RuntimeError("layout failed")
    assert gc.isenabled()


def test_the_stylesheet_is_parsed_once_and_again_when_the_file_changes(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = tmp_path / rd.STYLESHEET
    sheet.write_text(".report { color: black; }", encoding="utf-8")
    monkeypatch.setattr(app, "static_folder", str(tmp_path))
    with app.app_context():
        first = rd._stylesheet()
        assert rd._stylesheet() is first
        sheet.write_text(".report { color: red; }", encoding="utf-8")
        stat = sheet.stat()
        os.utime(sheet, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert rd._stylesheet() is not first


def test_the_long_bench_report_is_grown_to_exactly_thirty_pages() -> None:
    """bench.reports: rows per page from two sizes, then the count that ends on page 30."""
    calls: list[int] = []

    def fake_render(top: int) -> tuple[int, int]:  # 3 pages of figures, 38 debtor rows a page, 1,500 debtors
        calls.append(top)
        listed = min(top, 1_500)
        return 3 + -(-listed // 38), listed

    top = long_report_top(fake_render)
    assert fake_render(top)[0] == 30 and len(calls) <= 6

    with pytest.raises(SystemExit, match="only 500 overdue debtors"):
        long_report_top(lambda top: (3 + -(-min(top, 500) // 38), min(top, 500)))


def test_each_thread_keeps_one_font_configuration() -> None:
    mine = rd._font_config()
    assert rd._font_config() is mine
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(rd._font_config()))
    thread.start()
    thread.join(5)
    assert theirs and theirs[0] is not mine


def test_the_user_agent_sheet_is_weasyprints_less_the_footnote_and_note_rules() -> None:
    from weasyprint import HTML
    from weasyprint import html as wp_html

    full, ours = wp_html.UA.splitlines(), rd.user_agent_css().splitlines()
    dropped = [line for line in full if line not in ours]
    assert len(dropped) == 5 and all(line.startswith(("::footnote-", "::note-")) for line in dropped)
    assert [line for line in ours if line] == [line for line in full if line and line not in dropped]
    assert "::marker" in rd.user_agent_css() and "display: table-cell" in rd.user_agent_css()
    assert hasattr(HTML, "_ua_stylesheets")  # the hook WeasyPrint takes its user-agent sheets from
    document = rd.layout_pdf("<ul class='report'><li>one</li></ul>")
    assert len(document.pages) == 1
