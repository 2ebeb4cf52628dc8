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
