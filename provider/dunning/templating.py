"""Dunning templates: Jinja2's sandbox, a fixed set of variables, validation before saving, locale formatting.

Editors write plain text with `{{ variables }}` and simple `{% if %}` / `{% for invoice in invoices %}` blocks.
`validate` refuses, before anything is saved, a syntax error, a variable not in VARIABLES, an attribute that is
not a field of an invoice, and a template that fails on the sample debtor; each problem names its line. The
sandbox refuses at run time whatever reaches past that (attributes starting with `_`, unsafe callables).

Amounts and dates are formatted for the debtor's locale (its language and the client's country) with babel
before they reach the template, so the template never formats money itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import escape

from provider.core.money import format_money

# name -> what the editor sees beside the template
VARIABLES: dict[str, str] = {
    "debtor_name": "The debtor's name",
    "client_name": "Your client's name (the creditor)",
    "agency_name": "The agency's name",
    "total_due": "What is overdue, with the currency (e.g. €1,234.50)",
    "invoice_count": "How many invoices are overdue",
    "oldest_due_date": "Due date of the oldest overdue invoice",
    "days_overdue": "Days the oldest invoice is overdue",
    "today": "Today's date",
    "stage_name": "The name of this step (e.g. Second reminder)",
    "self_service_link": "The debtor's own page: invoices, statement, promise to pay, dispute",
    "reference": "The debtor's reference at the client",
    "invoices": "The overdue invoices: {% for invoice in invoices %} … {% endfor %}",
}
INVOICE_FIELDS: dict[str, str] = {
    "number": "Invoice number",
    "due_date": "Due date",
    "amount": "Open amount, with the currency",
    "days_overdue": "Days overdue",
}
MAX_LENGTH = 20_000


@dataclass(frozen=True)
class TemplateProblem:
    line: int | None
    message: str
    part: str = "body"

    def __str__(self) -> str:
        where = f"{self.part.capitalize()}, line {self.line}" if self.line else self.part.capitalize()
        return f"{where}: {self.message}"


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
    env.globals.clear()  # no range(), lipsum(), dict(), cycler(): templates only see VARIABLES
    return env


@lru_cache(maxsize=512)
def compiled(source: str) -> Any:
    return environment().from_string(source)


def locale_for(language: str, country: str) -> str:
    """`de_DE`, `en_GB`, or the language alone when babel does not know the pair (`fr` for fr_JP)."""
    for name in (f"{language}_{country}", language, "en"):
        try:
            Locale.parse(name)
            return name
        except (UnknownLocaleError, ValueError):
            continue
    return "en"


def _line_of(source: str, needle: str) -> int | None:
    for number, line in enumerate(source.splitlines(), start=1):
        if needle in line:
            return number
    return None


def _loop_names(ast: nodes.Template) -> set[str]:
    """Names bound by `{% for x in invoices %}` (their attributes are invoice fields)."""
    names = set()
    for loop in ast.find_all(nodes.For):
        if isinstance(loop.iter, nodes.Name) and loop.iter.name == "invoices" and isinstance(loop.target, nodes.Name):
            names.add(loop.target.name)
    return names


def problems_in(source: str, part: str = "body") -> list[TemplateProblem]:
    """Every problem of one template text (syntax, unknown variables, attribute access), none when it is fine."""
    if len(source) > MAX_LENGTH:
        return [TemplateProblem(None, f"the text is longer than {MAX_LENGTH:,} characters", part)]
    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(exc.lineno, _syntax_message(exc), part)]
    found: list[TemplateProblem] = []
    loops = _loop_names(ast)
    for name in sorted(meta.find_undeclared_variables(ast) - set(VARIABLES)):
        found.append(
            TemplateProblem(
                _line_of(source, name), f"“{name}” is not a variable you can use; see the list beside the editor", part
            )
        )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        attr = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(target, nodes.Name) and target.name in loops and attr in INVOICE_FIELDS:
            continue
        shown = f"{getattr(target, 'name', '…')}.{attr}" if attr else getattr(target, "name", "…")
        found.append(
            TemplateProblem(
                node.lineno,
                f"“{shown}” is not allowed: only the fields of an invoice inside"
                " {% for invoice in invoices %} (" + ", ".join(INVOICE_FIELDS) + ")",
                part,
            )
        )
    for call in ast.find_all(nodes.Call):
        found.append(TemplateProblem(call.lineno, "calling functions is not allowed in a template", part))
    if not found:
        try:
            compiled(source).render(sample_context())
        except SecurityError:
            found.append(TemplateProblem(None, "the template uses something the sandbox forbids", part))
        except Exception as exc:  # a filter used on the wrong kind of value, and the like
            found.append(TemplateProblem(getattr(exc, "lineno", None), f"it cannot be shown: {exc}", part))
    return found


def _syntax_message(exc: TemplateSyntaxError) -> str:
    text = str(exc.message or "")
    if "end of template" in text.lower():
        return "a block is not closed (an {% if %} needs {% endif %}, a {% for %} needs {% endfor %})"
    if "unexpected '}'" in text or "expected token" in text or "unexpected char" in text:
        return "a placeholder is not written right: write {{ name }}"
    if "Encountered unknown tag" in text:
        return "unknown block: only {% if %}, {% elif %}, {% else %}, {% for %} and their ends are used"
    return f"the text cannot be read: {text}"


def validate(subject: str, body: str) -> list[TemplateProblem]:
    problems = (
        problems_in(subject, "subject") if subject.strip() else [TemplateProblem(None, "write a subject", "subject")]
    )
    if "\n" in subject.strip():
        problems.append(TemplateProblem(None, "the subject is one line", "subject"))
    problems += problems_in(body, "body") if body.strip() else [TemplateProblem(None, "write the message", "body")]
    return problems


def money(minor: int, currency: str, locale: str) -> str:
    return format_money(minor, currency, locale)


@lru_cache(maxsize=8192)
def day(value: date, locale: str) -> str:
    """A date in the locale's long form (cached: a run formats the same few hundred dates again and again)."""
    return format_date(value, format="long", locale=locale)


