"""Bank statements as payment files: CAMT.053 and MT940 credit lines become payments of the right debtor
(found from the remittance text or the payer's name), allocated to the invoice they name; debit lines are
left out; a line whose debtor cannot be found is reported with the reason; re-uploading posts nothing twice."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from clients import bank_files
from clients.journal import Invoice, Payment
from provider.extensions import db
from tests.clients.ledger_helpers import cache_mismatches, unbalanced_transactions
from tests.clients.test_payment_imports import _import
from tests.clients.test_real_payment_files import readable
from tests.factories import make_client, make_debtor, make_invoice

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"


def _entry(amount: str, sign: str, ref: str, payer: str, remittance: str, booked: str = "2026-03-10") -> str:
    return f"""
      <Ntry>
        <Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>{booked}</Dt></BookgDt><ValDt><Dt>{booked}</Dt></ValDt>
        <AcctSvcrRef>{ref}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls><TxDtls>
          <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
          <RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr></RltdPties>
          <RmtInf><Ustrd>{remittance}</Ustrd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>"""


def camt053(*entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT-2026-03-10</MsgId><CreDtTm>2026-03-10T18:00:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-1</Id>
      <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
      {"".join(entries)}
    </Stmt>
  </BkToCstmrStmt>
</Document>""".encode()


STATEMENT = camt053(
    _entry("40.00", "CRDT", "BANK-0001", "Acme Ltd", "Payment INV-2 thank you"),
    _entry("12.50", "DBIT", "BANK-0002", "Bank", "Account fee"),
    _entry("105.00", "CRDT", "BANK-0003", "Bolt GmbH", "Customer D-2 March"),
    _entry("7.00", "CRDT", "BANK-0004", "Someone Else", "gift"),
)

MT940 = b""":20:STMT20260310
:25:DE89370400440532013000/EUR
:28C:00042/001
:60F:C260309EUR1000,00
:61:2603100310C40,00NTRFNONREF//MT-REF-1
:86:166?00GUTSCHRIFT?20INV-2 Danke?32ACME LTD
:61:2603100310D3,50NCHGNONREF//MT-FEE
:86:805?00GEBUEHR?20Kontofuehrung
:62F:C260310EUR1036,50
-"""


@pytest.fixture
def acme(db_session: Any) -> Any:
    """D-1 (Acme Ltd) owes INV-1 (100.00) and INV-2 (50.00); D-2 (Bolt GmbH) owes INV-3 (200.00)."""
    client = make_client(base_currency="EUR", code="BANK")
    d1 = make_debtor(client, external_ref="D-1", name="Acme Ltd")
    d2 = make_debtor(client, external_ref="D-2", name="Bolt GmbH")
    make_invoice(client, d1, "INV-1", 10000)
    make_invoice(client, d1, "INV-2", 5000, due_date=date(2026, 3, 4))
    make_invoice(client, d2, "INV-3", 20000)
    return client


def _open(client_id: int) -> dict[str, int]:
    return dict(
        db.session.execute(select(Invoice.number, Invoice.open_minor).where(Invoice.client_id == client_id)).all()
    )


def test_a_camt053_statement_posts_its_credit_lines_to_the_right_debtors(acme: Any) -> None:
    batch = _import(acme, STATEMENT, name="statement.xml", post_valid=True)
    assert batch.status == "partial"
    paid = {
        readable(ref): amount
        for ref, amount in db.session.execute(
            select(Payment.external_ref, Payment.amount_minor).where(Payment.client_id == acme.id)
        ).all()
    }
    assert paid == {"BANK-0001": 4000, "BANK-0003": 10500}
    assert _open(acme.id) == {"INV-1": 10000, "INV-2": 1000, "INV-3": 9500}  # INV-2 named, then D-2's oldest
    assert batch.mapping["bank_statement"] == {"format": "camt.053", "credits": 3, "debits": 1}
    [problem] = batch.errors
    assert problem["row"] == 4 and problem["column"] == "debtor_ref"
    assert "no debtor found" in problem["message"] and "Someone Else" in problem["message"]
    assert unbalanced_transactions(acme.id) == [] and cache_mismatches(acme.id) == []


