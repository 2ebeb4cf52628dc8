"""Input schemas for users and teams."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from provider.core.passwords import MIN_LENGTH
from provider.core.permissions import CLIENT_ROLES, STAFF_ROLES
from provider.core.validation import Trimmed

ALL_ROLES = sorted(r.value for r in STAFF_ROLES | CLIENT_ROLES)


class UserCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = Trimmed(required=True, validate=validate.Length(max=120))
    role = Trimmed(required=True, validate=validate.OneOf(ALL_ROLES))
    team_id = fields.Integer(load_default=None, allow_none=True)
    client_id = fields.Integer(load_default=None, allow_none=True)
    password = fields.String(required=True, validate=validate.Length(min=MIN_LENGTH, max=200))
    active = fields.Boolean(load_default=True)


class UserUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Trimmed(required=True, validate=validate.Length(max=120))
    role = Trimmed(required=True, validate=validate.OneOf(ALL_ROLES))
    team_id = fields.Integer(load_default=None, allow_none=True)
    password = fields.String(load_default=None, validate=validate.Length(min=MIN_LENGTH, max=200))
    active = fields.Boolean(load_default=False)


class TeamSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Trimmed(required=True, validate=validate.Length(max=80))


class PortalUserSchema(Schema):
    """What a client admin may set for a colleague: never a staff role, never another company."""

    class Meta:
        unknown = RAISE

    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = Trimmed(required=True, validate=validate.Length(max=120))
    role = Trimmed(required=True, validate=validate.OneOf(sorted(r.value for r in CLIENT_ROLES)))
    password = fields.String(required=True, validate=validate.Length(min=MIN_LENGTH, max=200))
