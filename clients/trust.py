"""Trust reconciliation (issue 20 item 5): per trust account (one per currency) and day, three figures that
must agree:

1. **bank**: the closing booked balance of the agency's trust account that day, from an imported statement
   (`import_trust_statement`; the account is recognised by its IBAN or number in `trust_accounts`);
2. **trust ledger**: the balance of `trust_bank` in the agency's books at the end of that day;
3. **clients**: what the clients' trust balances explain: held in trust for them (`trust_liability`) +
   approved remittances not yet paid by the bank (`remit_clearing`) + fees and tax kept from trust money and
   not yet moved to the agency's own account - what clients owe back to trust (`due_from_client`).

Each difference is listed with its likely causes, each found on its own from the data (never as the rest of
a subtraction): bank lines not recorded as payments, payments recorded but not (yet) in the bank, debits in the
bank not matched to a remittance, remittances marked paid by hand that the bank does not show. What the causes
do not explain is shown as "not explained". The nightly job keeps one result per currency and day.

Reads every client's books: run it with the agency's tenant scope (the job and the CLI set it; the page is for
agency managers, whose scope is the agency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from clients import bank_files, payouts
from clients.bank_details import BankDetailsError, aba_routing_ok, check_bic, check_iban
from clients.bank_lines import BankFileRejected
from clients.journal import Payment
from clients.payouts import match_debits, to_minor
from clients.trust_models import (
    RunPayout,
    TrustAccount,
    TrustBankLine,
    TrustReconciliation,
    TrustStatementBalance,
)
from provider.books.models import AgencyAccount, AgencyEntry, AgencyTransaction, BooksKind, RemittanceRun
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import format_money

A = AgencyAccount
LISTED = 50  # causes listed per kind (their totals cover them all)


class TrustRefused(ServiceError):
    pass


def compact(account: str) -> str:
    return "".join(account.split()).upper()


def save_trust_account(session: Session, data: dict[str, str]) -> TrustAccount:
    """Record the agency's trust account for a currency (an IBAN, or a US routing and account number)."""
    errors: dict[str, str] = {}
    currency = (data.get("currency") or "").strip().upper()
    name = (data.get("name") or "").strip()
    account, bic, routing = compact(data.get("account") or ""), compact(data.get("bic") or ""), ""
    if len(currency) != 3 or not currency.isalpha():
        errors["currency"] = "give the currency as three letters"
    if not name or len(name) > 70:
        errors["name"] = "give the account holder's name (up to 70 characters)"
    if data.get("routing_number"):
        routing = compact(data["routing_number"])
        if not aba_routing_ok(routing):
            errors["routing_number"] = "a US routing number has nine digits and a valid check digit"
        if not account.isalnum() or len(account) > 17:
            errors["account"] = "a US account number has 1 to 17 letters or digits"
    else:
        try:
            account = check_iban(account)
        except BankDetailsError as exc:
            errors["account"] = str(exc)
        if bic:
            try:
                bic = check_bic(bic)
            except BankDetailsError as exc:
                errors["bic"] = str(exc)
    if errors:
        raise TrustRefused(
            "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in errors.items()), field=next(iter(errors))
        )
    row = session.scalar(sa.select(TrustAccount).where(TrustAccount.currency == currency))
    if row is None:
        row = TrustAccount(currency=currency, name=name, account=account)
        session.add(row)
    row.name, row.account, row.bic, row.routing_number = name, account, bic, routing
    row.ach_company_id = (data.get("ach_company_id") or row.ach_company_id or "").strip()[:10]
    session.flush()
    return row


@dataclass
class TrustImport:
    balances: int = 0
    lines: int = 0
    repeated: int = 0
    remittances_paid: list[int] = field(default_factory=list)
    other_accounts: list[str] = field(default_factory=list)


