"""BAI2 (cash management balance reporting) files, read record by record with their file lines.

- Records end with "/"; a physical line may hold several records ("16,...,/16,...,/") and a record may go on
  in continuation (88) records. A transaction detail's text runs to the end of its record.
- Funds types 0, 1, 2, Z or empty, S (immediate, one-day and two-or-more-day amounts), V (value date and
  time) and D (a distribution of n days and amounts) are read; any other is refused.
- Type codes are classified by their range as BAI2 lays them out: 100-399 and 920-959 are credits (payments),
  400-699 and 960-999 debits, the rest (status 001-099 and 900-919, loan 700-799, unused 800-899) neither.
  A code this reader has never seen is read by its range, never a reason to refuse the file.
- The file must check against its own trailers: each account trailer (49) gives the sum of the account's
  amounts (its 03 summary amounts and its 16 details) and its number of records, each group trailer (98)
  the sum of its accounts' totals, its number of accounts and records, the file trailer (99) the sum of the
  groups' totals, its number of groups and records. A file that disagrees with any of them is refused,
  naming the trailer's line, what it states and what the file holds.

The `bai2` library is not used: it refuses funds type S, several records on one line and any type code it
does not list, which real banks send.

Credit details are payments; debit details are read as debit lines (a remittance paid out is matched by its
references), and an account's closing ledger balance (status 015) feeds the trust reconciliation.

Amounts are in the currency's minor units (the account's currency, else the group's, USD when neither is
given); a line's date is its group's as-of date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from clients.bank_lines import (
    FORMAT_BAI2,
    BankFileRejected,
    BankLine,
    ClosingBalance,
    DebitLine,
    Statement,
    line_ref,
    squeeze,
)

_RECORD_START = re.compile(r"/\s*(?=(?:01|02|03|16|49|88|98|99),)")
_START = re.compile(r"^(?:(?P<code>0[123]|16|49|9[89]),|(?P<cont>88)[,:])")  # (some banks write "88:")
CLOSING_LEDGER = 15  # status type code 015: the closing ledger balance (the account's booked balance)
FUNDS_EXTRA = {"": 0, "0": 0, "1": 0, "2": 0, "Z": 0, "S": 3, "V": 2}


def kind_of(type_code: int) -> str:
    """'credit', 'debit' or 'other' for a BAI2 type code, by the range it lies in."""
    if 100 <= type_code <= 399 or 920 <= type_code <= 959:
        return "credit"
    if 400 <= type_code <= 699 or 960 <= type_code <= 999:
        return "debit"
    return "other"


@dataclass
class _Record:
    code: str
    line: int
    parts: list[tuple[str, bool]]  # its text and continuations, each with whether "/" ended it

    def fields(self) -> list[str]:
        """The record's fields, its continuations joined: a continuation goes on with the next field, except
        that a transaction detail's text not ended by "/" goes on in its continuation (as one text)."""
        text = ""
        for body, ended in self.parts:
            text += body + ("," if ended or self.code != "16" else " ")
        return text[:-1].split(",") if text else []


def records_of(text: str) -> list[_Record]:
    """The file's records. A physical line that starts with no record code goes on with the record before it
    when that one was not ended by "/" (a record wrapped at a fixed line length)."""
    out: list[_Record] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        pieces = _RECORD_START.split(line)
        if not _START.match(pieces[0]) and out and not out[-1].parts[-1][1]:
            body, _ = out[-1].parts[-1]
            more = pieces.pop(0).strip()
            out[-1].parts[-1] = (f"{body} {more.removesuffix('/')}", more.endswith("/") or bool(pieces))
        for i, piece in enumerate(pieces):
            piece = piece.strip()
            ended = i < len(pieces) - 1 or piece.endswith("/")
            found = _START.match(piece)
            if not found:
                raise BankFileRejected(
                    f"line {number} of the BAI2 file: {piece[:30]!r} is not a BAI2 record (01, 02, 03, 16, 49 ... 99)"
                )
            code, rest = found["code"] or found["cont"], piece[found.end() :].removesuffix("/")
            if code == "88":
                if not out:
                    raise BankFileRejected(
                        f"line {number} of the BAI2 file: a continuation (88) record with nothing before it"
                    )
                out[-1].parts.append((rest, ended))
            else:
                out.append(_Record(code, number, [(rest, ended)]))
    return out


