"""Input of the worklist forms (marshmallow). Amounts arrive as text in major units and are parsed into
minor units of the account's currency by the view (Money.parse), never through a float."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from worklists.models import CallOutcome
from worklists.outcomes import OUTCOMES

ACTIONS = (
    "outcome",  # the collector screen: one outcome of a call (`result`), see worklists.outcomes
    "call",
    "email",
    "note",
    "promise",
    "plan",
    "escalate",
    "next_action",
    "cease",
    "claim",
    "release",
    "reopen",
)


class ActionSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    result = fields.String(validate=validate.OneOf([o.code for o in OUTCOMES]))
    outcome = fields.String(validate=validate.OneOf([o.value for o in CallOutcome]))
    note = fields.String(load_default="", validate=validate.Length(max=1000))
    amount = fields.String(validate=validate.Length(max=30))
    due_on = fields.Date()
    first_due_on = fields.Date()
    instalments = fields.Integer(validate=validate.Range(2, 36))
    every_days = fields.Integer(load_default=30, validate=validate.Range(7, 31))
    next_action_on = fields.Date()
    then = fields.String(validate=validate.OneOf(["next"]))  # "& next": take the next account afterwards


class AssignSchema(Schema):
    client_id = fields.Integer(required=True)
    segment = fields.String(load_default=None, validate=validate.Length(max=40))
    owner_id = fields.Integer(load_default=None)
    team_id = fields.Integer(load_default=None)
    only_unowned = fields.Boolean(load_default=False)


class BalanceSchema(Schema):
    team_id = fields.Integer(required=True)


class CollectorSchema(Schema):
    user_id = fields.Integer(required=True)
    capacity = fields.Integer(required=True, validate=validate.Range(0, 5000))
    away = fields.Boolean(load_default=False)
    away_from = fields.Date(load_default=None, allow_none=True)
    away_until = fields.Date(load_default=None, allow_none=True)


class RuleSchema(Schema):
    team_id = fields.Integer(required=True)
    position = fields.Integer(load_default=100, validate=validate.Range(0, 10_000))
    client_id = fields.Integer(load_default=None, allow_none=True)
    segment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    language = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=8))
    currency = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=3))
    min_overdue = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))
    max_overdue = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))


class RuleDeleteSchema(Schema):
    rule_id = fields.Integer(required=True)


class TargetSchema(Schema):
    user_id = fields.Integer(required=True)
    accounts_per_day = fields.Integer(required=True, validate=validate.Range(0, 1000))
    promises_per_week = fields.Integer(required=True, validate=validate.Range(0, 1000))
    currency = fields.String(required=True, validate=validate.Length(equal=3))
    collected = fields.String(required=True, validate=validate.Length(max=30))
