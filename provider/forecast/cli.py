"""`flask forecast backtest|refit|credit-policy`: the standing backtest, the refit and the client's credit limit policy
from a shell."""

from __future__ import annotations

import json
from datetime import date

import click
from sqlalchemy import select

from clients.models import Client
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db


@click.group("forecast")
def forecast_group() -> None:
    """Cash forecast: backtest and refit."""


def _client(code: str) -> Client:
    with scoped(TenantScope.agency(), db.session):
        client = db.session.scalar(select(Client).where(Client.code == code))
    if client is None:
        raise click.BadParameter(f"no client has the code {code!r}", param_hint="--client")
    return client


def _pct(value: float | None) -> str:
    return "   -" if value is None else f"{value * 100:4.0f}%"


@forecast_group.command("backtest")
@click.option("--client", "code", required=True, help="the client's code")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="forecast day (default today)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def backtest_command(code: str, as_of: object, as_json: bool) -> None:
    """How good the client's forecast has been: WAPE and bias at 1, 4 and 13 weeks against two naive forecasts,
    and the share of weeks inside the 80 % interval."""
    from provider.core.clock import today_utc
    from provider.forecast.services import forecast_client

    client = _client(code)
    day: date = as_of.date() if as_of is not None else today_utc()  # type: ignore[attr-defined]
    with scoped(TenantScope.single(client.id), db.session):
        result = forecast_client(db.session, client.id, day, reuse=False)
    if as_json:
        click.echo(json.dumps({"client": code, "as_of": day.isoformat(), "backtest": result.backtest}))
        return
    for cur, b in result.backtest.items():
        click.echo(f"{client.name} {cur}: {b['origins']} month-ends, 80% interval held {_pct(b['coverage'])} "
                   f"of {b['weeks_checked']} weeks")  # fmt: skip
        click.echo("  weeks ahead   forecast WAPE  bias   last-13-weeks avg  paid-on-due-date")
        for h, e in b["horizons"].items():
            click.echo(
                f"  {h:>11}   {_pct(e['forecast']['wape']):>13}  {_pct(e['forecast']['bias'])}   "
                f"{_pct(e['naive_average']['wape']):>17}  {_pct(e['naive_due']['wape']):>16}"
            )


@forecast_group.command("refit")
@click.option("--client", "code", default=None, help="one client's code (default: every client)")
def refit_command(code: str | None) -> None:
    """Refit now (what the nightly job does) and commit."""
    from provider.forecast.services import refit_client

    with scoped(TenantScope.agency(), db.session):
        ids = [_client(code).id] if code else list(db.session.scalars(select(Client.id).order_by(Client.id)))
    for client_id in ids:
        with scoped(TenantScope.single(client_id), db.session):
            counts = refit_client(db.session, client_id)
            db.session.commit()
        click.echo(f"client {client_id}: {counts}")


@forecast_group.command("credit-policy")
@click.option("--client", "code", required=True, help="the client's code")
@click.option("--currency", required=True, help="the currency of the policy, e.g. EUR")
@click.option("--months", "months_text", default="", help="months per grade, e.g. A=3,B=2,C=1 (others: standard)")
@click.option("--cap", default="", help="the cap as an amount in the currency, e.g. 25000.00 (empty or 0: none)")
def credit_policy_command(code: str, currency: str, months_text: str, cap: str) -> None:
    """Set how much a debtor of each risk grade may owe: months of its average monthly invoicing, and a cap."""
    from provider.core.errors import ServiceError
    from provider.forecast.services import credit_policy_from_text, set_credit_policy

    client = _client(code)
    months: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in months_text.split(","))):
        grade, sep, value = part.partition("=")
        if not sep or grade.strip().upper() not in "ABCDE" or len(grade.strip()) != 1:
            raise click.BadParameter(f"“{part}” is not GRADE=MONTHS with a grade from A to E", param_hint="--months")
        months[grade.strip().upper()] = value
    with scoped(TenantScope.single(client.id), db.session):
        try:
            cur, parsed, cap_minor = credit_policy_from_text(currency, months, cap)
            set_credit_policy(db.session, client.id, cur, parsed, cap_minor)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{client.code}: the limit policy for {cur} is saved.")
