"""The daily dunning run of one client: select (set-based), decide (pure), render, queue, record.

    run_client(session, client_id, today)     what `dunning_run_job` does, callable from tests and the bench

Idempotent three ways: one `dunning_runs` row per (client, date); one decision per (client, date, debtor) and
one `sent` decision per (debtor, policy version, stage, episode) (unique keys); and each message is queued with
`dunning:{debtor}:{version}:{stage}:{anchor}` as its dedupe key, so comms never stores it twice. A job retried
after some chunks committed skips the debtors decided today and carries on.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clients.models import Client
from provider.comms.services import EmailSpec
from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.db import commit_chunk
from provider.core.statistics import GrowthWatch
from provider.dunning import outbound, templating
from provider.dunning.decide import Decision, StageRule, decide
from provider.dunning.links import make_token, public_url
from provider.dunning.models import (
    Channel,
    DunningDecision,
    DunningPolicy,
    DunningRun,
    DunningStage,
    DunningTemplate,
    LetterBatch,
    PolicyStatus,
    RunStatus,
)
from provider.dunning.selection import Candidate, debtor_ranges, facts_for_range, overdue_lines
from worklists import contact_rules
from worklists.models import Strategy, WorkItem

log = logging.getLogger(__name__)
CHUNK = 2000


def policy_in_force(session: Session, client_id: int, on: date) -> DunningPolicy | None:
    """The approved version with the latest `effective_from` on or before `on` (None: no dunning)."""
    return session.scalar(
        select(DunningPolicy)
        .where(
            DunningPolicy.client_id == client_id,
            DunningPolicy.status == PolicyStatus.APPROVED.value,
            DunningPolicy.effective_from <= on,
        )
        .order_by(DunningPolicy.effective_from.desc(), DunningPolicy.version.desc())
        .limit(1)
    )


@dataclass
class Plan:
    """A policy version loaded once per run: its stages and its templates by (stage, language, segment)."""

    policy: DunningPolicy
    stages: dict[int, DunningStage]  # by position
    rules: list[StageRule]
    templates: dict[tuple[int, str, str], DunningTemplate]

    def template_for(
        self, stage: DunningStage, language: str, segment: str, behaviour: str = ""
    ) -> DunningTemplate | None:
        """The stage's template for the debtor's language and segment: the client's own segment first, then the
        debtor's payment-behaviour segment (a template whose segment is e.g. `silent` or `pays_on_time` sets the
        tone for those debtors), then the one for every segment; in English when none is in the language."""
        for key in (
            (stage.id, language, segment),
            (stage.id, language, behaviour),
            (stage.id, language, ""),
            (stage.id, "en", segment),
            (stage.id, "en", behaviour),
            (stage.id, "en", ""),
        ):
            if key in self.templates:
                return self.templates[key]
        return next((t for (sid, _l, _s), t in sorted(self.templates.items()) if sid == stage.id), None)


def load_plan(session: Session, policy: DunningPolicy) -> Plan:
    stages = list(
        session.scalars(
            select(DunningStage).where(DunningStage.client_id == policy.client_id, DunningStage.policy_id == policy.id)
        )
    )
    templates = session.scalars(
        select(DunningTemplate).where(
            DunningTemplate.client_id == policy.client_id, DunningTemplate.stage_id.in_([s.id for s in stages] or [-1])
        )
    )
    return Plan(
        policy,
        {s.position: s for s in stages},
        [StageRule(s.position, s.days_past_due, s.channel) for s in stages],
        {(t.stage_id, t.language, t.segment): t for t in templates},
    )


def _start_run(session: Session, client_id: int, today: date, policy_id: int | None) -> DunningRun:
    dialect = session.get_bind().dialect.name
    ins = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        ins(DunningRun)
        .values(client_id=client_id, run_date=today, policy_id=policy_id, status=RunStatus.RUNNING.value, sent=0,
                skipped=0, note="", started_at=now_utc())
        .on_conflict_do_nothing(index_elements=["client_id", "run_date"])
    )  # fmt: skip
    run = session.scalars(
        select(DunningRun).where(DunningRun.client_id == client_id, DunningRun.run_date == today)
    ).one()
    run.status, run.policy_id, run.finished_at = RunStatus.RUNNING.value, policy_id, None
    return run


def _contact_policy(session: Session, client: Client) -> contact_rules.ContactPolicy:
    strategy = session.scalar(select(Strategy).where(Strategy.client_id == client.id))
    return contact_rules.policy_for(client.debt_type, strategy)


def run_client(
    session: Session,
    client_id: int,
    today: date,
    *,
    now: datetime | None = None,
    chunk: int = CHUNK,
    attach_statement: bool | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> DunningRun:
    """Run the client's dunning for `today` (its local date); commits chunk by chunk. Returns the run."""
    now = now or now_utc()
    client = session.get_one(Client, client_id)
    policy = policy_in_force(session, client_id, today)
    run = _start_run(session, client_id, today, policy.id if policy else None)
    if policy is None:
        run.status, run.finished_at, run.note = RunStatus.DONE.value, now_utc(), "No approved dunning policy in force."
        session.flush()
        return run
    plan = load_plan(session, policy)
    context = RunContext(session, client, plan, run, today, now, _contact_policy(session, client), attach_statement)
    for lo, hi in debtor_ranges(session, client_id, chunk):
        jobs.checkpoint()
        context.process(lo, hi)
        commit_chunk(session)
        if progress:
            progress(hi, f"debtors up to #{hi}")
        jobs.report_progress(None, f"{run.sent} sent, {run.skipped} skipped so far")
    context.finish_letters()
    run.status, run.finished_at = RunStatus.DONE.value, now_utc()
    session.flush()
    return run


