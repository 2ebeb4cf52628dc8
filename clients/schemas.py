"""Input schemas for clients and debtors (marshmallow): every error names its field."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from clients.models import ClientStatus, ContactKind, DebtType
from provider.core.validation import Trimmed, Upper, check_country, check_currency, check_timezone


class ClientSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Trimmed(required=True, validate=validate.Length(max=200))
    code = Upper(
        required=True,
        validate=[
            validate.Length(min=2, max=12),
            validate.Regexp(r"^[A-Z0-9-]+$", error="use letters, digits and dashes only"),
        ],
    )
    base_currency = Upper(required=True, validate=check_currency)
    timezone = Trimmed(required=True, validate=check_timezone)
    country = Upper(required=True, validate=check_country)
    debt_type = Trimmed(required=True, validate=validate.OneOf([d.value for d in DebtType]))
    status = Trimmed(load_default=ClientStatus.ACTIVE.value, validate=validate.OneOf([s.value for s in ClientStatus]))


class ContactSchema(Schema):
    kind = Trimmed(required=True, validate=validate.OneOf([k.value for k in ContactKind]))
    value = Trimmed(required=True, validate=validate.Length(max=300))
    label = Trimmed(load_default="", validate=validate.Length(max=60))
    is_primary = fields.Boolean(load_default=False)


class DebtorSchema(Schema):
    class Meta:
        unknown = RAISE

    external_ref = Trimmed(required=True, validate=validate.Length(max=64))
    name = Trimmed(required=True, validate=validate.Length(max=200))
    timezone = Trimmed(load_default=None, allow_none=True, validate=check_timezone)
    segment = Trimmed(load_default="standard", validate=validate.Length(max=40))
    do_not_contact = fields.Boolean(load_default=False)
    email = fields.Email(load_default=None, allow_none=True)
    phone = Trimmed(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\+?[0-9 ()./-]{5,30}$", error="not a phone number (digits, spaces, + - ( ))"),
    )
