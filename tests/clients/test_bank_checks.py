"""What a bank statement must satisfy before anything of it is posted, and how its lines are told apart:

- every statement reconciles with itself (MT940 balances, CAMT balances and transaction summary, BAI2 control
  totals and record counts), or the file is refused naming the statement and the money that is unaccounted for;
- amounts are read as booked (an MT940 decimal point as Rabobank writes it; a CAMT entry's booked amount,
  split over its details only when they add up to it);
- repeated references are normal: two lines that repeat a reference are two payments, and the same file (or
  the same statement in another file) uploaded again records nothing twice.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from clients import bank_bai2, bank_files, bank_mt940
from clients.bank_lines import BankFileRejected
from clients.journal import Payment
from provider.extensions import db
from tests.clients.test_payment_imports import _import
from tests.clients.test_real_payment_files import readable
from tests.factories import make_client, make_debtor, make_invoice

MINUS = "\u2212"  # the minus sign of the refusals' sums


@pytest.fixture
def acme(db_session: Any) -> Any:
    """D-1 (Acme Ltd) owes INV-1 (100.00) and INV-2 (50.00); D-2 (Bolt GmbH) owes INV-3 (200.00)."""
    client = make_client(base_currency="EUR", code="CHK")
    d1 = make_debtor(client, external_ref="D-1", name="Acme Ltd")
    d2 = make_debtor(client, external_ref="D-2", name="Bolt GmbH")
    make_invoice(client, d1, "INV-1", 10000)
    make_invoice(client, d1, "INV-2", 5000, due_date=date(2026, 3, 4))
    make_invoice(client, d2, "INV-3", 20000)
    return client


def _payments(client_id: int) -> list[tuple[str, int, str]]:
    rows = db.session.execute(
        select(Payment.external_ref, Payment.amount_minor, Payment.currency).where(Payment.client_id == client_id)
    ).all()
    return sorted((readable(ref), amount, currency) for ref, amount, currency in rows)


def _statement(number: str, opening: str, lines: list[tuple[str, str, str]], closing: str) -> str:
    """An MT940 statement of account NL91ABNA0417164300; lines are (mark and amount, references, :86: text)."""
    body = "".join(f":61:2603100310{amount}NTRF{refs}\n:86:{text}\n" for amount, refs, text in lines)
    return (
        f":20:STMT{number}\n:25:NL91ABNA0417164300\n:28C:{number}/1\n:60F:C260309EUR{opening}\n{body}"
        f":62F:C260310EUR{closing}\n-\n"
    )


# --- every statement reconciles with itself ---------------------------------------------------------


def test_a_statement_whose_lines_do_not_add_up_to_its_closing_balance_is_refused_with_the_difference(
    acme: Any,
) -> None:
    good = _statement("1", "0,00", [("C10,00", "NONREF", "INV-1")], "10,00")
    also = _statement("2", "10,00", [("D10,00", "NONREF", "fee")], "0,00")
    bad = _statement("3", "1000,00", [("C200,00", "NONREF", "INV-3"), ("C50,00", "NONREF", "INV-2")], "1245,00")
    batch = _import(acme, (good + also + bad).encode(), name="march.sta")
    assert batch.status == "rejected" and _payments(acme.id) == []
    [problem] = batch.errors
    assert problem["column"] == "file"
    assert problem["message"] == (
        "statement 3 (account NL91ABNA0417164300, EUR, from line 17): opening 1,000.00 + credits 250.00 "
        f"{MINUS} debits 0.00 = 1,250.00, but the closing balance is 1,245.00: 5.00 unaccounted for"
    )


def test_rabobank_amounts_with_a_decimal_point_are_read_as_written(acme: Any) -> None:
    lines = [("C1245.00", "NONREF//RABO-1", "INV-3"), ("C40.50", "NONREF//RABO-2", "INV-2"), ("D5.25", "NONREF", "x")]
    batch = _import(acme, _statement("1", "100.00", lines, "1380.25").encode(), name="rabo.sta", post_valid=True)
    assert batch.status == "posted", batch.errors
    assert _payments(acme.id) == [("RABO-1", 124500, "EUR"), ("RABO-2", 4050, "EUR")]


def test_a_decimal_point_statement_misread_anywhere_would_not_reconcile() -> None:
    """The silent misread of issue 18 (39 lines read as one credit of 1,245) cannot pass: the lines must add up."""
    lines = [("C1245.00", "NONREF", "a"), ("C40.50", "NONREF", "b")]
    with pytest.raises(BankFileRejected, match=r"1,245\.00 unaccounted for"):
        bank_files.read_statement(_statement("1", "100.00", lines, "2630.50").encode())


def test_a_camt_statement_is_checked_against_its_balances_and_its_transaction_summary(acme: Any) -> None:
    summary = (
        "<TxsSummry><TtlNtries><NbOfNtries>2</NbOfNtries></TtlNtries>"
        "<TtlCdtNtries><NbOfNtries>1</NbOfNtries><Sum>40.00</Sum></TtlCdtNtries>"
        "<TtlDbtNtries><NbOfNtries>1</NbOfNtries><Sum>3.00</Sum></TtlDbtNtries></TxsSummry>"
    )
    ok = _camt(_balances("100.00", "137.00") + summary, _ntry("40.00", "CRDT", "E-1"), _ntry("3.00", "DBIT", "F-1"))
    batch = _import(acme, ok, name="ok.xml", post_valid=True)
    assert [(ref, amount) for ref, amount, _ in _payments(acme.id)] == [("E-1", 4000)]
    wrong_sum = ok.replace(b"<Sum>40.00</Sum>", b"<Sum>41.00</Sum>")
    refused = _import(acme, wrong_sum, name="wrong.xml")
    assert refused.status == "rejected"
    assert (
        "TtlCdtNtries/Sum) says the credit entries come to 41.00, but they add up to 40.00"
        in (refused.errors[0]["message"])
    )
    unbalanced = _camt(_balances("100.00", "137.01"), _ntry("40.00", "CRDT", "E-9"), _ntry("3.00", "DBIT", "F-9"))
    refused = _import(acme, unbalanced, name="unbalanced.xml")
    assert refused.errors[0]["message"] == (
        f"statement S-1 (account NL91ABNA0417164300), EUR: opening 100.00 + credits 40.00 {MINUS} debits 3.00 = "
        "137.00, but the closing balance is 137.01: 0.01 unaccounted for"
    )
    assert batch.status == "posted"


def test_bai2_control_totals_and_record_counts_are_checked(acme: Any) -> None:
    wrong_count = BAI2.replace(b"49,3025,6/", b"49,3025,7/")
    batch = _import(acme, wrong_count, name="wrong.bai")
    assert batch.status == "rejected"
    assert batch.errors[0]["message"] == (
        "line 5 of the BAI2 file: the file is incomplete or was changed: the account trailer (49) does not "
        "match what comes before it: it counts 7 records but there are 6"
    )
    wrong_total = BAI2.replace(b"99,3025,1,10/", b"99,3026,1,10/")
    assert (
        "the control total is 3026 but the amounts add up to 3025"
        in (_import(acme, wrong_total, name="t.bai").errors[0]["message"])
    )


# --- amounts as booked --------------------------------------------------------------------------------

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def _camt(head: str, *entries: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>M-1</MsgId><CreDtTm>2026-03-10T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>S-1</Id><Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>{head}{''.join(entries)}"
        "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


def _balances(opening: str, closing: str) -> str:
    return "".join(
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-10</Dt></Dt></Bal>"
        for code, amount in (("OPBD", opening), ("CLBD", closing))
    )


def _ntry(amount: str, sign: str, ref: str, details: str = "") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-03-10</Dt></BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef>"
        f"<NtryDtls>{details or '<TxDtls><RmtInf><Ustrd>INV-2</Ustrd></RmtInf></TxDtls>'}</NtryDtls></Ntry>"
    )


def _tx(amount: str, text: str) -> str:
    return (
        f'<TxDtls><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls>"
    )


def test_a_camt_entry_pays_its_booked_amount_not_its_detail_amount(acme: Any) -> None:
    entry = _ntry("8.85", "CRDT", "E-1", _tx("105.75", "INV-2"))  # the detail disagrees with what was booked
    batch = _import(acme, _camt(_balances("0.00", "8.85"), entry), name="c.xml")
    assert batch.status == "posted", batch.errors
    assert _payments(acme.id) == [("E-1", 885, "EUR")]


def test_a_camt_batch_is_split_over_its_details_only_when_they_add_up(acme: Any) -> None:
    adds_up = _ntry("250.00", "CRDT", "B-1", _tx("50.00", "INV-2") + _tx("200.00", "INV-3"))
    does_not = _ntry("99.00", "CRDT", "B-2", _tx("50.00", "INV-1") + _tx("40.00", "INV-2"))
    content = _camt(_balances("0.00", "349.00"), adds_up, does_not)
    batch = _import(acme, content, name="c.xml")
    assert batch.status == "posted", batch.errors
    assert _payments(acme.id) == [("B-1/1", 5000, "EUR"), ("B-1/2", 20000, "EUR"), ("B-2", 9900, "EUR")]
    assert [line.line for line in bank_files.read_statement(content).lines] == [1, 2, 3]  # each part a line


def test_a_camt_credit_is_a_payment_in_every_version_from_02_to_08(db_session: Any) -> None:
    for version in ("02", "03", "04", "05", "06", "07", "08"):
        client = make_client(base_currency="EUR")
        make_invoice(client, make_debtor(client, external_ref="D-1"), "INV-2", 5000)
        content = _camt(_balances("0.00", "40.00"), _ntry("40.00", "CRDT", f"V-{version}"))
        content = content.replace(b"camt.053.001.08", f"camt.053.001.{version}".encode())
        batch = _import(client, content, name="c.xml")
        assert batch.status == "posted", (version, batch.errors)
        assert _payments(client.id) == [(f"V-{version}", 4000, "EUR")]


# --- line identity ------------------------------------------------------------------------------------


def test_repeated_references_in_one_statement_are_separate_payments(acme: Any) -> None:
    lines = [
        ("C40,00", "KREF77//BANK-1", "INV-2"),
        ("C40,00", "KREF77//BANK-1", "INV-2"),  # the bank repeats its own reference too
        ("C10,00", "NONREF", "INV-1"),
        ("C10,00", "NONREF", "INV-1"),
    ]
    batch = _import(acme, _statement("7", "0,00", lines, "100,00").encode(), name="dup.sta")
    assert batch.status == "posted", batch.errors
    assert [(ref, amount) for ref, amount, _ in _payments(acme.id)] == [
        ("BANK-1", 4000),
        ("BANK-1", 4000),
        ("MT940", 1000),
        ("MT940", 1000),
    ]
    camt = _camt(_balances("0.00", "80.00"), _ntry("40.00", "CRDT", "SAME"), _ntry("40.00", "CRDT", "SAME"))
    assert _import(acme, camt, name="dup.xml").posted_rows == 2


def test_the_same_file_twice_and_the_same_statement_in_another_file_record_nothing_twice(acme: Any) -> None:
    first = _statement("8", "0,00", [("C40,00", "NONREF", "INV-2"), ("C40,00", "NONREF", "INV-2")], "80,00")
    second = _statement("9", "80,00", [("C10,00", "NONREF", "INV-1")], "90,00")
    once = _import(acme, first.encode(), name="day1.sta")
    again = _import(acme, first.encode(), name="day1-again.sta")
    both = _import(acme, (first + second).encode(), name="week.sta")
    assert (once.posted_rows, again.posted_rows, again.skipped_rows) == (2, 0, 2)
    assert (both.posted_rows, both.skipped_rows) == (1, 2)
    assert sorted(amount for _, amount, _ in _payments(acme.id)) == [1000, 4000, 4000]


# --- BAI2 as banks write it ---------------------------------------------------------------------------

# funds type S (three availability amounts), several records on one line, a custom credit code (921) and a
# code no list knows (358: credit by its range), a debit
BAI2 = b"""01,BANKID,AGENCY,260310,1800,1,,,2/
02,AGENCY,BANKID,1,260310,,USD,2/
03,0532013000,USD,010,0,,/16,195,1000,S,1000,0,0,REF-S,,INV-2/
16,921,1500,Z,REF-C,,INV-3/16,358,500,Z,REF-U,,INV-1/16,475,25,Z,FEE,,fee/
49,3025,6/
98,3025,1,8/
99,3025,1,10/
"""


def test_a_bai2_file_with_funds_type_s_several_records_a_line_and_unknown_codes_is_read(db_session: Any) -> None:
    client = make_client(base_currency="USD")
    debtor = make_debtor(client, external_ref="D-1")
    for number in ("INV-1", "INV-2", "INV-3"):
        make_invoice(client, debtor, number, 10000, currency="USD")
    batch = _import(client, BAI2, name="s.bai")
    assert batch.status == "posted", batch.errors
    assert _payments(client.id) == [("REF-C", 1500, "USD"), ("REF-S", 1000, "USD"), ("REF-U", 500, "USD")]
    assert batch.mapping["bank_statement"] == {"format": "bai2", "credits": 3, "debits": 1}


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (10, "other"),
        (100, "credit"),
        (358, "credit"),
        (399, "credit"),
        (400, "debit"),
        (699, "debit"),
        (701, "other"),
        (899, "other"),
        (910, "other"),
        (920, "credit"),
        (959, "credit"),
        (960, "debit"),
    ],
)
def test_bai2_type_codes_are_classified_by_their_range(code: int, kind: str) -> None:
    assert bank_bai2.kind_of(code) == kind


# --- messages a person can act on ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            ":20:X\n:25:NL91ABNA0417164300\n:28C:1\n:60F:C260309EUR0,00\n:61:26031X0310C1,00NTRF\n:62F:C260310EUR1,00\n",
            "line 5 of the MT940 file: the statement line (:61:) '26031X0310C1,00NTRF' cannot be read",
        ),
        (
            ":20:X\n:25:NL1\n:28C:1\n:60F:C260309EUR0,00\n:61:2603100310C1.000,00NTRF\n:62F:C260310EUR1,00\n",
            "line 5 of the MT940 file: the amount '1.000,00' of the statement line (:61:) is not an amount",
        ),
        (
            ":20:X\n:25:NL1\n:28C:1\n:60F:C2603EUR0,00\n:61:2603100310C1,00NTRF\n:62F:C260310EUR1,00\n",
            "line 4 of the MT940 file: the opening balance (:60F:) 'C2603EUR0,00' is not a balance",
        ),
    ],
)
def test_an_unreadable_mt940_field_is_named_by_its_line(content: str, expected: str) -> None:
    with pytest.raises(BankFileRejected) as refused:
        bank_files.read_statement(content.encode())
    assert str(refused.value).startswith(expected)
    assert "object at" not in str(refused.value) and "Error" not in str(refused.value)


def test_a_malformed_available_balance_does_not_hold_the_statement_back() -> None:
    text = _statement("1", "0,00", [("C5,00", "NONREF", "x")], "5,00").replace("-\n", ":65:C2603XXEUR5,\n-\n")
    assert [line.amount for line in bank_files.read_statement(text.encode()).lines] == [Decimal("5.00")]


def test_dutch_and_german_details_give_the_payer_and_the_remittance(acme: Any) -> None:
    ing = "/EREF/NOTPROVIDED//CNTP/NL91ABNA0417164300/ABNANL2A/Bolt GmbH/Utrecht/REMI/USTD//Betaling maart/"
    rabo = "/EREF/E2E-1//ORDP//NAME/ACME LTD/ADDR/Straat 1/REMI/USTD//INV-2/"
    german = "166?00SEPA-GUTSCHRIFT?20EREF+E2E-2 SVWZ+Rechnung?21 INV-?221?32ACME?33 LTD"
    lines = [("C20,00", "NONREF", ing), ("C30,00", "NONREF", rabo), ("C15,00", "NONREF", german)]
    statement = bank_mt940.read(_statement("1", "0,00", lines, "65,00").encode())
    payers = [(line.payer, line.remittance) for line in statement.lines]
    assert payers == [
        ("Bolt GmbH", "Betaling maart"),
        ("ACME LTD", "INV-2 E2E-1"),
        ("ACME LTD", "E2E-2 Rechnung INV-1"),
    ]


# --- properties -------------------------------------------------------------------------------------------

CENTS = st.integers(min_value=1, max_value=10_000_000)


@settings(max_examples=60, deadline=None)
@given(
    opening=st.integers(min_value=-10_000_000, max_value=10_000_000),
    credits=st.lists(CENTS, max_size=8),
    debits=st.lists(CENTS, max_size=8),
    off=st.integers(min_value=-500, max_value=500),
)
def test_a_statement_is_read_exactly_when_its_lines_reach_its_closing_balance(
    opening: int, credits: list[int], debits: list[int], off: int
) -> None:
    def mt(cents: int) -> str:
        return f"{'C' if cents >= 0 else 'D'}{abs(cents) // 100},{abs(cents) % 100:02d}"

    closing = opening + sum(credits) - sum(debits) + off
    lines = [(f"C{c // 100},{c % 100:02d}", "NONREF", "x") for c in credits]
    lines += [(f"D{d // 100},{d % 100:02d}", "NONREF", "y") for d in debits]
    body = "".join(f":61:2603100310{amount}NTRF{refs}\n:86:{text}\n" for amount, refs, text in lines)
    text = f":20:P\n:25:NL1\n:28C:1\n:60F:{mt(opening)[0]}260309EUR{mt(opening)[1:]}\n{body}"
    text += f":62F:{mt(closing)[0]}260310EUR{mt(closing)[1:]}\n-\n"
    if off:
        with pytest.raises(BankFileRejected, match=rf"{abs(off) // 100}\.{abs(off) % 100:02d} unaccounted for"):
            bank_mt940.read(text.encode())
        return
    statement = bank_mt940.read(text.encode())
    assert sum(line.amount for line in statement.lines) * 100 == sum(credits)
    assert len({line.payment_ref for line in statement.lines}) == len(credits)  # every line its own payment
    assert [line.payment_ref for line in bank_mt940.read(text.encode()).lines] == [
        line.payment_ref for line in statement.lines
    ]  # and the same again when read again


def test_a_statement_again_after_its_waiting_line_was_recorded_by_hand_is_a_replay(acme: Any) -> None:
    from clients.payment_imports import assign_debtor

    lines = [("C40,00", "NONREF", "INV-2"), ("C7,00", "NONREF", "a gift from a stranger")]
    content = _statement("5", "0,00", lines, "47,00").encode()
    first = _import(acme, content, name="a.sta")
    assert (first.status, first.posted_rows, [e["row"] for e in first.errors]) == ("partial", 1, [2])
    stranger = make_debtor(acme, external_ref="D-7", name="Stranger")
    assign_debtor(db.session, first, 2, stranger)
    db.session.commit()
    again = _import(acme, content, name="a-again.sta")
    assert (again.status, again.posted_rows, again.skipped_rows, again.errors) == ("posted", 0, 2, [])


def test_a_line_recorded_for_one_debtor_is_a_replay_even_when_its_text_now_finds_another(acme: Any) -> None:
    content = _statement("6", "0,00", [("C25,00", "NONREF", "D-2 March")], "25,00")  # D-2 is Bolt GmbH
    first = _import(acme, content.encode(), name="b.sta")
    assert first.status == "posted", first.errors
    renamed = db.session.scalar(select(Payment.debtor_id).where(Payment.client_id == acme.id))
    make_invoice(acme, make_debtor(acme, external_ref="D-8", name="Other"), "March", 100)  # the text now names it
    again = _import(acme, content.encode(), name="b-again.sta")
    assert (again.status, again.posted_rows, again.skipped_rows) == ("posted", 0, 1)
    assert db.session.scalars(select(Payment.debtor_id).where(Payment.client_id == acme.id)).all() == [renamed]


def test_a_camt_statement_in_pages_is_checked_against_its_interim_balances(acme: Any) -> None:
    def bal(code: str, amount: str) -> str:
        return (
            f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount}</Amt>'
            "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-03-10</Dt></Dt></Bal>"
        )

    page_1 = _camt(bal("OPBD", "10.00") + bal("ITBD", "50.00"), _ntry("40.00", "CRDT", "P-1"))
    page_2 = _camt(bal("ITBD", "50.00") + bal("CLBD", "60.00"), _ntry("10.00", "CRDT", "P-2")).replace(
        b"<Id>S-1</Id>", b"<Id>S-2</Id>"
    )
    assert _import(acme, page_1, name="p1.xml").status == "posted"
    assert _import(acme, page_2, name="p2.xml").status == "posted"
    wrong = page_2.replace(b">60.00<", b">61.00<")
    assert "1.00 unaccounted for" in _import(acme, wrong, name="p3.xml").errors[0]["message"]


def test_a_camt_summary_whose_net_disagrees_with_the_entries_is_refused(acme: Any) -> None:
    net = "<TtlNetNtry><Amt>41.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></TtlNetNtry>"
    summary = f"<TxsSummry><TtlNtries>{net}</TtlNtries></TxsSummry>"
    batch = _import(acme, _camt(summary, _ntry("40.00", "CRDT", "N-1")), name="n.xml")
    assert batch.status == "rejected"
    assert "gives the entries a net of 41.00, but they come to 40.00" in batch.errors[0]["message"]


def test_a_statement_named_as_the_bank_likes_is_accepted_by_the_upload_form(client: Any, acme: Any) -> None:
    import io

    from tests.conftest import fresh_csrf, login
    from tests.factories import make_user

    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    url = f"/clients/{acme.id}/payments/imports"
    statement = _statement("1", "0,00", [("C40,00", "NONREF//BANK-9", "INV-2")], "40,00").encode()
    for name, accepted in (("MT940_20260310", True), ("export.swi", True), ("notes.pdf", False)):
        content = statement if accepted else b"%PDF-1.4 not a statement"
        data = {"csrf_token": fresh_csrf(client, url), "file": (io.BytesIO(content), name), "received_by": "agency"}
        response = client.post(url, data=data, content_type="multipart/form-data")
        assert (response.status_code == 302) is accepted, name
    assert _payments(acme.id) == [("BANK-9", 4000, "EUR")]  # the same statement twice: once


def test_a_utf16_export_and_polish_details_are_read() -> None:
    text = _statement(
        "1", "0,00", [("C9,99", "NONREF", "020~00VE02~20Faktura FV/1~21 za luty~32ACME SP~33. Z O.O.")], "9,99"
    )
    [line] = bank_files.read_statement(("\ufeff" + text).encode("utf-16")).lines
    assert (line.amount, line.payer, line.remittance) == (Decimal("9.99"), "ACME SP. Z O.O.", "Faktura FV/1 za luty")


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(CENTS, min_size=1, max_size=5), off=st.sampled_from([0, 0, 1, -1, 250]))
def test_what_a_camt_entry_pays_is_always_its_booked_amount(parts: list[int], off: int) -> None:
    booked = sum(parts) + off
    if booked <= 0:
        return
    amount = f"{booked // 100}.{booked % 100:02d}"
    details = "".join(_tx(f"{p // 100}.{p % 100:02d}", f"part {i}") for i, p in enumerate(parts))
    statement = bank_files.read_statement(_camt(_balances("0.00", amount), _ntry(amount, "CRDT", "E-1", details)))
    assert sum(line.amount for line in statement.lines) * 100 == booked
    assert len(statement.lines) == (len(parts) if off == 0 and len(parts) > 1 else 1)  # split only when it adds up


def test_a_bai2_file_without_slashes_is_read_record_by_line(db_session: Any) -> None:
    """Some banks end no record with "/": each line is a record, and a continuation goes on with the next field."""
    content = b"""01,BANKOFAMERICA,AGENCY,181108,1330,1,80,1,2