def _int(text: str, record: _Record, what: str) -> int:
    t = text.strip()
    if t == "":
        return 0
    if not re.fullmatch(r"[+-]?\d+", t):
        raise BankFileRejected(
            f"line {record.line} of the BAI2 file: the {what} {t!r} of record {record.code} is not a whole number"
        )
    return int(t)


def _date(text: str, record: _Record) -> date | None:
    t = text.strip()
    if not t:
        return None
    try:
        return date(2000 + int(t[:2]), int(t[2:4]), int(t[4:6]))
    except ValueError:
        raise BankFileRejected(
            f"line {record.line} of the BAI2 file: the as-of date {t!r} is not a date (YYMMDD)"
        ) from None


@dataclass
class _Detail:
    type_code: int
    amount: int
    bank_ref: str
    customer_ref: str
    text: str
    record: _Record


def _funds(fields: list[str], at: int, record: _Record) -> int:
    """The index after a funds type and its own fields."""
    kind = fields[at].strip().upper() if at < len(fields) else ""
    if kind == "D":
        count = _int(fields[at + 1] if at + 1 < len(fields) else "", record, "number of distributions")
        return at + 2 + 2 * count
    if kind not in FUNDS_EXTRA:
        raise BankFileRejected(
            f"line {record.line} of the BAI2 file: funds type {kind!r} of record {record.code} is not one BAI2 defines "
            "(0, 1, 2, S, V, D or Z)"
        )
    return at + 1 + FUNDS_EXTRA[kind]


def _type_code(text: str, record: _Record) -> int:
    t = text.strip()
    if not re.fullmatch(r"\d{3}", t):
        raise BankFileRejected(
            f"line {record.line} of the BAI2 file: the type code {t!r} of record {record.code} is not three digits"
        )
    return int(t)


def _detail(record: _Record) -> _Detail:
    f = record.fields()
    if len(f) < 2:
        raise BankFileRejected(
            f"line {record.line} of the BAI2 file: the transaction detail (16) has no type code and amount"
        )
    code, amount = _type_code(f[0], record), _int(f[1], record, "amount")
    at = _funds(f, 2, record)
    rest = f[at:]
    bank_ref = rest[0].strip() if rest else ""
    customer_ref = rest[1].strip() if len(rest) > 1 else ""
    return _Detail(code, amount, bank_ref, customer_ref, squeeze(",".join(rest[2:])), record)


def _summary_total(record: _Record) -> int:
    """The sum of the amounts of an account identifier (03): groups of type code, amount, item count, funds."""
    return sum(amount for _code, amount, _given in _summary(record))


def _summary(record: _Record) -> list[tuple[int, int, bool]]:
    """(type code, amount, whether an amount was written) of each group of an account identifier (03)."""
    f = record.fields()[2:]
    out, at = [], 0
    while at < len(f):
        if not f[at].strip():  # banks differ in the empty fields they leave before "/"
            at += 1
            continue
        code = _type_code(f[at], record)
        text = f[at + 1] if at + 1 < len(f) else ""
        out.append((code, _int(text, record, "amount"), bool(text.strip())))
        at = _funds(f, at + 3, record)
    return out


@dataclass
class _Account:
    header: _Record
    details: list[_Detail] = field(default_factory=list)
    records: int = 1


def _trailer(record: _Record, stated_total: int, found_total: int, checks: list[tuple[str, int, int]]) -> None:
    names = {"49": "account trailer (49)", "98": "group trailer (98)", "99": "file trailer (99)"}
    problems = [f"the control total is {stated_total} but the amounts add up to {found_total}"] * (
        stated_total != found_total
    )
    problems += [
        f"it counts {stated} {what} but there are {found}" for what, stated, found in checks if stated != found
    ]
    if problems:
        raise BankFileRejected(
            f"line {record.line} of the BAI2 file: the file is incomplete or was changed: the {names[record.code]} "
            f"does not match what comes before it: {'; '.join(problems)}"
        )


