"""Where other parts of the platform start and stop SLA clocks, through their signals (they import nothing
of the SLAs): a placement file starts the "placement acknowledged" clock when it is uploaded and stops it
when its import has run; the accounts it placed start "first contact" clocks, which the collector's first
call or e-mail to the debtor stops. The app imports this module (provider/app.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from clients.imports import placement_processed, placement_received
from clients.models import Client
from sla.calendars import calendar_for
from sla.clocks import start_clocks_bulk
from sla.hooks import sla_completed, sla_started
from sla.models import SlaCode
from worklists.services import contact_attempted


@placement_received.connect
def _placement_received(session: Session, *, client_id: int, batch_id: int, at: datetime, **_: Any) -> None:
    client = session.get_one(Client, client_id)
    sla_started(session, client, SlaCode.PLACEMENT_ACK.value, ("placement", batch_id), at=at)


@placement_processed.connect
def _placement_processed(
    session: Session, *, client_id: int, batch_id: int, debtor_ids: Select[Any] | None, **_: Any
) -> None:
    client = session.get_one(Client, client_id)
    sla_completed(session, client, SlaCode.PLACEMENT_ACK.value, ("placement", batch_id))
    if debtor_ids is not None:
        cal = calendar_for(session, client)
        start_clocks_bulk(session, cal, client_id, SlaCode.FIRST_CONTACT.value, "debtor", debtor_ids)


@contact_attempted.connect
def _contact_attempted(session: Session, *, client_id: int, debtor_id: int, at: datetime, **_: Any) -> None:
    client = session.get_one(Client, client_id)
    sla_completed(session, client, SlaCode.FIRST_CONTACT.value, ("debtor", debtor_id), at=at)
