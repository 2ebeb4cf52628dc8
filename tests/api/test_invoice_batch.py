"""POST /invoices/batch: the plain-row fast path agrees with the schema, the batch posts what the placement
file import posts for the same rows, every problem is named by row and field, replays are idempotent, the
outbox gets one event per batch, and the statements per batch do not grow with its rows."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import event, func, select

from clients.imports import ImportBatch, start_placement_import
from clients.journal import Invoice, JournalEntry, JournalTransaction
from clients.models import Debtor
from provider.api.models import WebhookEvent
from provider.api.schemas import BATCH_LIMIT, InvoiceBatchIn, InvoiceIn, plain_invoice, plain_invoice_batch
from provider.core import jobs
from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.api.helpers import get, invoice_body, post
from tests.api.test_webhooks import Receiver, receiver  # noqa: F401 - the fixture
from tests.clients.ledger_helpers import cache_mismatches, unbalanced_transactions
from tests.factories import make_api_token, make_client, make_debtor, make_webhook_endpoint

# --- the plain-row path never disagrees with the schema ----------------------------------------------

_text = st.one_of(
    st.text(max_size=70),  # any code point, lone surrogates and NUL included
    st.sampled_from(["", "   ", " INV-1 ", "A" * 64, "A" * 65, " " + "B" * 64 + " ", "x\x00y", "é-1", "\ud800"]),
)
_days = st.one_of(
    st.dates(date(1850, 1, 1), date(3100, 12, 31)).map(date.isoformat),
    st.sampled_from(["2026-02-30", "20260105", "2026-W02-1", " 2026-01-05", "05/01/2026", "", "1899-12-31"]),
)
_ints = st.one_of(
    st.integers(-5, 10**16),
    st.sampled_from([0, 1, 2**53, 2**53 + 1, 10**15, 10**15 + 1]),
)
_json = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(1.0),
    st.just("7"),
    st.just([]),
    st.just({}),
)
_currencies = st.sampled_from(
    ["EUR", "eur", " jpy ", "KWD", "EUX", "XXX", "EU", "", "€", "\uff25\uff35\uff32", "E\x00R"]
)
_FIELDS = {
    "debtor_id": st.one_of(_ints, _json),
    "number": st.one_of(_text, _json),
    "issue_date": st.one_of(_days, _json),
    "due_date": st.one_of(_days, _json),
    "currency": st.one_of(_currencies, _json),
    "amount_minor": st.one_of(_ints, _json),
    "po_reference": st.one_of(_text, _json),
}


@st.composite
def _rows(draw: Any) -> Any:
    row = {name: draw(values) for name, values in _FIELDS.items() if draw(st.integers(0, 9))}  # some go missing
    if draw(st.integers(0, 19)) == 0:
        row[draw(st.sampled_from(["amount", "id", "Number"]))] = 1
    return row if draw(st.integers(0, 29)) else draw(_json)


def _schema_load(schema: Any, data: Any) -> Any:
    try:
        return schema.load(data)
    except ValidationError:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=_rows())
def test_a_plain_row_is_exactly_what_the_schema_loads(row: Any) -> None:
    plain = plain_invoice(row)
    if plain is not None:
        assert plain == InvoiceIn().load(row)


_valid_rows = st.fixed_dictionaries(
    {
        "debtor_id": st.integers(1, 2**53),
        "number": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=64).filter(
            lambda s: 0 < len(s.strip()) <= 64
        ),
        "issue_date": st.dates(date(1900, 1, 1), date(2999, 1, 1)).map(date.isoformat),
        "due_date": st.just("2999-12-31"),
        "currency": st.sampled_from(["EUR", "usd", " JPY ", "KWD"]),
        "amount_minor": st.integers(1, 10**15 - 1),  # 15 digits: the cap of the API and every file format
    },
    optional={"po_reference": st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=64)},
)


@settings(max_examples=300, deadline=None)
@given(row=_valid_rows)
def test_a_valid_row_takes_the_plain_path(row: Any) -> None:
    plain = plain_invoice(row)
    assert plain is not None
    assert plain == InvoiceIn().load(row)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.one_of(_valid_rows, _rows()), min_size=0, max_size=4), extra=st.booleans())
def test_a_plain_batch_is_exactly_what_the_schema_loads(rows: list[Any], extra: bool) -> None:
    body = {"invoices": rows, **({"note": 1} if extra else {})}
    plain = plain_invoice_batch(body)
    if plain is not None:
        assert plain == InvoiceBatchIn().load(body)
    assert plain_invoice_batch({"invoices": rows * BATCH_LIMIT + rows}) is None or not rows  # over the limit


# --- through the endpoint -------------------------------------------------------------------------------


def _file_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "number": f"SAME-{i:04d}",
            "debtor": i % 7,
            "issue_date": f"2026-01-{1 + i % 28:02d}",
            "due_date": f"2026-03-{1 + i % 28:02d}",
            "currency": ("EUR", "JPY", "KWD")[i % 3],
            "amount_minor": 100 + 37 * i,
            "po_reference": f"PO-{i}" if i % 4 == 0 else "",
        }
        for i in range(n)
    ]


def _ledger(client_id: int) -> list[tuple[Any, ...]]:
    """Everything the placement wrote for a client, without ids: invoices with their debtor's reference,
    and each invoice's transaction and entries."""
    with scoped(TenantScope.single(client_id), db.session):
        invoices = db.session.execute(
            select(Invoice, Debtor.external_ref).join(Debtor, Debtor.id == Invoice.debtor_id).order_by(Invoice.number)
        ).all()
        entries = db.session.execute(
            select(JournalEntry.invoice_id, JournalEntry.account, JournalEntry.amount_minor, JournalEntry.currency)
        ).all()
        kinds = db.session.execute(
            select(JournalEntry.invoice_id, JournalTransaction.kind, JournalTransaction.occurred_on).join(
                JournalTransaction, JournalTransaction.id == JournalEntry.transaction_id
            )
        ).all()
        assert not unbalanced_transactions(client_id) and not cache_mismatches(client_id)
    by_invoice: dict[int, list[tuple[Any, ...]]] = {}
    for invoice_id, account, amount, currency in entries:
        by_invoice.setdefault(invoice_id, []).append((account, amount, currency))
    txs = {invoice_id: (kind, day) for invoice_id, kind, day in kinds}
    return [
        (
            i.number,
            ref,
            i.issue_date,
            i.due_date,
            i.currency,
            i.amount_minor,
            i.adjusted_minor,
            i.open_minor,
            i.po_reference,
            i.on_hold,
            txs[i.id],
            sorted(by_invoice[i.id]),
        )
        for i, ref in invoices
    ]


