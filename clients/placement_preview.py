"""What a placement file will look like before it is posted: the preview of its first rows, read exactly as the
import reads them (values, open amount, what is left out and why, each problem), and the CSV template of the
columns an upload expects."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from typing import Any

from clients import export_presets
from clients.file_formats import FileFormat
from clients.imports import (
    PREVIEW_ROWS,
    FileRejected,
    ImportBatch,
    PlacementRow,
    RaggedRow,
    placement_header_test,
    read_rows,
)
from clients.ledger import RowError
from clients.models import Client
from clients.placement_plan import (
    EXTRA_FIELDS,
    FIELDS,
    LeftOut,
    Plan,
    make_plan,
    read_row,
    row_values,
    settle,
)
from provider.core.money import format_money


@dataclass
class Preview:
    """How the first rows of a file will be read: the plan's notes and column problems, then each row's
    values as read (or why it is left out) and its problems."""

    plan: Plan | None
    header: list[str]
    rows: list[dict[str, Any]]
    problems: list[RowError]


def preview_rows(batch: ImportBatch, client: Client, limit: int = PREVIEW_ROWS) -> Preview:
    """The first `limit` data rows of the batch's file, read exactly as the import will read them (line-level
    files: each line, before its invoice's lines are added up)."""
    try:
        header, rows = read_rows(
            batch.filename,
            batch.content,
            FileFormat.of(batch.mapping).decimal_mark,
            placement_header_test(batch.mapping),
        )
    except FileRejected as exc:
        return Preview(None, [], [], [RowError(1, "file", str(exc))])
    plan = make_plan(header, batch.mapping, client.base_currency, getattr(header, "line", 1))
    if plan.errors:
        return Preview(plan, header, [], plan.errors)
    schema = PlacementRow(plan.file_format, planned=True, due_optional=plan.due_days is not None)
    shown = []
    try:
        for line, cells in itertools.islice(rows, limit):
            shown.append(_previewed(plan, schema, line, cells))
    except FileRejected as exc:
        return Preview(plan, header, shown, [RowError(1, "file", str(exc))])
    return Preview(plan, header, shown, [])


def _previewed(plan: Plan, schema: PlacementRow, line: int, cells: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"row": line, "values": {}, "problems": [], "left_out": ""}
    if isinstance(cells, RaggedRow):
        out["problems"] = [RowError(line, "row", cells.problem)]
        return out
    outcome = read_row(plan, schema, line, cells)
    out["values"] = row_values(plan, cells)
    if isinstance(outcome, LeftOut):
        out["left_out"] = outcome.reason
    elif isinstance(outcome, list):
        out["problems"] = outcome
    else:
        out["values"] = {
            "invoice_number": outcome.number,
            "debtor_ref": outcome.debtor_ref,
            "debtor_name": outcome.debtor_name,
            "issue_date": outcome.issue_date.isoformat(),
            "due_date": outcome.due_date.isoformat(),
            "currency": outcome.currency,
            "amount": format_money(outcome.amount_minor, outcome.currency),
            "paid": "" if outcome.paid_minor is None else format_money(outcome.paid_minor, outcome.currency),
            "balance": "" if outcome.balance_minor is None else format_money(outcome.balance_minor, outcome.currency),
            "po_reference": outcome.po_reference,
        }
        if outcome.payment:
            out["left_out"] = "payment of the invoice: subtracted from it"
        elif not plan.lines:
            settled = settle(plan, outcome)
            if isinstance(settled, LeftOut):
                out["left_out"] = settled.reason
            elif isinstance(settled, RowError):
                out["problems"] = [settled]
            else:
                out["values"]["open"] = format_money(settled.amount_minor, settled.currency)
    return out


def template_csv(mapping: dict[str, Any]) -> str:
    """A CSV file with the header of the columns an upload with this mapping expects (a preset's own names
    when one is chosen), to fill in or to compare an export with."""
    preset = export_presets.PRESETS.get(str(mapping.get("preset") or ""))
    if preset is not None:
        names = list(dict.fromkeys(n[0] for n in preset.columns.values()))
    else:
        supplied = {f for f in FIELDS if str(mapping.get(f"const_{f}") or "").strip()}
        if str(mapping.get("due_days") or "").strip():
            supplied.add("due_date")
        names = [str(mapping.get(f) or f) for f in FIELDS if f not in supplied]
        names += [str(mapping[f]) for f in EXTRA_FIELDS if str(mapping.get(f) or "").strip()]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(names)
    return buffer.getvalue()