@dataclass(frozen=True)
class InvoiceLine:
    number: str
    due_date: str
    amount: str
    days_overdue: int


def build_context(
    *,
    debtor_name: str,
    reference: str,
    client_name: str,
    agency_name: str,
    stage_name: str,
    invoices: list[tuple[str, date, str, int]],  # (number, due date, currency, open minor)
    today: date,
    locale: str,
    link: str,
) -> dict[str, Any]:
    """The template variables for one debtor, formatted for `locale`. The total is in the currency that has
    the most overdue (a debtor owing in two currencies sees the other in the invoice lines)."""
    by_currency: dict[str, int] = {}
    for _number, _due, currency, minor in invoices:
        by_currency[currency] = by_currency.get(currency, 0) + minor
    currency = max(by_currency, key=lambda c: by_currency[c]) if by_currency else "EUR"
    oldest = min((due for _n, due, _c, _m in invoices), default=today)
    return {
        "debtor_name": debtor_name,
        "reference": reference,
        "client_name": client_name,
        "agency_name": agency_name,
        "stage_name": stage_name,
        "total_due": money(by_currency.get(currency, 0), currency, locale),
        "invoice_count": len(invoices),
        "oldest_due_date": day(oldest, locale),
        "days_overdue": (today - oldest).days,
        "today": day(today, locale),
        "self_service_link": link,
        "invoices": [
            InvoiceLine(number, day(due, locale), money(minor, cur, locale), (today - due).days)
            for number, due, cur, minor in invoices
        ],
    }


def sample_context() -> dict[str, Any]:
    return build_context(
        debtor_name="Sample Debtor Ltd",
        reference="D-000001",
        client_name="Sample Client",
        agency_name="AR Ops Collections",
        stage_name="Friendly reminder",
        invoices=[("INV-1001", date(2026, 1, 10), "EUR", 123_450), ("INV-1002", date(2026, 2, 1), "EUR", 5_000)],
        today=date(2026, 3, 1),
        locale="en_GB",
        link="https://example.test/d/sample",
    )


def render(subject: str, body: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of one message. The HTML is the text escaped, in paragraphs, with the
    self-service link made clickable; nothing the template writes becomes markup."""
    subject_out = re.sub(r"[ \t\r\n]+", " ", compiled(subject).render(context)).strip()
    text = compiled(body).render(context)
    return subject_out, text, text_to_html(text, str(context.get("self_service_link", "")))


def text_to_html(text: str, link: str = "") -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    parts = []
    for paragraph in paragraphs:
        html = str(escape(paragraph)).replace("\n", "<br>\n")
        if link:
            safe = str(escape(link))
            html = html.replace(safe, f'<a href="{safe}">{safe}</a>')
        parts.append(f"<p>{html}</p>")
    return (
        '<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">' + "".join(parts) + "</body></html>"
    )
