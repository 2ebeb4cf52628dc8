"""The set-based placement path: the fast row check agrees with the schema, big files post exactly, and
every row the ledger would refuse is named."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clients import imports
from clients.imports import FIELDS, ImportBatch, PlacementRow, RowChecker, start_placement_import
from clients.journal import Invoice, JournalEntry, JournalTransaction
from clients.models import Debtor
from provider.core import jobs
from provider.core.clock import today_utc
from provider.extensions import db
from tests.clients.ledger_helpers import cache_mismatches, unbalanced_transactions
from tests.factories import make_client, make_debtor

HEADER = ",".join(FIELDS) + "\n"


@pytest.fixture
def client_(db_session: Any) -> Any:
    return make_client(base_currency="EUR")


def _import(client: Any, content: str | bytes, **kw: Any) -> ImportBatch:
    data = content.encode() if isinstance(content, str) else content
    batch = start_placement_import(db.session, client, kw.pop("name", "file.csv"), data, **kw)
    batch_id = batch.id
    db.session.commit()
    jobs.drain()
    db.session.expire_all()
    return db.session.get_one(ImportBatch, batch_id)


# --- the fast path never disagrees with the schema --------------------------------------------------

_dates = st.one_of(
    st.dates(date(1990, 1, 1), date(2035, 12, 31)).map(date.isoformat),
    st.sampled_from(["2026-02-30", "2026-13-01", "05/01/2026", "2026-1-5", "20260105", " 2026-01-05 ", ""]),
)
_amounts = st.one_of(
    st.integers(-(10**6), 10**12).map(str),
    st.decimals(-(10**6), 10**9, places=3, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(
        [
            "1,000.50",
            "0",
            "0.00",
            "-1",
            "1e3",
            "12.",
            ".5",
            "١٢",
            "NaN",
            "",
            " 7.25 ",
            "1_000",
            "999999999999999.99",
            "99999999999999.99",
        ]
    ),
)
_currencies = st.sampled_from(["EUR", "eur", "JPY", "KWD", "USD", "EUX", "", " gbp ", "XXX", "EU"])
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=70)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number=_text,
    ref=_text,
    name=_text,
    issue=_dates,
    due=_dates,
    amount=_amounts,
    currency=_currencies,
    po=_text,
)
def test_fast_path_accepts_only_what_the_schema_accepts_and_builds_the_same_row(
    number: str, ref: str, name: str, issue: str, due: str, amount: str, currency: str, po: str
) -> None:
    checker = RowChecker({f: i for i, f in enumerate(FIELDS)}, {})
    cells = [number, ref, name, issue, due, amount, currency, po]
    fast = checker.fast(7, cells)
    checked, errors = checker.check(7, cells)
    if fast is not None:
        assert errors == [] and checked == fast  # the schema path would have built the very same row
        raw = {f: c.strip() for f, c in zip(FIELDS, cells, strict=True) if c.strip()}
        data = PlacementRow().load(raw)  # and the schema itself accepts it
        assert (data["amount_minor"], data["currency"]) == (fast.amount_minor, fast.currency)
    else:
        assert (checked is None) == bool(errors)


def test_a_row_in_the_future_or_with_a_long_po_is_refused_by_both_paths(client_: Any) -> None:
    tomorrow_plus = (today_utc() + timedelta(days=3)).isoformat()
    batch = _import(
        client_,
        HEADER
        + f"F-1,D-1,Acme,{tomorrow_plus},{tomorrow_plus},10.00,EUR,\n"
        + "F-2,D-1,Acme,2026-01-05,2026-02-04,10.00,EUR,"
        + "P" * 65
        + "\n",
    )
    assert batch.status == "rejected"
    assert {(e["row"], e["column"]) for e in batch.errors} == {(2, "issue_date"), (3, "po_reference")}
    assert "future" in batch.errors[0]["message"]


# --- posting ----------------------------------------------------------------------------------------


def _big_file(rows: int, debtors: int, seed: int = 7) -> tuple[str, dict[str, int]]:
    rng = random.Random(seed)
    lines, expected = [HEADER], {}
    for n in range(rows):
        issued = date(2025, 6, 1) + timedelta(days=rng.randrange(300))
        cents = rng.randrange(1, 10_000_000)
        number = f"B-{n:06d}"
        expected[number] = cents
        lines.append(
            f"{number},D-{rng.randrange(debtors)},Debtor,{issued},{issued + timedelta(days=30)},"
            f"{cents // 100}.{cents % 100:02d},EUR,\n"
        )
    return "".join(lines), expected


def test_a_large_file_posts_every_invoice_with_its_own_balanced_transaction(client_: Any) -> None:
    existing = make_debtor(client_, external_ref="D-3", name="Known Debtor Ltd")
    content, expected = _big_file(2_500, 600)
    batch = _import(client_, content)
    assert (batch.status, batch.total_rows, batch.posted_rows, batch.error_count) == ("posted", 2_500, 2_500, 0)
    amounts = dict(
        db.session.execute(select(Invoice.number, Invoice.amount_minor).where(Invoice.client_id == client_.id)).all()
    )
    assert amounts == expected
    assert unbalanced_transactions(client_.id) == []
    assert cache_mismatches(client_.id) == []
    per_invoice = db.session.execute(
        select(JournalEntry.invoice_id, func.count(func.distinct(JournalEntry.transaction_id)), func.count())
        .where(JournalEntry.client_id == client_.id)
        .group_by(JournalEntry.invoice_id)
    ).all()
    assert len(per_invoice) == 2_500 and {(t, e) for _, t, e in per_invoice} == {(1, 2)}
    refs = {f"D-{d}" for d in range(600)}
    debtor_refs = set(db.session.scalars(select(Debtor.external_ref).where(Debtor.client_id == client_.id)))
    used = {line.split(",")[1] for line in content.splitlines()[1:]}
    assert debtor_refs == used and used <= refs
    db.session.refresh(existing)
    assert existing.name == "Known Debtor Ltd"  # matched by reference, not renamed by the file
    # each invoice's debtor is the one its row named
    rows = {line.split(",")[0]: line.split(",")[1] for line in content.splitlines()[1:]}
    placed = db.session.execute(
        select(Invoice.number, Debtor.external_ref).join(Debtor, Debtor.id == Invoice.debtor_id)
    ).all()
    assert dict(placed) == rows


def test_a_number_placed_before_with_other_details_is_named_and_nothing_posts(client_: Any) -> None:
    _import(client_, HEADER + "K-1,D-1,Acme,2026-01-05,2026-02-04,10.00,EUR,\n")
    tx_before = db.session.scalar(select(func.count()).select_from(JournalTransaction))
    batch = _import(
        client_,
        HEADER + "K-2,D-1,Acme,2026-01-06,2026-02-05,11.00,EUR,\n" + "K-1,D-1,Acme,2026-01-05,2026-02-04,10.01,EUR,\n",
    )
    assert batch.status == "rejected" and batch.posted_rows == 0
    assert [(e["row"], e["message"]) for e in batch.errors] == [
        (3, "invoice K-1 was placed before with different details")
    ]
    assert db.session.scalar(select(func.count()).select_from(JournalTransaction)) == tx_before
    partial = _import(
        client_,
        HEADER + "K-2,D-1,Acme,2026-01-06,2026-02-05,11.00,EUR,\n" + "K-1,D-1,Acme,2026-01-05,2026-02-04,10.01,EUR,\n",
        post_valid=True,
    )
    assert (partial.status, partial.posted_rows, partial.error_count) == ("partial", 1, 1)


def test_every_problem_is_counted_but_the_report_keeps_the_first_ones(client_: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(imports, "MAX_ERRORS", 5)
    bad = "".join(f"N-{n},D-1,Acme,2026-01-05,2026-02-04,-1,EUR,\n" for n in range(12))
    twice = "OK-1,D-1,Acme,2026-01-05,2026-02-04,1,EUR,\n" * 2
    batch = _import(client_, HEADER + bad + twice)
    assert batch.error_count == 13  # 12 negative amounts and one duplicate number
    assert [e["row"] for e in batch.errors] == [2, 3, 4, 5, 6]


def test_windows_1252_and_semicolon_files_are_read(client_: Any) -> None:
    content = "invoice_number;debtor_ref;debtor_name;issue_date;due_date;amount;currency\n"
    content += "W-1;D-1;Müller & Söhne;2026-01-05;2026-02-04;99.90;EUR\n"
    batch = _import(client_, content.encode("cp1252"))
    assert batch.status == "posted", batch.errors
    assert db.session.scalar(select(Debtor.name).where(Debtor.client_id == client_.id)) == "Müller & Söhne"


def test_progress_is_a_share_of_the_work(client_: Any) -> None:
    batch = ImportBatch(status="running", total_rows=300, processed_rows=300, posted_rows=150, skipped_rows=0)
    assert batch.progress_pct == 66
    assert ImportBatch(status="running", total_rows=0, processed_rows=0, posted_rows=0).progress_pct == 0
    assert ImportBatch(status="posted", total_rows=5, processed_rows=5, posted_rows=5).progress_pct == 100


def test_plain_rows_take_the_fast_path_and_odd_ones_the_schema() -> None:
    checker = RowChecker({f: i for i, f in enumerate(FIELDS)}, {})
    plain = ["A-1", "D-1", "Acme", "2026-01-05", "2026-02-04", "1250.5", "eur", ""]
    assert checker.fast(2, plain) is not None and checker.fast(2, plain).amount_minor == 125050  # type: ignore[union-attr]
    commas = [*plain[:5], "1,250.50", *plain[6:]]
    assert checker.fast(2, commas) is None
    row, errors = checker.check(2, commas)
    assert errors == [] and row is not None and row.amount_minor == 125050


def test_a_row_with_a_missing_field_still_reports_its_other_problems(client_: Any) -> None:
    batch = _import(client_, HEADER + "R-1,,Acme,2026-01-05,2026-02-04,-5,EUX,\n" + "R-2,D-1,Acme,2026-01-05,,7,EUR,\n")
    assert batch.status == "rejected"
    assert {(e["row"], e["column"]) for e in batch.errors} == {
        (2, "debtor_ref"),
        (2, "amount"),
        (2, "currency"),
        (3, "due_date"),
    }


def test_an_unreadable_file_reports_no_rows(client_: Any) -> None:
    batch = _import(client_, b"\x00\x01binary\n" * 50, name="junk.csv")
    assert (batch.status, batch.total_rows, batch.processed_rows) == ("rejected", 0, 0)
