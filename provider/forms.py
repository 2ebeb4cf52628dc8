"""Parse a submitted HTML form with a marshmallow schema; keep what the user typed for re-display."""

from __future__ import annotations

import re
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
        return {}, {k: [plain_message(k, m) for m in (v if isinstance(v, list) else [v])] for k, v in messages.items()}


FIELD_WORDS = {"email": "an e-mail address", "name": "a name", "password": "a password", "role": "a role"}
_LENGTH = re.compile(r"(?:Shorter than minimum length|Length must be between) (\d+)")
_LONGER = re.compile(r"Longer than maximum length (\d+)")


def plain_message(field: str, message: Any) -> str:
    """Marshmallow's stock texts ("Missing data for required field.") in words for the person filling the form;
    a schema's own message (already written for people) is kept."""
    text = str(message)
    what = FIELD_WORDS.get(field, "the " + field.replace("_", " ").removesuffix(" id"))
    if text in ("Missing data for required field.", "Field may not be null."):
        return f"Enter {what}." if field not in ("role",) else f"Choose {what}."
    if text == "Not a valid email address.":
        return "Enter an e-mail address like name@example.com."
    if text in ("Not a valid integer.", "Not a valid number."):
        return "Enter a whole number." if "integer" in text else "Enter a number."
    if text in ("Not a valid date.", "Not a valid datetime."):
        return "Enter a date as year-month-day, for example 2026-11-17."
    if text == "Not a valid boolean.":
        return "Choose yes or no."
    if text == "Unknown field.":
        return "This field is not part of the form; reload the page and try again."
    if text.startswith("Must be one of:"):
        return "Choose one of the options offered."
    if match := _LENGTH.match(text):
        return f"Use at least {match.group(1)} characters."
    if match := _LONGER.match(text):
        return f"Use at most {match.group(1)} characters."
    return text


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
