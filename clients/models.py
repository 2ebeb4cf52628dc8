"""Tenants (`Client`) and the people and businesses that owe them money (`Debtor`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientOwned, register_tenant_root
from provider.extensions import db


class DebtType(StrEnum):
    CONSUMER = "consumer"
    COMMERCIAL = "commercial"


class ClientStatus(StrEnum):
    ONBOARDING = "onboarding"
    ACTIVE = "active"
    PAUSED = "paused"
    OFFBOARDED = "offboarded"


class ContactKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    POSTAL = "postal"


# The language a client's debtors are written to by default, by the client's country (ISO 3166 -> ISO 639-1).
COUNTRY_LANGUAGES = {
    "DE": "de", "AT": "de", "CH": "de", "LI": "de", "FR": "fr", "BE": "fr", "LU": "fr", "MC": "fr",
    "ES": "es", "MX": "es", "AR": "es", "CO": "es", "CL": "es", "IT": "it", "SM": "it", "NL": "nl",
    "PT": "pt", "BR": "pt", "PL": "pl", "SE": "sv", "DK": "da", "NO": "nb", "FI": "fi", "CZ": "cs",
    "JP": "ja", "CN": "zh", "TW": "zh", "KR": "ko", "GR": "el", "TR": "tr", "HU": "hu", "RO": "ro",
}  # fmt: skip


def language_for_country(country: str) -> str:
    return COUNTRY_LANGUAGES.get((country or "").upper(), "en")


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


@register_tenant_root
class Client(db.Model):
    """A client business of the agency: one tenant, one separate ledger."""

    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint(_in("debt_type", DebtType), name="debt_type"),
        CheckConstraint(_in("status", ClientStatus), name="status"),
        CheckConstraint("length(base_currency) = 3", name="currency_len"),
        CheckConstraint("length(country) = 2", name="country_len"),
    )

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(12), unique=True)
    base_currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))
    debt_type: Mapped[str] = mapped_column(String(12), default=DebtType.COMMERCIAL.value)
    status: Mapped[str] = mapped_column(String(12), default=ClientStatus.ACTIVE.value)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)

    AUDIT_FIELDS = ("name", "code", "base_currency", "timezone", "country", "debt_type", "status")


class Debtor(ClientOwned, db.Model):
    """A customer of a client who owes (or may owe) it money. External reference is unique per client."""

    __tablename__ = "debtors"
    __table_args__ = (
        UniqueConstraint("client_id", "external_ref"),
        Index(None, "client_id", "name", "id"),
        Index(None, "client_id", "segment"),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    external_ref: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str] = mapped_column(String(40), default="standard")
    # the language the debtor is written to in (ISO 639-1); a new debtor gets its client's country's language
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the client took the account back
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)

    client: Mapped[Client] = relationship(lazy="joined", innerjoin=True)
    contacts: Mapped[list[DebtorContact]] = relationship(
        back_populates="debtor",
        order_by="(DebtorContact.is_primary.desc(), DebtorContact.id)",
        cascade="all, delete-orphan",
    )

    AUDIT_FIELDS = ("external_ref", "name", "timezone", "segment", "language", "do_not_contact")

    @property
    def effective_timezone(self) -> str:
        return self.timezone or self.client.timezone


class DebtorContact(ClientOwned, db.Model):
    """A phone number, e-mail address or postal address of a debtor."""

    __tablename__ = "debtor_contacts"
    __table_args__ = (
        CheckConstraint(_in("kind", ContactKind), name="kind"),
        # (client_id, debtor_id) -> debtors(client_id, id): a contact can never belong to another tenant's debtor
        ForeignKeyConstraint(["client_id", "debtor_id"], ["debtors.client_id", "debtors.id"], ondelete="CASCADE"),
        Index(None, "client_id", "debtor_id"),
    )

    id: Mapped[intpk]
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(300))
    label: Mapped[str] = mapped_column(String(60), default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[created_at]

    debtor: Mapped[Debtor] = relationship(back_populates="contacts")
