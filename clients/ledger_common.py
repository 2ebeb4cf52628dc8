"""What the ledger verbs share: the savepoint wrapper, batch errors, the payments signal and small checks.

The verbs themselves live in `clients.ledger` (placing, payments), `clients.allocations` and
`clients.corrections` (credit notes, write-offs, adjustments, reversals); `clients.ledger` re-exports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import wraps
from typing import Any, TypeVar

from blinker import Namespace
from sqlalchemy.orm import Session

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.money import MoneyError, format_money, validate_currency

MAX_FUTURE_DAYS = 1  # a date "today" in the furthest time zone is tomorrow in UTC


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str


class BatchRejected(ServiceError):
    """Some rows of a batch are invalid; nothing was posted. `errors` lists every problem."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s); nothing was posted")
        self.errors = errors


class IdempotencyConflict(ServiceError):
    """The same idempotency key (or external reference) was used before with different content."""


_signals = Namespace()
payments_posted = _signals.signal("payments-posted")
"""Sent inside the posting transaction when payments were recorded or a payment was reversed, as
`send(session, client_id=..., debtor_ids=[...])`. Other parts of the platform subscribe (the worklists check
promises and rescore the accounts); the ledger itself imports none of them."""


F = TypeVar("F", bound=Callable[..., Any])


def atomic(service: F) -> F:
    """Run a ledger verb inside a SAVEPOINT: if it refuses after its first write, none of its writes stay."""

    @wraps(service)
    def wrapper(session: Session, *args: Any, **kwargs: Any) -> Any:
        with session.begin_nested():
            return service(session, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def money(amount: int, currency: str) -> str:
    return format_money(amount, currency)


def only_open(invoice: Invoice) -> ServiceError:
    return ServiceError(
        f"invoice {invoice.number} has only {money(invoice.open_minor, invoice.currency)} open", field="amount"
    )


def check_currency(code: str) -> str:
    try:
        return validate_currency(code)
    except MoneyError as exc:
        raise ServiceError(str(exc), field="currency") from None


def debtor_of(session: Session, client: Client, debtor_id: int) -> Debtor:
    debtor = session.get(Debtor, debtor_id)
    if debtor is None or debtor.client_id != client.id:
        raise ServiceError(f"debtor #{debtor_id} is not a debtor of {client.code}", field="debtor_id")
    return debtor


def not_future(day: date, field: str) -> None:
    if day > today_utc() + timedelta(days=MAX_FUTURE_DAYS):
        raise ServiceError(f"{field.replace('_', ' ')} {day.isoformat()} is in the future", field=field)


def chunks(items: list[Any], size: int = 5_000) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
