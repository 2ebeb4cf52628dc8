"""Payout files for the agency's bank: what a remittance run pays each client, as the bank wants it.

Pure functions of their inputs (no database, no clock): the same run, message id and creation time always give
byte-for-byte the same file, so a re-download never makes a second, different payment instruction.

- EUR: a SEPA credit transfer, ISO 20022 `pain.001.001.03`, built with `sepaxml` and validated against the XSD it
  ships (an invalid file is never returned). The message id, creation time and payment information id come from
  the caller (the run), not from sepaxml's random ids and clock.
- USD to US accounts: a NACHA (ACH) file, CCD credits, written field by field from the NACHA Operating Rules'
  record layouts (94-character records, blocked by 10): file header, one batch, entries, batch and file controls,
  entry hash and totals; no maintained Python library for ACH exists (the PyPI ones date from 2014-2023).
- Anything else: a CSV a person uploads to the bank's portal (amounts in major units, formula injection escaped).

Every payee's bank details are checked first (`clients.bank_details`); a problem is a `PayoutError` naming the
payee and the field, and no file is made.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sepaxml
from sepaxml import SepaTransfer

from clients.bank_details import BankDetailsError, aba_routing_ok, check_bic, check_iban
from clients.ledger_list import safe_cell
from provider.core.money import exponent

SEPA_SCHEMA = "pain.001.001.03"
ACH_MAX_AMOUNT = 99_999_999_99  # ten digits of cents


class PayoutError(ValueError):
    """A payout file cannot be made; the message names the payee and the field."""


@dataclass(frozen=True)
class Payee:
    name: str
    currency: str
    iban: str = ""
    bic: str = ""
    routing_number: str = ""  # US ABA routing number (9 digits)
    account_number: str = ""
    account_type: str = "checking"  # checking | savings (ACH)


@dataclass(frozen=True)
class PayoutLine:
    payee: Payee
    amount_minor: int
    currency: str
    end_to_end_id: str  # unique per payment instruction; the bank statement carries it back (matching)
    description: str


@dataclass(frozen=True)
class Originator:
    """The agency's trust account the payouts are paid from."""

    name: str
    iban: str = ""
    bic: str = ""
    ach_routing: str = ""  # the agency's bank (ODFI) routing number
    ach_company_id: str = ""  # 10 characters, assigned by the bank (often 1 + EIN)
    ach_origin: str = ""  # immediate origin, 10 characters (often the company id)
    ach_destination_name: str = ""
    ach_reference: str = ""


def _check_lines(lines: Sequence[PayoutLine], currency: str) -> None:
    if not lines:
        raise PayoutError("a payout file needs at least one payment")
    seen = set()
    for n, line in enumerate(lines, 1):
        who = f"payment {n} ({line.payee.name})"
        if line.currency != currency or line.payee.currency != currency:
            raise PayoutError(f"{who}: currency {line.currency} in a {currency} file")
        if line.amount_minor <= 0:
            raise PayoutError(f"{who}: the amount must be above zero")
        if not line.end_to_end_id or line.end_to_end_id in seen:
            raise PayoutError(f"{who}: the end-to-end id must be present and unique in the file")
        seen.add(line.end_to_end_id)


# --- SEPA credit transfer ------------------------------------------------------------------------------------


class _FixedIdTransfer(SepaTransfer):  # type: ignore[misc]
    """sepaxml's transfer with the message id, creation time and payment information ids given, not generated."""

    def __init__(self, config: dict[str, Any], message_id: str, created_at: datetime) -> None:
        self._fixed = (message_id, created_at.strftime("%Y-%m-%dT%H:%M:%S"))
        super().__init__(config, schema=SEPA_SCHEMA)

    def _create_header(self) -> None:
        self.msg_id = self._fixed[0]
        super()._create_header()
        header = self._xml.find(self.root_el).find("GrpHdr")
        header.find("CreDtTm").text = self._fixed[1]

    def _finalize_batch(self) -> None:
        super()._finalize_batch()
        for n, node in enumerate(self._xml.iter("PmtInfId"), 1):
            node.text = f"{self._fixed[0]}-{n}"[:35]


