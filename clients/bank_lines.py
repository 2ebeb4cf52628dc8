"""What every bank-statement reader produces, and the checks they share.

A statement is read into `BankLine`s (its credit lines, the payments received) and refused as a whole with
`BankFileRejected` when anything in it cannot be read or does not add up. Two guarantees hold for every format:

- **The statement reconciles with itself.** Where the file carries balances or control totals, opening +
  credits - debits must equal the closing balance (per statement and currency); `check_balance` refuses
  otherwise, naming the statement, the figures and the difference ("statement 3 (account NL.., EUR): opening
  1,000.00 + credits 250.00 - debits 0.00 = 1,250.00, but the closing balance is 1,245.00: 5.00 unaccounted
  for"). So no file is accepted with amounts that disagree with its own totals.
- **A line's identity is where it stands, not what it says.** Banks and payers repeat references, so a
  line's payment reference (`line_ref`, the idempotency key of the payment it becomes) is derived from the
  statement's identity (account and statement number, or the CAMT statement id), the line's position in
  it, the bank's own entry reference where there is one, the date and the amount. The same statement read
  again gives the same references (a re-upload records nothing twice); two lines with the same customer
  reference get two.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from clients.imports import FileRejected

FORMAT_CAMT053 = "camt.053"
FORMAT_MT940 = "mt940"
FORMAT_BAI2 = "bai2"
REF_READABLE = 40  # characters of the bank's reference kept readable in a line's payment reference


class BankFileRejected(FileRejected):
    """The statement cannot be read or does not add up (the message says where and why): nothing is posted."""


@dataclass
class BankLine:
    """One credit line of a statement, in the payments import's terms."""

    line: int  # the line's position in the file's entries (1 = first entry), as the report names it
    payment_ref: str
    booked_on: date | None
    amount: Decimal
    currency: str
    payer: str = ""
    remittance: str = ""
    debtor_ref: str = ""
    hints: str = ""  # more text to find the debtor in, not shown (MT940: the purpose with spaces between lines)


@dataclass
class DebitLine:
    """One booked debit of a statement (money out of the account): matched against the remittances the agency
    paid (`clients.payouts.match_debits`). `refs` holds every reference the bank gave back (end-to-end id,
    message and payment-information ids, the bank's own reference, the remittance text)."""

    line: int
    line_ref: str
    booked_on: date | None
    value_on: date | None
    amount: Decimal  # positive
    currency: str
    account: str  # the statement's account (IBAN or number)
    refs: str = ""


@dataclass
class ClosingBalance:
    """The closing booked balance of a statement's account on a day (trust reconciliation)."""

    account: str
    currency: str
    on: date
    amount: Decimal  # signed


@dataclass
class Statement:
    format: str
    lines: list[BankLine] = field(default_factory=list)
    debits: int = 0  # lines left out: debits, reversals, entries not booked
    debit_lines: list[DebitLine] = field(default_factory=list)
    closing: list[ClosingBalance] = field(default_factory=list)


def line_ref(kind: str, statement_id: str, position: str, bank_ref: str, booked: Any, amount: Decimal) -> str:
    """The payment reference of a statement line: the bank's reference (readable, when there is one) and a
    digest of the line's identity (statement, position, bank reference, date, amount). At most 64 characters."""
    identity = "|".join((kind, statement_id, position, bank_ref, str(booked), plain(amount)))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    readable = "".join(bank_ref.split())[:REF_READABLE] or kind.upper()
    return f"{readable}~{digest}"


def plain(amount: Decimal) -> str:
    """An amount as the same text however the file wrote it (1000, 1000,00 and 1000.0 are '1000')."""
    return format(amount.normalize(), "f") if amount.is_finite() else str(amount)


def file_digest(content: bytes) -> str:
    """Stands in for a statement's identity when the file gives none (no account, no statement number)."""
    return hashlib.sha256(content).hexdigest()[:16]


def money_text(amount: Decimal, currency: str, *alike: Decimal) -> str:
    """1234.5 EUR → '1,234.50': the currency's decimals, or as many as the file wrote in `amount` and in the
    amounts shown `alike` (beside it in the same message)."""
    from provider.core.money import MoneyError, exponent

    try:
        places = exponent(currency)
    except MoneyError:
        places = 2
    for value in (amount, *alike):
        exp = value.as_tuple().exponent
        places = max(places, -exp if isinstance(exp, int) else 0)
    return format(amount, f",.{places}f")


def check_balance(
    where: str, currency: str, opening: Decimal, credits: Decimal, debits: Decimal, closing: Decimal
) -> None:
    """Refuse a statement whose opening balance + credits - debits is not its closing balance."""
    computed = opening + credits - debits
    if computed != closing:
        figures = (opening, credits, debits, closing)
        m = lambda value: money_text(value, currency, *figures)  # noqa: E731
        raise BankFileRejected(
            f"{where}: opening {m(opening)} + credits {m(credits)} − debits {m(debits)} = {m(computed)}, "  # noqa: RUF001
            f"but the closing balance is {m(closing)}: {m(abs(closing - computed))} unaccounted for"
        )


def first_of(problems: list[str]) -> str:
    """The first statement's problem, and how many other statements of the file have one."""
    more = len(problems) - 1
    if not more:
        return problems[0]
    return f"{problems[0]} (and {more} more statement{'s' if more > 1 else ''} of this file with a problem like it)"


_SPACES = re.compile(r"\s+")


def squeeze(text: str) -> str:
    """Runs of spaces and line breaks as one space."""
    return _SPACES.sub(" ", text).strip()
