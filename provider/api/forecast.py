"""API v1: the 13-week cash forecast with its 80 % interval, the standing backtest, and debtors' behaviour segments
(with risk grade and suggested credit limit); the client's credit limit policy (read, and set with a read-write
token). The token's client only."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from provider.api.base import current_client, operation, parse_body, parse_query
from provider.api.pagination import as_datetime, as_int, keyset_page
from provider.api.problems import ApiProblem
from provider.api.schemas import MAX_AMOUNT, Currency, Day, ListQuery, Whole, sort_field
from provider.core.clock import today_utc
from provider.extensions import db
from provider.forecast import queries
from provider.forecast.models import DebtorBehaviour
from provider.forecast.segments import GRADES, SEGMENTS


class ForecastQuery(Schema):
    class Meta:
        unknown = RAISE

    as_of = Day(load_default=None, metadata={"description": "a past day: the forecast made with what was known then"})


class WeekOut(Schema):
    week = fields.Integer()
    starts = fields.String()
    ends = fields.String()
    expected = fields.Integer(metadata={"description": "expected collections, minor units"})
    low = fields.Integer(metadata={"description": "low end of the 80 % interval, minor units"})
    high = fields.Integer(metadata={"description": "high end of the 80 % interval, minor units"})


class ErrorOut(Schema):
    wape = fields.Float(allow_none=True)
    bias = fields.Float(allow_none=True)


class HorizonOut(Schema):
    weeks = fields.Integer()
    forecast = fields.Nested(ErrorOut)
    naive_average = fields.Nested(ErrorOut)
    naive_due = fields.Nested(ErrorOut)


class BacktestOut(Schema):
    origins = fields.Integer()
    horizons = fields.Dict(keys=fields.String(), values=fields.Nested(HorizonOut))
    coverage = fields.Float(allow_none=True)
    weeks_checked = fields.Integer()
    month_ends_left_out = fields.Integer(
        metadata={"description": "past month-ends not checked: a past day's view fits only the newest ones not stored"}
    )


class CurrencyForecastOut(Schema):
    currency = fields.String()
    as_of = fields.Date()
    weeks = fields.List(fields.Nested(WeekOut))
    backtest = fields.Nested(BacktestOut)
    calibration = fields.String()


class ForecastOut(Schema):
    data = fields.List(fields.Nested(CurrencyForecastOut))


class BacktestListOut(Schema):
    data = fields.List(fields.Dict())


class SegmentQuery(ListQuery):
    sort = sort_field(["id", "debtor_id", "exposure_minor"])
    segment = fields.String(validate=validate.OneOf(SEGMENTS))


class SegmentOut(Schema):
    debtor_id = fields.Integer()
    as_of = fields.Date()
    segment = fields.String()
    segment_since = fields.Date()
    reasons = fields.List(fields.String())
    risk_grade = fields.String()
    grade_reasons = fields.List(fields.String())
    currency = fields.String()
    exposure_minor = fields.Integer()
    credit_limit_minor = fields.Integer()
    worsened = fields.Boolean()


class SegmentPage(Schema):
    data = fields.List(fields.Nested(SegmentOut))
    next_cursor = fields.String(allow_none=True)


def _views() -> list[dict[str, Any]]:
    args = parse_query(ForecastQuery())
    as_of = args.get("as_of")
    if as_of is not None and as_of > today_utc():
        raise ApiProblem(409, "as_of cannot be in the future", kind="date-rule", errors={"as_of": ["in the future"]})
    return queries.forecast_view(db.session, current_client().id, as_of)


@operation("/forecast", "GET", summary="13-week collections forecast", tag="forecast", query=ForecastQuery,
           response=ForecastOut)  # fmt: skip
def get_forecast() -> Any:
    """Expected collections per week and currency with the 80 % interval, and the backtest beside it. With `as_of`,
    the forecast made with only what was dated by that day."""
    return ForecastOut().dump({"data": _views()})


@operation("/forecast/backtest", "GET", summary="How good the forecast has been", tag="forecast",
           query=ForecastQuery, response=BacktestListOut)  # fmt: skip
def get_backtest() -> Any:
    """Per currency: WAPE and bias at 1, 4 and 13 weeks ahead for the forecast and two naive forecasts (last 13
    weeks' average; every invoice paid on its due date), and the share of weeks inside the 80 % interval."""
    return {"data": [{"currency": v["currency"], "as_of": v["as_of"].isoformat(), **v["backtest"]} for v in _views()]}


@operation("/segments", "GET", summary="Debtors' behaviour segments", tag="forecast", query=SegmentQuery,
           response=SegmentPage)  # fmt: skip
def list_segments() -> Any:
    """Each debtor's behaviour segment with its reasons, risk grade and suggested credit limit (last refit)."""
    from sqlalchemy import select

    args = parse_query(SegmentQuery())
    stmt = select(DebtorBehaviour).where(DebtorBehaviour.client_id == current_client().id)
    if args.get("segment"):
        stmt = stmt.where(DebtorBehaviour.segment == args["segment"])
    sorts: dict[str, tuple[Any, Any]] = {
        "id": (DebtorBehaviour.id, as_int),
        "debtor_id": (DebtorBehaviour.debtor_id, as_int),
        "exposure_minor": (DebtorBehaviour.exposure_minor, as_int),
        "updated_at": (DebtorBehaviour.fitted_at, as_datetime),  # a segment changes when it is fitted again
    }
    if args.get("updated_since"):
        stmt = stmt.where(DebtorBehaviour.fitted_at >= args["updated_since"])
    items, cursor = keyset_page(stmt, DebtorBehaviour.id, sorts, args)
    return {"data": SegmentOut().dump(items, many=True), "next_cursor": cursor}


class GradeMonths(Schema):
    """Months per risk grade: the grades are the only keys (the document lists them)."""

    class Meta:
        unknown = RAISE

    A, B, C, D, E = (
        fields.Float(validate=validate.Range(min=0, max=24), metadata={"description": f"months for grade {grade}"})
        for grade in GRADES
    )


class CreditPolicyIn(Schema):
    class Meta:
        unknown = RAISE

    currency = Currency(required=True)
    months = fields.Nested(
        GradeMonths,
        load_default=dict,
        metadata={"description": "months of average monthly invoicing a debtor of each grade (A-E) may owe; a grade "
                  "left out keeps the standard months"},
    )  # fmt: skip
    cap_minor = Whole(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "cap in minor units; 0 = none"},
    )


