"""Bank statements as payment files: ISO 20022 CAMT.053 (XML) and SWIFT MT940, read into payment rows.

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

XML is parsed with defusedxml (no entities, no external references); MT940 with the `mt-940` library.
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
EXTENSIONS = (".xml", ".sta", ".940", ".mt940")  # a file named so is read as a statement (or refused as none)
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
    raise BankFileRejected("this is neither a CAMT.053 nor an MT940 bank statement")


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
    n = 0
    for stmt in root.iterfind(".//{*}BkToCstmrStmt/{*}Stmt"):
        stmt_id = _text(stmt, "{*}Id")
        for entry in stmt.iterfind("{*}Ntry"):
            n += 1
            if _text(entry, "{*}CdtDbtInd") != "CRDT":
                statement.debits += 1
                continue
            if _text(entry, "{*}RvslInd").lower() == "true":
                statement.debits += 1  # a reversal returns money: not a payment received
                continue
            booked = _text(entry, "{*}BookgDt/{*}Dt") or _text(entry, "{*}BookgDt/{*}DtTm")[:10]
            booked = booked or _text(entry, "{*}ValDt/{*}Dt") or _text(entry, "{*}ValDt/{*}DtTm")[:10]
            details = entry.findall("{*}NtryDtls/{*}TxDtls")
            parts = details if len(details) > 1 else [None]  # a batch booking lists its payments
            for k, tx in enumerate(parts, start=1):
                amount_node = tx.find("{*}AmtDtls/{*}TxAmt/{*}Amt") if tx is not None else None
                if amount_node is None:  # (an Element without children is falsy: compare with None)
                    amount_node = entry.find("{*}Amt")
                one = tx if tx is not None else (details[0] if details else None)
                ref = (
                    _text(one, "{*}Refs/{*}AcctSvcrRef")
                    or _text(entry, "{*}AcctSvcrRef")
                    or _text(one, "{*}Refs/{*}EndToEndId").replace("NOTPROVIDED", "")
                    or _text(entry, "{*}NtryRef")
                )
                if len(parts) > 1 and ref == _text(entry, "{*}AcctSvcrRef"):
                    ref = f"{ref}/{k}"
                remittance = " ".join(
                    t
                    for t in (
                        *(u.text or "" for u in (one.iterfind("{*}RmtInf/{*}Ustrd") if one is not None else [])),
                        _text(one, "{*}RmtInf/{*}Strd/{*}CdtrRefInf/{*}Ref"),
                        _text(entry, "{*}AddtlNtryInf"),
                    )
                    if t.strip()
                )
                payer = _text(one, "{*}RltdPties/{*}Dbtr/{*}Nm") or _text(one, "{*}RltdPties/{*}Dbtr/{*}Pty/{*}Nm")
                statement.lines.append(_line(n, ref, stmt_id, booked, amount_node, payer, remittance))
    if n == 0:
        raise BankFileRejected("the CAMT.053 file has no statement entries (Ntry)")
    return statement


def _line(n: int, ref: str, stmt_id: str, booked: str, amount_node: Any, payer: str, remittance: str) -> BankLine:
    try:
        amount = Decimal((amount_node.text or "").strip()) if amount_node is not None else Decimal("NaN")
    except InvalidOperation:
        amount = Decimal("NaN")
    try:
        day: date | None = date.fromisoformat(booked)
    except ValueError:
        day = None  # reported by the import as a missing date
    currency = (amount_node.get("Ccy") or "").strip().upper() if amount_node is not None else ""
    if not ref:  # no bank reference: derived from what identifies the line within its statement
        ref = _derived_ref("CAMT", stmt_id, n, booked, str(amount), remittance)
    return BankLine(n, ref[:64], day, amount, currency, " ".join(payer.split()), " ".join(remittance.split()))


def _derived_ref(kind: str, *parts: Any) -> str:
    return f"{kind}-" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:20]


# --- MT940 ----------------------------------------------------------------------------------------


def _mt940(content: bytes) -> Statement:
    import mt940

    text = content.decode("utf-8", errors="strict") if _is_utf8(content) else content.decode("latin-1")
    try:
        transactions = mt940.parse(text)
    except Exception as exc:  # the library raises several types for a malformed file
        raise BankFileRejected(f"the MT940 file cannot be read ({type(exc).__name__}: {exc})") from None
    statement = Statement(FORMAT_MT940)
    stmt_ref = str(transactions.data.get("transaction_reference") or "")
    for n, tx in enumerate(transactions, start=1):
        data = tx.data
        amount = data.get("amount")
        if data.get("status") not in ("C", "RD") or amount is None or amount.amount <= 0:
            statement.debits += 1
            continue
        when = data.get("entry_date") or data.get("date")
        booked = date(when.year, when.month, when.day)
        ref = next(
            (r for r in (data.get("bank_reference"), data.get("customer_reference")) if r and r.upper() != "NONREF"),
            "",
        )
        purpose = " ".join(str(data.get(k) or "") for k in ("purpose", "additional_purpose", "extra_details"))
        ref = ref or _derived_ref("MT940", stmt_ref, n, booked, amount.amount, purpose)
        payer = str(data.get("applicant_name") or "")
        payer, purpose = " ".join(payer.split()), " ".join(purpose.split())
        statement.lines.append(BankLine(n, ref[:64], booked, amount.amount, amount.currency, payer, purpose))
    if not statement.lines and not statement.debits:
        raise BankFileRejected("the MT940 file has no transactions (:61: lines)")
    return statement


def _is_utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- which debtor paid ----------------------------------------------------------------------------


def tokens(text: str) -> set[str]:
    """The words of a remittance text that could be an invoice number or a debtor reference."""
    return {t.strip("./-_") for t in _TOKEN.findall(text)} - {""}


def resolve_debtors(
    lines: list[BankLine], invoice_debtor: dict[str, str], ref_known: set[str], name_debtor: dict[str, str | None]
) -> None:
    """Set each line's `debtor_ref` from the client's ledger: the debtor of an invoice number named in the
    remittance, else a debtor reference named there, else the one debtor whose name is the payer's.
    `name_debtor` maps a lower-cased name to its debtor's reference (None when several debtors share it).
    Lines that name debtors ambiguously (two different ones) stay unresolved."""
    for line in lines:
        words = tokens(line.remittance)
        by_invoice = {invoice_debtor[w] for w in words if w in invoice_debtor}
        by_ref = {w for w in words if w in ref_known}
        if len(by_invoice) == 1:
            line.debtor_ref = by_invoice.pop()
        elif not by_invoice and len(by_ref) == 1:
            line.debtor_ref = by_ref.pop()
        elif not by_invoice and not by_ref and line.payer:
            line.debtor_ref = name_debtor.get(line.payer.lower()) or ""
