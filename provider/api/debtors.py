"""API v1 debtors: list, read, create, update (PATCH with optimistic concurrency) and the account's work history.

A debtor's representation carries its primary e-mail address and phone number (the contacts the back office
shows first) and an `ETag`; `PATCH` with `If-Match: <that ETag>` changes it only if nobody changed it since
(412 otherwise), and without `If-Match` changes it unconditionally. `updated_at` moves with every change,
contacts included, so `?updated_since=` finds it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import request, url_for
from sqlalchemy import func, select

from clients import services
from clients.models import ContactKind, Debtor, DebtorContact
from provider.api import schemas as s
from provider.api.base import current_client, load, operation, parse_body, parse_query
from provider.api.pagination import as_datetime, as_int, as_str, keyset_page
from provider.api.problems import ApiProblem
from provider.core import audit
from provider.core.clock import now_utc
from provider.extensions import db

DEBTOR_OUT = s.DebtorOut()
CONTACT_KINDS = (ContactKind.EMAIL.value, ContactKind.PHONE.value)
PATCHABLE = ("name", "timezone", "segment", "do_not_contact")


def primary_contacts(client_id: int, debtor_ids: list[int]) -> dict[tuple[int, str], DebtorContact]:
    """{(debtor id, "email"|"phone"): its primary contact (the primary one, else the oldest)}, in one query."""
    if not debtor_ids:
        return {}
    rows = db.session.scalars(
        select(DebtorContact)
        .where(
            DebtorContact.client_id == client_id,
            DebtorContact.debtor_id.in_(debtor_ids),
            DebtorContact.kind.in_(CONTACT_KINDS),
        )
        .order_by(DebtorContact.is_primary.desc(), DebtorContact.id)
    )
    found: dict[tuple[int, str], DebtorContact] = {}
    for contact in rows:
        found.setdefault((contact.debtor_id, contact.kind), contact)
    return found


def dump_debtors(debtors: list[Debtor]) -> list[dict[str, Any]]:
    contacts = primary_contacts(current_client().id, [d.id for d in debtors])
    out = []
    for debtor in debtors:
        item = DEBTOR_OUT.dump(debtor)
        for kind in CONTACT_KINDS:
            contact = contacts.get((debtor.id, kind))
            item[kind] = contact.value if contact else None
        out.append(item)
    return out


def etag_of(item: dict[str, Any]) -> str:
    """A strong validator of the representation: it changes whenever any field of it does."""
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f'"{digest}"'


def with_etag(item: dict[str, Any], status: int = 200, **headers: str) -> Any:
    return item, status, {"ETag": etag_of(item), **headers}


def require_match(current: dict[str, Any], what: str) -> None:
    """`If-Match` (when sent, and not `*`) must name the current representation's ETag: otherwise 412, before
    anything is written. A weak tag (`W/"..."`) is compared by its value."""
    expected = request.headers.get("If-Match")
    if expected is None or expected.strip() == "*":
        return
    if etag_of(current) not in {tag.strip().removeprefix("W/") for tag in expected.split(",")}:
        raise ApiProblem(412, f"the {what} changed since you read it; read it again", kind="precondition-failed")


@operation(
    "/debtors", "GET", summary="List debtors", tag="debtors", query=s.DebtorQuery, response=s.page_of(s.DebtorOut)
)
def list_debtors() -> Any:
    args = parse_query(s.DebtorQuery())
    stmt = select(Debtor).where(Debtor.client_id == current_client().id)
    if args.get("external_ref"):
        stmt = stmt.where(Debtor.external_ref == args["external_ref"])
    if args.get("segment"):
        stmt = stmt.where(Debtor.segment == args["segment"])
    if args.get("q"):
        stmt = stmt.where(func.lower(Debtor.name).contains(args["q"].lower(), autoescape=True))
    if args.get("updated_since"):
        stmt = stmt.where(Debtor.updated_at >= args["updated_since"])
    sorts = {
        "id": (Debtor.id, as_int),
        "name": (Debtor.name, as_str),
        "external_ref": (Debtor.external_ref, as_str),
        "updated_at": (Debtor.updated_at, as_datetime),
    }
    items, cursor = keyset_page(stmt, Debtor.id, sorts, args)
    return {"data": dump_debtors(items), "next_cursor": cursor}


@operation("/debtors/{debtor_id}", "GET", summary="One debtor", tag="debtors", response=s.DebtorOut)
def get_debtor(debtor_id: int) -> Any:
    """The answer's `ETag` is what `If-Match` of a PATCH compares with."""
    return with_etag(dump_debtors([load(Debtor, debtor_id)])[0])


