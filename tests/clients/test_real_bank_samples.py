"""Every real statement in tests/samples/bank goes through the real upload and import path.

A file the import accepts must hold exactly the credits an independent reading finds: here, not through the
product's readers (CAMT: ElementTree over the XML; MT940: the `:61:` lines read with a regular expression;
BAI2: the `16` records' type codes and amounts). The client has no debtors, so every credit line waits for a
person to find who paid, with its amount: those waiting lines are what the import made of the file.

A file the import refuses must be one we know to be invalid, for the reason listed in REFUSED (each checked by
hand against the file: most are parsers' hand-made test data whose balances or control totals do not add up,
or fragments of a statement), and the message must be written for a person.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from clients.payment_imports import unidentified_lines
from tests.clients.test_payment_imports import _import
from tests.factories import make_client

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "bank"
FILES = sorted(p for p in SAMPLES.glob("*/*") if p.is_file())

# file -> what the refusal must say (the reason, checked by hand)
REFUSED = {
    # MT940: fragments, a broken file, interim reports, statements without one of their balances
    "wolph_betterplace_sepa_snippet_broken.sta": "second account identification (:25:)",
    "wolph_betterplace_empty_entry_date.sta": "no opening balance",
    "wolph_cmxl_statement_details.sta": "no opening balance",
    "wolph_cmxl_statement_line.sta": "no opening balance",
    "wolph_self-provided_sparkassen.sta": "no opening balance",
    "wolph_self-provided_gv_codes.sta": "no closing balance",
    "sander_K4262927_20200905-080000-952.txt": "no closing balance",
    "sander_oldenburgischelandesbank2.txt": "no closing balance",
    "zil_knab_knab_invalid.txt": "no closing balance",
    "wolph_betterplace_empty_86.sta": "neither a CAMT.053, an MT940 nor a BAI2",
    "wolph_betterplace_missing_crlf_at_end.sta": "neither a CAMT.053, an MT940 nor a BAI2",
    "wolph_cmxl_available_balance.sta": "neither a CAMT.053, an MT940 nor a BAI2",
    "wolph_cmxl_closing_balance.sta": "neither a CAMT.053, an MT940 nor a BAI2",
    "wolph_self-provided_empty_non_swift.sta": "neither a CAMT.053, an MT940 nor a BAI2",
    "wolph_self-provided_invalid_statement.sta": "neither a CAMT.053, an MT940 nor a BAI2",
    "wolph_mBank_mt942.sta": "MT942 interim transaction report",
    "wolph_self-provided_mt942.sta": "MT942 interim transaction report",
    # CAMT.053: balances in another currency than the entries, not a statement
    "genkgo_camt053.v2.minimal.xml": "no closing balance in EUR",
    "genkgo_camt053.v2.minimal.ultimate.xml": "no closing balance in EUR",
    "genkgo_camt053.v2.with-party-ids.xml": "no closing balance in EUR",
    "genkgo_camt053.v3.xml": "no closing balance in EUR",
    "genkgo_camt053.v4.xml": "no closing balance in EUR",
    "genkgo_camt053.v8.xml": "no closing balance in EUR",
    "genkgo_camt053.v2.wrong.xml": "has no statement",
    # BAI2: record counts and control totals that do not match the file
    "moov_sample4-continuations-newline-delimited.bai2": "it counts 26 records but there are 18",
    "moov_sample5-issue113.bai2": "it counts 26 records but there are 18",
    "moov_sample-parseError.bai2": "neither a CAMT.053, an MT940 nor a BAI2",
}
# (a statement whose balances do not add up is found here independently: `_unbalanced`)
# Every file whose lines do not take its opening balance to its closing balance, each checked by hand (and
# its :61: lines also read with the `mt-940` library: the same sums). No reading of the marks (RC/RD either
# way, or left out), no chaining of :60M:/:62M: pages across statements and no other decimal mark makes any
# of them add up. Where it is plain how the test data was made, it is said:
NOT_RECONCILING = {
    "fruit_Abn_sample2": "17,369.99 - 4 x 203.00 != 17,159.49; lines dated all over 2009 in a June statement",
    "fruit_Hsbc_sample": "0.00 - 20,000.00 != 0.00: balances zeroed",
    "fruit_Ing_sample": "7.15 != 3.47: the last line (a second C3,68) was added; without it 3.47",
    "fruit_Knab_sample": "1,000.21 - 55.00 = 945.21: the D96,84 line dated 2016-04-29 was added to a 2015 page",
    "fruit_Knab_sample3": "0.00 + 100,000.00 != 0.00: balances zeroed",
    "fruit_Rabo_sample": "balances jump with no lines (0.00 -> 2,145.00, 20,500.00 + 500.00 -> 20,366.00): demo data",
    "fruit_Rabo_sample2": "a statement without lines going from D1,000.12 to C2,145.23",
    "fruit_Rabo_sample3": "lines dated 2013-11-25, -12-06, -09-20 added to April statements; without them both add up",
    "fruit_Rabo_sample4": "lines of 2015-12-08 in a 2013-04-03 statement, its closing copied from another file",
    "sander_bug-core-5401.txt": "0.00 + 50.00 != 0.00: balances zeroed",
    "sander_commerzbank.txt": "0.00 - 12.35 != 0.00: balances zeroed",
    "sander_deutschebank.txt": "0.00 - 12.35 != 0.00: balances zeroed",
    "sander_oldenburgischelandesbank.txt": "0 + 104.50 != 0: balances zeroed",
    "sander_oldenburgischelandesbankmitbindestrich.txt": "closing 0.00 dated before the line's own date",
    "sander_sparkasse2.txt": "931,052.29 -> 931,304.50 is +252.21; the one line is RD 1,027.25",
    "sander_sparkasse3.txt": "the same balances as sparkasse2 with the line's mark edited to RC",
    "wolph_betterplace_sepa_snippet.sta": "statement 2 is a snippet: 300.08 of its lines left out",
    "wolph_jejik_abnamro.sta": "3,236.28 - 321.44 != 876.84; the next page opens at 2,876.84, not 876.84",
    "wolph_jejik_ing.sta": "fruit_Ing_sample with its credits edited into debits: 0.00 - 45.59 != 3.47",
    "wolph_jejik_knab.sta": "3,058.98 - 7,260.00 + 500.00 != 798.98 (with 2,760.00 it would add up)",
    "wolph_jejik_postfinance.sta": "229.20 - 79.90 + 10.10 = 159.40 != 159.60 (with 79.70 it would add up)",
    "wolph_jejik_rabobank.sta": "lines dated weeks outside their statements (1,295.82 - 44.95 = 1,250.87 without one)",
    "wolph_jejik_triodos.sta": "4,975.09 - 715.70 != 4,370.79 (111.40 out)",
    "wolph_mBank_with_newline_in_tnr.sta": "0.46 + 89.00 != 860.17: an excerpt of two lines",
    "wolph_self-provided_details_60-63.sta": "12,345.12 - 233.15 != 12,345.98: made-up balances",
    "wolph_self-provided_malformed_details.sta": "the same made-up balances",
    "wolph_self-provided_overly_long_details.sta": "the same made-up balances",
    "wolph_self-provided_whitespace.sta": "the same made-up balances",
    "wolph_self-provided_raiffeisen-cmi.sta": "25,170,637.10 + 2,066,637.00 - 3,078,850.50 != 25,281,687.60",
    "zil_14aug2014.swi": "768.18 - 672.66 + 429.14 != 996.53",
    "zil_abn_abn_sepa_overboeking.txt": "10,000.00 + 10.50 != 10,010.00 (0.50 out)",
    "zil_abn_abnamro_structured.txt": "a D5,1 line dated before its opening balance; the next statement 8.00 out",
    "zil_deutsche_bank.txt": "0.00 + 4.00 != 5.87; the second line is dated after the closing balance",
    "zil_ing_eu_incasso_foreign_transaction.txt": "1,000.00 - 50.97 != 950.00 (0.97 out)",
    "zil_ing_structured.txt": "500.00 + 700.00 - 7,516.00 != 400.00",
    "genkgo_camt053.v2.all-balance-types.xml": "every balance type with a made-up amount: 1.01 + 8.85 != CLBD 4.04",
    "genkgo_camt053.v2.five.decimals.xml": "18.150 + 8.850 = 27.000 != CLBD 27.050",
}
WITHDRAWN = {"DEM"}  # lines in a currency that is no longer one may be refused as such (row errors)
INTERNALS = re.compile(
    r"Error|Exception|Traceback|object at 0x|<[a-z_.]+ |NoneType|Decimal\(|\bNaN\b|\w+\.\w+\(|__\w+__", re.IGNORECASE
)


def _camt_credits(content: bytes) -> tuple[int, Counter[str]]:
    """Booked credit entries (not reversals), per currency, read with ElementTree."""
    root = ET.fromstring(content)  # noqa: S314 - the repository's own sample files
    count, sums = 0, Counter[str]()
    for entry in root.iter():
        if not entry.tag.endswith("}Ntry"):
            continue
        kids = {child.tag.split("}")[1]: child for child in entry}
        status = kids.get("Sts")
        status_text = "".join(status.itertext()).strip() if status is not None else ""
        reversal = kids.get("RvslInd") is not None and (kids["RvslInd"].text or "").strip().lower() == "true"
        if kids["CdtDbtInd"].text == "CRDT" and not reversal and status_text not in ("PDNG", "INFO"):
            count += 1
            sums[kids["Amt"].get("Ccy")] += Decimal(kids["Amt"].text)
    return count, sums


_61 = re.compile(r"^:61:\d{6}(\d{4})?(?P<mark>R?[CD])[A-Z]?\n?(?P<amount>\d[\d,.]*)", re.MULTILINE | re.IGNORECASE)
_BALANCE_CCY = re.compile(r"^:60[FM]:[CD]\d{6}(?P<ccy>[A-Z]{3})", re.MULTILINE)


def _mt940_credits(content: bytes) -> tuple[int, Counter[str]]:
    """The C lines of each statement, summed in the currency of the statement's opening balance."""
    text = content.decode("latin-1").replace("\r\n", "\n")
    count, sums = 0, Counter[str]()
    currency = ""
    events = sorted(
        [(m.start(), "ccy", m["ccy"]) for m in _BALANCE_CCY.finditer(text)]
        + [(m.start(), m["mark"].upper(), m["amount"]) for m in _61.finditer(text)]
    )
    for _, kind, value in events:
        if kind == "ccy":
            currency = value
        elif kind == "C":
            count += 1
            sums[currency] += Decimal(value.replace(",", ".") if "," in value else value)
    return count, sums


