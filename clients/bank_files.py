"""Bank statements as payment files: ISO 20022 CAMT.053 (XML), SWIFT MT940 and BAI2, read into payment rows.

The agency's bank reports what its collection account received. Each credit line becomes a payment row of
the payments import (clients.payment_imports), so statements get the same checks, idempotency and
auto-allocation as a CSV: the payment reference is the bank's own reference for the line (stable across
re-uploads of the same statement), the date is the booking date, the reference is the remittance text
(auto-allocation then pays the invoice it names). Debit lines (fees, transfers out) are not payments
received: they are counted and left out.

Which debtor paid is not in the statement; `debtor_ref` is found in the client's ledger by
`resolve_debtors`: an open invoice number or a debtor reference written in the remittance text, else the
one debtor whose name is the payer's name. A line where none of these finds exactly one debtor keeps an
empty debtor reference, and the import reports it ("no debtor found ...") instead of guessing.

XML is parsed with defusedxml (no entities, no external references); MT940 with the `mt-940` library. OFX,
CAMT.052 and CAMT.054 files are recognised and refused with what to download instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from clients.imports import FileRejected

FORMAT_CAMT053 = "camt.053"
FORMAT_MT940 = "mt940"
FORMAT_BAI2 = "bai2"
# formats recognised only to be refused with what to upload instead
UNSUPPORTED = {
    "ofx": "an OFX/QFX download",
    "camt.052": "a CAMT.052 intraday account report",
    "camt.054": "a CAMT.054 debit/credit notification",
}
# a file named so is read as a statement (or refused as none)
EXTENSIONS = (".xml", ".sta", ".940", ".mt940", ".bai", ".bai2", ".ofx", ".qfx")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_/.]{1,63}")


class BankFileRejected(FileRejected):
    """The statement cannot be read (the message says why): the import reports it like any unreadable file."""


@dataclass
class BankLine:
    """One credit line of a statement, in the payments import's terms."""

    line: int  # the line's position in the statement (1 = first entry), as the report names it
    payment_ref: str
    booked_on: date | None
    amount: Decimal
    currency: str
    payer: str = ""
    remittance: str = ""
    debtor_ref: str = ""
    hints: str = ""  # more text to find the debtor in, not shown (MT940: the purpose with spaces between lines)


@dataclass
class Statement:
    format: str
    lines: list[BankLine] = field(default_factory=list)
    debits: int = 0  # debit lines left out


def sniff(content: bytes) -> str | None:
    """The statement format of an upload, or None for anything else (a CSV or XLSX payments file)."""
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<") and b"BkToCstmrStmt" in content[:65536]:
        return FORMAT_CAMT053
    if head.startswith(b"<") and b"BkToCstmrAcctRpt" in content[:65536]:
        return "camt.052"
    if head.startswith(b"<") and b"BkToCstmrDbtCdtNtfctn" in content[:65536]:
        return "camt.054"
    if head.startswith(b"OFXHEADER") or re.search(rb"<OFX>", content[:65536], re.IGNORECASE):
        return "ofx"
    if re.match(rb"01,[^\r\n]*\r?\n02,", head):
        return FORMAT_BAI2
    text = head.decode("latin-1")
    if re.search(r"(^|\n):20:", text) and ":61:" in content[:65536].decode("latin-1"):
        return FORMAT_MT940
    return None


def read_statement(content: bytes) -> Statement:
    kind = sniff(content)
    if kind == FORMAT_CAMT053:
        return _camt053(content)
    if kind == FORMAT_MT940:
        return _mt940(content)
    if kind == FORMAT_BAI2:
        return _bai2(content)
    if kind in UNSUPPORTED:
        raise BankFileRejected(
            f"this is {UNSUPPORTED[kind]}, which is not read here; download the account statement as CAMT.053, "
            "MT940 or BAI2 instead"
        )
    raise BankFileRejected("this is neither a CAMT.053, an MT940 nor a BAI2 bank statement")