02,AGENCY,026009593,1,181107,2400,,2
03,0000000000,USD,010,100000,,,015,104000,,
88,100,4000,1,,400,0,0,
16,142,4000,0,REF1,CUST1,ACH CREDIT
88,FROM ACME
49,212000,5
98,212000,1,7
99,212000,1,9
"""
    [line] = bank_files.read_statement(content).lines
    assert (line.amount, line.currency, line.remittance) == (Decimal("40.00"), "USD", "CUST1 ACH CREDIT FROM ACME")


# --- the ways banks write a statement that adds up (issue 18: no valid file refused) ---------------------------

_H = ":20:S1\n:25:NL91ABNA0417164300\n:28C:1/1\n"
_L = ":61:2603100310{}NTRFNONREF\n"


def _cbal(code: str, amount: str, sign: str = "CRDT", currency: str = "EUR") -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">{amount}</Amt>'
        f"<CdtDbtInd>{sign}</CdtDbtInd><Dt><Dt>2026-03-10</Dt></Dt></Bal>"
    )


def _centry(amount: str, sign: str, ref: str, status: str = "BOOK", reversal: bool = False, ccy: str = "EUR") -> str:
    return (
        f'<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd>'
        f"{'<RvslInd>true</RvslInd>' if reversal else ''}<Sts>{status}</Sts>"
        f"<BookgDt><Dt>2026-03-10</Dt></BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef></Ntry>"
    )


def _cdoc(*statements: str) -> str:
    body = "".join(
        f"<Stmt><Id>S-{n}</Id><Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>{s}</Stmt>"
        for n, s in enumerate(statements, start=1)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>M-1</MsgId><CreDtTm>2026-03-10T18:00:00</CreDtTm></GrpHdr>{body}</BkToCstmrStmt></Document>"
    )


# case -> (file, its credits, (the closing balance as written, the same one cent out))
VALID: dict[str, tuple[str, list[tuple[str, str]], tuple[str, str]]] = {
    "MT940 pages of one statement (:62M: then :60M:, no :20: between)": (
        f"{_H}:60F:C260309EUR100,00\n{_L.format('C10,00')}:62M:C260310EUR110,00\n:60M:C260310EUR110,00\n"
        f"{_L.format('D5,00')}{_L.format('C7,00')}:62F:C260310EUR112,00\n-\n",
        [("10.00", "EUR"), ("7.00", "EUR")],
        (":62F:C260310EUR112,00", ":62F:C260310EUR112,01"),
    ),
    "MT940 negative balances (D) crossing zero": (
        f"{_H}:60F:D260309EUR10,00\n{_L.format('C30,00')}:62F:C260310EUR20,00\n-\n",
        [("30.00", "EUR")],
        (":62F:C260310EUR20,00", ":62F:D260310EUR20,00"),
    ),
    "MT940 RD adds and RC takes away, neither is a payment": (
        f"{_H}:60F:C260309EUR100,00\n{_L.format('RD5,00')}{_L.format('RC3,00')}{_L.format('C10,00')}"
        ":62F:C260310EUR112,00\n-\n",
        [("10.00", "EUR")],
        (":62F:C260310EUR112,00", ":62F:C260310EUR112,01"),
    ),
    "MT940 funds codes (CR, DR), several :86:, :64:, :65: and a statement's own :86:": (
        f"{_H}:60F:C260309EUR100,00\n{_L.format('CR10,00')}:86:a\n:86:b\n{_L.format('DR5,00')}"
        ":62F:C260310EUR105,00\n:64:C260310EUR999,00\n:65:C260311EUR999,00\n:86:about the statement\n-\n",
        [("10.00", "EUR")],
        (":62F:C260310EUR105,00", ":62F:C260310EUR105,01"),
    ),
    "MT940 Rabobank with a decimal point and zero padding": (
        ":940:\n:20:940S260310\n:25:NL50RABO0123456789\n:28C:0\n:60F:C260309EUR000000001000.00\n"
        ":61:260310C000000000250.50N122NONREF\n:61:260310D000000000100.25N122NONREF\n"
        ":62F:C260310EUR000000001150.25\n",
        [("250.50", "EUR")],
        ("EUR000000001150.25", "EUR000000001150.26"),
    ),
    "MT940 two accounts in two currencies under one :20:": (
        f"{_H}:60F:C260309EUR100,00\n{_L.format('C10,00')}:62F:C260310EUR110,00\n"
        f":25:B\n:28C:1\n:60F:C260309USD5,00\n{_L.format('C1,00')}:62F:C260310USD6,00\n-\n",
        [("10.00", "EUR"), ("1.00", "USD")],
        ("USD6,00", "USD6,01"),
    ),
    "CAMT negative balances (DBIT)": (
        _cdoc(_cbal("OPBD", "100.00", "DBIT") + _cbal("CLBD", "70.00", "DBIT") + _centry("30.00", "CRDT", "A")),
        [("30.00", "EUR")],
        (">70.00<", ">70.01<"),
    ),
    "CAMT entries not booked (PDNG, INFO) are outside the balances": (
        _cdoc(
            _cbal("OPBD", "0")
            + _cbal("CLBD", "10.00")
            + _centry("10.00", "CRDT", "A")
            + _centry("5.00", "CRDT", "P", "PDNG")
            + _centry("4.00", "DBIT", "I", "INFO")
        ),
        [("10.00", "EUR")],
        (">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt>", ">10.01</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt>"),
    ),
    "CAMT reversals move the balance their way and are no payment": (
        _cdoc(
            _cbal("OPBD", "0")
            + _cbal("CLBD", "5.00")
            + _centry("10.00", "CRDT", "A")
            + _centry("10.00", "DBIT", "R", reversal=True)
            + _centry("5.00", "CRDT", "B", reversal=True)
        ),
        [("10.00", "EUR")],
        (">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt>", ">5.01</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt>"),
    ),
    "CAMT PRCD opening, other balance types beside, two currencies, two statements": (
        _cdoc(
            _cbal("PRCD", "5")
            + _cbal("CLBD", "15.00")
            + _cbal("CLAV", "99")
            + _cbal("OPBD", "1", currency="USD")
            + _cbal("CLBD", "3", currency="USD")
            + _centry("10.00", "CRDT", "A")
            + _centry("2", "CRDT", "U", ccy="USD"),
            _cbal("OPBD", "15") + _cbal("CLBD", "12.00") + _centry("3.00", "DBIT", "F"),
        ),
        [("10.00", "EUR"), ("2", "USD")],
        (">12.00<", ">12.01<"),
    ),
}


@pytest.mark.parametrize("case", VALID, ids=list(VALID))
def test_a_statement_that_adds_up_is_read_however_the_bank_writes_it(case: str) -> None:
    content, credits, (closing, one_cent_out) = VALID[case]
    statement = bank_files.read_statement(content.encode())
    assert [(str(line.amount), line.currency) for line in statement.lines] == credits
    assert content.count(closing) == 1
    with pytest.raises(BankFileRejected, match="unaccounted for"):  # and the check is not idle
        bank_files.read_statement(content.replace(closing, one_cent_out).encode())
