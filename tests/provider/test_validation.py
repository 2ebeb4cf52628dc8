"""Shared input fields: blank text counts as missing and never reaches a validator."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError, validate

from clients.schemas import DebtorSchema
from provider.core.validation import Trimmed


class _Form(Schema):
    code = Trimmed(required=True, validate=validate.Length(max=5))
    note = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=5))
    segment = Trimmed(load_default="standard", validate=validate.Length(max=5))


def test_blank_optional_fields_take_their_default_and_skip_validators() -> None:
    assert _Form().load({"code": " ab ", "note": "   ", "segment": ""}) == {
        "code": "ab",
        "note": None,
        "segment": "standard",
    }


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"code": "  "}, {"code": ["Missing data for required field."]}),
        ({"code": "toolong"}, {"code": ["Longer than maximum length 5."]}),
        ({"code": "ok", "segment": "  toolong  "}, {"segment": ["Longer than maximum length 5."]}),
    ],
)
def test_real_problems_are_still_reported(data: dict[str, str], errors: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError) as caught:
        _Form().load(data)
    assert caught.value.normalized_messages() == errors


def test_a_debtor_form_with_blank_optional_fields_loads() -> None:
    data = DebtorSchema().load(
        {"external_ref": "D-1", "name": "Acme", "segment": "", "timezone": " ", "phone": "", "email": None}
    )
    assert (data["segment"], data["timezone"], data["phone"]) == ("standard", None, None)
