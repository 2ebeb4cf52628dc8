"""Client queries: a client user asks the agency a question from the portal, the agency answers it in the
back office. Asking starts the `query_answer` SLA clock (subject ("query", id)); the first answer stops it.
Services flush and audit; the caller commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from clients.models import Client
from provider.core import audit
from provider.core.audit import current_actor
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from sla.hooks import sla_completed, sla_started
from sla.models import ClientQuery, QueryStatus, SlaCode

SUBJECT_MAX, BODY_MAX = 200, 5_000


class QueryRefused(ServiceError):
    """A question that cannot be asked; `errors` holds every field's problem (field -> messages)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(" ".join(m for ms in errors.values() for m in ms), field=next(iter(errors)))
        self.errors = errors


def _text(value: str | None, field: str, limit: int, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ServiceError(f"write the {what}", field=field)
    if len(text) > limit:
        raise ServiceError(f"the {what} is longer than {limit:,} characters", field=field)
    return text


def ask_query(session: Session, client: Client, subject: str, body: str) -> ClientQuery:
    """Record a client's question and start its "answered within" clock (if the contract promises one).

    Refuses an empty or over-long subject or message, naming every field at fault at once (`QueryRefused`)."""
    errors: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    checks = (("subject", subject, SUBJECT_MAX, "subject"), ("body", body, BODY_MAX, "question"))
    for field, value, limit, what in checks:
        try:
            texts[field] = _text(value, field, limit, what)
        except ServiceError as exc:
            errors[field] = [str(exc)]
    if errors:
        raise QueryRefused(errors)
    subject_text, body_text = texts["subject"], texts["body"]
    actor = current_actor()
    query = ClientQuery(
        client_id=client.id,
        subject=subject_text,
        body=body_text,
        status=QueryStatus.OPEN.value,
        asked_by_id=actor.user_id,
        asked_by_label=actor.label,
        asked_at=now_utc(),
    )
    session.add(query)
    session.flush()
    sla_started(session, client, SlaCode.QUERY_ANSWER.value, ("query", query.id), at=query.asked_at)
    audit.record(session, "client_query.ask", query, after=audit.snapshot(query, ClientQuery.AUDIT_FIELDS))
    return query


def answer_query(session: Session, client: Client, query: ClientQuery, answer: str) -> ClientQuery:
    """The agency's answer: stops the query's SLA clock. Refuses a second answer and an empty one."""
    if query.status != QueryStatus.OPEN:
        raise ServiceError("this query has already been answered", field="answer")
    text = _text(answer, "answer", BODY_MAX, "answer")
    before = audit.snapshot(query, ClientQuery.AUDIT_FIELDS)
    actor = current_actor()
    query.answer, query.status = text, QueryStatus.ANSWERED.value
    query.answered_by_id, query.answered_by_label, query.answered_at = actor.user_id, actor.label, now_utc()
    session.flush()
    sla_completed(session, client, SlaCode.QUERY_ANSWER.value, ("query", query.id), at=query.answered_at)
    audit.record(
        session, "client_query.answer", query, before=before, after=audit.snapshot(query, ClientQuery.AUDIT_FIELDS)
    )
    return query