def import_trust_statement(session: Session, content: bytes, filename: str = "") -> TrustImport:
    """Store the balances and lines a statement gives for the agency's trust accounts and mark paid the
    remittances whose debits it shows. Importing the same statement again changes nothing."""
    try:
        statement = bank_files.read_statement(content)
    except BankFileRejected as exc:
        raise TrustRefused(f"the statement was not imported: {exc}", field="file") from None
    accounts = {compact(a.account): a for a in session.scalars(sa.select(TrustAccount))}
    out = TrustImport()
    known_refs = set(session.scalars(sa.select(TrustBankLine.line_ref)))
    actor = audit.current_actor().label[:254]
    for bal in statement.closing:
        account = accounts.get(compact(bal.account))
        if account is None or account.currency != bal.currency:
            out.other_accounts.append(bal.account)
            continue
        row = session.scalar(
            sa.select(TrustStatementBalance).where(
                TrustStatementBalance.trust_account_id == account.id, TrustStatementBalance.on_day == bal.on
            )
        )
        if row is None:
            row = TrustStatementBalance(trust_account_id=account.id, on_day=bal.on)
            session.add(row)
        row.balance_minor, row.filename, row.imported_by = to_minor(bal.amount, bal.currency), filename[:255], actor
        out.balances += 1
    # credit lines carry no account of their own: the statement's one trust account (if it is one)
    trust_of_file = {compact(b.account) for b in statement.closing} & set(accounts)
    credit_account = accounts[next(iter(trust_of_file))] if len(trust_of_file) == 1 else None
    new_lines: list[TrustBankLine] = []
    for credit in statement.lines:
        if credit_account is None or credit.currency != credit_account.currency or credit.booked_on is None:
            continue
        if credit.payment_ref in known_refs:
            out.repeated += 1
            continue
        known_refs.add(credit.payment_ref)
        new_lines.append(
            TrustBankLine(
                trust_account_id=credit_account.id,
                line_ref=credit.payment_ref,
                bank_ref=credit.payment_ref.split("~")[0][:64],
                booked_on=credit.booked_on,
                amount_minor=to_minor(credit.amount, credit.currency),
                currency=credit.currency,
                refs=credit.remittance[:500],
            )
        )
    debits = []
    for debit in statement.debit_lines:
        account = accounts.get(compact(debit.account))
        if account is None or account.currency != debit.currency or debit.booked_on is None:
            continue
        if debit.line_ref in known_refs:
            out.repeated += 1
            continue
        known_refs.add(debit.line_ref)
        debits.append(debit)
        new_lines.append(
            TrustBankLine(
                trust_account_id=account.id,
                line_ref=debit.line_ref,
                bank_ref=debit.line_ref.split("~")[0][:64],
                booked_on=debit.booked_on,
                amount_minor=-to_minor(debit.amount, debit.currency),
                currency=debit.currency,
                refs=debit.refs[:500],
            )
        )
    session.add_all(new_lines)
    out.lines = len(new_lines)
    session.flush()
    for matched in match_debits(session, debits):
        run = matched.run
        refs = [matched.line.line_ref]
        # the fees the run kept leave the trust account too (to the agency's own account), as a debit of their
        # own with the reference `fees_reference(run)`: it belongs to the same run
        sweep = payouts.fees_reference(run).upper()
        refs += [
            d.line_ref
            for d in debits
            if d is not matched.line
            and to_minor(d.amount, d.currency) == run.netted_minor
            and d.currency == run.currency
            and sweep in d.refs.upper().split()
        ][:1]
        session.execute(
            sa.update(TrustBankLine)
            .where(TrustBankLine.line_ref.in_(refs))
            .values(run_client_id=run.client_id, run_id=run.id)
        )
        out.remittances_paid.append(run.id)
    audit.record(
        session,
        "trust.statement_imported",
        "TrustStatement",
        object_id=filename[:60] or "statement",
        after={"balances": out.balances, "lines": out.lines, "remittances_paid": out.remittances_paid},
    )
    return out


# --- the three-way check -------------------------------------------------------------------------------------


@dataclass
class Cause:
    kind: str
    text: str
    amount_minor: int  # signed: what it adds to bank - ledger


CAUSE_TITLES = {
    "bank_not_recorded": "Received in the bank, not recorded as a payment",
    "recorded_not_in_bank": "Recorded as a payment to the agency, not (yet) in the bank",
    "debit_not_matched": "Paid out of the bank, not matched to a remittance",
    "paid_not_in_bank": "Remittance marked paid by hand, not seen in the bank",
    "unexplained": "Not explained by the above",
}


def _account_sums(session: Session, day: date, currency: str) -> dict[str, int]:
    e, t = AgencyEntry, AgencyTransaction
    rows = session.execute(
        sa.select(e.account, sa.func.sum(e.amount_minor))
        .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
        .where(e.currency == currency, t.occurred_on <= day)
        .group_by(e.account)
    ).all()
    return {account: int(total or 0) for account, total in rows}


