"""Writes of dunning: propose a policy version, edit its templates, the client's approval, letters dispatched.

A version is proposed by agency staff (a manager or admin) and edited while it waits; a client admin approves
or rejects it in the portal; an approved version never changes (a change is a new version) and runs from its
`effective_from`. Every write is audited; services flush and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clients.models import Client, language_for_country
from provider.core import audit
from provider.core.audit import current_actor
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.dunning import templating
from provider.dunning.models import (
    BatchStatus,
    Channel,
    DunningPolicy,
    DunningStage,
    DunningTemplate,
    LetterBatch,
    PolicyStatus,
    Tone,
)


@dataclass(frozen=True)
class StageSpec:
    name: str
    days_past_due: int
    channel: str


STANDARD_STAGES = (
    StageSpec("Friendly reminder", 3, Channel.EMAIL.value),
    StageSpec("Second reminder", 14, Channel.EMAIL.value),
    StageSpec("Final demand", 30, Channel.LETTER.value),
    StageSpec("Call from a collector", 45, Channel.TASK.value),
)


def _check_stages(stages: Sequence[StageSpec]) -> None:
    if not stages:
        raise ServiceError("a policy needs at least one step", field="stages")
    days = [s.days_past_due for s in stages]
    if len(set(days)) != len(days):
        raise ServiceError("two steps cannot start on the same day past due", field="stages")
    for n, stage in enumerate(stages, start=1):
        if not stage.name.strip():
            raise ServiceError(f"step {n} needs a name", field="stages")
        if stage.channel not in set(Channel):
            raise ServiceError(f"step {n}: choose e-mail, letter or a call by a collector", field="stages")
        if not 0 <= stage.days_past_due <= 3650:
            raise ServiceError(f"step {n}: days past due is 0 to 3650", field="stages")


def propose_policy(
    session: Session,
    client: Client,
    *,
    effective_from: date,
    stages: Sequence[StageSpec] = STANDARD_STAGES,
    min_amount_minor: int = 0,
    min_gap_days: int = 7,
    notes: str = "",
    copy_from: DunningPolicy | None = None,
    second_language: str = "",
) -> DunningPolicy:
    """A new version waiting for the client's approval, with its steps (and, copied from `copy_from` by step
    position, its templates; otherwise starting texts per step in English and in the language of the client's
    country, or `second_language`)."""
    _check_stages(stages)
    if min_amount_minor < 0:
        raise ServiceError("the threshold cannot be negative", field="min_amount")
    if not 0 <= min_gap_days <= 90:
        raise ServiceError("the least time between two reminders is 0 to 90 days", field="min_gap_days")
    version = (
        session.scalar(select(func.max(DunningPolicy.version)).where(DunningPolicy.client_id == client.id)) or 0
    ) + 1
    policy = DunningPolicy(
        client_id=client.id,
        version=version,
        effective_from=effective_from,
        status=PolicyStatus.PROPOSED.value,
        min_amount_minor=min_amount_minor,
        min_gap_days=min_gap_days,
        notes=notes.strip()[:500],
        proposed_by_label=current_actor().label[:254],
        decided_by_label="",
        decision_note="",
    )
    session.add(policy)
    session.flush()
    old_templates: dict[int, list[DunningTemplate]] = {}
    if copy_from is not None:
        for old in copy_from.stages:
            old_templates[old.position] = list(old.templates)
    ordered = sorted(stages, key=lambda s: s.days_past_due)
    for position, spec in enumerate(ordered, start=1):
        stage = DunningStage(
            client_id=client.id,
            policy_id=policy.id,
            position=position,
            name=spec.name.strip()[:80],
            days_past_due=spec.days_past_due,
            channel=spec.channel,
        )
        session.add(stage)
        session.flush()
        sources = old_templates.get(position) or _default_templates(spec, client, second_language)
        for src in sources:
            session.add(
                DunningTemplate(
                    client_id=client.id,
                    stage_id=stage.id,
                    language=src.language,
                    segment=src.segment,
                    tone=src.tone,
                    subject=src.subject,
                    body=src.body,
                    updated_by_label=current_actor().label[:254],
                )
            )
    session.flush()
    audit.record(session, "dunning.policy_proposed", policy, after=audit.snapshot(policy, DunningPolicy.AUDIT_FIELDS))
    return policy


def _default_templates(spec: StageSpec, client: Client, also: str = "") -> list[DunningTemplate]:
    """English, and the language of the client's country (or `also`) when there is a starting text in it."""
    from provider.dunning.texts import default_text, has_language

    languages = ["en"]
    lang = also or language_for_country(client.country)
    if lang != "en" and has_language(lang):
        languages.append(lang)
    out = []
    for language in languages:
        subject, body, tone = default_text(language, spec.days_past_due, spec.channel)
        out.append(DunningTemplate(language=language, segment="", tone=tone, subject=subject, body=body))
    return out