class RunContext:
    def __init__(
        self,
        session: Session,
        client: Client,
        plan: Plan,
        run: DunningRun,
        today: date,
        now: datetime,
        gate: contact_rules.ContactPolicy,
        attach_statement: bool | None,
    ) -> None:
        self.session, self.client, self.plan, self.run, self.today, self.now = session, client, plan, run, today, now
        self.gate = gate
        self.attach_statement = outbound.attach_statements() if attach_statement is None else attach_statement
        self.agency = outbound.agency_name()
        self.letters: list[tuple[int, int, str, bytes]] = []  # (decision debtor, message id, address, pdf)
        self.watch = GrowthWatch(session, "dunning_decisions", "comm_messages", "comm_events", "comm_attachments")

    def _allowed_now(self, candidate: Candidate) -> bool:
        zone = candidate.timezone or self.client.timezone
        return contact_rules.in_window(self.gate, zone, self.now)

    def process(self, lo: int, hi: int) -> None:
        session, policy = self.session, self.plan.policy
        candidates = facts_for_range(session, self.client.id, self.today, lo, hi)
        decided: list[tuple[Candidate, Decision]] = []
        for cand in candidates:
            facts = cand.facts
            if facts.has_email:
                facts = replace(facts, contact_allowed=self._allowed_now(cand))
            decision = decide(
                self.plan.rules,
                facts,
                self.today,
                min_amount_minor=policy.min_amount_minor,
                min_gap_days=policy.min_gap_days,
            )
            if decision is None:
                continue
            decided.append((cand, decision))
        emailing = [c.email for c, d in decided if d.outcome == "sent" and d.stage.channel == Channel.EMAIL.value]
        problems = outbound.email_problems(session, self.client.id, emailing) if emailing else {}
        decided = [
            (c, Decision(d.stage, "skipped", problems[c.email]))
            if d.outcome == "sent" and d.stage.channel == Channel.EMAIL.value and c.email in problems
            else (c, d)
            for c, d in decided
        ]
        sending = {c.debtor_id for c, d in decided if d.outcome == "sent"}
        lines = overdue_lines(session, self.client.id, self.today, lo, hi, sending)
        rows, emails = [], []
        for cand, decision in decided:
            message_id = None
            if decision.outcome == "sent":
                sent = self._send(cand, decision, lines.get(cand.debtor_id, []))
                if isinstance(sent, EmailSpec):
                    emails.append(sent)
                else:
                    message_id = sent
            rows.append(self._row(cand, decision, message_id))
        if emails:
            ids = outbound.queue_emails(session, self.client.id, emails)
            by_debtor = {spec.debtor_id: ids.get(spec.dedupe_key) for spec in emails}
            for row in rows:
                if row["debtor_id"] in by_debtor and row["outcome"] == "sent" and row["channel"] == Channel.EMAIL.value:
                    row["message_id"] = by_debtor[row["debtor_id"]]
        if rows:
            dialect = session.get_bind().dialect.name
            ins = pg_insert if dialect == "postgresql" else sqlite_insert
            session.execute(ins(DunningDecision).on_conflict_do_nothing(), rows)
        self.watch.wrote("dunning_decisions", len(rows))
        self.watch.wrote("comm_messages", len(emails))
        self.watch.wrote("comm_events", len(emails))
        self.watch.wrote("comm_attachments", sum(len(e.attachments) for e in emails))
        self.run.sent += sum(1 for r in rows if r["outcome"] == "sent")
        self.run.skipped += sum(1 for r in rows if r["outcome"] == "skipped")
        session.flush()

    def _row(self, cand: Candidate, decision: Decision, message_id: int | None) -> dict[str, Any]:
        stage = self.plan.stages[decision.stage.position]
        return {
            "client_id": self.client.id,
            "run_id": self.run.id,
            "debtor_id": cand.debtor_id,
            "policy_id": self.plan.policy.id,
            "stage_id": stage.id,
            "stage_position": stage.position,
            "stage_days": stage.days_past_due,
            "channel": stage.channel,
            "run_date": self.today,
            "anchor_due": cand.facts.oldest_due,
            "outcome": decision.outcome,
            "reason": decision.reason,
            "currency": cand.currency,
            "amount_minor": cand.facts.overdue_minor,
            "invoice_count": cand.invoice_count,
            "message_id": message_id,
            "letter_batch_id": None,
            "created_at": self.now,
        }

    def dedupe_key(self, cand: Candidate, decision: Decision) -> str:
        anchor = cand.facts.oldest_due.isoformat()
        return f"dunning:{cand.debtor_id}:{self.plan.policy.version}:{decision.stage.position}:{anchor}"

    def _send(
        self, cand: Candidate, decision: Decision, lines: list[tuple[str, date, str, int]]
    ) -> int | EmailSpec | None:
        """A letter is queued now (its id); an e-mail is returned as a spec, queued with its chunk."""
        stage = self.plan.stages[decision.stage.position]
        template = self.plan.template_for(stage, cand.language, cand.segment, cand.behaviour)
        locale = templating.locale_for(cand.language, self.client.country)
        link = public_url(make_token(self.client.id, cand.debtor_id))
        context = templating.build_context(
            debtor_name=cand.name,
            reference=cand.reference,
            client_name=self.client.name,
            agency_name=self.agency,
            stage_name=stage.name,
            invoices=lines,
            today=self.today,
            locale=locale,
            link=link,
        )
        subject_src = template.subject if template else "{{ stage_name }}: {{ total_due }}"
        body_src = template.body if template else "{{ debtor_name }}: {{ total_due }} overdue. {{ self_service_link }}"
        subject, text, html = templating.render(subject_src, body_src, context)
        key = self.dedupe_key(cand, decision)
        language = template.language if template else cand.language
        if stage.channel == Channel.TASK.value:
            self._task(cand, subject)
            return None
        if stage.channel == Channel.LETTER.value:
            pdf = outbound.letter_pdf(self.client, cand, subject, text, context, language)
            message_id = outbound.queue_letter(
                self.session, self.client.id, cand, subject, pdf, key, stage.id, language
            )
            self.letters.append((cand.debtor_id, message_id, cand.postal, pdf))
            return message_id
        attachments = []
        if self.attach_statement:
            attachments.append(outbound.statement_attachment(self.client, cand, context, language))
        return EmailSpec(
            cand.debtor_id, cand.email, cand.name, subject, text, html, key, stage.id, language, tuple(attachments)
        )

    def _task(self, cand: Candidate, note: str) -> None:
        if cand.item_id is None:
            return
        self.session.execute(
            update(WorkItem)
            .where(WorkItem.client_id == self.client.id, WorkItem.id == cand.item_id)
            .values(next_action_on=self.today, next_action_note=note[:200])
            .execution_options(synchronize_session=False)
        )

    def finish_letters(self) -> None:
        """The run's letters (also those queued by an earlier attempt today) in one print file and manifest."""
        build_letter_batch(self.session, self.client, self.today)


