"""Audit events as sentences a person reads: "Anna Weber recalled Lakeside Motors GmbH (reason: paid directly)".

The audit log stores codes (`portal.recall`, object type and id, before → after values); the pages show who did
what to which named thing, and the changed fields in words. Names are looked up once per page (a query per kind
of object), never per row. An action not in the table reads as its words ("Remittance approve" → "approved the
remittance" style fallback), never as the code.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from provider.extensions import db

# action -> what the actor did, "{object}" is the named object ("" when the action has none)
VERBS: dict[str, str] = {
    "portal.recall": "recalled {object}",
    "portal.reports_optin": "changed who receives the monthly report",
    "user.login": "signed in",
    "user.logout": "signed out",
    "user.session_end": "ended a session of {object}",
    "user.create": "added the user {object}",
    "user.update": "changed the user {object}",
    "user.two_factor_on": "turned on two-factor sign-in",
    "user.two_factor_off": "turned off two-factor sign-in for {object}",
    "user.recovery_code_used": "signed in with a recovery code",
    "user.recovery_codes_renewed": "renewed their recovery codes",
    "user.settings": "changed their settings",
    "client.create": "added the client {object}",
    "client.update": "changed the client {object}",
    "debtor.create": "added the debtor {object}",
    "debtor.update": "changed the debtor {object}",
    "debtor.bulk_create": "added debtors",
    "invoice.place": "placed invoice {object}",
    "invoice.placed": "placed invoices",
    "invoice.write_off": "wrote off invoice {object}",
    "credit_note.issue": "issued credit note {object}",
    "payment.record": "recorded payment {object}",
    "payment.record_batch": "recorded payments",
    "payment.allocate": "allocated payment {object}",
    "payment.assign_debtor": "assigned payment {object} to a debtor",
    "transaction.reverse": "reversed a ledger posting",
    "import.start": "uploaded a placement file",
    "import.remap": "changed the columns of a placement file",
    "import.confirm": "confirmed a placement file",
    "import.finish": "finished a placement file",
    "dispute.open": "opened {object}",
    "dispute.acknowledge": "acknowledged {object}",
    "dispute.investigate": "started investigating {object}",
    "dispute.ask_client": "asked the client about {object}",
    "dispute.client_answered": "answered the question on {object}",
    "dispute.resolve": "resolved {object}",
    "dispute.withdraw": "withdrew {object}",
    "dispute.propose": "proposed a resolution of {object}",
    "dispute.approve": "approved the proposed resolution of {object}",
    "dispute.reject": "rejected the proposed resolution of {object}",
    "dispute.assign": "assigned {object}",
    "dispute.message": "wrote on {object}",
    "dispute.evidence": "added evidence to {object}",
    "client_query.ask": "asked the agency a question",
    "promise.record": "recorded a promise to pay",
    "plan.create": "set up a payment plan",
    "plan.cancel": "cancelled a payment plan",
    "report.generate": "made the monthly report",
    "report.reissue": "re-issued the monthly report",
    "report.notify": "sent the monthly report",
    "report.published": "published the monthly report",
    "worklist.call": "logged a call",
    "worklist.email": "logged an e-mail",
    "worklist.note": "added a note",
    "worklist.claim": "took an account",
    "worklist.release": "released an account",
    "worklist.state": "changed an account's state",
    "worklist.cease": "recorded a request to stop contact",
    "worklist.assign": "assigned accounts",
    "worklist.balance": "rebalanced the work",
    "worklist.rule_added": "added an assignment rule",
    "worklist.rule_changed": "changed an assignment rule",
    "worklist.rule_removed": "removed an assignment rule",
    "contract_terms.create": "added contract terms",
    "calendar.update": "changed the business calendar",
    "calendar.closed_day": "added a closed day",
    "calendar.reopen_day": "reopened a day",
    "sla.breach": "recorded an SLA breach",
    "remittance.draft": "drafted a remittance",
    "remittance.prepared": "prepared a remittance",
    "remittance.approve": "approved a remittance",
    "remittance.paid": "marked a remittance paid",
    "remittance.cancel": "cancelled a remittance",
    "api_token.revoke": "revoked an API token",
    "job.retry": "retried background work",
    "job.cancel": "cancelled background work",
}

OBJECTS = {"Debtor": "debtor", "Invoice": "invoice", "Dispute": "dispute", "Payment": "payment", "User": "user"}
FIELD_WORDS = {
    "external_ref": "reference",
    "do_not_contact": "do not contact",
    "amount_minor": "amount",
    "owner_id": "owner",
    "team_id": "team",
    "client_id": "client",
    "due_date": "due date",
    "issue_date": "issue date",
    "po_reference": "purchase order",
    "receives_reports": "receives the monthly report",
}


@dataclass
class EventView:
    """One audit event ready for a page: `who` and `sentence`, `reason` when one was given, `fields` changed."""

    event: Any
    who: str
    sentence: str
    reason: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)


def _names(events: list[Any]) -> dict[tuple[str, str], str]:
    """(object type, id) -> name, one query per kind of object on the page."""
    from clients.journal import Invoice
    from clients.models import Client, Debtor
    from provider.models import User

    wanted: dict[str, set[int]] = defaultdict(set)
    for e in events:
        if e.object_id and str(e.object_id).isdigit():
            wanted[e.object_type].add(int(e.object_id))
        if e.actor_user_id:
            wanted["User"].add(e.actor_user_id)
    columns: dict[str, tuple[Any, Any]] = {
        "Debtor": (Debtor.id, Debtor.name),
        "Client": (Client.id, Client.name),
        "User": (User.id, User.name),
        "Invoice": (Invoice.id, Invoice.number),
    }
    out: dict[tuple[str, str], str] = {}
    for kind, ids in wanted.items():
        if kind in columns and ids:
            key, name = columns[kind]
            for oid, text in db.session.execute(select(key, name).where(key.in_(ids))).all():
                out[(kind, str(oid))] = f"invoice {text}" if kind == "Invoice" else str(text)
    return out


def _words(key: str) -> str:
    return FIELD_WORDS.get(key, key.replace("_", " "))


def _value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{_words(k)} {_value(v)}" for k, v in value.items())
    return str(value).replace("_", " ")


def _fields(changes: dict[str, Any]) -> list[tuple[str, str]]:
    if not changes:
        return []
    if set(changes) <= {"before", "after"}:
        after, before = changes.get("after") or {}, changes.get("before") or {}
        if isinstance(after, dict) and isinstance(before, dict):
            keys = sorted(set(after) | set(before))
            return [
                (_words(k), f"{_value(before[k])} → {_value(after.get(k))}" if k in before else _value(after[k]))
                for k in keys
                if k != "reason"
            ]
    out = []
    for key, value in sorted(changes.items()):
        if key == "reason":
            continue
        if isinstance(value, list) and len(value) == 2:
            out.append((_words(key), f"{_value(value[0])} → {_value(value[1])}"))
        else:
            out.append((_words(key), _value(value)))
    return out


def _reason(changes: dict[str, Any]) -> str:
    for source in (changes, changes.get("after") if isinstance(changes.get("after"), dict) else {}):
        value = (source or {}).get("reason")
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list) and value and isinstance(value[-1], str):
            return value[-1]
    return ""


def _object(e: Any, names: dict[tuple[str, str], str]) -> str:
    if e.object_type == "Dispute" and e.object_id:
        return f"dispute no. {e.object_id}"
    name = names.get((e.object_type, str(e.object_id)))
    if name:
        return name
    kind = OBJECTS.get(e.object_type, e.object_type.replace("_", " ").lower())
    if e.object_id in ("", "*", None):
        return f"{kind}s" if not kind.endswith("s") else kind
    return f"{kind} no. {e.object_id}"


def _who(e: Any, names: dict[tuple[str, str], str], own: set[int] | None) -> str:
    if e.actor_label.startswith("system:"):
        return "The system"
    if own is not None and e.actor_user_id not in own:
        return "Agency staff"  # the client's trail names its own people, not the agency's
    return names.get(("User", str(e.actor_user_id)), e.actor_label)


def describe(events: list[Any], own: set[int] | None = None) -> list[EventView]:
    """The page's events in words. `own`: the ids of the reader's own organisation (the portal), else None."""
    names = _names(events)
    out = []
    for e in events:
        template = VERBS.get(e.action)
        if template is None:
            family, _, verb = e.action.partition(".")
            template = f"{verb.replace('_', ' ')} ({family.replace('_', ' ')})" + (" {object}" if e.object_id else "")
        changes = e.changes if isinstance(e.changes, dict) else {}
        sentence = template.format(object=_object(e, names)).strip()
        out.append(EventView(e, _who(e, names, own), sentence, _reason(changes), _fields(changes)))
    return out
