"""Four eyes over remittance runs, their payout files, and marking them paid (issue 20 item 4).

A drafted run (`provider.books.remittance`) is *prepared* for payment by one person (the client's bank
account is checked then: a payout to a client without bank details, or with an IBAN that fails its check, is
refused before anyone can approve it), and *approved* by a second, different person. Approval posts the
books' `remittance` transaction (`approve_run`) and writes the payout file in the same database transaction:
SEPA pain.001 for EUR (the client's IBAN), NACHA for USD to a US account, CSV otherwise. The file is made
once, with a message id and end-to-end id derived from the run, and stored: every download returns the same
bytes, so a second download can never be a second payment instruction; it is audited and marked as a
re-download. The run is marked paid (`mark_run_paid`, the bank leg) when an imported bank statement shows the
debit (`match_debits`: amount, currency, value date within a window after approval, and the end-to-end id or
message id among the references the bank gave back), or by a manager with the bank's reference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from clients.bank_details import BankDetailsError, ClientBankAccount, check_bic, check_iban
from clients.bank_lines import DebitLine
from clients.models import Client
from clients.payout_files import (
    Originator,
    Payee,
    PayoutError,
    PayoutLine,
    csv_file,
    file_kind,
    nacha_file,
    sepa_credit_transfer,
)
from clients.trust_models import RunPayout, TrustAccount
from provider.books.models import RemittanceRun, RunStatus
from provider.books.remittance import approve_run, mark_run_paid
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import exponent, format_money

MATCH_DAYS_BEFORE = 1  # a bank may book the debit the day before the approval's UTC date (time zones)
MATCH_DAYS_AFTER = 10  # ... and up to ten days after it (execution date, weekends, holidays)


class PayoutRefused(ServiceError):
    """The step is refused; the message says why in the user's words."""


def message_id(run: RemittanceRun) -> str:
    return f"AR-REM-{run.client_id}-{run.id}"


def end_to_end_id(run: RemittanceRun) -> str:
    return f"REM-{run.client_id}-{run.id}"


def fees_reference(run: RemittanceRun) -> str:
    """The reference of the transfer moving the fees a run kept from the trust account to the agency's own."""
    return f"FEES-{run.client_id}-{run.id}"


def _mask(account: str) -> str:
    return f"…{account[-4:]}" if len(account) > 4 else account


def payout_of(session: Session, run: RemittanceRun) -> RunPayout | None:
    return session.scalar(sa.select(RunPayout).where(RunPayout.client_id == run.client_id, RunPayout.run_id == run.id))


def payee_for(session: Session, run: RemittanceRun) -> Payee:
    """The client's bank account for the run's currency, checked; refused with the reason otherwise."""
    client = session.get_one(Client, run.client_id)
    account = session.scalar(
        sa.select(ClientBankAccount).where(
            ClientBankAccount.client_id == run.client_id, ClientBankAccount.currency == run.currency
        )
    )
    if account is None:
        raise PayoutRefused(
            f"{client.name} has no bank account for {run.currency}: record its bank details before this remittance "
            "can be paid",
            field="bank_account",
        )
    try:
        iban = check_iban(account.iban) if account.iban else ""
        bic = check_bic(account.bic) if account.bic else ""
    except BankDetailsError as exc:
        raise PayoutRefused(f"{client.name}'s bank account for {run.currency}: {exc}", field="bank_account") from None
    if run.currency == "EUR" and not iban:
        raise PayoutRefused(f"{client.name}'s EUR bank account has no IBAN (SEPA needs one)", field="bank_account")
    return Payee(
        name=account.holder,
        currency=run.currency,
        iban=iban,
        bic=bic,
        routing_number=account.routing_number,
        account_number=account.account_number,
        account_type=account.account_type,
    )


def _actor_is(payout_user_id: int | None, payout_label: str, actor: audit.Actor) -> bool:
    if actor.user_id is not None and payout_user_id is not None:
        return actor.user_id == payout_user_id
    return actor.label.strip().lower() == payout_label.strip().lower()


