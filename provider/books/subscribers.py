"""The books listen to the ledger: every posting (or reversal) of payments queues the client's books job in the
payment's own transaction (through the outbox), once per burst of payments."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from clients.ledger import payments_posted
from provider.books.jobs import post_books_job
from provider.core import jobs


@payments_posted.connect
def _on_ledger_payments(session: Session, *, client_id: int, **_: Any) -> None:
    jobs.enqueue(post_books_job, client_id, job_id=f"books:{client_id}")