# --- CAMT.053 -------------------------------------------------------------------------------------


def _text(node: Any, path: str) -> str:
    found = node.find(path) if node is not None else None
    return (found.text or "").strip() if found is not None and found.text else ""


def _camt053(content: bytes) -> Statement:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(content)
    except (ParseError, DefusedXmlException) as exc:
        raise BankFileRejected(f"the CAMT.053 file is not well-formed XML ({exc})") from None
    statement = Statement(FORMAT_CAMT053)
    n = entries = 0
    for stmt in root.iterfind(".//{*}BkToCstmrStmt/{*}Stmt"):
        stmt_id = _text(stmt, "{*}Id")
        for entry in stmt.iterfind("{*}Ntry"):
            entries += 1
            details = entry.findall("{*}NtryDtls/{*}TxDtls")
            if _text(entry, "{*}CdtDbtInd") != "CRDT" or _text(entry, "{*}RvslInd").lower() == "true":
                n += max(len(details), 1)
                statement.debits += 1  # a debit, or a reversal (money returned): not a payment received
                continue
            booked = _text(entry, "{*}BookgDt/{*}Dt") or _text(entry, "{*}BookgDt/{*}DtTm")[:10]
            booked = booked or _text(entry, "{*}ValDt/{*}Dt") or _text(entry, "{*}ValDt/{*}DtTm")[:10]
            parts = details if len(details) > 1 else [None]  # a batch booking lists its payments
            for k, tx in enumerate(parts, start=1):
                n += 1
                if tx is not None and _text(tx, "{*}CdtDbtInd") == "DBIT":
                    statement.debits += 1  # a return inside a batch of credits
                    continue
                one = tx if tx is not None else (details[0] if details else None)
                statement.lines.append(_camt_line(n, k, stmt_id, booked, entry, one, batch=tx is not None))
    if entries == 0:
        raise BankFileRejected("the CAMT.053 file has no statement entries (Ntry)")
    return statement


def _camt_line(n: int, k: int, stmt_id: str, booked: str, entry: Any, one: Any, batch: bool) -> BankLine:
    """One payment of an entry: the entry itself, or (`batch`) its k-th TxDtls, which must state its own
    amount (in TxDtls/Amt since version .03, else AmtDtls/TxAmt/Amt): never the batch's total."""
    amount_node = None
    if one is not None:
        amount_node = one.find("{*}Amt")
        if amount_node is None:  # (an Element without children is falsy: compare with None)
            amount_node = one.find("{*}AmtDtls/{*}TxAmt/{*}Amt")
    if amount_node is None and not batch:
        amount_node = entry.find("{*}Amt")
    end_to_end = _text(one, "{*}Refs/{*}EndToEndId").replace("NOTPROVIDED", "")
    ref = _text(one, "{*}Refs/{*}AcctSvcrRef") or _text(entry, "{*}AcctSvcrRef") or end_to_end
    ref = ref or _text(entry, "{*}NtryRef")
    if batch and ref == _text(entry, "{*}AcctSvcrRef"):
        ref = f"{ref}/{k}"
    remittance = " ".join(
        t
        for t in (
            *(u.text or "" for u in (one.iterfind("{*}RmtInf/{*}Ustrd") if one is not None else [])),
            *(_text(d, "{*}CdtrRefInf/{*}Ref") for d in (one.iterfind("{*}RmtInf/{*}Strd") if one is not None else [])),
            *(_text(d, "{*}Nb") for d in (one.iterfind("{*}RmtInf/{*}Strd/{*}RfrdDocInf") if one is not None else [])),
            end_to_end,
            _text(entry, "{*}AddtlNtryInf"),
        )
        if t.strip()
    )
    payer = _text(one, "{*}RltdPties/{*}Dbtr/{*}Nm") or _text(one, "{*}RltdPties/{*}Dbtr/{*}Pty/{*}Nm")
    currency = (entry.find("{*}Amt").get("Ccy") or "") if entry.find("{*}Amt") is not None else ""
    return _line(n, ref, stmt_id, booked, amount_node, payer, remittance, currency)


