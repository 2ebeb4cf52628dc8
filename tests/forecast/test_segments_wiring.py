"""The behaviour segments in use: the dunning tone per segment, and the worklist score's behaviour term."""

from __future__ import annotations

from datetime import date
from typing import Any

from provider.core.clock import now_utc
from provider.core.tenancy import TenantScope, scoped
from provider.dunning import services as dunning
from provider.dunning.run import load_plan
from provider.dunning.selection import facts_for_range
from provider.extensions import db
from provider.forecast.models import DebtorBehaviour
from tests.factories import make_client, make_debtor, make_invoice, make_user


def behaviour(client: Any, debtor: Any, segment: str) -> None:
    with scoped(TenantScope.single(client.id), db.session):
        db.session.add(
            DebtorBehaviour(client_id=client.id, debtor_id=debtor.id, as_of=date(2026, 3, 1), segment=segment,
                            segment_since=date(2026, 3, 1), reasons=["nothing paid for 120 days"], risk_grade="E",
                            grade_reasons=[], currency="EUR", fitted_at=now_utc())
        )  # fmt: skip
        db.session.commit()


def test_the_dunning_tone_follows_the_behaviour_segment_unless_the_clients_own_segment_has_a_template(
    db_session: Any,
) -> None:
    client = make_client()
    silent = make_debtor(client, name="Silent")
    usual = make_debtor(client, name="Usual")
    vip = make_debtor(client, name="Vip", segment="vip")
    for n, d in enumerate((silent, usual, vip)):
        make_invoice(client, d, f"S-{n}", 10_000, due_date=date(2026, 2, 1))
    behaviour(client, silent, "silent")
    behaviour(client, vip, "silent")
    admin = make_user("client_admin", client=client)
    with scoped(TenantScope.agency(), db.session):
        policy = dunning.propose_policy(db.session, client, effective_from=date(2025, 1, 1),
                                        stages=dunning.STANDARD_STAGES)  # fmt: skip
        stage = min(policy.stages, key=lambda s: s.position)
        language = dunning.debtor_language_default(client)  # the debtors' language
        for segment, tone in (("silent", "firm"), ("vip", "friendly")):
            dunning.save_template(db.session, stage, policy, language=language, segment=segment, tone=tone,
                                  subject="Reminder", body="Dear {{ debtor_name }}, please pay.")  # fmt: skip
        dunning.approve_policy(db.session, policy, admin, "fine")
        db.session.commit()
    with scoped(TenantScope.single(client.id), db.session):
        plan = load_plan(db.session, policy)
        cands = {c.name: c for c in facts_for_range(db.session, client.id, date(2026, 3, 1), 0, 2**62)}
        tone = {
            name: plan.template_for(stage, c.language, c.segment, c.behaviour).tone  # type: ignore[union-attr]
            for name, c in cands.items()
        }
    assert cands["Silent"].behaviour == "silent" and cands["Usual"].behaviour == ""
    assert {c.language for c in cands.values()} == {language}
    assert tone["Silent"] == "firm"  # the behaviour segment's template
    assert tone["Usual"] != "firm"  # no behaviour learned: the template for every segment
    assert tone["Vip"] == "friendly"  # the client's own segment comes first
