"""SWIFT MT940 statements, read field by field with the file's own line numbers.

Banks write MT940 each in their own way, so the reader is lenient where the meaning is clear and refuses where
it is not, always naming the file line:

- fields are found by their tags (`:20:`, `:25:`, `:28C:`, `:60F:`/`:60M:`, `:61:`, `:86:`, `:62F:`/`:62M:`)
  inside or outside a SWIFT envelope (`{1:..}{2:..}{4:` ... `-}`); header lines some banks put between
  messages are skipped; `:64:`, `:65:` (available balances) and other fields are not needed and not read;
- an amount takes the standard decimal comma (`1250,00`, `9,`) or, as Rabobank writes it, a decimal point
  (`1250.00`); anything else (both marks, letters) is refused;
- a `:61:` line gives value date, optional entry date, the mark (C, D, RC, RD, any case), an optional funds
  code, the amount, the transaction type and the references (customer `//` bank; a reference longer than
  SWIFT allows is kept, not a reason to refuse);
- `:86:` details are read in the structures of the main German banks (`166?00...?20..?29` purpose, `?32`/`?33`
  payer, also with `>` as Triodos and `~` as Polish banks write it) and of the Dutch banks (`/NAME/`,
  `/REMI/`, `/CNTP/`, `/ORDP/`), else kept as free text.

Why not the `mt-940` library (which the tests still use as a second opinion): it reads a decimal point as no
amount at all and folds the lines that follow into one (issue 18: 39 lines read as one credit), gives no file
line numbers, and fails on real files (ASN Bank's references longer than SWIFT allows) with its own objects
in the message.

Every statement must carry an opening (`:60F:`/`:60M:`) and a closing (`:62F:`/`:62M:`) balance in one
currency, and opening + credits - debits must equal the closing balance (C and RD add, D and RC subtract);
otherwise the file is refused (see `bank_lines.check_balance`). Only C lines are payments: D, RC (a credit
taken back) and RD (a debit returned) are not money a debtor paid. D lines are read as debit lines (money out,
with their references and the :86: text), so a remittance the agency paid is marked paid when the trust account's
statement shows it (`clients.payouts.match_debits`), and each statement's closing balance feeds the trust
reconciliation.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from clients.bank_lines import (
    FORMAT_MT940,
    BankFileRejected,
    BankLine,
    ClosingBalance,
    DebitLine,
    Statement,
    check_balance,
    file_digest,
    first_of,
    line_ref,
    plain,
    squeeze,
)

_TAG = re.compile(r"^:(?P<tag>[0-9]{2}[A-Z]?|NS):(?P<value>.*)$")
_BALANCE = re.compile(r"^(?P<mark>[CD])(?P<date>\d{6})(?P<currency>[A-Z]{3})?(?P<amount>\d\S*)$", re.IGNORECASE)
_61 = re.compile(
    r"^(?P<value>\d{6})(?P<entry>\d{4}| {4})?\s?(?P<mark>[Rr]?[CDcd])(?P<funds>[A-Za-z])?\s?(?P<amount>\d[\d.,]*)"
    r" ?(?P<type>[NSF][A-Za-z0-9 ]{3})?(?P<rest>.*)$",
    re.DOTALL,
)
_OPENING = ("60F", "60M")
_CLOSING = ("62F", "62M")
BALANCE_EXAMPLE = "C or D, the date as YYMMDD, the currency and the amount, e.g. C260310EUR1000,00"


@dataclass
class _Field:
    tag: str
    value: str
    line: int


@dataclass
class _Balance:
    sign: int
    day: date
    currency: str
    amount: Decimal
    line: int

    @property
    def signed(self) -> Decimal:
        return self.amount * self.sign


@dataclass
class _Statement:
    number: int  # 1 = the file's first statement
    line: int
    fields: list[_Field] = field(default_factory=list)
    account: str = ""
    seq: str = ""
    opening: _Balance | None = None
    closing: _Balance | None = None
    entries: list[tuple[_Field, str]] = field(default_factory=list)  # each :61: field and its :86: text

    def where(self) -> str:
        account = f"account {self.account}, " if self.account else ""
        currency = self.opening.currency if self.opening else ""
        return f"statement {self.number} ({account}{currency}{', ' if currency else ''}from line {self.line})"


def decode(content: bytes) -> str:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("latin-1")
    # Ctrl-Z (end of file on DOS) ends a message in some banks' files, even mid-line
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x1a", "\n")


def fields_of(text: str) -> list[_Field]:
    """The tagged fields of the file, each with the line it starts on (continuation lines joined with \\n)."""
    out: list[_Field] = []
    current: _Field | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if line.startswith("{"):  # a SWIFT envelope: the text block starts after "{4:"
            at = line.find("{4:")
            if at < 0:
                current = None
                continue
            line = line[at + 3 :]
            if not line.strip():
                continue
        if line.strip() == "-" or line.startswith("-}"):
            current = None  # the end of a message; what follows until the next field is not part of it
            continue
        found = _TAG.match(line)
        if found:
            current = _Field(found["tag"], found["value"], number)
            out.append(current)
        elif current is not None:
            current.value += "\n" + line
    return out


def _amount(text: str, line: int, what: str) -> Decimal:
    """An MT940 amount: digits with a decimal comma (standard) or a decimal point (as Rabobank writes it), at most
    15 characters (SWIFT's 15d; banks pad with leading zeros, which do not count). A longer one is refused, never
    cut (its tail would become the reference)."""
    t = text.strip()
    if len(t.lstrip("0")) > 15 and re.fullmatch(r"\d+([.,]\d*)?", t, flags=re.ASCII):
        raise BankFileRejected(
            f"line {line} of the MT940 file: the amount {t!r} of the {what} is too long (at most 15 characters)"
        )
    if re.fullmatch(r"\d+(,\d*)?", t, flags=re.ASCII):
        return Decimal(t.replace(",", ".").rstrip(".") or "0")
    if re.fullmatch(r"\d+\.\d*", t, flags=re.ASCII):
        return Decimal(t.rstrip(".") or "0")
    raise BankFileRejected(
        f"line {line} of the MT940 file: the amount {t!r} of the {what} is not an amount "
        "(digits with one decimal comma, e.g. 1250,00)"
    )


def _yymmdd(text: str, line: int, what: str, month_end: bool = False) -> date:
    """A YYMMDD date. With `month_end`, a day past the month's end (German banks value interest on 30 February)
    is the month's last day."""
    try:
        year, month, day = int(text[:2]), int(text[2:4]), int(text[4:6])
        year = 2000 + year if year < 80 else 1900 + year
        if month_end and 1 <= month <= 12 and 28 < day <= 31:
            day = min(day, calendar.monthrange(year, month)[1])
        return date(year, month, day)
    except ValueError:
        raise BankFileRejected(
            f"line {line} of the MT940 file: the date {text!r} of the {what} is not a date (YYMMDD)"
        ) from None


def _balance(f: _Field) -> _Balance:
    what = f"{'opening' if f.tag in _OPENING else 'closing'} balance (:{f.tag}:)"
    value = "".join(f.value.split())
    found = _BALANCE.match(value)
    if not found:
        raise BankFileRejected(
            f"line {f.line} of the MT940 file: the {what} {value!r} is not a balance; it should read {BALANCE_EXAMPLE}"
        )
    return _Balance(
        -1 if found["mark"].upper() == "D" else 1,
        _yymmdd(found["date"], f.line, what),
        (found["currency"] or "").upper(),  # some banks leave it out of one of the balances
        _amount(found["amount"], f.line, what),
        f.line,
    )


def statements_of(fields: list[_Field]) -> list[_Statement]:
    """Fields grouped into statements: a statement starts at :20:, or at :25:, :28C: or :60a: after a closing
    balance (banks that leave out :20: between the statements of a file)."""
    out: list[_Statement] = []
    current: _Statement | None = None
    for f in fields:
        closed = current is not None and any(g.tag in _CLOSING for g in current.fields)
        if current is None or f.tag == "20" or (f.tag in ("25", "28", "28C", *_OPENING) and closed):
            current = _Statement(len(out) + 1, f.line)
            out.append(current)
        current.fields.append(f)
    for s in out:
        _fill(s)
    return out


def _fill(s: _Statement) -> None:
    last_61: _Field | None = None
    for f in s.fields:
        if f.tag == "25" and s.account:
            raise BankFileRejected(
                f"line {f.line} of the MT940 file: a second account identification (:25:) inside statement "
                f"{s.number} (from line {s.line}); a statement names its account once, before its balances"
            )
        if f.tag == "25":
            s.account = "".join(f.value.split())[:40]
        elif f.tag in ("28", "28C"):
            s.seq = "".join(f.value.split())
        elif f.tag in _OPENING and s.opening is None:
            s.opening = _balance(f)
        elif f.tag in _CLOSING:
            s.closing = _balance(f)
        elif f.tag == "61":
            s.entries.append((f, ""))
            last_61 = f
        elif f.tag in ("86", "NS") and last_61 is not None:  # the details of the :61: line just before
            before = s.entries[-1][1]
            s.entries[-1] = (last_61, f"{before}\n{f.value}" if before else f.value)  # (some banks write several)
        if f.tag not in ("61", "86", "NS"):
            last_61 = None


@dataclass
class _Entry:
    mark: str
    amount: Decimal
    booked: date
    customer_ref: str
    bank_ref: str
    extra: str  # the :61: line's supplementary details
    value: date | None = None


def _entry(f: _Field) -> _Entry:
    found = _61.match(f.value.strip())
    if not found:
        raise BankFileRejected(
            f"line {f.line} of the MT940 file: the statement line (:61:) {f.value.splitlines()[0][:40]!r} cannot be "
            "read: it should start with the value date (YYMMDD), an optional entry date (MMDD), C or D and the amount"
        )
    value = _yymmdd(found["value"], f.line, "statement line (:61:)", month_end=True)
    booked = value
    if found["entry"] and found["entry"].strip():
        try:
            booked = date(value.year, int(found["entry"][:2]), int(found["entry"][2:]))
        except ValueError:
            raise BankFileRejected(
                f"line {f.line} of the MT940 file: the entry date {found['entry']!r} of the statement line (:61:) "
                "is not a date (MMDD)"
            ) from None
        if booked - value > timedelta(days=180):  # booked in December for a value date in January
            booked = booked.replace(year=booked.year - 1)
        elif value - booked > timedelta(days=180):
            booked = booked.replace(year=booked.year + 1)
    rest = found["rest"]
    if (found["type"] or "").upper() == "NONR" and rest.upper().startswith("EF"):  # no type code, then NONREF
        rest = "NONREF" + rest[2:]
    first, _, extra = rest.partition("\n")
    customer, _, bank = first.partition("//")
    return _Entry(
        found["mark"].upper(),
        _amount(found["amount"], f.line, "statement line (:61:)"),
        booked,
        customer.strip(),
        bank.strip(),
        extra,
        value,
    )


def read(content: bytes) -> Statement:
    """Every :61: line of every statement in the file (a bank's file often holds several days)."""
    statements = statements_of(fields_of(decode(content)))
    if not statements:
        raise BankFileRejected("the MT940 file has no statements (no :20:, :25:, :60F: or :61: fields)")
    out = Statement(FORMAT_MT940)
    seen: dict[str, int] = {}
    unbalanced: list[str] = []
    n = 0
    for s in statements:
        entries = [(_entry(f), details) for f, details in s.entries]
        n += len(entries)
        try:
            _reconcile(s, [e for e, _ in entries])
        except BankFileRejected as exc:
            unbalanced.append(str(exc))
            continue
        if s.opening is None or s.closing is None:
            continue  # no lines (see _reconcile)
        identity = f"{s.account}|{s.seq}|{s.opening.day}|{plain(s.opening.signed)}|{s.opening.currency}"
        if not s.account and not s.seq:
            identity += "|" + file_digest(content)
        seen[identity] = seen.get(identity, 0) + 1
        identity += f"|{seen[identity]}" * (seen[identity] > 1)  # the same statement twice in one file
        _add_lines(out, entries, identity, s.opening.currency, first=n - len(entries) + 1, account=s.account)
        out.closing.append(ClosingBalance(s.account, s.closing.currency, s.closing.day, s.closing.signed))
    if unbalanced:
        raise BankFileRejected(first_of(unbalanced))
    return out


def _add_lines(
    out: Statement, entries: list[tuple[_Entry, str]], identity: str, currency: str, first: int, account: str = ""
) -> None:
    """The statement's C lines as payment lines and its D lines as debit lines (remittances paid out); reversals
    (RC, RD) are neither (`first`: the file's entry number of its first line)."""
    for position, (e, details) in enumerate(entries, start=1):
        if e.mark != "C" or e.amount <= 0:
            out.debits += 1
            if e.mark == "D" and e.amount > 0:
                out.debit_lines.append(_debit_line(e, details, identity, currency, position, first, account))
            continue
        refs = [r for r in (e.bank_ref, e.customer_ref) if r and r.upper() not in ("NONREF", "NOTPROVIDED")]
        ref = line_ref("MT940", identity, str(position), refs[0] if refs else "", e.booked, e.amount)
        payer, remittance, hints = read_details(details)
        hints = squeeze(f"{hints} {e.customer_ref} {e.extra}")
        line = BankLine(first + position - 1, ref, e.booked, e.amount, currency, payer, remittance, "", hints)
        line.remittance = remittance or squeeze(e.extra)
        out.lines.append(line)


def _debit_line(
    e: _Entry, details: str, identity: str, currency: str, position: int, first: int, account: str
) -> DebitLine:
    """A booked debit with every reference the bank gave back (the :61: references, the :86: text)."""
    refs = [r for r in (e.customer_ref, e.bank_ref) if r and r.upper() not in ("NONREF", "NOTPROVIDED")]
    ref = line_ref("MT940", identity, str(position), refs[0] if refs else "", e.booked, -e.amount)
    _payer, remittance, hints = read_details(details)
    # the :86: text's structured fields (/EREF/…/, ?20EREF+…) split at their separators, so the references match
    text = squeeze(" ".join([*refs, e.extra, remittance, hints.replace("/", " ")]))
    return DebitLine(first + position - 1, ref, e.booked, e.value or e.booked, e.amount, currency, account, text)


def _reconcile(s: _Statement, entries: list[_Entry]) -> None:
    """Opening + credits - debits = closing. A statement without one of its balances is refused when it has
    lines (they cannot be checked); without lines there is nothing to post and nothing to check."""
    if s.opening is None or s.closing is None:
        which = "opening balance (:60F:)" if s.opening is None else "closing balance (:62F:)"
        if entries:
            raise BankFileRejected(f"{s.where()}: it has no {which}, so its lines cannot be checked against it")
        return
    if not s.opening.currency or not s.closing.currency:  # one balance without a currency: the other's
        s.opening.currency = s.closing.currency = s.opening.currency or s.closing.currency
    if not s.opening.currency:
        raise BankFileRejected(f"{s.where()}: neither its opening nor its closing balance names a currency")
    if s.opening.currency != s.closing.currency:
        raise BankFileRejected(
            f"{s.where()}: the opening balance (line {s.opening.line}) is in {s.opening.currency} but the closing "
            f"balance (line {s.closing.line}) in {s.closing.currency}"
        )
    credits = sum((e.amount for e in entries if e.mark in ("C", "RD")), Decimal(0))
    debits = sum((e.amount for e in entries if e.mark in ("D", "RC")), Decimal(0))
    check_balance(s.where(), s.opening.currency, s.opening.signed, credits, debits, s.closing.signed)


# --- :86: details ---------------------------------------------------------------------------------

_GERMAN = re.compile(r"^\d{3}(?P<sep>[?>~])\d{2}")  # "?" German banks, ">" Triodos, "~" Polish banks
_SEPA_WORDS = re.compile(r"(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|COAM|OAMT|IBAN|BIC)\+")
_DUTCH_KEYS = (
    "TRTP|IBAN|BIC|NAME|REMI|EREF|MARF|CSID|ORDP|BENM|CNTP|PURP|ULTD|ULTC|ISDT|RTRN|ADDR|ID|PREF|USTD|STRD|"
    "CDTRREFTP|CDTRREF|CD|ISSR|SVCL|RTYP|SEPA|BUSP|FX|ACCW|EXCH|CHGS"
)
_DUTCH_FIELD = re.compile(rf"/({_DUTCH_KEYS})/")


def read_details(text: str) -> tuple[str, str, str]:
    """(payer, remittance, hints) of a :86: field. Hints: all its words, spaced, for finding the debtor."""
    lines = [line.strip() for line in text.split("\n")]
    spaced = squeeze(" ".join(lines))
    joined = "".join(line.rstrip("\n") for line in text.split("\n")).strip()
    german = _GERMAN.match(joined)
    if german:
        return _german(joined, german["sep"], spaced)
    if joined.startswith("/") and _DUTCH_FIELD.search(joined):
        return _dutch(joined, spaced)
    return "", spaced, spaced


def _german(joined: str, sep: str, spaced: str) -> tuple[str, str, str]:
    parts = re.split(rf"\{sep}(\d{{2}})", joined[3:])
    sub: dict[str, list[str]] = {}
    for key, value in zip(parts[1::2], parts[2::2], strict=False):
        sub.setdefault(key, []).append(value)
    purpose_keys = [f"{k}" for k in range(20, 30)] + ["60", "61", "62", "63"]
    pieces = [v for k in purpose_keys for v in sub.get(k, [])]
    purpose = "".join(pieces)  # the bank split the text at fixed widths, often mid-word
    remittance = squeeze(_SEPA_WORDS.sub(" ", purpose))
    payer = squeeze("".join(sub.get("32", []) + sub.get("33", [])))
    hints = squeeze(" ".join([*pieces, _SEPA_WORDS.sub(" ", " ".join(pieces)), spaced]))
    return payer, remittance, hints


def _dutch(joined: str, spaced: str) -> tuple[str, str, str]:
    parts = _DUTCH_FIELD.split(joined)
    values: dict[str, list[str]] = {}
    for key, value in zip(parts[1::2], parts[2::2], strict=False):
        values.setdefault(key, []).append(value.strip("/ "))
    payer = next((v for v in values.get("NAME", []) if v), "")
    if not payer and values.get("CNTP"):  # /CNTP/account/BIC/name/place/
        cntp = values["CNTP"][0].split("/")
        payer = cntp[2] if len(cntp) > 2 else ""
    remi = " ".join(
        re.sub(r"^(USTD|STRD)/+", "", v) for key in ("REMI", "USTD", "CDTRREF") for v in values.get(key, []) if v
    )
    eref = " ".join(v for v in values.get("EREF", []) if v and v.upper() != "NOTPROVIDED")
    return squeeze(payer), squeeze(f"{remi} {eref}".replace("/", " ")), spaced
