"""Evidence files of a dispute: size and type limits, bytes kept in the database (every host can serve
them), always sent back as a download (`attachment`, nosniff), never rendered inline."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from provider.core import audit
from provider.core.audit import current_actor
from provider.core.errors import ServiceError
from sla.models import Dispute, DisputeEvidence, DisputeStatus

MAX_BYTES = 5 * 1024 * 1024
MAX_FILES = 20
TYPES = {  # extension -> (content type, signature check)
    "pdf": ("application/pdf", lambda b: b.startswith(b"%PDF-")),
    "png": ("image/png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    "jpg": ("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    "jpeg": ("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    "txt": ("text/plain", lambda b: _is_text(b)),
    "csv": ("text/csv", lambda b: _is_text(b)),
}


def _is_text(content: bytes) -> bool:
    if b"\x00" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def add_evidence(session: Session, dispute: Dispute, filename: str, content: bytes, count: int = 0) -> DisputeEvidence:
    """Store one uploaded file. Refuses empty or oversized files, unknown extensions, contents that do not
    match their extension (a script renamed to .pdf), more than MAX_FILES per dispute and closed disputes."""
    if dispute.status in (DisputeStatus.RESOLVED, DisputeStatus.WITHDRAWN):
        raise ServiceError("the dispute is closed", field="file")
    name = secure_filename(filename or "")[:200]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in TYPES:
        raise ServiceError(f"allowed files: {', '.join(sorted(TYPES))}", field="file")
    if not content:
        raise ServiceError("the file is empty", field="file")
    if len(content) > MAX_BYTES:
        raise ServiceError(f"files are limited to {MAX_BYTES // (1024 * 1024)} MB", field="file")
    content_type, looks_right = TYPES[ext]
    if not looks_right(content):
        raise ServiceError(f"the file is not a valid .{ext} file", field="file")
    if count >= MAX_FILES:
        raise ServiceError(f"a dispute holds at most {MAX_FILES} files", field="file")
    evidence = DisputeEvidence(
        client_id=dispute.client_id,
        dispute_id=dispute.id,
        filename=name,
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        uploaded_by_label=current_actor().label,
    )
    session.add(evidence)
    session.flush()
    audit.record(
        session, "dispute.evidence", dispute, after={"file": name, "size": len(content), "sha256": evidence.sha256}
    )
    return evidence
