"""A client's bank account for remittances: the model, its checks, and recording it.

Checks (all errors of one form together, each naming its field): an IBAN passes its ISO 13616 check digits and
its country's length and format (`schwifty`); a BIC is a valid ISO 9362 code and, when the IBAN's bank is known,
agrees with its country; a US routing number passes the ABA check digit; a US account number has 1 to 17 letters
or digits. EUR accounts need an IBAN; USD accounts an IBAN or a US routing and account number.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column

from clients.models import Client
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.db import created_at
from provider.core.errors import ServiceError
from provider.core.money import validate_currency
from provider.core.tenancy import ClientKeyed
from provider.extensions import db


class BankDetailsError(ValueError):
    """Bank details that fail a check; the message says which and why."""


class InvalidBankDetails(ServiceError):
    """A form of bank details with problems; `errors` maps each field to its messages. Nothing was saved."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


class ClientBankAccount(ClientKeyed, db.Model):
    """Where the agency remits a client's money in one currency."""

    __tablename__ = "client_bank_accounts"
    __table_args__ = (
        UniqueConstraint("client_id", "currency"),
        CheckConstraint("account_type IN ('checking', 'savings')", name="account_type"),
    )

    currency: Mapped[str] = mapped_column(String(3))
    holder: Mapped[str] = mapped_column(String(70))
    iban: Mapped[str] = mapped_column(String(34), default="")
    bic: Mapped[str] = mapped_column(String(11), default="")
    routing_number: Mapped[str] = mapped_column(String(9), default="")
    account_number: Mapped[str] = mapped_column(String(17), default="")
    account_type: Mapped[str] = mapped_column(String(8), default="checking")
    updated_at: Mapped[created_at]

    AUDIT_FIELDS = ("currency", "holder", "iban", "bic", "routing_number", "account_number", "account_type")


def check_iban(raw: str) -> str:
    try:
        return str(IBAN(raw).compact)
    except SchwiftyException as exc:
        raise BankDetailsError(f"the IBAN {raw!r} is not valid ({_why(exc)})") from None


def check_bic(raw: str) -> str:
    try:
        return str(BIC(raw).compact)
    except SchwiftyException as exc:
        raise BankDetailsError(f"the BIC {raw!r} is not valid ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    return text[0].lower() + text[1:] if text else "it fails its checks"


def aba_routing_ok(raw: str) -> bool:
    """The ABA routing number's check digit: 3, 7, 1 weights over the nine digits sum to a multiple of 10."""
    if len(raw) != 9 or not raw.isdigit():
        return False
    d = [int(c) for c in raw]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 == 0


def validated(data: dict[str, Any]) -> dict[str, Any]:
    """The bank details cleaned, or `InvalidBankDetails` with every problem by field."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {
        "holder": str(data.get("holder", "")).strip(),
        "iban": "",
        "bic": "",
        "routing_number": "",
        "account_number": "",
        "account_type": str(data.get("account_type") or "checking"),
    }
    try:
        out["currency"] = validate_currency(str(data.get("currency", "")).strip().upper())
    except ValueError as exc:
        errors["currency"] = [str(exc)]
    if not out["holder"] or len(out["holder"]) > 70:
        errors["holder"] = ["give the account holder's name (up to 70 characters)"]
    if out["account_type"] not in ("checking", "savings"):
        errors["account_type"] = ["choose checking or savings"]
    iban, bic = str(data.get("iban", "")).strip(), str(data.get("bic", "")).strip()
    routing, account = str(data.get("routing_number", "")).strip(), str(data.get("account_number", "")).strip()
    if iban:
        try:
            out["iban"] = check_iban(iban)
        except BankDetailsError as exc:
            errors["iban"] = [str(exc)]
    if bic:
        try:
            out["bic"] = check_bic(bic)
        except BankDetailsError as exc:
            errors["bic"] = [str(exc)]
        if out["iban"] and out["bic"] and out["bic"][4:6] != out["iban"][:2]:
            errors["bic"] = [f"the BIC's country ({out['bic'][4:6]}) is not the IBAN's ({out['iban'][:2]})"]
    if routing or account:
        if not aba_routing_ok(routing):
            errors["routing_number"] = ["a US routing number has nine digits and a valid check digit"]
        if not account or len(account) > 17 or not account.replace("-", "").isalnum():
            errors["account_number"] = ["a US account number has 1 to 17 letters or digits"]
        out["routing_number"], out["account_number"] = routing, account
    currency = out.get("currency")
    if currency == "EUR" and not iban:
        errors.setdefault("iban", ["a EUR account needs an IBAN (SEPA)"])
    elif not iban and not (routing or account):
        errors.setdefault("iban", ["give an IBAN, or a US routing and account number"])
    if errors:
        raise InvalidBankDetails(errors)
    return out


def save_bank_account(session: Session, client: Client, data: dict[str, Any]) -> ClientBankAccount:
    """Record (or replace) the client's account for one currency; audited with before and after."""
    values = validated(data)
    row = session.scalar(
        sa.select(ClientBankAccount).where(
            ClientBankAccount.client_id == client.id, ClientBankAccount.currency == values["currency"]
        )
    )
    before = audit.snapshot(row, ClientBankAccount.AUDIT_FIELDS) if row else None
    if row is None:
        row = ClientBankAccount(client_id=client.id, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = now_utc()
    session.flush()
    audit.record(
        session, "bank_account.saved", row, before=before, after=audit.snapshot(row, ClientBankAccount.AUDIT_FIELDS)
    )
    return row


def bank_accounts(session: Session, client_id: int) -> list[ClientBankAccount]:
    return list(
        session.scalars(
            sa.select(ClientBankAccount)
            .where(ClientBankAccount.client_id == client_id)
            .order_by(ClientBankAccount.currency)
        )
    )
