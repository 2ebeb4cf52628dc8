"""Upload pages for placement files, shared by the back office and the portal (same flow, other URLs)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from clients.export_presets import LINE_MODES, PRESETS, preset_choices
from clients.file_formats import DATE_FORMATS, format_from_form
from clients.imports import (
    DEFAULT_MAPPING,
    FIELDS,
    REQUIRED,
    BatchStatus,
    ImportBatch,
    confirm_placement_import,
    remap_placement_import,
    start_placement_import,
)
from clients.models import Client
from clients.placement_plan import CONSTANT_FIELDS, EXTRA_FIELDS, options_problems
from clients.placement_preview import preview_rows, template_csv
from provider.background import job_state_for
from provider.core.errors import ServiceError
from provider.core.money import DECIMAL_MARKS
from provider.core.tenancy import get_for_client
from provider.extensions import db
from provider.ui import paginate

ALLOWED = (".csv", ".txt", ".xlsx")
LABELS = {
    "invoice_number": "Invoice number",
    "debtor_ref": "Debtor reference",
    "debtor_name": "Debtor name",
    "issue_date": "Issue date",
    "due_date": "Due date",
    "amount": "Amount",
    "currency": "Currency",
    "po_reference": "PO / reference",
    "paid": "Amount paid (subtracted)",
    "balance": "Open balance",
    "tax": "Tax amount (added)",
    "row": "Row",
}
OPTION_KEYS = ("preset", "due_days", "lines", *(f"const_{f}" for f in CONSTANT_FIELDS))


def mapping_from_form(form: Any) -> tuple[dict[str, Any], list[str]]:
    """The column names, file format and reading options of an upload form, and what is wrong with them."""
    file_format, errors = format_from_form(form)
    mapping: dict[str, Any] = {f: (form.get(f"map_{f}") or f).strip()[:80] for f in FIELDS}
    mapping |= {f: (form.get(f"map_{f}") or "").strip()[:80] for f in EXTRA_FIELDS}
    mapping |= file_format.as_mapping()
    if not (form.get("date_format") or "").strip():
        mapping["date_format"] = ""  # as the preset writes dates (ISO without one)
    mapping |= {k: (form.get(k) or "").strip()[:80] for k in OPTION_KEYS}
    mapping["preset"] = mapping["preset"] or "auto"
    mapping["lines"] = mapping["lines"] or "auto"
    return mapping, errors + options_problems(mapping)


def _form_context() -> dict[str, Any]:
    return {
        "fields": FIELDS,
        "extra_fields": EXTRA_FIELDS,
        "constant_fields": CONSTANT_FIELDS,
        "required": REQUIRED,
        "labels": LABELS,
        "date_formats": DATE_FORMATS,
        "decimal_marks": DECIMAL_MARKS,
        "presets": preset_choices(),
        "line_modes": LINE_MODES,
    }


def template_download(mapping: dict[str, Any], client: Client) -> Response:
    """The CSV template of the columns an upload expects (`?template=<preset>` for a preset's own)."""
    chosen = request.args.get("template", "")
    if chosen in PRESETS:
        mapping = {**mapping, "preset": chosen}
        name = f"{chosen}-template.csv"
    else:
        mapping = {**mapping, "preset": "none"}
        name = f"placements-{client.code}-template.csv"
    return Response(
        template_csv(mapping),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def saved_mapping(client_id: int) -> dict[str, str]:
    """The client's column mapping and file format: those of its latest import that posted, else the standard
    names, ISO dates and a decimal point."""
    last = db.session.scalar(
        select(ImportBatch.mapping)
        .where(
            ImportBatch.client_id == client_id,
            ImportBatch.kind == "placements",
            ImportBatch.status.in_(("posted", "partial")),
        )
        .order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc())
        .limit(1)
    )
    return {**DEFAULT_MAPPING, **(last or {})}


def imports_page(client: Client, urls: dict[str, Any], template: str) -> Any:
    """GET: upload form + earlier imports (`?template=...`: the CSV template of the expected columns).
    POST: store the file and show the preview of its first rows (action "preview"), or queue the import
    ("post", the default for a form without the choice); with `batch_id`, change how a previewed file is
    read ("remap") or confirm it ("confirm")."""
    errors: list[str] = []
    mapping = saved_mapping(client.id)
    if request.method == "GET" and "template" in request.args:
        return template_download(mapping, client)
    if request.method == "POST" and request.form.get("batch_id"):
        return _previewed_batch(client, urls)
    if request.method == "POST":
        upload = request.files.get("file")
        mapping, errors = mapping_from_form(request.form)
        preview = request.form.get("action") == "preview"
        content = upload.read() if upload is not None and upload.filename else b""
        if upload is None or not upload.filename:
            errors.append("Choose a CSV or XLSX file to upload.")
        elif not upload.filename.lower().endswith(ALLOWED):
            errors.append(f"{upload.filename}: only .csv and .xlsx files can be imported.")
        elif not content:
            errors.append(f"{upload.filename} is empty.")
        if not errors and upload is not None:
            batch = start_placement_import(
                db.session,
                client,
                upload.filename,
                content,
                mapping=mapping,
                post_valid=request.form.get("post_valid") == "1",
                user_id=current_user.id,
                preview=preview,
            )
            db.session.commit()
            if not preview:
                flash(f"{upload.filename} received; the import is running.", "info")
            return redirect(urls["batch"](batch.id))
    stmt = (
        select(ImportBatch)
        .where(ImportBatch.client_id == client.id, ImportBatch.kind == "placements")
        .order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc())
    )
    return render_template(
        template,
        client=client,
        page=paginate(stmt, default_per_page=25),
        mapping=mapping,
        errors=errors,
        urls=urls,
        **_form_context(),
    ), (422 if errors else 200)