def read(content: bytes) -> Statement:
    records = records_of(content.decode("latin-1"))
    if not records or records[0].code != "01":
        raise BankFileRejected("the BAI2 file does not start with a file header (01) record")
    out = Statement(FORMAT_BAI2)
    sender = (records[0].fields() or [""])[0]
    groups: list[int] = []
    group_total = accounts = group_records = 0
    group: list[str] = []
    account: _Account | None = None
    n = 0
    for record in records[1:]:
        f = record.fields()
        group_records += len(record.parts) if group else 0
        if record.code == "02":
            group, group_total, accounts, group_records = f, 0, 0, len(record.parts)
        elif record.code == "03":
            account = _Account(record, records=len(record.parts))
        elif record.code == "16":
            if account is None:
                raise BankFileRejected(
                    f"line {record.line} of the BAI2 file: a transaction detail (16) outside an account (03)"
                )
            account.details.append(_detail(record))
            account.records += len(record.parts)
        elif record.code == "49":
            if account is None:
                raise BankFileRejected(
                    f"line {record.line} of the BAI2 file: an account trailer (49) without its account (03)"
                )
            total = _summary_total(account.header) + sum(d.amount for d in account.details)
            stated = _int(f[0] if f else "", record, "control total")
            count = _int(f[1] if len(f) > 1 else "", record, "number of records")
            _trailer(record, stated, total, [("records", count, account.records + len(record.parts))])
            n = _lines(out, account, group, sender, n)
            group_total += stated
            accounts += 1
            account = None
        elif record.code == "98":
            stated = _int(f[0] if f else "", record, "control total")
            checks = [("accounts", _int(f[1] if len(f) > 1 else "", record, "number of accounts"), accounts)]
            checks.append(("records", _int(f[2] if len(f) > 2 else "", record, "number of records"), group_records))
            _trailer(record, stated, group_total, checks)
            groups.append(stated)
            group = []
        elif record.code == "99":
            stated = _int(f[0] if f else "", record, "control total")
            count_records = sum(len(r.parts) for r in records)
            checks = [("groups", _int(f[1] if len(f) > 1 else "", record, "number of groups"), len(groups))]
            checks.append(("records", _int(f[2] if len(f) > 2 else "", record, "number of records"), count_records))
            _trailer(record, stated, sum(groups), checks)
            return out
        elif record.code == "01":
            raise BankFileRejected(
                f"line {record.line} of the BAI2 file: a second file header (01) before the file trailer (99)"
            )
    raise BankFileRejected("the BAI2 file ends without its file trailer (99): it is incomplete")


def _lines(out: Statement, account: _Account, group: list[str], sender: str, n: int) -> int:
    """Append the account's credit details to `out`; returns the file's entry count so far."""
    from provider.core.money import MoneyError, exponent

    head = account.header.fields()
    number = head[0].strip() if head else ""
    currency = ((head[1] if len(head) > 1 else "") or (group[5] if len(group) > 5 else "") or "USD").strip().upper()
    as_of = _date(group[3] if len(group) > 3 else "", account.header)
    if as_of is None:
        raise BankFileRejected(
            f"line {account.header.line} of the BAI2 file: account {number}'s group header (02) has no as-of date, "
            "so its transactions have no date"
        )
    try:
        places = exponent(currency)
    except MoneyError:
        raise BankFileRejected(
            f"line {account.header.line}: account {number}'s currency {currency!r} is not an ISO 4217 currency code"
        ) from None
    originator = group[1].strip() if len(group) > 1 else ""
    identity = f"{sender}|{originator}|{as_of}|{number}|{currency}"
    for code, amount, given in _summary(account.header):
        if code == CLOSING_LEDGER and given:
            out.closing.append(ClosingBalance(number, currency, as_of, Decimal(amount).scaleb(-places)))
    for position, d in enumerate(account.details, start=1):
        n += 1
        if kind_of(d.type_code) != "credit" or d.amount <= 0:
            out.debits += 1
            if kind_of(d.type_code) == "debit" and d.amount > 0:  # money out: a remittance paid, perhaps
                amount = Decimal(d.amount).scaleb(-places)
                ref = line_ref("BAI2", identity, str(position), d.bank_ref or d.customer_ref, as_of, -amount)
                refs = squeeze(f"{d.bank_ref} {d.customer_ref} {d.text}")
                out.debit_lines.append(DebitLine(n, ref, as_of, as_of, amount, currency, number, refs))
            continue
        amount = Decimal(d.amount).scaleb(-places)
        ref = line_ref("BAI2", identity, str(position), d.bank_ref or d.customer_ref, as_of, amount)
        remittance = squeeze(f"{d.customer_ref} {d.text}")
        out.lines.append(BankLine(n, ref, as_of, amount, currency, "", remittance))
    return n