MANIFEST_HEADER = ("Sequence", "Letter reference", "Debtor reference", "Debtor", "Address", "Pages", "Step")


def build_letter_batch(session: Session, client: Client, today: date) -> LetterBatch | None:
    """Merge the letters decided on `today` into one print file with its CSV manifest (idempotent: built again
    from the decisions until the batch is dispatched; a dispatched batch is never changed)."""
    from clients.models import Debtor

    batch = session.scalar(select(LetterBatch).where(LetterBatch.client_id == client.id, LetterBatch.run_date == today))
    if batch is not None and batch.status != "ready":
        return batch
    rows = session.execute(
        select(DunningDecision.id, DunningDecision.message_id, Debtor.external_ref, Debtor.name, DunningStage.name)
        .join(Debtor, (Debtor.client_id == DunningDecision.client_id) & (Debtor.id == DunningDecision.debtor_id))
        .join(
            DunningStage,
            (DunningStage.client_id == DunningDecision.client_id) & (DunningStage.id == DunningDecision.stage_id),
        )
        .where(
            DunningDecision.client_id == client.id,
            DunningDecision.run_date == today,
            DunningDecision.outcome == "sent",
            DunningDecision.channel == Channel.LETTER.value,
            DunningDecision.message_id.is_not(None),
        )
        .order_by(DunningDecision.id)
    ).all()
    if not rows:
        return batch
    pdfs = outbound.letter_pdfs(session, client.id, [r.message_id for r in rows])
    merged, pages_of = outbound.merge_pdfs([pdfs.get(r.message_id, b"") for r in rows])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MANIFEST_HEADER)
    addresses = outbound.letter_addresses(session, client.id, [r.message_id for r in rows])
    for n, (row, pages) in enumerate(zip(rows, pages_of, strict=True), start=1):
        writer.writerow(
            [n, f"L{row.message_id}", _cell(row.external_ref), _cell(row[3]), _cell(addresses.get(row.message_id, "")),
             pages, _cell(row[4])]
        )  # fmt: skip
    if batch is None:
        batch = LetterBatch(client_id=client.id, run_date=today, status="ready", pdf=b"", manifest="")
        session.add(batch)
    batch.pdf, batch.manifest, batch.letters, batch.pages = merged, out.getvalue(), len(rows), sum(pages_of)
    session.flush()
    session.execute(
        update(DunningDecision)
        .where(DunningDecision.client_id == client.id, DunningDecision.id.in_([r.id for r in rows]))
        .values(letter_batch_id=batch.id)
        .execution_options(synchronize_session=False)
    )
    return batch


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = str(value or "").replace("\n", ", ")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def client_today(client: Client, now: datetime) -> date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(client.timezone)).date()
