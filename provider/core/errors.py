"""Errors a service raises when a request cannot be carried out."""

from __future__ import annotations


class ServiceError(ValueError):
    """A request that cannot be carried out; `field` names the input at fault when there is one, `kind` the
    rule it breaks when the caller should tell it apart (the API's problem type, e.g. "already-reversed")."""

    def __init__(self, message: str, field: str | None = None, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.kind = kind