def _fees_in_trust(session: Session, day: date, currency: str) -> int:
    """Fees and tax taken out of trust money (payments to the agency; not those invoiced to the client),
    less what has been moved to the agency's own account."""
    e, t = AgencyEntry, AgencyTransaction
    e2 = aliased(AgencyEntry)
    receivable = (
        sa.select(sa.literal(1))
        .where(e2.client_id == t.client_id, e2.transaction_id == t.id, e2.account == A.FEES_RECEIVABLE.value)
        .exists()
    )
    taken = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(-e.amount_minor), 0))
        .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
        .where(
            e.currency == currency,
            t.occurred_on <= day,
            e.account.in_([A.FEES_EARNED.value, A.TAX_PAYABLE.value]),
            t.kind.in_([BooksKind.COLLECTION.value, BooksKind.FEE.value, BooksKind.REVERSAL.value]),
            ~receivable,
        )
    )
    return int(taken or 0)


def _credits_not_recorded(session: Session, account: TrustAccount, day: date) -> list[Cause]:
    lines = session.execute(
        sa.select(TrustBankLine.line_ref, TrustBankLine.booked_on, TrustBankLine.amount_minor, TrustBankLine.refs)
        .where(
            TrustBankLine.trust_account_id == account.id,
            TrustBankLine.amount_minor > 0,
            TrustBankLine.booked_on <= day,
            ~sa.select(Payment.id)
            .where(Payment.external_ref.in_([TrustBankLine.line_ref, TrustBankLine.bank_ref]))
            .exists(),
        )
        .order_by(TrustBankLine.booked_on, TrustBankLine.id)
    ).all()
    return [
        Cause(
            "bank_not_recorded",
            f"{booked}: {format_money(amount, account.currency)} ({(refs or ref)[:60]})",
            amount,
        )
        for ref, booked, amount, refs in lines
    ]


def _recorded_not_in_bank(session: Session, account: TrustAccount, day: date) -> list[Cause]:
    """Payments to the agency in the books up to `day`, from the first day a statement was imported, whose
    reference is no line of the trust account's statements."""
    first = session.scalar(
        sa.select(sa.func.min(TrustBankLine.booked_on)).where(TrustBankLine.trust_account_id == account.id)
    )
    if first is None:
        return []
    e, t = AgencyEntry, AgencyTransaction
    rows = session.execute(
        sa.select(Payment.external_ref, t.occurred_on, e.amount_minor, t.client_id)
        .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
        .join(Payment, (Payment.client_id == t.client_id) & (Payment.id == t.payment_id))
        .where(
            e.account == A.TRUST_BANK.value,
            e.currency == account.currency,
            t.kind == BooksKind.COLLECTION.value,
            t.occurred_on >= first,
            t.occurred_on <= day,
            ~sa.select(TrustBankLine.id)
            .where(
                TrustBankLine.amount_minor > 0,
                sa.or_(TrustBankLine.line_ref == Payment.external_ref, TrustBankLine.bank_ref == Payment.external_ref),
            )
            .exists(),
        )
        .order_by(t.occurred_on, t.id)
    ).all()
    return [
        Cause(
            "recorded_not_in_bank",
            f"{on}: {format_money(amount, account.currency)} payment {ref} (client {client_id})",
            -amount,
        )
        for ref, on, amount, client_id in rows
    ]


def _debits_not_matched(session: Session, account: TrustAccount, day: date) -> list[Cause]:
    lines = session.execute(
        sa.select(TrustBankLine.booked_on, TrustBankLine.amount_minor, TrustBankLine.refs, TrustBankLine.line_ref)
        .where(
            TrustBankLine.trust_account_id == account.id,
            TrustBankLine.amount_minor < 0,
            TrustBankLine.booked_on <= day,
            TrustBankLine.run_id.is_(None),
        )
        .order_by(TrustBankLine.booked_on, TrustBankLine.id)
    ).all()
    approved = session.execute(
        sa.select(RemittanceRun.id, RemittanceRun.remit_minor).where(
            RemittanceRun.status == "approved", RemittanceRun.currency == account.currency
        )
    ).all()
    out = []
    for booked, amount, refs, ref in lines:
        likely = [str(run_id) for run_id, remit in approved if remit == -amount]
        hint = f"; likely remittance {', '.join(likely)} (mark it paid)" if likely else ""
        out.append(
            Cause(
                "debit_not_matched",
                f"{booked}: {format_money(-amount, account.currency)} ({(refs or ref)[:60]}){hint}",
                amount,
            )
        )
    return out


