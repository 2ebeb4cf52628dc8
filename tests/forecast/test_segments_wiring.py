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


def test_the_worklist_score_has_a_behaviour_term_explained_on_the_account_screen(client: Any, db_session: Any) -> None:
    from tests.conftest import login
    from tests.factories import make_team
    from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
    from worklists.scoring import BEHAVIOUR_POINTS

    agency_client = commercial_client(name="Behaviour Client GmbH")
    collector = make_user("collector", team=make_team(agency_client))
    with working_day():
        silent = overdue_account(agency_client, 500_00, name="Quiet GmbH")
        prompt = overdue_account(agency_client, 500_00, name="Prompt GmbH")
        unknown = overdue_account(agency_client, 500_00, name="Unknown GmbH")
        behaviour(agency_client, silent, "silent")
        behaviour(agency_client, prompt, "pays_on_time")
        rebuild(agency_client)
        items = {name: item_of(d) for name, d in (("silent", silent), ("prompt", prompt), ("unknown", unknown))}
        assert items["silent"].term_behaviour == BEHAVIOUR_POINTS["silent"] > 0
        assert items["prompt"].term_behaviour == BEHAVIOUR_POINTS["pays_on_time"]
        assert items["unknown"].term_behaviour == 0 and items["unknown"].behaviour_segment == ""
        # the term is part of the score: same amount and age, so the behaviour alone orders the three
        assert items["silent"].score > items["unknown"].score > items["prompt"].score
        assert items["silent"].score == sum(items["silent"].terms().values())
        login(client, collector.email)
        page = client.get(f"/worklists/items/{items['silent'].id}").get_data(as_text=True)
        other = client.get(f"/worklists/items/{items['unknown'].id}").get_data(as_text=True)
    assert "Payment behaviour" in page and "Silent (learned from its payments)" in page
    assert "not learned yet" in other and "silent" not in page.replace("Silent", "")
