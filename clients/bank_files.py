"""Bank statements as payment files: ISO 20022 CAMT.053 (XML), SWIFT MT940 and BAI2, read into payment rows.

The agency's bank reports what its collection account received. Each credit line becomes a payment row of
the payments import (clients.payment_imports), so statements get the same checks, idempotency and
auto-allocation as a CSV: the payment reference is the line's identity in its statement (see
`clients.bank_lines`: stable across re-uploads, different for two lines even when they repeat a reference),
the date is the booking date, the reference is the remittance text (auto-allocation then pays the invoice it
names). Debit lines (fees, transfers out) are not payments received: they are counted and left out.

Each format has its reader: `clients.bank_camt` (CAMT.053, through defusedxml), `clients.bank_mt940`,
`clients.bank_bai2`. Every reader checks the statement against its own balances or control totals and
refuses the whole file, naming the statement or file line and the difference, when they disagree.

Which debtor paid is not in the statement; `debtor_ref` is found in the client's ledger by
`resolve_debtors`: an open invoice number or a debtor reference written in the remittance text, else the
one debtor whose name is the payer's name. A line where none of these finds exactly one debtor keeps an
empty debtor reference, and the import reports it ("no debtor found ...") instead of guessing.

OFX, CAMT.052 and CAMT.054 files are recognised and refused with what to download instead.
"""

from __future__ import annotations

import logging
import re

from clients import bank_bai2, bank_camt, bank_mt940
from clients.bank_lines import (
    FORMAT_BAI2,
    FORMAT_CAMT053,
    FORMAT_MT940,
    BankFileRejected,
    BankLine,
    Statement,
)

log = logging.getLogger(__name__)
NAMES = {FORMAT_CAMT053: "CAMT.053", FORMAT_MT940: "MT940", FORMAT_BAI2: "BAI2"}
__all__ = ["FORMAT_BAI2", "FORMAT_CAMT053", "FORMAT_MT940", "BankFileRejected", "BankLine", "Statement"]

# formats recognised only to be refused with what to upload instead
UNSUPPORTED = {
    "ofx": "an OFX/QFX download",
    "camt.052": "a CAMT.052 intraday account report",
    "camt.054": "a CAMT.054 debit/credit notification",
    "mt942": "an MT942 interim transaction report",
}
# a file named so is read as a statement (or refused as none)
# (.ofx and .qfx are recognised to be refused with what to download instead)
EXTENSIONS: tuple[str, ...] = (".xml", ".sta", ".940", ".mt940", ".swi", ".mta", ".stm", ".mt9", ".053", ".camt")
EXTENSIONS += (".bai", ".bai2", ".ofx", ".qfx")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_/.]{1,63}")
_MT940_FIELD = re.compile(r"(^|\n)\s*(\{4:)?:(20|25|28C?|60[FM]|61):")


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
    if re.match(rb"01,[^\r\n]*(/|\r?\n02,)", head):
        return FORMAT_BAI2
    text = content[:65536].decode("latin-1")
    if re.search(r"(^|\n):(34F|13D?):", text) and not re.search(r"(^|\n):6[02][FM]:", text):
        return "mt942"
    if _MT940_FIELD.search(text):
        return FORMAT_MT940
    return None


def read_statement(content: bytes) -> Statement:
    """The credit lines of a statement file; raises BankFileRejected (saying where and why) when it cannot be
    read or does not agree with its own balances or control totals."""
    if content[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a UTF-16 export: read as the same text in UTF-8
        try:
            content = content.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise BankFileRejected("the file says it is UTF-16 text but is not") from None
    kind = sniff(content)
    readers = {FORMAT_CAMT053: bank_camt.read, FORMAT_MT940: bank_mt940.read, FORMAT_BAI2: bank_bai2.read}
    if kind in readers:
        try:
            return readers[kind](content)
        except BankFileRejected:
            raise
        except (ValueError, ArithmeticError, IndexError, KeyError, AttributeError, TypeError):
            # a shape of file no reader foresaw: refused in words, logged for us with the details
            log.exception("unreadable %s statement", kind)
            raise BankFileRejected(
                f"this {NAMES[kind]} file cannot be read: it does not follow the format where a reader expects it"
            ) from None
    if kind in UNSUPPORTED:
        raise BankFileRejected(
            f"this is {UNSUPPORTED[kind]}, which is not read here; download the account statement as CAMT.053, "
            "MT940 or BAI2 instead"
        )
    raise BankFileRejected("this is neither a CAMT.053, an MT940 nor a BAI2 bank statement")


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