def _paid_not_in_bank(session: Session, account: TrustAccount, day: date) -> list[Cause]:
    e, t = AgencyEntry, AgencyTransaction
    rows = session.execute(
        sa.select(RemittanceRun.id, RemittanceRun.paid_on, e.amount_minor, RunPayout.bank_line_ref)
        .join(t, (t.client_id == RemittanceRun.client_id) & (t.source == "run") & (t.source_id == RemittanceRun.id))
        .join(e, (e.client_id == t.client_id) & (e.transaction_id == t.id))
        .join(RunPayout, (RunPayout.client_id == RemittanceRun.client_id) & (RunPayout.run_id == RemittanceRun.id))
        .where(
            t.kind == BooksKind.REMITTANCE_PAID.value,
            e.account == A.TRUST_BANK.value,
            e.currency == account.currency,
            t.occurred_on <= day,
            RunPayout.paid_via == "manual",
        )
    ).all()
    return [
        Cause(
            "paid_not_in_bank",
            f"{paid_on}: remittance {run_id}, {format_money(-amount, account.currency)} (reference {ref})",
            -amount,
        )
        for run_id, paid_on, amount, ref in rows
    ]


def reconcile(session: Session, day: date, currency: str) -> TrustReconciliation:
    """The three-way check of one currency's trust account at the end of `day`, stored (replacing a
    previous result for that day)."""
    currency = currency.upper()
    account = session.scalar(sa.select(TrustAccount).where(TrustAccount.currency == currency))
    sums = _account_sums(session, day, currency)
    ledger = sums.get(A.TRUST_BANK.value, 0)
    held = -sums.get(A.TRUST_LIABILITY.value, 0)
    clearing = -sums.get(A.REMITTANCE_CLEARING.value, 0)
    due = sums.get(A.DUE_FROM_CLIENT.value, 0)
    fees = _fees_in_trust(session, day, currency) - sums.get(A.AGENCY_BANK.value, 0)
    clients = held + clearing + fees - due
    bank = bank_on = None
    causes: list[Cause] = []
    if account is not None:
        found = session.execute(
            sa.select(TrustStatementBalance.balance_minor, TrustStatementBalance.on_day)
            .where(TrustStatementBalance.trust_account_id == account.id, TrustStatementBalance.on_day <= day)
            .order_by(TrustStatementBalance.on_day.desc())
            .limit(1)
        ).first()
        if found is not None:
            bank, bank_on = int(found[0]), found[1]
            causes = (
                _credits_not_recorded(session, account, day)
                + _recorded_not_in_bank(session, account, day)
                + _debits_not_matched(session, account, day)
                + _paid_not_in_bank(session, account, day)
            )
    bank_vs_ledger = (bank - ledger) if bank is not None else 0
    explained = sum(c.amount_minor for c in causes)
    if bank is not None and bank_vs_ledger != explained:
        causes.append(
            Cause("unexplained", "the difference the causes above do not explain", bank_vs_ledger - explained)
        )
    status = "no_statement" if bank is None else "agrees" if bank_vs_ledger == 0 and clients == ledger else "differs"
    details: dict[str, Any] = {
        "account": account.account if account else "",
        "components": {"held": held, "clearing": clearing, "fees_in_trust": fees, "due_from_clients": due},
        "bank_minus_ledger": bank_vs_ledger,
        "ledger_minus_clients": ledger - clients,
        "causes": {
            kind: {
                "title": CAUSE_TITLES[kind],
                "total_minor": sum(c.amount_minor for c in causes if c.kind == kind),
                "count": sum(1 for c in causes if c.kind == kind),
                "items": [c.text for c in causes if c.kind == kind][:LISTED],
            }
            for kind in CAUSE_TITLES
            if any(c.kind == kind for c in causes)
        },
    }
    if account is None:
        details["note"] = f"the agency has no trust account for {currency}"
    elif bank is None:
        details["note"] = f"no statement of the trust account up to {day} was imported"
    elif bank_on != day:
        details["note"] = f"the latest statement balance up to {day} is of {bank_on}"
    row = session.scalar(
        sa.select(TrustReconciliation).where(
            TrustReconciliation.on_day == day, TrustReconciliation.currency == currency
        )
    )
    if row is None:
        row = TrustReconciliation(on_day=day, currency=currency)
        session.add(row)
    row.status, row.bank_minor, row.bank_on = status, bank, bank_on
    row.ledger_minor, row.clients_minor, row.held_minor = ledger, clients, held
    row.details, row.computed_at = details, now_utc()
    session.flush()
    return row


def currencies(session: Session) -> list[str]:
    """Every currency with a trust account or trust money in the books."""
    found = set(session.scalars(sa.select(TrustAccount.currency)))
    found |= set(
        session.scalars(sa.select(AgencyEntry.currency).where(AgencyEntry.account == A.TRUST_BANK.value).distinct())
    )
    return sorted(found)


def reconcile_all(session: Session, day: date, currency: str | None = None) -> list[TrustReconciliation]:
    return [reconcile(session, day, c) for c in ([currency.upper()] if currency else currencies(session))]