def sepa_credit_transfer(
    originator: Originator, lines: Sequence[PayoutLine], message_id: str, created_at: datetime, execution: date
) -> bytes:
    """A pain.001.001.03 file paying `lines` (EUR) from the originator's IBAN, validated against the XSD."""
    _check_lines(lines, "EUR")
    if not message_id or len(message_id) > 35:
        raise PayoutError("the message id must have 1 to 35 characters")
    try:
        debtor_iban = check_iban(originator.iban)
        debtor_bic = check_bic(originator.bic) if originator.bic else ""
    except BankDetailsError as exc:
        raise PayoutError(f"the agency's trust account: {exc}") from None
    config = {"name": originator.name, "IBAN": debtor_iban, "currency": "EUR", "batch": True}
    if debtor_bic:
        config["BIC"] = debtor_bic
    transfer = _FixedIdTransfer(config, message_id, created_at)
    for n, line in enumerate(lines, 1):
        try:
            iban = check_iban(line.payee.iban)
            bic = check_bic(line.payee.bic) if line.payee.bic else ""
        except BankDetailsError as exc:
            raise PayoutError(f"payment {n} ({line.payee.name}): {exc}") from None
        payment: dict[str, Any] = {
            "name": line.payee.name,
            "IBAN": iban,
            "amount": line.amount_minor,
            "execution_date": execution,
            "description": line.description[:140],
            "endtoend_id": line.end_to_end_id[:35],
        }
        if bic:
            payment["BIC"] = bic
        transfer.add_payment(payment)
    content = bytes(transfer.export(validate=False))
    try:  # against the XSD sepaxml ships, parsed once per process (sepaxml's own check parses it for every file)
        _pain001_schema().validate(content.decode())
    except Exception as exc:  # the schema validator's error
        raise PayoutError(f"the SEPA file does not pass the pain.001 schema: {exc}") from None
    return content