def test_by_default_an_unknown_payer_waits_and_the_other_lines_post(acme: Any) -> None:
    batch = _import(acme, STATEMENT, name="statement.xml")
    assert batch.status == "partial" and batch.posted_rows == 2
    paid = db.session.scalars(select(Payment.external_ref).where(Payment.client_id == acme.id)).all()
    assert sorted(readable(ref) for ref in paid) == ["BANK-0001", "BANK-0003"]
    [waiting] = batch.errors
    assert "no debtor found" in waiting["message"] and waiting["row"] == 4


def test_by_default_any_other_problem_keeps_the_whole_statement_back(acme: Any) -> None:
    bad_amount = STATEMENT.replace(b'<Amt Ccy="EUR">40.00</Amt>', b'<Amt Ccy="EUR">40.001</Amt>')
    assert bad_amount != STATEMENT
    batch = _import(acme, bad_amount, name="statement.xml")
    assert batch.status == "rejected"
    assert db.session.scalars(select(Payment).where(Payment.client_id == acme.id)).all() == []
    assert any("decimal" in e["message"] for e in batch.errors)


def test_the_same_statement_twice_posts_once(acme: Any) -> None:
    statement = camt053(_entry("40.00", "CRDT", "BANK-0001", "Acme Ltd", "INV-2"))
    first = _import(acme, statement, name="a.xml")
    again = _import(acme, statement, name="b.xml")
    assert (first.status, first.posted_rows) == ("posted", 1)
    assert (again.status, again.posted_rows, again.skipped_rows) == ("posted", 0, 1)
    assert len(db.session.scalars(select(Payment).where(Payment.client_id == acme.id)).all()) == 1


def test_an_mt940_statement_reads_the_decimal_comma_and_the_purpose(acme: Any) -> None:
    batch = _import(acme, MT940, name="statement.sta")
    assert batch.status == "posted", batch.errors
    payment = db.session.scalars(select(Payment).where(Payment.client_id == acme.id)).one()
    assert (readable(payment.external_ref), payment.amount_minor, payment.received_on) == (
        "MT-REF-1",
        4000,
        date(2026, 3, 10),
    )
    assert _open(acme.id)["INV-2"] == 1000
    assert batch.mapping["bank_statement"]["debits"] == 1


def test_the_payer_name_finds_a_debtor_only_when_it_is_unambiguous(acme: Any) -> None:
    make_debtor(acme, external_ref="D-3", name="Twin Corp")
    make_debtor(acme, external_ref="D-4", name="twin corp")
    statement = camt053(
        _entry("10.00", "CRDT", "B-1", "BOLT GMBH", "no reference"),
        _entry("10.00", "CRDT", "B-2", "Twin Corp", "no reference"),
    )
    batch = _import(acme, statement, name="s.xml", post_valid=True)
    paid = db.session.scalars(select(Payment.external_ref).where(Payment.client_id == acme.id)).all()
    assert [readable(ref) for ref in paid] == ["B-1"]
    assert [e["row"] for e in batch.errors] == [2]


def test_broken_or_hostile_xml_is_refused_with_a_reason(acme: Any) -> None:
    bomb = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>
<Document><BkToCstmrStmt><Stmt><Ntry>&b;</Ntry></Stmt></BkToCstmrStmt></Document>"""
    for content in (bomb, b"<Document><BkToCstmrStmt><Stmt>", bytes(range(256)) * 4):  # the last: random bytes
        batch = _import(acme, content, name="bad.xml")
        assert batch.status == "rejected" and batch.errors[0]["column"] == "file"
        assert "CAMT.053" in batch.errors[0]["message"]


def test_sniffing_tells_statements_from_csv() -> None:
    assert bank_files.sniff(STATEMENT) == bank_files.FORMAT_CAMT053
    assert bank_files.sniff(MT940) == bank_files.FORMAT_MT940
    assert bank_files.sniff(b"payment_ref,debtor_ref\nP-1,D-1\n") is None


def test_a_manager_uploads_a_statement_and_reads_what_it_held(client: Any, acme: Any) -> None:
    import io

    from tests.conftest import fresh_csrf, login
    from tests.factories import make_user

    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    url = f"/clients/{acme.id}/payments/imports"
    statement = camt053(_entry("40.00", "CRDT", "BANK-0001", "Acme Ltd", "INV-2"), _entry("1.00", "DBIT", "F", "", ""))
    data = {
        "csrf_token": fresh_csrf(client, url),
        "file": (io.BytesIO(statement), "march.xml"),
        "received_by": "agency",
    }
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "bank statement (CAMT.053): 1 credit line, 1 debit line left out" in page
    assert "posted" in page
