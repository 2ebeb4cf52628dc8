"""Payout files (no database): SEPA pain.001 validated against the schema, NACHA layout, CSV, bank-detail checks."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sepaxml
import xmlschema
from defusedxml import ElementTree

from clients.bank_details import InvalidBankDetails, aba_routing_ok, validated
from clients.payout_files import (
    CSV_HEADER,
    Originator,
    Payee,
    PayoutError,
    PayoutLine,
    csv_file,
    file_kind,
    nacha_file,
    sepa_credit_transfer,
)

AGENCY = Originator(
    "Agency Trust Account",
    iban="DE89370400440532013000",
    bic="COBADEFFXXX",
    ach_routing="021000021",
    ach_company_id="1234567890",
    ach_destination_name="JPMORGAN CHASE",
)
CREATED = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}


def _eur(name: str, iban: str, amount: int, ref: str) -> PayoutLine:
    return PayoutLine(Payee(name, "EUR", iban=iban), amount, "EUR", ref, f"Remittance {ref}")


def test_sepa_file_passes_the_pain_001_schema_and_is_the_same_file_every_time() -> None:
    lines = [
        _eur("Müller & Söhne GmbH", "FR1420041010050500013M02606", 1_234_56, "RUN7-C1"),
        _eur("Client Two BV", "DE89370400440532013000", 99, "RUN7-C2"),
    ]
    first = sepa_credit_transfer(AGENCY, lines, "RUN-7", CREATED, date(2026, 12, 8))
    again = sepa_credit_transfer(AGENCY, lines, "RUN-7", CREATED, date(2026, 12, 8))
    assert first == again
    schema = xmlschema.XMLSchema(str(Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.03.xsd"))
    schema.validate(first.decode())  # independently of the library's own check
    root = ElementTree.fromstring(first)
    assert root.find(".//p:GrpHdr/p:MsgId", NS).text == "RUN-7"
    assert root.find(".//p:GrpHdr/p:NbOfTxs", NS).text == "2"
    assert root.find(".//p:GrpHdr/p:CtrlSum", NS).text == "1235.55"
    assert [e.text for e in root.findall(".//p:EndToEndId", NS)] == ["RUN7-C1", "RUN7-C2"]


def test_sepa_refuses_a_bad_iban_naming_the_payee_and_makes_no_file() -> None:
    lines = [_eur("Bad Bank Ltd", "DE89370400440532013001", 100, "R1")]
    with pytest.raises(PayoutError, match=r"payment 1 \(Bad Bank Ltd\): the IBAN .* is not valid"):
        sepa_credit_transfer(AGENCY, lines, "RUN-8", CREATED, date(2026, 12, 8))
    with pytest.raises(PayoutError, match="currency USD in a EUR file"):
        sepa_credit_transfer(
            AGENCY,
            [PayoutLine(Payee("X", "USD", iban="DE89370400440532013000"), 1, "USD", "R", "")],
            "R",
            CREATED,
            date(2026, 12, 8),
        )


def test_a_sepa_file_that_fails_the_schema_is_refused_every_time() -> None:
    """The schema is parsed once per process; every file is still checked against it."""
    bad = [_eur("", "FR1420041010050500013M02606", 100, "R1")]  # a payee name may not be empty
    for _ in range(2):
        with pytest.raises(PayoutError, match=r"does not pass the pain\.001 schema"):
            sepa_credit_transfer(AGENCY, bad, "RUN-9", CREATED, date(2026, 12, 8))
    good = [_eur("Client", "FR1420041010050500013M02606", 100, "R1")]
    assert sepa_credit_transfer(AGENCY, good, "RUN-9", CREATED, date(2026, 12, 8))


def test_nacha_file_layout_totals_hash_and_blocking() -> None:
    lines = [
        PayoutLine(
            Payee("Acme Supply Inc", "USD", routing_number="011000015", account_number="123456789"),
            150_000,
            "USD",
            "RUN9C1",
            "Remittance",
        ),
        PayoutLine(
            Payee("Beta LLC", "USD", routing_number="021000021", account_number="98765", account_type="savings"),
            2_50,
            "USD",
            "RUN9C2",
            "Remittance",
        ),
    ]
    data = nacha_file(AGENCY, lines, CREATED, date(2026, 12, 8))
    records = data.decode("ascii").splitlines()
    assert all(len(r) == 94 for r in records)
    assert len(records) % 10 == 0 and records[-1] == "9" * 94
    header, batch, e1, e2, control, file_control = records[:6]
    assert header[:3] == "101" and header[3:13] == " 021000021" and header[23:33] == "2612070930"
    assert batch[:4] == "5220" and batch[50:53] == "CCD" and batch[69:75] == "261208"
    assert (e1[1:3], e1[3:12], e1[29:39], e1[54:76].strip()) == ("22", "011000015", "0000150000", "ACME SUPPLY INC")
    assert (e2[1:3], e2[29:39]) == ("32", "0000000250")
    assert control[4:10] == "000002" and control[10:20] == str(1100001 + 2100002).zfill(10)
    assert control[20:32] == "0" * 12 and control[32:44] == "000000150250"
    assert file_control[1:7] == "000001" and file_control[7:13] == "000001" and file_control[31:43] == "000000000000"
    assert file_control[43:55] == "000000150250"
    assert nacha_file(AGENCY, lines, CREATED, date(2026, 12, 8)) == data


def test_nacha_refuses_a_bad_routing_number() -> None:
    bad = [PayoutLine(Payee("Acme", "USD", routing_number="011000016", account_number="1"), 1, "USD", "R1", "")]
    with pytest.raises(PayoutError, match=r"payment 1 \(Acme\): the routing number fails its check digit"):
        nacha_file(AGENCY, bad, CREATED, date(2026, 12, 8))


def test_csv_for_other_currencies_escapes_formulas() -> None:
    lines = [PayoutLine(Payee("=HYPERLINK(evil)", "CHF", iban="CH9300762011623852957"), 1_000_05, "CHF", "R1", "")]
    assert file_kind("CHF", lines) == "csv" and file_kind("EUR", []) == "sepa"
    rows = list(csv.reader(io.StringIO(csv_file(lines).decode())))
    assert rows[0] == CSV_HEADER
    assert rows[1] == ["'=HYPERLINK(evil)", "CH9300762011623852957", "", "CHF", "1000.05", "R1"]


def test_bank_details_are_checked_field_by_field() -> None:
    assert aba_routing_ok("021000021") and not aba_routing_ok("021000022") and not aba_routing_ok("12")
    ok = validated(
        {"currency": "eur", "holder": "Client One", "iban": "de89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX"}
    )
    assert (ok["currency"], ok["iban"], ok["bic"]) == ("EUR", "DE89370400440532013000", "COBADEFFXXX")
    with pytest.raises(InvalidBankDetails) as bad:
        validated({"currency": "EUR", "holder": "", "iban": "DE00370400440532013000", "bic": "NOTABIC"})
    assert set(bad.value.errors) == {"holder", "iban", "bic"}
    with pytest.raises(InvalidBankDetails) as mismatch:
        validated({"currency": "EUR", "holder": "X", "iban": "DE89370400440532013000", "bic": "BNPAFRPPXXX"})
    assert "is not the IBAN's" in mismatch.value.errors["bic"][0]
    with pytest.raises(InvalidBankDetails) as us:
        validated({"currency": "USD", "holder": "X", "routing_number": "123456789", "account_number": ""})
    assert set(us.value.errors) == {"routing_number", "account_number"}
    with pytest.raises(InvalidBankDetails) as eur:
        validated({"currency": "EUR", "holder": "X", "routing_number": "021000021", "account_number": "1"})
    assert "needs an IBAN" in eur.value.errors["iban"][0]