@functools.cache
def _pain001_schema() -> Any:
    import xmlschema  # imported late, as sepaxml does (it patches ElementTree when imported)

    return xmlschema.XMLSchema(str(Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.03.xsd"))


# --- NACHA (ACH) ---------------------------------------------------------------------------------------------


def _alpha(value: str, width: int) -> str:
    text = "".join(c if 32 <= ord(c) < 127 else " " for c in value.upper())
    return text[:width].ljust(width)


def _num(value: int, width: int) -> str:
    text = str(value)
    if value < 0 or len(text) > width:
        raise PayoutError(f"the number {value} does not fit {width} digits")
    return text.zfill(width)


def nacha_file(
    originator: Originator,
    lines: Sequence[PayoutLine],
    created_at: datetime,
    effective: date,
    file_id_modifier: str = "A",
    entry_description: str = "REMITTANCE",
) -> bytes:
    """A NACHA file with one CCD credit batch paying `lines` (USD) from the agency's account."""
    _check_lines(lines, "USD")
    odfi = originator.ach_routing
    if not aba_routing_ok(odfi):
        raise PayoutError("the agency's trust account: the ACH routing number fails its check digit")
    if len(originator.ach_company_id.strip()) == 0 or len(originator.ach_company_id) > 10:
        raise PayoutError("the agency's trust account: the ACH company id must have 1 to 10 characters")
    if len(file_id_modifier) != 1 or not file_id_modifier.isalnum():
        raise PayoutError("the file id modifier is one letter or digit")
    records = [
        "1"
        + "01"
        + " "
        + odfi
        + _alpha(originator.ach_origin or originator.ach_company_id, 10)
        + created_at.strftime("%y%m%d%H%M")
        + file_id_modifier.upper()
        + "094"
        + "10"
        + "1"
        + _alpha(originator.ach_destination_name, 23)
        + _alpha(originator.name, 23)
        + _alpha(originator.ach_reference, 8)
    ]
    batch_number = _num(1, 7)
    records.append(
        "5"
        + "220"
        + _alpha(originator.name, 16)
        + _alpha("", 20)
        + _alpha(originator.ach_company_id, 10)
        + "CCD"
        + _alpha(entry_description, 10)
        + effective.strftime("%y%m%d")
        + effective.strftime("%y%m%d")
        + "   "
        + "1"
        + odfi[:8]
        + batch_number
    )
    entry_hash = 0
    total = 0
    for n, line in enumerate(lines, 1):
        payee = line.payee
        who = f"payment {n} ({payee.name})"
        if not aba_routing_ok(payee.routing_number):
            raise PayoutError(f"{who}: the routing number fails its check digit")
        account = payee.account_number.strip()
        if not account or len(account) > 17 or not account.replace("-", "").isalnum():
            raise PayoutError(f"{who}: the account number must have 1 to 17 letters or digits")
        if line.amount_minor > ACH_MAX_AMOUNT:
            raise PayoutError(f"{who}: an ACH entry is at most $99,999,999.99")
        code = "32" if payee.account_type == "savings" else "22"
        entry_hash += int(payee.routing_number[:8])
        total += line.amount_minor
        records.append(
            "6"
            + code
            + payee.routing_number[:8]
            + payee.routing_number[8]
            + _alpha(account, 17)
            + _num(line.amount_minor, 10)
            + _alpha(line.end_to_end_id, 15)
            + _alpha(payee.name, 22)
            + "  "
            + "0"
            + odfi[:8]
            + _num(n, 7)
        )
    hash_text = str(entry_hash)[-10:].zfill(10)
    records.append(
        "8"
        + "220"
        + _num(len(lines), 6)
        + hash_text
        + _num(0, 12)
        + _num(total, 12)
        + _alpha(originator.ach_company_id, 10)
        + " " * 19
        + " " * 6
        + odfi[:8]
        + batch_number
    )
    blocks = -(-(len(records) + 1) // 10)
    records.append(
        "9" + _num(1, 6) + _num(blocks, 6) + _num(len(lines), 8) + hash_text + _num(0, 12) + _num(total, 12) + " " * 39
    )
    records += ["9" * 94] * (blocks * 10 - len(records))
    wrong = [n for n, r in enumerate(records, 1) if len(r) != 94]
    if wrong:  # a field overflowed its width: never hand the bank a malformed file
        raise PayoutError(f"NACHA record(s) {wrong} are not 94 characters")
    return ("\n".join(records) + "\n").encode("ascii")


# --- CSV for other currencies --------------------------------------------------------------------------------

CSV_HEADER = ["Payee", "Account (IBAN or number)", "Bank (BIC or routing)", "Currency", "Amount", "Reference"]


def _major(minor: int, currency: str) -> str:
    exp = exponent(currency)
    return f"{Decimal(minor).scaleb(-exp):.{exp}f}"


def csv_file(lines: Sequence[PayoutLine]) -> bytes:
    """One row per payment, for currencies the bank takes no file format for here."""
    if not lines:
        raise PayoutError("a payout file needs at least one payment")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for line in lines:
        p = line.payee
        writer.writerow(
            [
                safe_cell(p.name),
                safe_cell(p.iban or p.account_number),
                safe_cell(p.bic or p.routing_number),
                line.currency,
                _major(line.amount_minor, line.currency),
                safe_cell(line.end_to_end_id),
            ]
        )
    return out.getvalue().encode("utf-8")


def file_kind(currency: str, lines: Sequence[PayoutLine]) -> str:
    """`sepa` for EUR to IBANs, `nacha` for USD to US accounts, else `csv`."""
    if currency == "EUR" and all(line.payee.iban for line in lines):
        return "sepa"
    if currency == "USD" and all(line.payee.routing_number for line in lines):
        return "nacha"
    return "csv"