def _line(
    n: int, ref: str, stmt_id: str, booked: str, amount_node: Any, payer: str, remittance: str, currency: str = ""
) -> BankLine:
    try:
        amount = Decimal((amount_node.text or "").strip()) if amount_node is not None else Decimal("NaN")
    except InvalidOperation:
        amount = Decimal("NaN")
    try:
        day: date | None = date.fromisoformat(booked)
    except ValueError:
        day = None  # reported by the import as a missing date
    currency = ((amount_node.get("Ccy") if amount_node is not None else None) or currency).strip().upper()
    if not ref:  # no bank reference: derived from what identifies the line within its statement
        ref = _derived_ref("CAMT", stmt_id, n, booked, str(amount), remittance)
    return BankLine(n, ref[:64], day, amount, currency, " ".join(payer.split()), " ".join(remittance.split()))


def _derived_ref(kind: str, *parts: Any) -> str:
    return f"{kind}-" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:20]


# --- MT940 ----------------------------------------------------------------------------------------


def _mt940(content: bytes) -> Statement:
    """Every :61: line of every statement in the file (a bank's file often holds several days). Structured
    :86: details (?20-?29 purpose, ?32/?33 name) are joined as the bank split them, mid-word; the purpose is
    also kept with spaces between the sub-fields for finding the debtor. Only C (credit) lines are payments:
    D, RC (a credit taken back) and RD (a debit returned to the account) are not money a debtor paid."""
    import mt940

    text = content.decode("utf-8-sig") if _is_utf8(content) else content.decode("latin-1")
    options = mt940.Options(
        applicant_iban=True, merge_keeps_values=True, unbounded_details=True, case_insensitive_marks=True
    )
    processors: Any = {"post_transaction_details": [_details_both_ways]}
    try:
        transactions = mt940.parse(text, processors=processors, options=options)
    except Exception as exc:  # the library raises several types for a malformed file
        raise BankFileRejected(f"the MT940 file cannot be read ({type(exc).__name__}: {exc})") from None
    statement = Statement(FORMAT_MT940)
    stmt_ref = str(transactions.data.get("transaction_reference") or "")
    for n, tx in enumerate(transactions, start=1):
        data = tx.data
        amount = data.get("amount")
        if str(data.get("status") or "").upper() != "C" or amount is None or amount.amount <= 0:
            statement.debits += 1
            continue
        when = data.get("entry_date") or data.get("date")
        booked = date(when.year, when.month, when.day)
        ref = next(
            (r for r in (data.get("bank_reference"), data.get("customer_reference")) if r and r.upper() != "NONREF"),
            "",
        )
        keys = ("purpose", "additional_purpose", "end_to_end_reference", "transaction_details")
        purpose = " ".join(str(data.get(k) or "") for k in keys)
        derived = _derived_ref(
            "MT940", data.get("transaction_reference") or stmt_ref, n, booked, amount.amount, purpose
        )
        ref = ref or derived
        payer = str(data.get("applicant_name") or "")
        payer, purpose = " ".join(payer.split()), " ".join(purpose.split())
        line = BankLine(n, ref[:64], booked, amount.amount, amount.currency, payer, purpose)
        line.hints = str(data.get("purpose_spaced") or "")
        statement.lines.append(line)
    if not statement.lines and not statement.debits:
        raise BankFileRejected("the MT940 file has no transactions (:61: lines)")
    return statement


def _details_both_ways(transactions: Any, tag: Any, tag_dict: dict[str, Any], result: dict[str, Any]) -> Any:
    """The library's :86: processor, keeping the purpose also as read with spaces between sub-fields."""
    from mt940 import processors

    spaced = processors.transaction_details_post_processor_with_space(transactions, tag, tag_dict, dict(result))
    result = processors.transaction_details_post_processor(transactions, tag, tag_dict, result)
    result["purpose_spaced"] = spaced.get("purpose") or ""
    return result


