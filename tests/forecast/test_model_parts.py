"""Parts of the forecast on hand-made frames: invoicing still to come follows last year's course or the trend, far
weeks' intervals are as wide on both sides as past errors were, and a forecast reads nothing dated after its day."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from provider.forecast import forecast as fc
from tests.forecast import synthetic

T = date(2025, 6, 30).toordinal()


def _issued(days: np.ndarray, amounts: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"issue": days, "base": amounts})


def test_invoicing_to_come_follows_last_years_course() -> None:
    """A business that invoices 100 a day but 300 a day from mid-July to mid-August every year: in the weeks of last
    year's peak the expected invoicing is three times the level, elsewhere the level."""
    days = np.arange(T - 500, T + 1)
    year_ago = days + fc.YEAR
    peak = (year_ago >= T + 15) & (year_ago <= T + 45)
    inv = _issued(days, np.where(peak, 300.0, 100.0))
    rate = fc._invoicing(inv, T)
    assert len(rate) == 7 * fc.WEEKS
    assert abs(rate[29] - 300.0) < 1e-6  # day T+30, last year's peak all around
    assert abs(rate[79] - 100.0) < 1e-6  # day T+80: no peak then


def test_invoicing_to_come_with_less_than_a_year_follows_half_the_trend() -> None:
    days = np.arange(T - 182, T + 1)
    inv = _issued(days, np.where(days > T - 91, 120.0, 100.0))  # 20 % more in the last 13 weeks
    rate = fc._invoicing(inv, T)
    # half of +20 % per 13 weeks, carried from the last 13 weeks' middle to each day
    assert abs(rate[0] - 120.0 * (1 + 0.1 * 46.5 / 91)) < 1e-6
    assert rate[-1] > rate[0] > 120.0
    flat = fc._invoicing(_issued(days, np.full(len(days), 100.0)), T)
    assert np.allclose(flat, 100.0)


def test_far_weeks_interval_is_as_wide_below_as_past_errors_were_above() -> None:
    """Every past forecast fell 20 % short: the near weeks' interval sits above the forecast, the far weeks' (7-13)
    also reaches 20 % below it, since a cycle's upturn is followed by its downturn."""
    mean = np.full(fc.WEEKS, 1000.0)
    point = fc.Point(T, {"EUR": mean}, {"EUR": np.zeros(fc.WEEKS)}, {}, {})
    past = [(T - 200 + 7 * k, w, 1000.0, 1200.0) for k in range(10) for w in range(fc.WEEKS)]
    low, high, how = fc.interval(point, "EUR", past)
    assert "past forecasts" in how
    assert low[0] >= 1000.0 and high[0] >= 1200.0 - 1e-6
    assert abs(low[10] - 800.0) < 1e-6 and abs(high[10] - 1200.0) < 1e-6


def test_a_forecast_reads_nothing_dated_after_its_day() -> None:
    """The same forecast from the whole ledger and from the ledger cut at its day (the pure model: the database's
    as-of reading is tested in test_forecast_db)."""
    book = synthetic.history(synthetic.ledger(5, 300, 80, date(2024, 1, 1), per_week=40))
    t = date(2025, 3, 31).toordinal()
    cut = fc.History(
        book.invoices[book.invoices["issue"] <= t],
        book.moves[book.moves["day"] <= t],
        book.payments[book.payments["day"] <= t],
        book.promises,
        book.disputes,
        book.debtor_ids,
    )
    whole, known = fc.point(book, t), fc.point(cut, t)
    assert np.allclose(whole.mean["EUR"], known.mean["EUR"])
    assert np.allclose(whole.var["EUR"], known.var["EUR"])
    assert np.allclose(whole.naive_average["EUR"], known.naive_average["EUR"])


def _book(invoices: list[tuple[int, int, int, int]], payments: list[tuple[int, int, int]]) -> fc.History:
    """invoices: (id, debtor, due, amount), issued 30 days before due; payments: (invoice id, day, amount)."""
    debtor_of = {i: d for i, d, _due, _a in invoices}
    inv = pd.DataFrame(
        {
            "id": [i for i, _d, _due, _a in invoices],
            "debtor_id": [d for _i, d, _due, _a in invoices],
            "currency": "EUR",
            "issue": [due - 30 for _i, _d, due, _a in invoices],
            "due": [due for _i, _d, due, _a in invoices],
            "amount": [a for _i, _d, _due, a in invoices],
        }
    )
    moves = pd.DataFrame(
        {"invoice_id": [i for i, _day, _a in payments], "day": [day for _i, day, _a in payments], "cash": True,
         "amount": [-a for _i, _day, a in payments]}
    )  # fmt: skip
    pays = pd.DataFrame(
        {"debtor_id": [debtor_of[i] for i, _day, _a in payments], "currency": "EUR",
         "day": [day for _i, day, _a in payments], "amount": [a for _i, _day, a in payments]}
    )  # fmt: skip
    empty = fc.empty_history()
    return fc.History(inv, moves, pays, empty.promises, empty.disputes, sorted(set(inv["debtor_id"])))


def test_a_debtor_whose_invoices_all_lie_far_past_its_time_is_seen_not_to_pay_before_they_mature() -> None:
    """Forty debtors pay ten days late; debtor 99 has four invoices 60-100 days overdue (none due 150 days ago yet)
    and never paid: its chance of paying is low already, and little of them is expected in the next weeks."""
    invoices, payments = [], []
    for k in range(40):
        for j in range(3):
            due = T - 300 + 60 * j + k
            invoices.append((100 * k + j + 1, k + 1, due, 1000))
            payments.append((100 * k + j + 1, due + 10, 1000))
    invoices += [(9000 + j, 99, T - 100 + 13 * j, 1000) for j in range(4)]
    book = _book(invoices, payments)
    point = fc.point(book, T)
    model = point.summary["model"]
    assert model["debtors"] >= 40
    obs = point.obs
    assert obs is not None
    from provider.forecast.model import fit

    fitted = fit(obs, {d: b.segment for d, b in point.behaviours.items()})
    assert fitted.debtor_pays.get(99, 1.0) < 0.5
    assert point.mean["EUR"][:4].sum() < 0.5 * 4000


def test_what_is_left_of_a_part_paid_invoice_is_timed_from_its_first_payment() -> None:
    """In the book every invoice is paid half at 5 days late and the rest 30 days after that. Debtor 99 paid half of
    its invoice 60 days late, 25 days ago: the rest is expected in the coming week, not never."""
    invoices, payments = [], []
    for k in range(30):
        due = T - 200 + k
        invoices.append((k + 1, k + 1, due, 1000))
        payments += [(k + 1, due + 5, 500), (k + 1, due + 35, 500)]
    invoices.append((99, 99, T - 85, 1000))
    payments.append((99, T - 25, 500))
    point = fc.point(_book(invoices, payments), T)
    assert point.summary["model"]["part_paid_invoices"] >= 30
    assert point.mean["EUR"][0] > 0.8 * 500