def prepare(session: Session, run: RemittanceRun) -> RunPayout:
    """The first pair of eyes: a draft run is put forward for approval (its payee checked)."""
    actor = audit.current_actor()
    if actor.user_id is None:
        raise PayoutRefused("a remittance is prepared by a person, not by the system")
    if run.status != RunStatus.DRAFT.value:
        raise PayoutRefused("only a draft remittance can be prepared for payment", field="status")
    existing = payout_of(session, run)
    if existing is not None:
        raise PayoutRefused(
            f"this remittance was already prepared by {existing.prepared_by} on {existing.prepared_at:%Y-%m-%d}; "
            "it now waits for a second person's approval",
            field="status",
        )
    payee = payee_for(session, run) if run.remit_minor > 0 else None
    account = (payee.iban or payee.account_number) if payee else ""
    row = RunPayout(
        client_id=run.client_id,
        run_id=run.id,
        currency=run.currency,
        amount_minor=run.remit_minor,
        payee_name=payee.name if payee else "",
        payee_account=_mask(account),
        prepared_by_id=actor.user_id,
        prepared_by=actor.label[:254],
        prepared_at=now_utc(),
        message_id=message_id(run),
        end_to_end_id=end_to_end_id(run),
    )
    session.add(row)
    session.flush()
    audit.record(session, "remittance.prepared", run, after={"remit_minor": run.remit_minor, "currency": run.currency})
    return row


def _originator(session: Session, currency: str) -> Originator:
    account = session.scalar(sa.select(TrustAccount).where(TrustAccount.currency == currency))
    if account is None:
        raise PayoutRefused(
            f"the agency has no trust bank account for {currency}: an agency admin records it first",
            field="trust_account",
        )
    if account.routing_number:
        return Originator(
            name=account.name,
            ach_routing=account.routing_number,
            ach_company_id=account.ach_company_id,
            ach_origin=account.ach_company_id,
            ach_destination_name="",
        )
    return Originator(name=account.name, iban=account.account, bic=account.bic)


def build_file(session: Session, run: RemittanceRun, row: RunPayout) -> None:
    """The payout file, made once (at approval) from the run and stored on the payout."""
    if run.remit_minor <= 0:
        row.kind = "none"
        return
    payee = payee_for(session, run)
    line = PayoutLine(
        payee=payee,
        amount_minor=run.remit_minor,
        currency=run.currency,
        end_to_end_id=row.end_to_end_id,
        description=f"Remittance {run.period_start:%Y-%m-%d} to {run.period_end:%Y-%m-%d} {row.end_to_end_id}",
    )
    created = now_utc().replace(microsecond=0)
    kind = file_kind(run.currency, [line])
    try:
        if kind == "sepa":
            content = sepa_credit_transfer(
                _originator(session, "EUR"), [line], row.message_id, created.replace(tzinfo=None), created.date()
            )
            extension = "xml"
        elif kind == "nacha":
            content = nacha_file(_originator(session, "USD"), [line], created, created.date())
            extension = "ach"
        else:
            content = csv_file([line])
            extension = "csv"
    except PayoutError as exc:
        raise PayoutRefused(f"the payout file cannot be made: {exc}", field="payout_file") from None
    row.kind, row.content, row.file_created_at = kind, content, created
    row.digest = hashlib.sha256(content).hexdigest()
    row.filename = f"payout-{row.message_id}.{extension}"


def approve(session: Session, run: RemittanceRun) -> RunPayout:
    """The second pair of eyes: approve the run (books posting) and make its payout file, in one transaction."""
    actor = audit.current_actor()
    row = payout_of(session, run)
    if row is None:
        raise PayoutRefused("this remittance has not been prepared for payment yet", field="status")
    if row.approved_at is not None or run.status != RunStatus.DRAFT.value:
        by = f" by {row.approved_by}" if row.approved_by else ""
        raise PayoutRefused(f"this remittance was already approved{by}; it cannot be approved twice", field="status")
    if actor.user_id is None:
        raise PayoutRefused("a remittance is approved by a person, not by the system")
    if _actor_is(row.prepared_by_id, row.prepared_by, actor):
        raise PayoutRefused(
            "you prepared this remittance: a second person must approve it (four eyes)", field="approved_by"
        )
    build_file(session, run, row)  # first: a file that cannot be made stops the approval before any posting
    approve_run(session, run, actor.label)
    row.approved_by_id, row.approved_by, row.approved_at = actor.user_id, actor.label[:254], now_utc()
    session.flush()
    audit.record(session, "payout.approved", run, after={"kind": row.kind, "message_id": row.message_id})
    return row


@dataclass(frozen=True)
class Download:
    content: bytes
    filename: str
    mimetype: str
    number: int  # 1 = the first download

    @property
    def again(self) -> bool:
        return self.number > 1


