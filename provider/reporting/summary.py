"""The plain-language summary of a monthly report, generated from its figures (no free text, no guessing)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from provider.core.money import format_money


def _days(value: str | None) -> str:
    return f"{Decimal(value):.1f} days" if value is not None else "not defined (no credit sales)"


def _month(key: str) -> str:
    """ "2026-03" as "March 2026" (the summary is stored text: English month names, whoever reads it)."""
    try:
        return date.fromisoformat(f"{key}-01").strftime("%B %Y")
    except ValueError:
        return key


def summarize(figures: dict[str, Any], currency: str | None, client_name: str) -> list[str]:
    """Four or five sentences a client reads first; every number comes from `figures`."""
    if currency is None:
        return [f"{client_name} had no receivables with the agency in this period."]
    data = figures["currencies"][currency]
    now, before = data["current"], data["previous"]
    money = lambda minor: format_money(minor, currency)  # noqa: E731
    lines = [
        f"In {_month(now['month'])} the agency collected {money(now['collected'])}: "
        f"{money(now['collected_agency'])} paid to the agency and "
        f"{money(now['collected_client'])} paid to you directly."
    ]
    lines.append(
        f"Open receivables were {money(now['ar_end'])} at the end of the month, of which {money(data['overdue'])} "
        f"({data['overdue_share'] or '0.0'}%) overdue, against {money(now['sales'])} newly placed."
    )
    if now["dso"] is not None and before and before["dso"] is not None:
        delta = Decimal(now["dso"]) - Decimal(before["dso"])
        direction = "down" if delta < 0 else "up" if delta > 0 else "unchanged"
        lines.append(
            f"DSO was {_days(now['dso'])}, {direction}"
            + (f" {abs(delta):.1f} days" if delta else "")
            + f" from {_month(before['month'])}; the best possible was {_days(now['bpdso'])}."
        )
    else:
        lines.append(f"DSO was {_days(now['dso'])}.")
    if now["cei"] is not None:
        quality = "strong" if Decimal(now["cei"]) >= 80 else "fair" if Decimal(now["cei"]) >= 50 else "weak"
        lines.append(f"The collection effectiveness index was {now['cei']}% ({quality}).")
    if data["top_debtors"]:
        top = data["top_debtors"][0]
        lines.append(
            f"The largest overdue balance is {top['name']} with {money(top['overdue'])}, {top['days']} days past due."
        )
    if now["written_off"] or now["credited"]:
        lines.append(f"Credit notes {money(now['credited'])} and write-offs {money(now['written_off'])} reduced AR.")
    return lines
