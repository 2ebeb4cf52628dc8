"""Four eyes over remittance runs, the payout file (made once at approval, every download the same bytes and
audited), payee checks before approval, and marking runs paid from an imported bank statement or by hand."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sepaxml
import sqlalchemy as sa
import xmlschema

from clients import payouts, trust
from clients.bank_details import ClientBankAccount, save_bank_account
from clients.corrections import reverse_document
from clients.payouts import PayoutRefused
from clients.trust_models import RunPayout, TrustBankLine
from provider.books.models import AgencyTransaction, RemittanceRun
from provider.books.remittance import draft_runs
from provider.core.audit import Actor, AuditEvent, acting_as
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import give_schedule
from tests.clients.test_payment_imports import _import
from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_user

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
TRUST_IBAN = "DE89370400440532013000"
CLIENT_IBAN = "NL91ABNA0417164300"
APPROVED_AT = datetime(2026, 4, 2, 10, tzinfo=UTC)


def camt(iban: str, opening: str, closing: str, entries: list[str], day: str = "2026-04-03") -> bytes:
    bals = "".join(
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount.lstrip("-")}</Amt>'
        f"<CdtDbtInd>{'DBIT' if amount.startswith('-') else 'CRDT'}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
        for code, amount in (("OPBD", opening), ("CLBD", closing))
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>M-{day}</MsgId><CreDtTm>{day}T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>S-{day}-{iban[-4:]}</Id><Acct><Id><IBAN>{iban}</IBAN></Id></Acct>{bals}{''.join(entries)}"
        "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


def debit(amount: str, end_to_end: str, ref: str, day: str = "2026-04-03") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>{ref}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{end_to_end}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"
    )


def credit(amount: str, ref: str, text: str, day: str = "2026-04-03") -> str:
    return (
        f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>{ref}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
    )


def trust_account(currency: str = "EUR", account: str = TRUST_IBAN) -> Any:
    with scoped(TenantScope.agency(), db.session):
        row = trust.save_trust_account(
            db.session, {"currency": currency, "name": "Agency Trust Account", "account": account}
        )
        db.session.commit()
    return row


def world(bank: bool = True, iban: str = CLIENT_IBAN) -> tuple[Any, RemittanceRun]:
    """A EUR client paid EUR 100.00 in March (15 % fee + 20 % tax: EUR 82.00 to remit), its March run drafted."""
    client = make_client(base_currency="EUR")
    give_schedule(client)
    debtor = make_debtor(client)
    with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
        make_invoice(
            client, debtor, f"INV-{debtor.id}", 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2)
        )
    make_payment(client, debtor, f"P-{client.id}", 10_000, received_on=date(2026, 3, 10))
    if bank:
        with scoped(TenantScope.single(client.id), db.session):
            save_bank_account(db.session, client, {"currency": "EUR", "holder": client.name, "iban": iban})
            db.session.commit()
    with scoped(TenantScope.single(client.id), db.session):
        (run,) = draft_runs(db.session, client.id, "monthly", date(2026, 3, 1), date(2026, 3, 31))
        db.session.commit()
    assert run.remit_minor == 8_200
    return client, run


def as_user(user: Any, client_id: int, action: Any, *args: Any) -> Any:
    with (
        acting_as(Actor(user.id, user.email)),
        scoped(TenantScope.single(client_id), db.session),
        frozen_time(APPROVED_AT),
    ):
        try:
            result = action(db.session, *args)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return result


def approved(client: Any, run: RemittanceRun) -> tuple[Any, Any]:
    preparer, approver = make_user("manager"), make_user("admin")
    as_user(preparer, client.id, payouts.prepare, run)
    as_user(approver, client.id, payouts.approve, run)
    return preparer, approver


def remittance_postings(client_id: int, run_id: int) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(AgencyTransaction.kind).where(
                AgencyTransaction.client_id == client_id,
                AgencyTransaction.source == "run",
                AgencyTransaction.source_id == run_id,
            )
        )
    )


def test_the_same_person_cannot_prepare_and_approve_and_a_run_is_approved_once(db_session: Any) -> None:
    trust_account()
    client, run = world()
    alice, bob, carol = make_user("manager"), make_user("manager"), make_user("admin")
    with pytest.raises(PayoutRefused, match="not been prepared"):
        as_user(bob, client.id, payouts.approve, run)
    as_user(alice, client.id, payouts.prepare, run)
    with pytest.raises(PayoutRefused, match="already prepared by"):
        as_user(bob, client.id, payouts.prepare, run)
    with pytest.raises(PayoutRefused, match="you prepared this remittance: a second person must approve it"):
        as_user(alice, client.id, payouts.approve, run)
    assert remittance_postings(client.id, run.id) == [] and run.status == "draft"
    as_user(bob, client.id, payouts.approve, run)
    db.session.refresh(run)
    assert run.status == "approved" and run.approved_by == bob.email
    with pytest.raises(PayoutRefused, match=r"already approved by .*cannot be approved twice"):
        as_user(carol, client.id, payouts.approve, run)
    assert remittance_postings(client.id, run.id) == ["remittance"]


def test_the_payout_file_is_made_once_and_every_download_is_the_same_bytes_and_audited(db_session: Any) -> None:
    trust_account()
    client, run = world()
    preparer = make_user("manager")
    as_user(preparer, client.id, payouts.prepare, run)
    with pytest.raises(PayoutRefused, match="once the remittance is approved by a second person"):
        as_user(preparer, client.id, payouts.download, run)
    approver = make_user("manager")
    as_user(approver, client.id, payouts.approve, run)
    first = as_user(preparer, client.id, payouts.download, run)
    second = as_user(approver, client.id, payouts.download, run)
    assert (first.number, first.again, second.number, second.again) == (1, False, 2, True)
    assert first.content == second.content and first.filename == second.filename
    xml = first.content.decode()
    assert f"<MsgId>AR-REM-{client.id}-{run.id}</MsgId>" in xml and xml.count("<CdtTrfTxInf>") == 1
    assert f"<EndToEndId>REM-{client.id}-{run.id}</EndToEndId>" in xml and ">82.00</InstdAmt>" in xml
    assert CLIENT_IBAN in xml and TRUST_IBAN in xml
    xmlschema.XMLSchema(str(Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.03.xsd")).validate(first.content)
    events = db.session.execute(
        sa.select(AuditEvent.action, AuditEvent.actor_label, AuditEvent.changes)
        .where(AuditEvent.client_id == client.id, AuditEvent.action.like("payout.%download%"))
        .order_by(AuditEvent.id)
    ).all()
    assert [(a, who) for a, who, _ in events] == [
        ("payout.downloaded", preparer.email),
        ("payout.redownloaded", approver.email),
    ]
    assert all(hashlib.sha256(first.content).hexdigest() in str(changes) for _, _, changes in events)


def test_a_payout_without_bank_details_or_with_a_failing_iban_is_refused_before_approval(db_session: Any) -> None:
    trust_account()
    client, run = world(bank=False)
    alice = make_user("manager")
    with pytest.raises(PayoutRefused, match="has no bank account for EUR: record its bank details"):
        as_user(alice, client.id, payouts.prepare, run)
    with scoped(TenantScope.single(client.id), db.session):  # stored before the check existed, say
        db.session.add(ClientBankAccount(client_id=client.id, currency="EUR", holder="X", iban="NL91ABNA0417164301"))
        db.session.commit()
    with pytest.raises(PayoutRefused, match="IBAN 'NL91ABNA0417164301' is not valid"):
        as_user(alice, client.id, payouts.prepare, run)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RunPayout)) == 0


def test_a_statement_showing_the_debit_marks_the_run_paid_once(db_session: Any) -> None:
    trust_account()
    client, run = world()
    approved(client, run)
    e2e = payouts.end_to_end_id(run)
    wrong = [
        debit("82.01", e2e, "WRONG-AMOUNT"),
        debit("82.00", "SOMETHING-ELSE", "NO-REF"),
        debit("82.00", e2e, "TOO-LATE", day="2026-04-20"),
    ]
    fees = debit("18.00", payouts.fees_reference(run), "SWEEP-1")  # the fees the run kept, to the agency's account
    entries = [*wrong, debit("82.00", e2e, "BANK-REF-1"), fees]
    statement = camt(TRUST_IBAN, "1000.00", "653.99", entries, day="2026-04-20")
    with scoped(TenantScope.agency(), db.session), frozen_time(datetime(2026, 4, 21, tzinfo=UTC)):
        first = trust.import_trust_statement(db.session, statement, "trust.xml")
        db.session.commit()
        again = trust.import_trust_statement(db.session, statement, "trust.xml")
        db.session.commit()
    db.session.refresh(run)
    assert first.remittances_paid == [run.id] and again.remittances_paid == [] and again.repeated == 5
    assert run.status == "paid" and run.paid_on == date(2026, 4, 3) and run.bank_reference.startswith("BANK-REF-1~")
    assert sorted(remittance_postings(client.id, run.id)) == ["remittance", "remittance_paid"]
    matched = db.session.scalars(sa.select(TrustBankLine.refs).where(TrustBankLine.run_id == run.id)).all()
    assert sorted(matched) == sorted([f"BANK-REF-1 {e2e}", f"SWEEP-1 {payouts.fees_reference(run)}"])


def test_the_clients_own_statement_import_marks_its_run_paid(db_session: Any) -> None:
    client, run = world()
    trust_account()
    approved(client, run)
    statement = camt(TRUST_IBAN, "100.00", "18.00", [debit("82.00", payouts.message_id(run), "BANK-2")])
    with frozen_time(datetime(2026, 4, 4, tzinfo=UTC)):
        batch = _import(client, statement, name="april.xml")
    db.session.refresh(run)
    assert run.status == "paid" and batch.mapping["bank_statement"]["remittances_paid"] == [run.id]


def test_a_manager_marks_a_run_paid_by_hand_with_a_reference_once(db_session: Any) -> None:
    trust_account()
    client, run = world()
    _, approver = approved(client, run)
    with pytest.raises(PayoutRefused, match="give the bank's reference"):
        as_user(approver, client.id, payouts.mark_paid_manually, run, date(2026, 4, 2), " ")
    as_user(approver, client.id, payouts.mark_paid_manually, run, date(2026, 4, 2), "TEL-CONFIRMED-7")
    with pytest.raises(PayoutRefused, match="only an approved remittance"):
        as_user(approver, client.id, payouts.mark_paid_manually, run, date(2026, 4, 2), "again")
    assert sorted(remittance_postings(client.id, run.id)) == ["remittance", "remittance_paid"]
    row = payouts.payout_of(db.session, run)
    assert row is not None and row.paid_via == "manual"


def test_a_run_that_pays_nothing_needs_no_bank_details_and_has_no_file(db_session: Any) -> None:
    client = make_client(base_currency="EUR")
    give_schedule(client)
    debtor = make_debtor(client)
    with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
        make_invoice(client, debtor, "INV-0", 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2))
    bounced = make_payment(client, debtor, "P-0", 10_000, received_on=date(2026, 3, 10))
    with scoped(TenantScope.single(client.id), db.session):
        reverse_document(db.session, client, bounced, "bounced")
        (run,) = draft_runs(db.session, client.id, "monthly", date(2026, 3, 1), date(2026, 3, 31))
        db.session.commit()
    assert run.remit_minor == 0
    approved(client, run)
    row = payouts.payout_of(db.session, run)
    assert row is not None and row.kind == "none" and row.content is None
    with pytest.raises(PayoutRefused, match="pays nothing"):
        as_user(make_user("manager"), client.id, payouts.download, run)


def mt940(account: str, entries: list[tuple[str, str, str, str]], opening: str, closing: str) -> bytes:
    """An MT940 statement of `account` on 3 April 2026; entries are (mark, amount, bank reference, :86: text)."""
    lines = [":20:STMT-0403", f":25:{account}", ":28C:00093/001", f":60F:C260402EUR{opening}"]
    for mark, amount, ref, text in entries:
        lines += [f":61:2604030403{mark}{amount}NTRFNONREF//{ref}", f":86:{text}"]
    lines += [f":62F:C260403EUR{closing}", "-"]
    return ("\r\n".join(lines) + "\r\n").encode()


def bai2(account: str, closing_minor: int, details: list[tuple[str, int, str, str]]) -> bytes:
    """A BAI2 file for `account` (EUR) as of 3 April 2026: its closing ledger (015) and `details` as
    (type code, amount in minor units, bank reference, text); the trailers add up."""
    total = closing_minor + sum(amount for _c, amount, _r, _t in details)
    records = [
        "01,AGENCYBANK,AGENCY,260403,1800,1,,,2/",
        "02,AGENCY,AGENCYBANK,1,260403,,EUR,2/",
        f"03,{account},EUR,015,{closing_minor},,/",
        *(f"16,{code},{amount},,{ref},,{text}/" for code, amount, ref, text in details),
    ]
    account_records = 1 + len(details) + 1
    records.append(f"49,{total},{account_records}/")
    records.append(f"98,{total},1,{account_records + 2}/")
    records.append(f"99,{total},1,{account_records + 4}/")
    return ("\n".join(records) + "\n").encode()


@pytest.mark.parametrize("kind", ["mt940", "bai2"])
def test_an_mt940_or_bai2_statement_showing_the_debit_marks_the_run_paid(db_session: Any, kind: str) -> None:
    trust_account()
    client, run = world()
    approved(client, run)
    e2e = payouts.end_to_end_id(run)
    if kind == "mt940":
        statement = mt940(
            TRUST_IBAN,
            [("D", "82,00", "BANK-REF-1", f"/EREF/{e2e}/REMI/Remittance"), ("D", "82,00", "BANK-REF-2", "/EREF/OTHER"),
             ("C", "10,00", "BANK-REF-3", "a debtor paid")],
            opening="1000,00", closing="846,00",
        )  # fmt: skip
    else:
        statement = bai2(
            TRUST_IBAN, 84_600, [("495", 8_200, "BANK-REF-1", f"REMITTANCE {e2e}"), ("495", 8_200, "BANK-REF-2", "X")]
        )
    with scoped(TenantScope.agency(), db.session), frozen_time(datetime(2026, 4, 4, tzinfo=UTC)):
        first = trust.import_trust_statement(db.session, statement, f"trust.{kind}")
        db.session.commit()
        again = trust.import_trust_statement(db.session, statement, f"trust.{kind}")
        db.session.commit()
    db.session.refresh(run)
    assert first.remittances_paid == [run.id] and again.remittances_paid == []
    assert run.status == "paid" and run.paid_on == date(2026, 4, 3) and run.bank_reference.startswith("BANK-REF-1")
    assert sorted(remittance_postings(client.id, run.id)) == ["remittance", "remittance_paid"]
    debits = db.session.scalars(
        sa.select(TrustBankLine.amount_minor).where(TrustBankLine.amount_minor < 0).order_by(TrustBankLine.id)
    ).all()
    assert debits == [-8_200, -8_200]  # both debits kept as trust bank lines, only the one with the reference paid
