"""Upload pages for placement files, shared by the back office and the portal (same flow, other URLs)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from clients.file_formats import DATE_FORMATS, format_from_form
from clients.imports import DEFAULT_MAPPING, FIELDS, REQUIRED, ImportBatch, start_placement_import
from clients.models import Client
from provider.background import job_state_for
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
}


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
    """GET: upload form + earlier imports. POST: store the file and queue the import."""
    errors: list[str] = []
    mapping = saved_mapping(client.id)
    if request.method == "POST":
        upload = request.files.get("file")
        file_format, errors = format_from_form(request.form)
        mapping = {f: (request.form.get(f"map_{f}") or f).strip()[:80] for f in FIELDS} | file_format.as_mapping()
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
            )
            db.session.commit()
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
        fields=FIELDS,
        required=REQUIRED,
        labels=LABELS,
        date_formats=DATE_FORMATS,
        decimal_marks=DECIMAL_MARKS,
        errors=errors,
        urls=urls,
    ), (422 if errors else 200)


def batch_page(client: Client, batch_id: int, urls: dict[str, Any], template: str) -> Any:
    batch = get_for_client(db.session, ImportBatch, batch_id, client.id)
    if batch.kind != "placements":  # a payments file has its own page
        abort(404)
    job = job_state_for(f"import:{client.id}:{batch.id}")
    return render_template(template, client=client, batch=batch, urls=urls, labels=LABELS, job=job)


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
