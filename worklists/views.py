"""Collector worklists: my queue, "next account", the account screen and its actions, the manager view.

Views load through the tenant (another client's item is a 404 like a missing one), call one service and
commit once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import worklists.jobs  # noqa: F401 - registers the worklist jobs (nightly rebuild) with the job registry
from clients import ledger_queries
from clients.models import Client, Debtor
from provider.core.clock import now_utc, today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.extensions import db
from provider.forms import kept_values, load_form, submit_form
from provider.models import Team, User
from provider.ui import apply_sort, paginate
from worklists import assignment, contact_rules, outcomes, promises, queries, queue, services, targets
from worklists.contact_rules import CALL, EMAIL
from worklists.models import AssignmentRule, CollectorSetting, ItemState, Strategy, WorkItem
from worklists.schemas import (
    ActionSchema,
    AssignSchema,
    BalanceSchema,
    CollectorSchema,
    RuleDeleteSchema,
    RuleSchema,
    TargetSchema,
)

bp = Blueprint("worklists", __name__, template_folder="templates")


@bp.get("/worklists")
@require(Permission.WORKLISTS_WORK)
def index() -> Any:
    now = now_utc()
    stmt = apply_sort(queries.queue_rows(current_user, now), queries.QUEUE_SORTS, "score", tiebreak=WorkItem.id)
    if request.args.get("sort") is None:
        stmt = stmt.order_by(None).order_by(WorkItem.score.desc(), WorkItem.id)
    mine = targets.progress(db.session, [current_user.id], now.date()).get(current_user.id)
    return render_template(
        "worklists/index.html",
        page=paginate(stmt),
        progress=None if current_user.can(Permission.WORKLISTS_MANAGE) else mine,
        summary=queries.queue_summary(current_user, now),
        claim=queries.my_claim(current_user, now),
        today=now.date(),
    )


@bp.post("/worklists/next")
@require(Permission.WORKLISTS_WORK)
def next_account() -> Any:
    pulled = queue.next_account_for(db.session, current_user)
    item_id = pulled.item.id if pulled.item is not None else None  # read before the commit expires it
    db.session.commit()
    if item_id is None:
        extra = f" ({pulled.skipped} passed over by the contact rules)" if pulled.skipped else ""
        flash(f"Nothing to work right now: no account you may contact is waiting{extra}.", "info")
        return redirect(url_for("worklists.index"))
    return redirect(url_for("worklists.item", item_id=item_id))


@bp.get("/worklists/items/<int:item_id>")
@require(Permission.WORKLISTS_WORK)
def item(item_id: int) -> Any:
    found = queries.account_row(item_id)  # the item, its debtor (with its client) and the client's strategy
    if found is None:
        abort(404)
    selected = request.args.get("outcome", "")
    return _account_page(*found, values={}, errors={}, selected=selected if selected in outcomes.BY_CODE else "")


def _account_page(
    work: WorkItem,
    debtor: Debtor | None = None,
    strategy: Strategy | None = None,
    *,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    status: int = 200,
    selected: str = "",
) -> Any:
    """The account screen: a fixed number of queries (the item with its debtor, client and strategy; its
    history, promises and contacts; the debtor's balances, aging and open invoices)."""
    now = now_utc()
    if debtor is None:
        debtor, strategy = queries.debtor_and_strategy(work)
    client = debtor.client
    extras = queries.account_extras(work, current_user)
    policy = contact_rules.policy_for(client.debt_type, strategy)
    verdicts = queue.gates(
        db.session,
        work,
        (CALL, EMAIL),
        now,
        do_not_contact=debtor.do_not_contact,
        policy=policy,
        call_times=queries.calls_from_history(extras["history"], now - timedelta(days=policy.calls_window_days)),
    )
    as_of = today_utc()
    return (
        render_template(
            "worklists/item.html",
            item=work,
            debtor=debtor,
            client=client,
            call_gate=verdicts[CALL],
            email_gate=verdicts[EMAIL],
            held_by_other=queue.held_by_other(work, current_user, now),
            mine=work.claimed_by == current_user.id and work.claim_expires_at and work.claim_expires_at > now,
            outcomes=outcomes.OUTCOMES,
            other_actions=outcomes.OTHER_ACTIONS,
            by_code=outcomes.BY_CODE,
            selected=selected,
            tomorrow=(now.date() + timedelta(days=1)).isoformat(),
            values=values,
            errors=errors,
            today=now.date(),
            default_due=(now.date() + timedelta(days=7)).isoformat(),
            **extras,
            # the ledger's account context, but its journal history (this screen does not show it)
            as_of=as_of,
            balances=ledger_queries.debtor_balances(client.id, debtor.id),
            agings=ledger_queries.aging(client.id, as_of, debtor.id),
            open_items=ledger_queries.open_invoices(client.id, debtor.id),
        ),
        status,
    )


def _perform(work: WorkItem, data: dict[str, Any]) -> str:
    """Run one action; returns the confirmation message."""
    user, kind, note = current_user, data["action"], data.get("note", "")
    if kind == "outcome":
        return outcomes.perform(db.session, work, user, data.get("result", ""), data)
    if kind == "call":
        if "outcome" not in data:
            raise ServiceError("choose the outcome of the call", field="outcome")
        services.log_call(db.session, work, user, data["outcome"], note)
        return "Call logged."
    if kind == "email":
        services.log_email(db.session, work, user, note)
        return "E-mail logged."
    if kind == "note":
        services.add_note(db.session, work, user, note)
        return "Note added."
    if kind == "promise":
        if "due_on" not in data:
            raise ServiceError("give the promised date", field="due_on")
        promises.record_promise(
            db.session, work, user, outcomes.minor(data.get("amount"), work.currency), data["due_on"], note
        )
        return "Promise to pay recorded."
    if kind == "plan":
        if "first_due_on" not in data or "instalments" not in data:
            raise ServiceError("give the number of instalments and the first date", field="instalments")
        total = outcomes.minor(data.get("amount"), work.currency)
        promises.create_plan(
            db.session, work, user, total, data["instalments"], data["first_due_on"], data["every_days"], note
        )
        return "Payment plan set up."
    if kind == "escalate":
        services.escalate(db.session, work, user, note)
        return "Escalated to a manager."
    if kind == "next_action":
        if "next_action_on" not in data:
            raise ServiceError("give the date of the next action", field="next_action_on")
        services.set_next_action(db.session, work, user, data["next_action_on"], note)
        return "Next action set."
    if kind == "cease":
        services.record_cease(db.session, work, user, note)
        return "Cease-communication request recorded: no more calls or e-mails."
    if kind == "claim":
        if not queue.claim(db.session, work, user):
            raise ServiceError("another collector is working this account right now")
        return "The account is yours while you work it."
    if kind == "release":
        queue.release(db.session, work, user)
        return "Account given back to the queue."
    if not user.can(Permission.WORKLISTS_MANAGE):  # reopen an escalated account
        raise ServiceError("only a manager sends an escalated account back")
    services.reopen_escalated(db.session, work, user, note)
    return "Account back in the queue."


@bp.post("/worklists/items/<int:item_id>/actions")
@require(Permission.WORKLISTS_WORK)
def act(item_id: int) -> Any:
    work = get_visible_or_404(db.session, WorkItem, item_id)
    data, errors = load_form(ActionSchema(), request.form)
    if not errors:
        try:
            message = _perform(work, data)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            errors = {exc.field or "_schema": [str(exc)]}
    values = request.form.to_dict()
    if errors:
        db.session.refresh(work)
        chosen = values.get("result") or values.get("action", "")
        selected = chosen if chosen in outcomes.BY_CODE else ""
        return _account_page(work, values=values, errors=errors, status=422, selected=selected)
    flash(message, "success")
    if data.get("result") == "dispute":  # the call is logged; the dispute is recorded on its own form
        return redirect(url_for("sla.new_dispute", client_id=work.client_id, debtor_id=work.debtor_id))
    if request.form.get("then") == "next":
        return next_account()
    return redirect(url_for("worklists.item", item_id=work.id))


# --- manager --------------------------------------------------------------------------------------------


@bp.get("/worklists/manage")
@require(Permission.WORKLISTS_MANAGE)
def manage() -> Any:
    now = now_utc()
    dates, per_collector = queries.actions_per_collector(now.date())
    orphan_total, orphan_rows = queries.orphans(now.date())
    teams = db.session.scalars(select(Team).options(selectinload(Team.clients)).order_by(Team.name)).all()
    loads = {team.id: assignment.team_load(db.session, team.id) for team in teams}
    collectors = queries.active_collectors()
    settings = {s.user_id: s for s in db.session.scalars(select(CollectorSetting))}
    return render_template(
        "worklists/manage.html",
        sizes=queries.queue_sizes(),
        ageing=queries.work_ageing(now),
        age_buckets=queries.AGE_BUCKETS,
        dates=dates,
        per_collector=per_collector,
        orphan_total=orphan_total,
        orphans=orphan_rows,
        teams=teams,
        loads=loads,
        clients=db.session.scalars(select(Client).order_by(Client.name)).all(),
        collectors=collectors,
        settings=settings,
        progress=targets.progress(db.session, [u.id for u in collectors], now.date()),
        rules=assignment.rules(db.session),
        team_names={t.id: t.name for t in teams},
        client_names={c.id: c.name for c in db.session.scalars(select(Client))},
        today=now.date(),
        states=[s.value for s in ItemState],
    )


def _manager_post(schema: Any, action: Any, done: str) -> Any:
    data, errors = load_form(schema, request.form)
    if not errors:
        try:
            result = action(data)
            db.session.commit()
            flash(done.format(result=result), "success")
        except ServiceError as exc:
            db.session.rollback()
            errors = {exc.field or "_schema": [str(exc)]}
    for messages in errors.values():
        flash(" ".join(messages), "error")
    return redirect(url_for("worklists.manage"))


@bp.post("/worklists/manage/assign")
@require(Permission.WORKLISTS_MANAGE)
def assign() -> Any:
    def run(data: dict[str, Any]) -> int:
        client = get_visible_or_404(db.session, Client, data["client_id"])
        return assignment.assign(
            db.session,
            client.id,
            segment=data["segment"],
            owner_id=data["owner_id"],
            team_id=data["team_id"],
            only_unowned=data["only_unowned"],
        )

    return _manager_post(AssignSchema(), run, "{result} accounts assigned.")


@bp.post("/worklists/manage/balance")
@require(Permission.WORKLISTS_MANAGE)
def balance() -> Any:
    def run(data: dict[str, Any]) -> int:
        team = db.session.get(Team, data["team_id"])  # teams are agency-side: any manager may balance any
        if team is None:
            raise ServiceError("no such team", field="team_id")
        return sum(assignment.balance(db.session, team.id).values())

    return _manager_post(BalanceSchema(), run, "{result} accounts handed out by capacity.")


@bp.post("/worklists/manage/collectors")
@require(Permission.WORKLISTS_MANAGE)
def collector() -> Any:
    def run(data: dict[str, Any]) -> str:
        setting = assignment.set_collector(
            db.session, data["user_id"], data["capacity"], data["away"], data["away_from"], data["away_until"]
        )
        return "away today" if setting.is_away(today_utc()) else "present today"

    return _manager_post(CollectorSchema(), run, "Collector saved ({result}).")


@bp.post("/worklists/manage/rules")
@require(Permission.WORKLISTS_MANAGE)
def add_rule() -> Any:
    return _manager_post(RuleSchema(), lambda data: assignment.add_rule(db.session, data), "Assignment rule added.")


@bp.route("/worklists/manage/rules/<int:rule_id>", methods=["GET", "POST"])
@require(Permission.WORKLISTS_MANAGE)
def edit_rule(rule_id: int) -> Any:
    """Change an assignment rule: the form shows the rule; a refused change shows why beside the field and
    keeps what was typed (nothing is saved)."""
    rule = db.session.get(AssignmentRule, rule_id)  # rules are agency-side, like teams
    if rule is None:
        abort(404)
    errors: dict[str, list[str]] = {}
    values = assignment.rule_form_values(rule)
    if request.method == "POST":
        saved, errors = submit_form(
            RuleSchema(), request.form, lambda d: assignment.update_rule(db.session, rule_id, d)
        )
        if saved is not None:
            flash("Assignment rule saved.", "success")
            return redirect(url_for("worklists.manage") + "#rules-h")
        values = kept_values(request.form)
    teams = db.session.scalars(select(Team).order_by(Team.name)).all()
    clients = db.session.scalars(select(Client).order_by(Client.name)).all()
    status = 422 if errors else 200
    return render_template(
        "worklists/rule_edit.html", rule=rule, values=values, errors=errors, teams=teams, clients=clients
    ), status


@bp.post("/worklists/manage/rules/delete")
@require(Permission.WORKLISTS_MANAGE)
def delete_rule() -> Any:
    return _manager_post(
        RuleDeleteSchema(), lambda data: assignment.delete_rule(db.session, data["rule_id"]), "Assignment rule removed."
    )


@bp.post("/worklists/manage/targets")
@require(Permission.WORKLISTS_MANAGE)
def set_target() -> Any:
    def run(data: dict[str, Any]) -> str:
        user = db.session.get(User, data["user_id"])
        if user is None or user.role != "collector":
            raise ServiceError("choose a collector", field="user_id")
        currency = data["currency"].upper()
        collected = outcomes.minor(data["collected"], currency) if currency.isalpha() else -1
        targets.set_target(db.session, user, data["accounts_per_day"], data["promises_per_week"], currency, collected)
        return user.name

    return _manager_post(TargetSchema(), run, "Targets of {result} saved.")


from worklists import account_views  # noqa: E402, F401 - the account view's routes on this blueprint