def _bai2_credits(content: bytes) -> tuple[int, Counter[str]]:
    """16 records with a credit type code (100-399, 920-959), in the account's (else the group's) currency."""
    text = content.decode("latin-1")
    count, sums = 0, Counter[str]()
    group_ccy = account_ccy = "USD"
    for m in re.finditer(r"(?:^|/)\s*(0[23]|16),([^,/\n]*),([^,/\n]*)", text, re.MULTILINE):
        code, a, b = m.groups()
        if code == "02":
            head = text[m.start(1) :].split("/")[0].split(",")
            group_ccy = (head[6] if len(head) > 6 else "") or "USD"
        elif code == "03":
            account_ccy = b or group_ccy
        elif (100 <= int(a) <= 399 or 920 <= int(a) <= 959) and int(b or 0) > 0:
            count += 1
            sums[account_ccy] += Decimal(int(b)) / 100  # every currency in these files has 2 decimals
    return count, sums


def _places(currency: str) -> int:
    from provider.core.money import MoneyError, exponent

    try:
        return exponent(currency)
    except MoneyError:
        return 2


def _said(difference: Decimal, currency: str) -> str:
    places = max(_places(currency), -int(difference.as_tuple().exponent))
    return f"{abs(difference):,.{places}f} unaccounted for"