class CreditPolicyOut(Schema):
    currency = fields.String()
    months = fields.Dict(keys=fields.String(), values=fields.Float())
    cap_minor = fields.Integer()


class CreditPolicyList(Schema):
    data = fields.List(fields.Nested(CreditPolicyOut))


@operation("/credit-policies", "GET", summary="The client's credit limit policy", tag="forecast",
           response=CreditPolicyList)  # fmt: skip
def list_credit_policies() -> Any:
    """Per currency: the months of average invoicing a debtor of each risk grade may owe, and the cap."""
    from sqlalchemy import select

    from provider.forecast.models import CreditPolicy

    rows = db.session.scalars(
        select(CreditPolicy).where(CreditPolicy.client_id == current_client().id).order_by(CreditPolicy.currency)
    )
    return {"data": CreditPolicyOut().dump(list(rows), many=True)}


@operation("/credit-policies", "PUT", summary="Set the credit limit policy of a currency", tag="forecast",
           body=CreditPolicyIn, response=CreditPolicyOut)  # fmt: skip
def put_credit_policy() -> Any:
    """Replace the policy of one currency; the debtors' suggested limits in that currency follow at once."""
    from provider.forecast.services import set_credit_policy

    data = parse_body(CreditPolicyIn())
    policy = set_credit_policy(
        db.session, current_client().id, data["currency"].upper(), data["months"], data["cap_minor"]
    )
    return CreditPolicyOut().dump(policy)
