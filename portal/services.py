"""Writes a client user makes from the portal: recall an account, change a colleague's role, opt in to the
monthly report. Services flush, never commit; each records what it did in the audit log.

A recall (see `recall_account`) stamps `debtors.recalled_at`, puts the account's open invoices on hold (closing
a dispute keeps that hold), closes its work item through the worklists' state machine and is the audit event
`portal.recall`, with its reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clients.journal import Invoice
from clients.models import Debtor
from portal.queries import RECALL_ACTION, REPORTS_OPTIN_ACTION, report_recipients
from provider import services as provider_services
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.permissions import CLIENT_ROLES
from provider.models import User
from worklists import services as worklist_services
from worklists.models import ItemState, WorkItem

MAX_REASON = 300


def recall_account(session: Session, debtor: Debtor, reason: str, user: Any) -> dict[str, Any]:
    """Take a debtor's account back from the agency.

    Guarantees: every open invoice of the debtor is put on hold (out of the worklist score, dunning and
    allocation), the debtor's work item is closed (it leaves every collector's queue; the nightly rebuild
    does not reopen it, since held invoices are not collectable) and the recall is in the audit log with
    its reason, so it stays in the account's history. Refuses an empty reason and an account with nothing
    left with the agency (no open invoice that is not already held, no open work item).
    """
    reason = " ".join((reason or "").split())[:MAX_REASON]
    if not reason:
        raise ServiceError("say why the account is recalled", field="reason")
    held_ids = list(
        session.scalars(
            select(Invoice.id).where(
                Invoice.client_id == debtor.client_id,
                Invoice.debtor_id == debtor.id,
                Invoice.open_minor > 0,
                Invoice.on_hold.is_(False),
            )
        )
    )
    item = session.scalar(
        select(WorkItem).where(WorkItem.client_id == debtor.client_id, WorkItem.debtor_id == debtor.id)
    )
    open_item = item is not None and item.state != ItemState.CLOSED.value
    if not held_ids and not open_item:
        raise ServiceError("nothing on this account is with the agency any more")
    if held_ids:
        session.execute(
            update(Invoice)
            .where(Invoice.client_id == debtor.client_id, Invoice.id.in_(held_ids))
            .values(on_hold=True)
            .execution_options(synchronize_session="fetch")
        )
    debtor.recalled_at = now_utc()
    if item is not None and open_item:
        worklist_services.set_state(session, item, ItemState.CLOSED, user, note=f"recalled by the client: {reason}")
    audit.record(
        session,
        RECALL_ACTION,
        debtor,
        after={
            "reason": reason,
            "held_invoice_ids": held_ids,
            "work_item_id": item.id if item is not None and open_item else None,
        },
    )
    session.flush()
    return {"held": len(held_ids), "work_item_closed": open_item}


def change_role(session: Session, person: User, role: str, acting_user_id: int) -> User:
    """A client admin makes a colleague a viewer or an admin (never a staff role, never themselves)."""
    if role not in {r.value for r in CLIENT_ROLES}:
        raise ServiceError("choose viewer or administrator", field="role")
    return provider_services.update_user(session, person, {"role": role}, acting_user_id=acting_user_id)


def set_receives_reports(session: Session, person: User, receives: bool) -> bool:
    """Record whether a client user receives the monthly report. Returns False when nothing changed.

    Stored as an audit event (`portal.reports_optin`) until the users table has a preference column:
    the latest event per user is the current choice (`portal.queries.report_recipients`).
    """
    if person.client_id is None:
        raise ServiceError("only client users receive client reports")
    if receives and not person.active:
        raise ServiceError(f"{person.name} cannot sign in any more; enable them first")
    current = report_recipients(person.client_id).get(person.id, False)
    if current == receives:
        return False
    audit.record(
        session,
        REPORTS_OPTIN_ACTION,
        person,
        client_id=person.client_id,
        before={"receives_reports": current},
        after={"receives_reports": receives},
    )
    session.flush()
    return True