_MT940_EVENT = re.compile(
    r"^:(?:(?P<bal>6[02])[FM]:(?P<sign>[CD])\d{6}(?P<ccy>[A-Z]{3})?(?P<balance>\d[\d,.]*)"
    r"|61:\d{6}(?:\d{4})?(?P<mark>R?[CD])[A-Z]?\n?(?P<amount>\d[\d,.]*))",
    re.MULTILINE | re.IGNORECASE,
)


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", ".").rstrip(".") or "0")


def _mt940_unbalanced(content: bytes) -> str | None:
    """How much the first statement whose lines do not take its opening to its closing balance is out."""
    text = content.decode("latin-1").replace("\r\n", "\n").replace("\x1a", "\n")
    running: Decimal | None = None
    currency = ""
    for m in _MT940_EVENT.finditer(text):
        if m["bal"] == "60":
            running = _number(m["balance"]) * (-1 if m["sign"] == "D" else 1)
            currency = m["ccy"] or currency
        elif m["bal"] == "62" and running is not None:
            closing = _number(m["balance"]) * (-1 if m["sign"] == "D" else 1)
            if closing != running:
                return _said(closing - running, m["ccy"] or currency)
            running = None
        elif m["mark"] and running is not None:
            amount = _number(m["amount"])
            running += amount if m["mark"].upper() in ("C", "RD") else -amount
    return None