def test_the_batch_posts_what_the_file_import_posts(client: FlaskClient, db_session: Any) -> None:
    rows = _file_rows(40)
    by_file, by_api = make_client(), make_client()
    refs = [f"DEB-{d}" for d in range(7)]
    for ref in refs:
        make_debtor(by_file, external_ref=ref)
    api_debtors = [make_debtor(by_api, external_ref=ref).id for ref in refs]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["invoice_number", "debtor_ref", "issue_date", "due_date", "amount", "currency", "po_reference"])
    for r in rows:
        exp = {"EUR": 2, "JPY": 0, "KWD": 3}[r["currency"]]
        amount = f"{r['amount_minor'] / 10**exp:.{exp}f}"
        w.writerow(
            [r["number"], refs[r["debtor"]], r["issue_date"], r["due_date"], amount, r["currency"], r["po_reference"]]
        )
    with scoped(TenantScope.single(by_file.id), db.session):
        batch = start_placement_import(db.session, by_file, "same.csv", out.getvalue().encode())
        batch_id = batch.id
        db.session.commit()
    jobs.drain()
    with scoped(TenantScope.single(by_file.id), db.session):
        assert db.session.get_one(ImportBatch, batch_id).status == "posted"
    token = make_api_token(by_api)
    body = [
        {
            "debtor_id": api_debtors[r["debtor"]],
            "number": r["number"],
            "issue_date": r["issue_date"],
            "due_date": r["due_date"],
            "currency": r["currency"].lower() if r["debtor"] == 3 else r["currency"],
            "amount_minor": r["amount_minor"],
            **({"po_reference": r["po_reference"]} if r["po_reference"] else {}),
        }
        for r in rows
    ]
    response = post(client, token, "/invoices/batch", {"invoices": body})
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert (answer["placed"], answer["unchanged"]) == (40, 0)
    assert [i["number"] for i in answer["invoices"]] == [r["number"] for r in rows]
    for placed in answer["invoices"][:3]:
        assert get(client, token, f"/invoices/{placed['id']}").get_json()["number"] == placed["number"]
    assert _ledger(by_api.id) == _ledger(by_file.id)