def _is_utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- BAI2 -----------------------------------------------------------------------------------------


def _bai2(content: bytes) -> Statement:
    """A BAI2 file, read with the `bai2` library (which also checks the file's record counts and control
    totals, so a truncated or edited file is refused): every transaction detail (16) record of every account.
    Credit type codes are payments; debits and codes that are neither are left out. Amounts are in the
    currency's minor units (the account's currency, else the group's, USD when neither is given), the date is
    the group's as-of date."""
    from bai2 import bai2
    from bai2.constants import TypeCodeTransaction
    from bai2.exceptions import IntegrityException, NotSupportedYetException, ParsingException

    from provider.core.money import MoneyError, exponent

    try:
        parsed = bai2.parse_from_string(content.decode("latin-1"))
    except IntegrityException as exc:
        raise BankFileRejected(f"the BAI2 file is incomplete or was changed: {exc}") from None
    except (ParsingException, NotSupportedYetException) as exc:
        raise BankFileRejected(f"this BAI2 file cannot be read: {exc}") from None
    except (ValueError, IndexError, KeyError, AttributeError):
        raise BankFileRejected("this BAI2 file cannot be read: a record lacks the fields BAI2 defines") from None
    statement = Statement(FORMAT_BAI2)
    n = 0
    for group in parsed.children:
        as_of: date | None = group.header.as_of_date
        for account in group.children:
            currency = account.header.currency or group.header.currency or "USD"
            for detail in account.children:
                n += 1
                if detail.type_code is None or detail.type_code.transaction is not TypeCodeTransaction.credit:
                    statement.debits += 1
                    continue
                try:
                    amount = Decimal(detail.amount).scaleb(-exponent(currency))
                except (MoneyError, TypeError, InvalidOperation):
                    amount = Decimal("NaN")
                bank_ref, customer_ref, text = detail.bank_reference, detail.customer_reference, detail.text or ""
                ref = bank_ref or customer_ref or _derived_ref("BAI2", as_of, n, detail.amount, text)
                remittance = " ".join(f"{customer_ref or ''} {text}".split())
                statement.lines.append(BankLine(n, ref[:64], as_of, amount, currency, "", remittance))
    if n == 0:
        raise BankFileRejected("the BAI2 file has no transaction detail (16) records")
    return statement


# --- which debtor paid ----------------------------------------------------------------------------


def tokens(text: str) -> set[str]:
    """The words of a remittance text that could be an invoice number or a debtor reference."""
    return {t.strip("./-_") for t in _TOKEN.findall(text)} - {""}


def name_key(name: str) -> str:
    """A payer's name as compared with debtors' names: case and spaces do not count (banks split a name over
    two fields, mid-word or between words)."""
    return "".join(name.lower().split())


def resolve_debtors(
    lines: list[BankLine], invoice_debtor: dict[str, str], ref_known: set[str], name_debtor: dict[str, str | None]
) -> None:
    """Set each line's `debtor_ref` from the client's ledger: the debtor of an invoice number named in the
    remittance, else a debtor reference named there, else the one debtor whose name is the payer's.
    `name_debtor` maps a lower-cased name to its debtor's reference (None when several debtors share it).
    Lines that name debtors ambiguously (two different ones) stay unresolved."""
    for line in lines:
        words = tokens(line.remittance) | tokens(line.hints)
        by_invoice = {invoice_debtor[w] for w in words if w in invoice_debtor}
        by_ref = {w for w in words if w in ref_known}
        if len(by_invoice) == 1:
            line.debtor_ref = by_invoice.pop()
        elif not by_invoice and len(by_ref) == 1:
            line.debtor_ref = by_ref.pop()
        elif not by_invoice and not by_ref and line.payer:
            line.debtor_ref = name_debtor.get(name_key(line.payer)) or ""