@operation(
    "/debtors", "POST", summary="Create a debtor", tag="debtors", body=s.DebtorIn, response=s.DebtorOut, status=201
)
def create_debtor() -> Any:
    """Same fields and rules as the back office's debtor form; the external reference is unique per client."""
    data = parse_body(s.DebtorIn())
    client = current_client()
    _refuse_taken_ref(data["external_ref"])
    debtor = services.create_debtor(db.session, client, data)
    return with_etag(dump_debtors([debtor])[0], 201, Location=url_for("api.get_debtor", debtor_id=debtor.id))


def _refuse_taken_ref(external_ref: str, but: int | None = None) -> None:
    taken = db.session.scalar(
        select(Debtor.id).where(Debtor.client_id == current_client().id, Debtor.external_ref == external_ref)
    )
    if taken is not None and taken != but:
        raise ApiProblem(
            409, "a debtor with this external reference exists", kind="duplicate", errors={"external_ref": ["exists"]}
        )


@operation(
    "/debtors/{debtor_id}",
    "PATCH",
    summary="Update a debtor (names, reference, contacts)",
    tag="debtors",
    body=s.DebtorPatch,
    response=s.DebtorOut,
    extra_responses={412: "If-Match does not match the debtor's current ETag: it changed meanwhile; read it again"},
)
def update_debtor(debtor_id: int) -> Any:
    """Only the fields sent change; `email`/`phone` set the primary contact (null removes it). With
    `If-Match: <ETag>` (from GET or a previous PATCH) the change applies only if the debtor is unchanged since,
    otherwise 412 and nothing is written. Audited; `updated_at` moves."""
    debtor = load(Debtor, debtor_id)
    data = parse_body(s.DebtorPatch())
    db.session.refresh(debtor, with_for_update=True)  # PostgreSQL: two PATCHes with one ETag cannot both pass
    require_match(dump_debtors([debtor])[0], "debtor")
    if "external_ref" in data and data["external_ref"] != debtor.external_ref:
        _refuse_taken_ref(data["external_ref"], but=debtor.id)
        before = {"external_ref": debtor.external_ref}
        debtor.external_ref = data["external_ref"]
        audit.record(db.session, "debtor.update", debtor, before=before, after={"external_ref": debtor.external_ref})
    services.update_debtor(db.session, debtor, {k: data[k] for k in PATCHABLE if k in data})
    for kind in CONTACT_KINDS:
        if kind in data:
            _set_primary(debtor, kind, data[kind])
    debtor.updated_at = now_utc()  # contacts are rows of their own: the debtor shows their change
    db.session.flush()
    return with_etag(dump_debtors([debtor])[0])


def _set_primary(debtor: Debtor, kind: str, value: str | None) -> None:
    current = primary_contacts(debtor.client_id, [debtor.id]).get((debtor.id, kind))
    before = current.value if current else None
    if before == value:
        return
    if current is not None and value is None:
        db.session.delete(current)
    elif current is not None and value is not None:
        current.value, current.is_primary = value, True
    elif value is not None:
        db.session.add(
            DebtorContact(client_id=debtor.client_id, debtor_id=debtor.id, kind=kind, value=value, is_primary=True)
        )
    db.session.flush()
    audit.record(db.session, "debtor.update", debtor, before={kind: before}, after={kind: value})


@operation(
    "/debtors/{debtor_id}/work-history",
    "GET",
    summary="Work history of a debtor's account (calls, e-mails, promises, notes)",
    tag="debtors",
    query=s.WorkHistoryQuery,
    response=s.page_of(s.WorkActionOut),
)
def work_history(debtor_id: int) -> Any:
    from worklists.models import WorkAction

    debtor = load(Debtor, debtor_id)
    args = parse_query(s.WorkHistoryQuery())
    stmt = select(WorkAction).where(WorkAction.client_id == debtor.client_id, WorkAction.debtor_id == debtor.id)
    if args.get("updated_since"):
        stmt = stmt.where(WorkAction.updated_at >= args["updated_since"])
    sorts = {
        "id": (WorkAction.id, as_int),
        "occurred_at": (WorkAction.occurred_at, as_datetime),
        "updated_at": (WorkAction.updated_at, as_datetime),
    }
    items, cursor = keyset_page(stmt, WorkAction.id, sorts, args)
    return {"data": s.WorkActionOut().dump(items, many=True), "next_cursor": cursor}