def test_every_problem_is_named_by_row_and_field_and_nothing_is_written(client: FlaskClient, db_session: Any) -> None:
    acme, other = make_client(), make_client()
    mine, theirs = make_debtor(acme), make_debtor(other)
    token = make_api_token(acme)
    assert post(client, token, "/invoices", invoice_body(mine.id, "OLD-1", 50_00)).status_code == 201
    with scoped(TenantScope.agency(), db.session):
        before = (
            db.session.scalar(select(func.count()).select_from(Invoice)),
            db.session.scalar(select(func.count()).select_from(AuditEvent)),
        )
    ledger = [
        invoice_body(mine.id, "NEW-1"),
        invoice_body(theirs.id, "NEW-2"),  # another client's debtor: as unknown as a made-up id
        invoice_body(mine.id, "NEW-1"),  # twice in the batch
        invoice_body(mine.id, "OLD-1", 60_00),  # placed before with another amount
        invoice_body(mine.id, "OLD-1 ", 50_00),  # the same number again after trimming: twice in the batch
    ]
    refused = post(client, token, "/invoices/batch", {"invoices": ledger})
    assert refused.status_code == 409  # every row matches the schema: the ledger's rules refuse them
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"].endswith("/ledger-rule")  # rows refused by several rules
    assert set(refused.get_json()["errors"]) == {
        "invoices.1.debtor_id",
        "invoices.2.number",
        "invoices.3.number",
        "invoices.4.number",
    }
    malformed = [
        invoice_body(mine.id, "NEW-3"),
        {**invoice_body(mine.id, "NEW-4"), "amount_minor": 1.5, "currency": "XXQ"},
        {**invoice_body(mine.id, "NEW-5"), "due_date": "2026-01-01", "issue_date": "2026-01-02"},
        {**invoice_body(mine.id, " "), "debtor_id": True, "colour": "red"},
    ]
    answer = post(client, token, "/invoices/batch", {"invoices": malformed})
    assert answer.status_code == 422  # rows that do not match the schema: every problem named, the rule's too
    schema = answer.get_json()
    assert set(schema["errors"]) == {
        "invoices.1.amount_minor",
        "invoices.1.currency",
        "invoices.2.due_date",
        "invoices.3.number",
        "invoices.3.debtor_id",
        "invoices.3.colour",
    }
    dates_only = post(client, token, "/invoices/batch", {"invoices": [malformed[0], malformed[2]]})
    assert dates_only.status_code == 409 and dates_only.get_json()["type"].endswith("/date-rule")
    assert dates_only.get_json()["errors"] == {"invoices.1.due_date": ["the due date is before the issue date"]}
    with scoped(TenantScope.agency(), db.session):
        after = (
            db.session.scalar(select(func.count()).select_from(Invoice)),
            db.session.scalar(select(func.count()).select_from(AuditEvent)),
        )
    assert after == before


def test_placed_before_rows_are_skipped_and_new_ones_placed(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    first = [invoice_body(debtor.id, f"R-{n}", 10_00 + n) for n in range(5)]
    assert post(client, token, "/invoices/batch", {"invoices": first}).status_code == 201
    more = [*first[1:3], invoice_body(debtor.id, "R-9", 9_00), {**first[3], "number": " R-3 ", "currency": "eur"}]
    answer = post(client, token, "/invoices/batch", {"invoices": more}).get_json()
    assert (answer["placed"], answer["unchanged"]) == (1, 3)
    assert [i["number"] for i in answer["invoices"]] == ["R-9"]
    assert get(client, token, f"/invoices/{answer['invoices'][0]['id']}").get_json()["amount_minor"] == 9_00


def test_a_replayed_batch_answers_the_first_response(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    rows = {"invoices": [invoice_body(debtor.id, f"K-{n}") for n in range(3)]}
    first = post(client, token, "/invoices/batch", rows, **{"Idempotency-Key": "batch-1"})
    again = post(client, token, "/invoices/batch", rows, **{"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and first.get_json()["placed"] == 3
    other = post(client, token, "/invoices/batch", {"invoices": rows["invoices"][:2]}, **{"Idempotency-Key": "batch-1"})
    assert other.status_code == 422
    with scoped(TenantScope.single(acme.id), db.session):
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 3


def test_one_outbox_event_lists_the_placed_invoices(
    client: FlaskClient,
    db_session: Any,
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    make_webhook_endpoint(acme, receiver.url, ["invoice.placed"])
    rows = [invoice_body(debtor.id, f"E-{n}", 1_00 + n, currency="jpy") for n in range(4)]
    answer = post(client, token, "/invoices/batch", {"invoices": rows}).get_json()
    with scoped(TenantScope.single(acme.id), db.session):
        (outbox,) = db.session.scalars(select(WebhookEvent).where(WebhookEvent.event_type == "invoice.placed"))
    listed = outbox.payload["data"]["invoices"]
    assert [(i["id"], i["number"]) for i in listed] == [(i["id"], i["number"]) for i in answer["invoices"]]
    assert {(i["currency"], i["debtor_id"]) for i in listed} == {("JPY", debtor.id)}
    assert [i["amount_minor"] for i in listed] == [1_00, 1_01, 1_02, 1_03]


def _statements(client: FlaskClient, token: str, rows: list[dict[str, Any]]) -> list[str]:
    """The statements one batch request runs (the statistics refresh aside: it depends on table growth)."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    with scoped(TenantScope.agency(), db.session):
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert post(client, token, "/invoices/batch", {"invoices": rows}).status_code == 201
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return [s for s in statements if "app_analyze" not in s]


@pytest.mark.parametrize("size", [3, 60])
def test_statements_per_batch_do_not_grow_with_its_rows(client: FlaskClient, db_session: Any, size: int) -> None:
    acme = make_client()
    debtors = [make_debtor(acme).id for _ in range(4)]
    token = make_api_token(acme)
    warm = [invoice_body(debtors[0], "WARM-1")]
    assert post(client, token, "/invoices/batch", {"invoices": warm}).status_code == 201
    counts = []
    for n in (2, size):
        rows = [invoice_body(debtors[i % 4], f"S{n}-{i}") for i in range(n)]
        rows[0] = invoice_body(debtors[0], "WARM-1")  # one row placed before in each batch
        counts.append(len(_statements(client, token, rows)))
    assert counts[0] == counts[1]
