"""The debtor's self-service pages in the debtor's language.

The texts live in gettext catalogues, `provider/dunning/translations/<language>.po` (German, French and Spanish, the
languages the dunning templates are written in; English is the source text), read with Babel and compiled in
memory once per process, so there is no build step. Any other language gets the English text.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

HERE = Path(__file__).resolve().parent / "translations"


def languages() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.po"))


@cache
def _translations(language: str) -> NullTranslations:
    path = HERE / f"{language}.po"
    if not path.is_file():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def catalog_ids(language: str) -> set[str]:
    """The texts a catalogue translates (for the test that every text of the pages has a translation)."""
    with (HERE / f"{language}.po").open("rb") as handle:
        return {str(m.id) for m in read_po(handle, locale=language) if m.id and m.string}


def gettext_for(language: str) -> Callable[..., str]:
    """`_(text, **values)`: the text in `language` (English when there is no translation), with `%(name)s`
    placeholders filled from `values`."""
    translations = _translations((language or "en").split("_")[0].lower())

    def translate(text: str, **values: Any) -> str:
        out = translations.gettext(text)
        return out % values if values else out

    return translate