def _previewed_batch(client: Client, urls: dict[str, Any]) -> Any:
    """Change the reading options of a file waiting in preview, or confirm its import."""
    try:
        batch_id = int(request.form.get("batch_id", ""))
    except ValueError:
        abort(404)
    batch = get_for_client(db.session, ImportBatch, batch_id, client.id)
    if batch.kind != "placements":
        abort(404)
    if request.form.get("action") == "confirm":
        confirm_placement_import(db.session, batch)
        db.session.commit()
        flash(f"{batch.filename}: the import is running.", "info")
        return redirect(urls["batch"](batch.id))
    mapping, errors = mapping_from_form(request.form)
    if not errors:
        try:
            remap_placement_import(db.session, batch, mapping, request.form.get("post_valid") == "1")
        except ServiceError as exc:
            errors.append(str(exc))
    if errors:
        db.session.rollback()
        return batch_page(client, batch.id, urls, "clients/import_batch.html", errors=errors, mapping=mapping)
    db.session.commit()
    return redirect(urls["batch"](batch.id))


def batch_page(
    client: Client,
    batch_id: int,
    urls: dict[str, Any],
    template: str,
    errors: list[str] | None = None,
    mapping: dict[str, Any] | None = None,
) -> Any:
    batch = get_for_client(db.session, ImportBatch, batch_id, client.id)
    if batch.kind != "placements":  # a payments file has its own page
        abort(404)
    preview = preview_rows(batch, client) if batch.status == BatchStatus.PREVIEW.value else None
    return render_template(
        template,
        job=job_state_for(f"import:{client.id}:{batch.id}"),
        client=client,
        batch=batch,
        urls=urls,
        preview=preview,
        mapping={**DEFAULT_MAPPING, **(mapping or batch.mapping or {})},
        errors=errors or [],
        **_form_context(),
    ), (422 if errors else 200)


def back_office_urls(client: Client) -> dict[str, Any]:
    return {
        "list": url_for("clients.imports", client_id=client.id),
        "batch": lambda batch_id: url_for("clients.import_batch", client_id=client.id, batch_id=batch_id),
    }


def portal_urls() -> dict[str, Any]:
    return {
        "list": url_for("portal.imports"),
        "batch": lambda batch_id: url_for("portal.import_batch", batch_id=batch_id),
    }