def _camt_unbalanced(content: bytes) -> str | None:
    root = ET.fromstring(content)  # noqa: S314 - the repository's own sample files
    for stmt in (e for e in root.iter() if e.tag.endswith("}Stmt")):
        opening: dict[str, Decimal] = {}
        closing: dict[str, Decimal] = {}
        moved: Counter[str] = Counter()
        for node in stmt:
            kind = node.tag.split("}")[1]
            if kind not in ("Bal", "Ntry"):
                continue
            amt = next(c for c in node if c.tag.endswith("}Amt"))
            sign = [c.text for c in node if c.tag.endswith("}CdtDbtInd")]
            value = Decimal(amt.text or "0") * (-1 if sign == ["DBIT"] else 1)
            currency = amt.get("Ccy") or ""
            if kind == "Ntry":
                moved[currency] += value
                continue
            code = "".join(c.text or "" for c in node.iter() if c.tag.endswith("}Cd"))
            if code in ("OPBD", "PRCD"):
                opening.setdefault(currency, value)
            elif code == "CLBD":
                closing[currency] = value
        for currency in sorted(set(opening) & set(closing)):
            if opening[currency] + moved[currency] != closing[currency]:
                return _said(closing[currency] - opening[currency] - moved[currency], currency)
    return None


def _unbalanced(path: Path) -> str | None:
    if path.parent.name == "mt940":
        return _mt940_unbalanced(path.read_bytes())
    if path.parent.name == "camt053":
        return _camt_unbalanced(path.read_bytes())
    return None


def _independent(path: Path) -> tuple[int, Counter[str]]:
    content = path.read_bytes()
    kind = path.parent.name
    if kind == "camt053":
        return _camt_credits(content)
    if kind == "mt940":
        return _mt940_credits(content)
    return _bai2_credits(content)


