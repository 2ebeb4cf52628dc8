"""Payment files and bank statements as banks and ERPs write them: German CSV exports, spreadsheets, MT940
with structured :86: fields and several statements, CAMT.053 in old and new versions with batch bookings.
Credits become payments of the right debtor; debits never do; a line no debtor can be found for is reported
with what it was (amount, payer, text) and nothing is dropped silently."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from clients.journal import Payment
from provider.extensions import db
from tests.clients.test_payment_imports import _import
from tests.factories import make_client, make_debtor, make_invoice

HEADER = ["payment_ref", "debtor_ref", "received_on", "amount", "currency"]


@pytest.fixture
def acme(db_session: Any) -> Any:
    """D-1 (Mustermann Handelsgesellschaft mbH) owes RE-2026-000123 (1,500.00) and INV-2 (50.00); D-2 (Bolt
    GmbH) owes INV-3 (200.00)."""
    client = make_client(base_currency="EUR", code="REAL")
    d1 = make_debtor(client, external_ref="D-1", name="Mustermann Handelsgesellschaft mbH")
    d2 = make_debtor(client, external_ref="D-2", name="Bolt GmbH")
    make_invoice(client, d1, "RE-2026-000123", 150000)
    make_invoice(client, d1, "INV-2", 5000, due_date=date(2026, 3, 4))
    make_invoice(client, d2, "INV-3", 20000)
    return client


def _paid(client_id: int) -> dict[str, tuple[str, int]]:
    rows = db.session.execute(
        select(Payment.external_ref, Payment.currency, Payment.amount_minor).where(Payment.client_id == client_id)
    ).all()
    return {readable(ref): (currency, amount) for ref, currency, amount in rows}


def readable(ref: str) -> str:
    """The bank's own reference in a statement line's payment reference (the rest is the line's identity)."""
    return ref.split("~")[0]


def _problems(batch: Any) -> dict[tuple[int, str], str]:
    return {(e["row"], e["column"]): e["message"] for e in batch.errors}


# --- CSV and XLSX payments files ------------------------------------------------------------------


def test_a_german_bank_export_with_title_line_symbols_and_decimal_commas(acme: Any) -> None:
    text = (
        "Zahlungseingänge März 2026;;;;\r\n"
        "Payment_Ref;Debtor_Ref;Received_On;Amount;Currency\r\n"
        "Z-1;D-1;10.03.2026;€ 1.234,56;EUR\r\n"
        "Z-2;D-2;11.03.2026;20,00 EUR;EUR\r\n"
        ";;;;\r\n"
    )
    batch = _import(acme, text.encode("cp1252"), mapping={"date_format": "dmy_dot", "decimal_mark": ","})
    assert batch.status == "posted", batch.errors
    assert _paid(acme.id) == {"Z-1": ("EUR", 123456), "Z-2": ("EUR", 2000)}


def test_refunds_and_another_currency_are_refused_by_row_and_column(acme: Any) -> None:
    text = (
        ",".join(HEADER)
        + '\nP-1,D-1,2026-03-10,"(40.00)",EUR\nP-2,D-1,2026-03-10,40.00-,EUR\nP-3,D-1,2026-03-10,$40.00,EUR\n'
    )
    batch = _import(acme, text)
    assert batch.status == "rejected" and _paid(acme.id) == {}
    problems = _problems(batch)
    assert "positive" in problems[(2, "amount")] and "positive" in problems[(3, "amount")]
    assert "another currency" in problems[(4, "amount")]


def test_yen_and_dinar_payments_and_too_many_decimals(db_session: Any) -> None:
    client = make_client(base_currency="JPY", code="EXPO")
    make_debtor(client, external_ref="D-1")
    text = ",".join(HEADER) + '\nJ-1,D-1,2026-03-10,"1,234",JPY\nK-1,D-1,2026-03-10,1.005,KWD\n'
    batch = _import(client, text)
    assert batch.status == "posted", batch.errors
    assert _paid(client.id) == {"J-1": ("JPY", 1234), "K-1": ("KWD", 1005)}
    refused = _import(client, ",".join(HEADER) + "\nJ-2,D-1,2026-03-10,1234.5,JPY\nK-2,D-1,2026-03-10,1.0005,KWD\n")
    problems = _problems(refused)
    assert "more than 0 decimal places for JPY" in problems[(2, "amount")]
    assert "more than 3 decimal places for KWD" in problems[(3, "amount")]


def test_an_xlsx_payments_file_with_datetime_cells_and_numeric_references(acme: Any) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Notes"
    sheet = book.create_sheet("Payments")
    sheet.append(HEADER)
    sheet.append([1001, "D-2", datetime(2026, 3, 10, 9, 15), 0.1 + 0.2, "EUR"])  # noqa: DTZ001
    buffer = io.BytesIO()
    book.save(buffer)
    batch = _import(acme, buffer.getvalue(), name="payments.xlsx")
    assert batch.status == "posted", batch.errors
    assert _paid(acme.id) == {"1001": ("EUR", 30)}


# --- MT940 ----------------------------------------------------------------------------------------

# two statements of a German bank in one file, in a SWIFT envelope: ?20-?29 purpose lines split mid-word,
# ?31 the payer's IBAN, ?32/?33 the payer's name split mid-word, a fee, a returned direct debit (RD: money
# back, not a debtor's payment), an unstructured :86:, and a line that names nothing known
MT940_DE = b"""{1:F01COBADEFFAXXX0000000000}{2:I940COBADEFFXXXXN}{4:
:20:STARTUMS
:25:37040044/0532013000
:28C:00042/001
:60F:C260309EUR1000,00
:61:2603100310CR1500,00NTRFNONREF//BANKREF-1
/OCMT/EUR1500,00/
:86:166?00SEPA-GUTSCHRIFT?109310?20EREF+E2E-77?21SVWZ+Rechnung RE-2026-0?2200123?30COBADEFFXXX
?31DE89370400440532013000?32Mustermann Handelsgesellsch?33aft mbH
:61:2603100310D3,50NCHGNONREF//FEE-1
:86:805?00GEBUEHR?20Kontofuehrung
:61:2603100310RD25,00NDDTNONREF//RETURN-1
:86:109?00RUECKLASTSCHRIFT?20Ruecklastschrift
:62F:C260310EUR2521,50
-}
:20:STARTUMS
:25:37040044/0532013000
:28C:00043/001
:60F:C260310EUR2521,50
:61:2603110311C12,00NTRFKREF123//BANKREF-2
:86:Rechnung INV-3 Bolt GmbH Danke
:61:2603110311C9,99NTRFNONREF//BANKREF-3
:86:166?00SEPA-GUTSCHRIFT?20SVWZ+Spende?32Unbekannt AG
:62F:C260311EUR2543,49
-
"""


def test_a_european_mt940_with_two_statements_and_structured_purpose_fields(acme: Any) -> None:
    batch = _import(acme, MT940_DE, name="umsaetze.sta", post_valid=True)
    assert batch.status == "partial"
    assert _paid(acme.id) == {"BANKREF-1": ("EUR", 150000), "BANKREF-2": ("EUR", 1200)}
    debtors = dict(
        db.session.execute(select(Payment.external_ref, Payment.debtor_id).where(Payment.client_id == acme.id)).all()
    )
    assert len(set(debtors.values())) == 2  # the invoice named over two purpose lines found D-1, INV-3 found D-2
    assert batch.mapping["bank_statement"] == {"format": "mt940", "credits": 3, "debits": 2}
    [unknown] = batch.errors
    assert unknown["column"] == "debtor_ref" and "no debtor found" in unknown["message"]
    assert "9.99" in unknown["message"] and "Unbekannt AG" in unknown["message"]


def test_an_mt940_payer_name_split_over_two_subfields_finds_the_debtor(acme: Any) -> None:
    statement = b""":20:STMT
:25:DE89370400440532013000
:28C:1/1
:60F:C260309EUR0,00
:61:2603100310C50,00NTRFNONREF//BANKREF-9
:86:166?00SEPA-GUTSCHRIFT?20SVWZ+Danke?31DE02120300000000202051?32MUSTERMANN HANDELSGESELLSCH?33AFT MBH
:62F:C260310EUR50,00
-"""
    batch = _import(acme, statement, name="s.sta")
    assert batch.status == "posted", batch.errors
    assert _paid(acme.id) == {"BANKREF-9": ("EUR", 5000)}


# --- CAMT.053 -------------------------------------------------------------------------------------


def _camt(version: str, entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>MSG-{version}</MsgId><CreDtTm>2026-03-10T18:00:00+01:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-{version}</Id>
      <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
      {entries}
    </Stmt>
  </BkToCstmrStmt>
</Document>""".encode()


# camt.053.001.08 as German banks send it: status as a code, a batch booking whose TxDtls carry their own <Amt>
# (no AmtDtls), the payer under Dbtr/Pty, a structured creditor reference, and a debit
CAMT_08 = """
      <Ntry>
        <NtryRef>1</NtryRef>
        <Amt Ccy="EUR">1550.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-03-10</Dt></BookgDt><ValDt><Dt>2026-03-10</Dt></ValDt>
        <AcctSvcrRef>BATCH-1</AcctSvcrRef>
        <NtryDtls>
          <Btch><NbOfTxs>2</NbOfTxs></Btch>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <Amt Ccy="EUR">1500.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>
            <RltdPties><Dbtr><Pty><Nm>Mustermann Handelsgesellschaft mbH</Nm></Pty></Dbtr></RltdPties>
            <RmtInf><Strd><RfrdDocInf><Nb>RE-2026-000123</Nb></RfrdDocInf></Strd></RmtInf>
          </TxDtls>
          <TxDtls>
            <Refs><EndToEndId>INV-2</EndToEndId></Refs>
            <Amt Ccy="EUR">50.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>
            <RltdPties><Dbtr><Pty><Nm>Someone paying for Mustermann</Nm></Pty></Dbtr></RltdPties>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">3.50</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-03-10</Dt></BookgDt><AcctSvcrRef>FEE-1</AcctSvcrRef>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">7.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><DtTm>2026-03-10T10:00:00</DtTm></BookgDt><AcctSvcrRef>GIFT-1</AcctSvcrRef>
        <NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>Nobody Known</Nm></Pty></Dbtr></RltdPties>
          <RmtInf><Ustrd>donation</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>"""


def test_a_camt053_version_08_batch_booking_pays_each_part_with_its_own_amount(acme: Any) -> None:
    batch = _import(acme, _camt("08", CAMT_08), name="camt.xml", post_valid=True)
    assert batch.status == "partial", batch.errors
    assert _paid(acme.id) == {"BATCH-1/1": ("EUR", 150000), "BATCH-1/2": ("EUR", 5000)}
    assert batch.mapping["bank_statement"] == {"format": "camt.053", "credits": 3, "debits": 1}
    [unknown] = batch.errors
    assert "no debtor found" in unknown["message"] and "7.00" in unknown["message"]
    assert "Nobody Known" in unknown["message"]


def test_camt053_versions_02_and_08_read_alike(db_session: Any) -> None:
    entry = """
      <Ntry>
        <Amt Ccy="EUR">40.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>{status}
        <BookgDt><Dt>2026-03-10</Dt></BookgDt><AcctSvcrRef>REF-{version}</AcctSvcrRef>
        <NtryDtls><TxDtls><RltdPties><Dbtr>{payer}</Dbtr></RltdPties>
          <RmtInf><Ustrd>INV-2</Ustrd></RmtInf></TxDtls></NtryDtls>
      </Ntry>"""
    for version, status, payer in (
        ("02", "<Sts>BOOK</Sts>", "<Nm>Acme</Nm>"),
        ("08", "<Sts><Cd>BOOK</Cd></Sts>", "<Pty><Nm>Acme</Nm></Pty>"),
    ):
        client = make_client(base_currency="EUR")
        make_invoice(client, make_debtor(client, external_ref="D-1"), "INV-2", 5000)
        batch = _import(client, _camt(version, entry.format(status=status, version=version, payer=payer)), name="c.xml")
        assert batch.status == "posted", batch.errors
        assert _paid(client.id) == {f"REF-{version}": ("EUR", 4000)}


def test_a_batch_whose_parts_state_no_amounts_is_one_payment_of_the_booked_amount(acme: Any) -> None:
    entries = """
      <Ntry>
        <Amt Ccy="EUR">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
        <BookgDt><Dt>2026-03-10</Dt></BookgDt><AcctSvcrRef>B-9</AcctSvcrRef>
        <NtryDtls>
          <TxDtls><RmtInf><Ustrd>INV-2</Ustrd></RmtInf></TxDtls>
          <TxDtls><RmtInf><Ustrd>RE-2026-000123</Ustrd></RmtInf></TxDtls>
        </NtryDtls>
      </Ntry>"""
    batch = _import(acme, _camt("02", entries), name="c.xml")
    assert batch.status == "posted", batch.errors
    assert _paid(acme.id) == {"B-9": ("EUR", 10000)}  # what the bank booked, not a guess at each part


# --- other formats --------------------------------------------------------------------------------

BAI2 = b"""01,BANKID,AGENCY,260310,1800,1,,,2/
02,AGENCY,BANKID,1,260310,,EUR,2/
03,0532013000,EUR,010,100000,,,015,254349,,/
16,195,4000,Z,BANKREF-7,CUSTREF,INV-2 Acme/
16,475,350,Z,FEE-1,,Account fee/
49,358699,4/
98,358699,1,6/
99,358699,1,8/
"""


def test_a_bai2_file_pays_its_credits(acme: Any) -> None:
    batch = _import(acme, BAI2, name="statement.bai", post_valid=True)
    assert batch.status == "posted", batch.errors
    assert _paid(acme.id) == {"BANKREF-7": ("EUR", 4000)}
    assert batch.mapping["bank_statement"] == {"format": "bai2", "credits": 1, "debits": 1}


def test_a_bai2_file_whose_totals_do_not_add_up_is_refused(acme: Any) -> None:
    truncated = BAI2.replace(b"16,475,350,Z,FEE-1,,Account fee/\n", b"")  # a record lost, the totals kept
    batch = _import(acme, truncated, name="statement.bai", post_valid=True)
    assert batch.status == "rejected" and _paid(acme.id) == {}
    assert "BAI2" in batch.errors[0]["message"] and "incomplete" in batch.errors[0]["message"]


def test_an_ofx_file_is_refused_with_what_to_upload_instead(acme: Any) -> None:
    ofx = b"OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\n\n<OFX><BANKMSGSRSV1><STMTTRNRS></STMTTRNRS></BANKMSGSRSV1></OFX>"
    batch = _import(acme, ofx, name="statement.ofx")
    assert batch.status == "rejected"
    assert "OFX" in batch.errors[0]["message"] and "CAMT.053" in batch.errors[0]["message"]
