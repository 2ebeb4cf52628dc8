"""The KPI engine against hand-computed ledgers (DESIGN §7), on PostgreSQL and SQLite.

The March 2026 ledger of `march_world` (amounts in euro cents):

    invoice  debtor  issued      due         amount    what happens
    A        D1      2026-01-10  2026-02-09  100,000   P1 pays 40,000 on 03-10 (agency); P3 50,000 on 04-05
    B        D1      2026-02-15  2026-03-17   50,000   credit note CN1 10,000 on 03-12
    C        D2      2026-03-05  2026-04-04  200,000
    E        D2      2025-10-01  2025-10-31   30,000   P2 pays 10,000 on 02-20 (to the client); rest written off 03-28
    F        D2      2026-03-20  2026-03-25   40,000   P4 5,000 received 03-30, posted 04-10

As of 2026-03-31 with the report made on 04-01 (P3 and P4 not in it):
    aging  Current 200,000 (C) | 1-30 80,000 (B 40,000 + F 40,000) | 31-60 60,000 (A) | total 340,000
    AR at 02-28 = A 100,000 + B 50,000 + E 20,000 = 170,000; current at 02-28 = B 50,000
    March sales S = C + F = 240,000, D = 31
    DSO = 340,000 / 240,000 x 31 = 43.92;  BPDSO = 200,000 / 240,000 x 31 = 25.83;  ADD = 18.08
    countback: 340,000 - 240,000 (31 d) - 50,000 (28 d) = 50,000 → + 50,000/100,000 x 31 = 74.50
    CEI = (170,000 + 240,000 - 340,000) / (170,000 + 240,000 - 200,000) x 100 = 33.33
    collected in March: agency 40,000, client 0; February: client 10,000; written off 20,000; credited 10,000
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from provider.reporting import figures as fig
from provider.reporting import formulas as f
from provider.reporting import kpi
from tests.factories import make_client, make_debtor
from tests.reports.ledger_world import at, march_world, pay, place

MARCH_END = date(2026, 3, 31)


def test_worked_checks_of_design_section_7() -> None:
    ar, current, sales = 15_000_00, 4_000_00, 10_000_00
    assert f.dso(ar, sales, 30) == Decimal(45)
    assert f.best_possible_dso(current, sales, 30) == Decimal(12)
    assert f.average_days_delinquent(ar, current, sales, 30) == Decimal(33)
    countback = f.countback_dso(212_000, [(100_000, 31), (80_000, 28), (70_000, 31)])
    assert f.rounded(countback) == "73.17"


def test_ratios_with_nothing_to_divide_by_are_not_defined() -> None:
    assert f.dso(1000, 0, 30) is None
    assert f.cei(0, 0, 0, 0) is None
    assert f.countback_dso(0, [(100, 31)]) == 0


def test_cei_divides_sales_by_the_number_of_months() -> None:
    # a quarter: beginning AR 100, sales 300 over N = 3, ending AR 150 of which 60 current
    assert f.cei(100, 300, 150, 60, months=3) == (Decimal(100) + 100 - 150) / (Decimal(100) + 100 - 60) * 100
    assert f.rounded(f.cei(100, 300, 150, 60, months=3)) == "35.71"


def test_aging_as_of_a_past_date_with_partial_payments_credits_write_offs_and_later_postings(db_session: Any) -> None:
    w = march_world()
    aging = kpi.aging_at(w.client.id, MARCH_END, w.cutoff)["EUR"]
    assert aging.amounts == {"Current": 200_000, "1-30": 80_000, "31-60": 60_000, "61-90": 0, "91-120": 0, "120+": 0}
    assert aging.counts == {"Current": 1, "1-30": 2, "31-60": 1, "61-90": 0, "91-120": 0, "120+": 0}
    assert aging.total == 340_000
    # without the posting cut-off the backdated P4 counts (it occurred on 03-30); P3 (04-05) never does
    live = kpi.aging_at(w.client.id, MARCH_END)["EUR"]
    assert live.amounts["1-30"] == 75_000 and live.total == 335_000
    # on 03-01: A 20 days late, B not yet due, and E (121 days late) still open 20,000 before its write-off
    before = kpi.aging_at(w.client.id, date(2026, 3, 1), w.cutoff)["EUR"]
    assert before.amounts == {"Current": 50_000, "1-30": 100_000, "31-60": 0, "61-90": 0, "91-120": 0, "120+": 20_000}
    # today: P3 paid 50,000 of A and P4 5,000 of F
    assert kpi.receivable_total(w.client.id, date(2026, 11, 1)) == {"EUR": 340_000 - 50_000 - 5_000}


def test_monthly_figures_of_the_march_report(db_session: Any) -> None:
    w = march_world()
    figures = fig.derive(fig.collect_inputs(w.client.id, MARCH_END, w.cutoff))
    eur = figures["currencies"]["EUR"]
    march, february = eur["current"], eur["previous"]
    assert (march["month"], february["month"]) == ("2026-03", "2026-02")
    assert (march["ar_begin"], march["ar_end"], march["current_end"], march["sales"]) == (
        170_000,
        340_000,
        200_000,
        240_000,
    )
    assert (march["dso"], march["bpdso"], march["add"]) == ("43.92", "25.83", "18.08")
    assert march["countback_dso"] == "74.50"
    assert march["cei"] == "33.33"
    assert (march["collected_agency"], march["collected_client"]) == (40_000, 0)
    assert (february["collected_agency"], february["collected_client"]) == (0, 10_000)
    assert (march["written_off"], march["credited"]) == (20_000, 10_000)
    # February: AR 170,000 of which 50,000 current, sales 50,000 over 28 days
    assert (february["dso"], february["bpdso"]) == ("95.20", "28.00")
    assert [m["month"] for m in eur["trend"]] == [f"2025-{m:02d}" for m in range(4, 13)] + [
        "2026-01",
        "2026-02",
        "2026-03",
    ]


def test_stair_step_recovery_counts_payments_not_credits_or_write_offs(db_session: Any) -> None:
    w = march_world()
    stair = fig.derive(fig.collect_inputs(w.client.id, MARCH_END, w.cutoff))["currencies"]["EUR"]["stair"]
    by_month = {row["placed_month"]: row for row in stair}
    assert set(by_month) == {"2025-10", "2026-01", "2026-02", "2026-03"}
    assert (by_month["2025-10"]["placed"], by_month["2025-10"]["collected"]) == (30_000, 10_000)
    assert (by_month["2026-01"]["placed"], by_month["2026-01"]["collected"]) == (100_000, 40_000)
    assert (by_month["2026-02"]["placed"], by_month["2026-02"]["collected"]) == (50_000, 0)
    assert (by_month["2026-03"]["placed"], by_month["2026-03"]["collected"]) == (240_000, 0)
    cells = {c["month"]: c["rate"] for c in by_month["2025-10"]["cells"]}
    assert (cells["2025-10"], cells["2026-01"], cells["2026-02"], cells["2026-03"]) == ("0.0", "0.0", "33.3", "33.3")
    assert [c["rate"] for c in by_month["2026-01"]["cells"]] == ["0.0", "0.0", "40.0"]


def test_top_debtors_by_overdue_amount(db_session: Any) -> None:
    w = march_world()
    top = kpi.top_debtors(w.client.id, MARCH_END, w.cutoff)
    assert [(d["name"], d["overdue"], d["invoices"], d["days"]) for d in top] == [
        ("Dora Debtor One", 100_000, 2, 50),
        ("Dan Debtor Two", 40_000, 1, 6),
    ]


def test_worked_check_on_a_real_ledger(db_session: Any) -> None:
    """DESIGN §7: AR 15,000, current 4,000, 30-day sales 10,000 → DSO 45, BPDSO 12, ADD 33 (April: 30 days)."""
    client = make_client(base_currency="EUR")
    d = make_debtor(client)
    x = place(client, d, "X", 11_000_00, date(2026, 1, 15), date(2026, 2, 14))
    pay(client, d, "PX", 6_000_00, date(2026, 2, 20), x)
    place(client, d, "Y", 6_000_00, date(2026, 4, 2), date(2026, 4, 12))
    place(client, d, "Z", 4_000_00, date(2026, 4, 20), date(2026, 5, 20))
    april = fig.derive(fig.collect_inputs(client.id, date(2026, 4, 30), months=2))["currencies"]["EUR"]["current"]
    assert (april["ar_end"], april["current_end"], april["sales"], april["days"]) == (
        15_000_00,
        4_000_00,
        10_000_00,
        30,
    )
    assert (april["dso"], april["bpdso"], april["add"]) == ("45.00", "12.00", "33.00")


def test_countback_worked_check_on_a_real_ledger(db_session: Any) -> None:
    """DESIGN §7: AR 212,000 against monthly sales 100k (31 d, newest), 80k (28 d), 70k (31 d) → 73.17 days."""
    client = make_client(base_currency="EUR")
    d = make_debtor(client)
    jan = place(client, d, "J", 70_000_00, date(2026, 1, 5), date(2026, 1, 20))
    place(client, d, "F", 80_000_00, date(2026, 2, 5), date(2026, 2, 20))
    place(client, d, "M", 100_000_00, date(2026, 3, 5), date(2026, 4, 20))
    pay(client, d, "PJ", 38_000_00, date(2026, 3, 15), jan)
    march = fig.derive(fig.collect_inputs(client.id, MARCH_END, months=3))["currencies"]["EUR"]["current"]
    assert march["ar_end"] == 212_000_00
    assert march["countback_dso"] == "73.17"


def test_a_partial_month_is_measured_over_its_days_so_far(db_session: Any) -> None:
    client = make_client(base_currency="EUR")
    d = make_debtor(client)
    place(client, d, "P", 1_000_00, date(2026, 3, 2), date(2026, 4, 1))
    place(client, d, "Q", 500_00, date(2026, 3, 20), date(2026, 4, 19))  # later in March: not yet on the 10th
    for totals in (True, False):
        inputs = fig.collect_inputs(client.id, date(2026, 3, 10), months=1, totals=totals)
        mid = fig.derive(inputs)["currencies"]["EUR"]["current"]
        assert (mid["days"], mid["sales"], mid["dso"], mid["bpdso"]) == (10, 1_000_00, "10.00", "10.00")
    assert inputs == fig.collect_inputs_by_queries(client.id, date(2026, 3, 10), months=1)


def test_another_clients_ledger_never_counts(db_session: Any) -> None:
    w = march_world()
    other = make_client(base_currency="EUR")
    place(other, make_debtor(other), "A", 999_999, date(2026, 3, 1), date(2026, 3, 2), posted=at(date(2026, 3, 1)))
    assert kpi.aging_at(w.client.id, MARCH_END, w.cutoff)["EUR"].total == 340_000
    everyone = kpi.aging_by_client(None, MARCH_END, w.cutoff)
    assert everyone[other.id]["EUR"].total == 999_999
    assert everyone[w.client.id]["EUR"].total == 340_000
