"""Parse a submitted HTML form with a marshmallow schema; keep what the user typed for re-display."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

from provider.core.errors import ServiceError
from provider.extensions import db

IGNORED = frozenset({"csrf_token", "submit"})


def load_form(
    schema: Schema, form: MultiDict[str, str], partial: bool = False
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Returns (data, errors). Blank fields count as not given; unknown fields are reported, not dropped."""
    raw = {k: v for k, v in form.items() if k not in IGNORED and v.strip() != ""}
    try:
        return schema.load(raw, partial=partial), {}
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return {}, {k: (v if isinstance(v, list) else [str(v)]) for k, v in messages.items()}


T = TypeVar("T")


def submit_form(
    schema: Schema, form: MultiDict[str, str], action: Callable[[dict[str, Any]], T]
) -> tuple[T | None, dict[str, list[str]]]:
    """Validate the form, run the service with the data, commit once.

    Returns (result, {}) on success, or (None, errors by field) when the input or the service refused it;
    then nothing was saved.
    """
    data, errors = load_form(schema, form)
    if errors:
        return None, errors
    try:
        result = action(data)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        return None, {exc.field or "_schema": [str(exc)]}
    return result, {}


def kept_values(form: MultiDict[str, str]) -> dict[str, str]:
    """What the user typed, to show again next to the errors (passwords are never echoed back)."""
    return {k: v for k, v in form.items() if k not in IGNORED and "password" not in k}