MIMETYPES = {"sepa": "application/xml", "nacha": "text/plain", "csv": "text/csv"}


def download(session: Session, run: RemittanceRun) -> Download:
    """The stored payout file; audited, and marked as a re-download after the first."""
    row = payout_of(session, run)
    if row is None or row.approved_at is None:
        raise PayoutRefused("the payout file can be downloaded once the remittance is approved by a second person")
    if row.content is None:
        raise PayoutRefused("this remittance pays nothing, so it has no payout file")
    session.execute(
        sa.update(RunPayout)
        .where(RunPayout.client_id == row.client_id, RunPayout.id == row.id)
        .values(downloads=RunPayout.downloads + 1)
    )
    session.refresh(row)
    action = "payout.downloaded" if row.downloads == 1 else "payout.redownloaded"
    audit.record(
        session, action, run, after={"download": row.downloads, "message_id": row.message_id, "sha256": row.digest}
    )
    return Download(bytes(row.content), row.filename, MIMETYPES[row.kind], row.downloads)


def mark_paid_manually(session: Session, run: RemittanceRun, paid_on: date, reference: str) -> RemittanceRun:
    if not reference.strip():
        raise PayoutRefused("give the bank's reference of the payment", field="bank_reference")
    if run.status != RunStatus.APPROVED.value:
        raise PayoutRefused("only an approved remittance that is not yet paid can be marked paid", field="status")
    if paid_on > now_utc().date():
        raise PayoutRefused("the day it was paid cannot be in the future", field="paid_on")
    mark_run_paid(session, run, paid_on, reference.strip())
    row = payout_of(session, run)
    if row is not None:
        row.paid_via, row.bank_line_ref = "manual", reference.strip()[:64]
    return run


# --- matching a bank statement's debits ----------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_/.]*")


def to_minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(exponent(currency)).to_integral_value())


@dataclass(frozen=True)
class Matched:
    line: DebitLine
    run: RemittanceRun


def match_debits(session: Session, lines: Iterable[DebitLine], client_id: int | None = None) -> list[Matched]:
    """Mark paid each approved run whose payment one of `lines` shows: same currency and amount, value date
    within the window after approval, and the run's end-to-end id or message id among the line's references.
    A line that fits more than one run is left alone (a person decides). A run already paid, or a line
    already used, changes nothing: importing the same statement again is harmless."""
    lines = [line for line in lines if line.amount > 0]
    if not lines:
        return []
    q = (
        sa.select(RemittanceRun, RunPayout)
        .join(RunPayout, (RunPayout.client_id == RemittanceRun.client_id) & (RunPayout.run_id == RemittanceRun.id))
        .where(RemittanceRun.status == RunStatus.APPROVED.value, RemittanceRun.remit_minor > 0)
    )
    if client_id is not None:
        q = q.where(RemittanceRun.client_id == client_id)
    candidates = session.execute(q).all()
    used = set(session.scalars(sa.select(RunPayout.bank_line_ref).where(RunPayout.bank_line_ref != "")))
    out: list[Matched] = []
    for line in lines:
        if line.line_ref in used:
            continue
        words = {w.upper() for w in _WORD.findall(line.refs)}
        day = line.value_on or line.booked_on
        fits = [
            (run, payout)
            for run, payout in candidates
            if run.status == RunStatus.APPROVED.value
            and run.currency == line.currency
            and run.remit_minor == to_minor(line.amount, line.currency)
            and payout.approved_at is not None
            and day is not None
            and payout.approved_at.date() - timedelta(days=MATCH_DAYS_BEFORE)
            <= day
            <= payout.approved_at.date() + timedelta(days=MATCH_DAYS_AFTER)
            and (payout.end_to_end_id.upper() in words or payout.message_id.upper() in words)
        ]
        if len(fits) != 1:
            continue
        run, payout = fits[0]
        mark_run_paid(session, run, line.booked_on or day or now_utc().date(), line.line_ref)
        payout.paid_via, payout.bank_line_ref = "statement", line.line_ref
        used.add(line.line_ref)
        out.append(Matched(line, run))
    return out


def describe(row: RunPayout | None) -> str:
    if row is None:
        return "not prepared"
    if row.approved_at is None:
        return f"prepared by {row.prepared_by}, waiting for a second person's approval"
    return f"approved by {row.approved_by} ({format_money(row.amount_minor, row.currency)})"
