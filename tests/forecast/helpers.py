"""Post a synthetic ledger (tests/forecast/synthetic.py) through the product's own ledger services."""

from __future__ import annotations

from datetime import date
from typing import Any

from clients import services
from clients.models import Client
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_debtor
from tests.forecast import synthetic


def post_synthetic(client: Client, seed: int, debtors: int, weeks: int, start: date, per_week: float) -> dict[str, Any]:
    rows = synthetic.ledger(seed, debtors, weeks, start, per_week=per_week)
    ids = [make_debtor(client, external_ref=f"{client.code}-{r['ref']}").id for r in rows["debtors"]]
    with scoped(TenantScope.single(client.id), db.session):
        placed = services.place_invoices(
            db.session,
            client,
            [
                {"debtor_id": ids[r["debtor"]], "number": r["number"], "issue_date": r["issue"], "due_date": r["due"],
                 "currency": client.base_currency, "amount_minor": r["amount"]}
                for r in rows["invoices"]
            ],
        )  # fmt: skip
        results = services.record_payments(
            db.session,
            client,
            [
                {"debtor_id": ids[p["debtor"]], "external_ref": f"PAY-{k}", "received_on": p["day"],
                 "currency": client.base_currency, "amount_minor": p["amount"], "reference": p["invoice"]}
                for k, p in enumerate(rows["payments"])
            ],
        )  # fmt: skip
        services.auto_allocate_many(db.session, client, [r.payment.id for r in results])
        db.session.commit()
    return {"rows": rows, "debtor_ids": ids, "invoices": placed}
