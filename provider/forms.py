"""Parse a submitted HTML form with a marshmallow schema; keep what the user typed for re-display."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

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