def _messages(batch: Any) -> list[str]:
    return [str(e["message"]) for e in batch.errors]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_each_real_statement_is_read_as_its_credits_or_refused_for_its_real_fault(db_session: Any, path: Path) -> None:
    if path.name == "SOURCES.md":
        pytest.skip("the list of sources")
    client = make_client(base_currency="EUR")  # no debtors: every credit line waits, with its amount
    batch = _import(client, path.read_bytes(), name=path.name)
    messages = _messages(batch)
    for message in messages:
        assert not INTERNALS.search(message), message
    reason = REFUSED.get(path.name) or _unbalanced(path)
    if reason:
        assert batch.status == "rejected", f"{path.name} was accepted: {batch.mapping.get('bank_statement')}"
        assert [e["column"] for e in batch.errors] == ["file"]
        assert reason in messages[0]
        return
    count, sums = _independent(path)
    if batch.status == "rejected":  # only lines in a withdrawn currency may hold the statement back
        currencies = {c for c in sums if sums[c]}
        assert currencies & WITHDRAWN, messages
        assert all(e["column"] in ("currency", "debtor_ref") for e in batch.errors), messages
        return
    assert batch.status in ("posted", "partial"), messages
    waiting = unidentified_lines(db_session, batch)
    assert len(waiting) == count
    read = Counter[str]()
    for line in waiting.values():
        read[line.currency] += Decimal(line.amount)
    assert +read == +sums
    assert batch.mapping["bank_statement"]["credits"] >= count  # (a batch booking may pay several lines)
    assert len({line.payment_ref for line in waiting.values()}) == len(waiting)  # every line its own payment
    if path.parent.name == "mt940":
        _agrees_with_the_mt940_library(path.read_bytes(), count, sums)


def _agrees_with_the_mt940_library(content: bytes, count: int, sums: Counter[str]) -> None:
    """A second opinion: where the `mt-940` library reads every :61: line of the file, its credits are ours."""
    import mt940

    try:
        transactions = mt940.parse(content.decode("latin-1"))
    except Exception:  # the library fails on some real files: then it has no opinion
        return
    lines = len(re.findall(r"^:61:", content.decode("latin-1"), re.MULTILINE))
    if len(transactions) != lines:
        return  # it folded or dropped lines: no opinion
    credits = [
        t.data["amount"] for t in transactions if str(t.data.get("status")) == "C" and t.data["amount"].amount > 0
    ]
    assert len(credits) == count
    library = Counter[str]()
    for amount in credits:
        library[amount.currency] += amount.amount
    assert +library == +sums


def test_every_refusal_listed_is_a_sample_file() -> None:
    assert set(REFUSED) <= {p.name for p in FILES}


def test_the_files_that_do_not_add_up_are_exactly_those_checked_by_hand() -> None:
    found = {p.name for p in FILES if p.name not in REFUSED and p.name != "SOURCES.md" and _unbalanced(p)}
    assert found == set(NOT_RECONCILING)


def test_debits_and_closing_balances_of_real_mt940_and_bai2_files_add_up() -> None:
    """The debit lines (remittances paid out) and closing balances the trust reconciliation reads: a real MT940
    file of two statements (opening 100.00, a 10.00 debit in each) and a real BAI2 account whose opening ledger
    (010: 365.21) plus its credits minus the debit lines read must give its closing ledger (015)."""
    from clients import bank_bai2, bank_mt940

    generic = bank_mt940.read((SAMPLES / "mt940" / "wolph_jejik_generic.sta").read_bytes())
    assert [d.amount for d in generic.debit_lines] == [Decimal("10.00"), Decimal("10.00")]
    assert [(c.on, c.amount) for c in generic.closing] == [
        (date(2011, 2, 1), Decimal("90.00")),
        (date(2011, 3, 1), Decimal("80.00")),
    ]
    assert Decimal("100.00") - sum(d.amount for d in generic.debit_lines) == generic.closing[-1].amount
    nwb = bank_bai2.read((SAMPLES / "bai2" / "moj_nwb_example.bai2").read_bytes())
    (closing,) = nwb.closing
    credits = sum(line.amount for line in nwb.lines)
    assert len(nwb.debit_lines) == 4 and closing.currency == "GBP"
    assert Decimal("365.21") + credits - sum(d.amount for d in nwb.debit_lines) == closing.amount