def _editable(policy: DunningPolicy) -> None:
    if policy.status != PolicyStatus.PROPOSED.value:
        raise ServiceError("an approved or rejected version cannot change: propose a new version", field="policy")


def save_template(
    session: Session,
    stage: DunningStage,
    policy: DunningPolicy,
    *,
    language: str,
    segment: str,
    tone: str,
    subject: str,
    body: str,
) -> DunningTemplate:
    """Add or replace the template of (stage, language, segment) after `templating.validate` accepts it."""
    _editable(policy)
    language = (language or "").strip().lower()
    if not (2 <= len(language) <= 8 and language.replace("-", "").isalpha()):
        raise ServiceError("choose a language (a code such as en, de, fr)", field="language")
    if tone not in set(Tone):
        raise ServiceError("choose a tone", field="tone")
    problems = templating.validate(subject, body)
    if problems:
        raise ServiceError("; ".join(str(p) for p in problems), field="body")
    segment = (segment or "").strip()[:40]
    template = session.scalar(
        select(DunningTemplate).where(
            DunningTemplate.client_id == stage.client_id,
            DunningTemplate.stage_id == stage.id,
            DunningTemplate.language == language,
            DunningTemplate.segment == segment,
        )
    )
    before = audit.snapshot(template, DunningTemplate.AUDIT_FIELDS) if template else None
    if template is None:
        template = DunningTemplate(client_id=stage.client_id, stage_id=stage.id, language=language, segment=segment)
        session.add(template)
    template.tone, template.subject, template.body = tone, subject.strip(), body
    template.updated_by_label, template.updated_at = current_actor().label[:254], now_utc()
    session.flush()
    audit.record(
        session, "dunning.template_saved", template, before=before,
        after=audit.snapshot(template, DunningTemplate.AUDIT_FIELDS),
    )  # fmt: skip
    return template


def delete_template(session: Session, template: DunningTemplate, policy: DunningPolicy) -> None:
    _editable(policy)
    before = audit.snapshot(template, DunningTemplate.AUDIT_FIELDS)
    session.delete(template)
    session.flush()
    audit.record(session, "dunning.template_deleted", template, before=before)


def approve_policy(session: Session, policy: DunningPolicy, user: Any, note: str = "") -> None:
    """A client admin approves a proposed version: it runs from its first day."""
    _decide(session, policy, user, PolicyStatus.APPROVED, note)


def reject_policy(session: Session, policy: DunningPolicy, user: Any, note: str) -> None:
    if not note.strip():
        raise ServiceError("say why, so the agency can propose a better version", field="note")
    _decide(session, policy, user, PolicyStatus.REJECTED, note)


def _decide(session: Session, policy: DunningPolicy, user: Any, status: PolicyStatus, note: str) -> None:
    if getattr(user, "client_id", None) != policy.client_id or getattr(user, "role", "") != "client_admin":
        raise ServiceError("only an administrator of the client can decide on its dunning policy", field="policy")
    if policy.status != PolicyStatus.PROPOSED.value:
        raise ServiceError("this version was already decided", field="policy")
    before = audit.snapshot(policy, DunningPolicy.AUDIT_FIELDS)
    policy.status = status.value
    policy.decided_by_label = current_actor().label[:254]
    policy.decided_at = now_utc()
    policy.decision_note = note.strip()[:500]
    session.flush()
    audit.record(
        session, f"dunning.policy_{status.value}", policy, before=before,
        after=audit.snapshot(policy, DunningPolicy.AUDIT_FIELDS) | {"note": policy.decision_note},
    )  # fmt: skip


def mark_batch_dispatched(session: Session, batch: LetterBatch) -> int:
    """The mail house has the print file: its letters count as sent (comms moves them to dispatched)."""
    from provider.dunning import outbound
    from provider.dunning.models import DunningDecision

    if batch.status == BatchStatus.DISPATCHED.value:
        raise ServiceError("this batch was already marked dispatched", field="batch")
    ids = list(
        session.scalars(
            select(DunningDecision.message_id).where(
                DunningDecision.client_id == batch.client_id,
                DunningDecision.letter_batch_id == batch.id,
                DunningDecision.message_id.is_not(None),
            )
        )
    )
    moved = outbound.mark_dispatched(
        session, batch.client_id, [i for i in ids if i is not None], f"letter batch {batch.run_date}"
    )
    batch.status, batch.dispatched_at = BatchStatus.DISPATCHED.value, now_utc()
    batch.dispatched_by_label = current_actor().label[:254]
    session.flush()
    audit.record(
        session, "dunning.letters_dispatched", batch, after={"letters": len(moved), "run_date": str(batch.run_date)}
    )
    return len(moved)


def debtor_language_default(client: Client) -> str:
    return language_for_country(client.country)
