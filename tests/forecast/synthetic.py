"""Synthetic ledgers with known debtor habits, independent of the demo's generator: yearly seasonal, slowly
growing invoicing
(the last 13 weeks' average lags it), lumpy amounts, debtors who pay on time, late, very late, in parts, or hardly
ever. Used by the accuracy tests and the benchmark."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any


@dataclass(frozen=True)
class Habit:
    delay: float  # mean days after the due date
    spread: float  # standard deviation of the delay
    never: float  # chance an invoice is never paid
    split: float  # chance it is paid in two parts


HABITS = (
    (0.30, lambda r: Habit(r.uniform(-5, 3), 3, 0.005, 0.02)),
    (0.40, lambda r: Habit(r.uniform(8, 35), 6, 0.02, 0.05)),
    (0.18, lambda r: Habit(r.uniform(40, 90), 10, 0.06, 0.35)),
    (0.12, lambda r: Habit(r.uniform(60, 140), 15, 0.8, 0.1)),
)


def habit(rng: random.Random) -> Habit:
    x = rng.random()
    for share, make in HABITS:
        if x < share:
            return make(rng)
        x -= share
    return HABITS[-1][1](rng)


def ledger(seed: int, debtors: int, weeks: int, start: date, per_week: float = 40.0) -> dict[str, list[dict[str, Any]]]:
    """Rows to post: debtors (ref), invoices (number, debtor, issue, due, amount), payments (debtor, day, amount,
    invoice number). Invoicing swings by +-35 % over the year and grows; nothing after start + weeks."""
    rng = random.Random(seed)
    habits = [habit(rng) for _ in range(debtors)]
    end = start + timedelta(weeks=weeks)
    invoices, payments = [], []
    n = 0
    for week in range(weeks):
        volume = per_week * (1 + 0.35 * math.sin(2 * math.pi * week / 52)) * (1 + 0.004 * week)
        for _ in range(max(int(rng.gauss(volume, math.sqrt(volume))), 0)):
            n += 1
            d = rng.randrange(debtors)
            issue = start + timedelta(days=7 * week + rng.randrange(7))
            due = issue + timedelta(days=30)
            amount = int(rng.lognormvariate(11, 0.8))  # minor units, median ~600.00
            number = f"SYN-{n:06d}"
            invoices.append({"number": number, "debtor": d, "issue": issue, "due": due, "amount": amount})
            h = habits[d]
            if rng.random() < h.never:
                continue
            day = max(due + timedelta(days=round(rng.gauss(h.delay, h.spread))), issue)
            parts = [amount]
            if rng.random() < h.split:
                first = amount * rng.randint(30, 70) // 100
                parts = [first, amount - first]
            for k, part in enumerate(parts):
                on = day + timedelta(days=k * rng.randint(15, 45))
                if on < end:
                    payments.append({"debtor": d, "day": on, "amount": part, "invoice": number})
    return {"debtors": [{"ref": f"D{d:05d}"} for d in range(debtors)], "invoices": invoices, "payments": payments}


def history(rows: dict[str, list[dict[str, Any]]], currency: str = "EUR") -> Any:
    """The same ledger as the model's frames, without a database (for property tests of the model itself)."""
    import pandas as pd

    from provider.forecast.forecast import History, empty_history

    ids = {r["number"]: i + 1 for i, r in enumerate(rows["invoices"])}
    inv = pd.DataFrame(
        {
            "id": [ids[r["number"]] for r in rows["invoices"]],
            "debtor_id": [r["debtor"] for r in rows["invoices"]],
            "currency": currency,
            "issue": [r["issue"].toordinal() for r in rows["invoices"]],
            "due": [r["due"].toordinal() for r in rows["invoices"]],
            "amount": [r["amount"] for r in rows["invoices"]],
        }
    )
    moves = pd.DataFrame(
        {
            "invoice_id": [ids[p["invoice"]] for p in rows["payments"]],
            "day": [p["day"].toordinal() for p in rows["payments"]],
            "cash": True,
            "amount": [-p["amount"] for p in rows["payments"]],
        }
    )
    pays = pd.DataFrame(
        {
            "debtor_id": [p["debtor"] for p in rows["payments"]],
            "currency": currency,
            "day": [p["day"].toordinal() for p in rows["payments"]],
            "amount": [p["amount"] for p in rows["payments"]],
        }
    )
    empty = empty_history()
    return History(inv, moves, pays, empty.promises, empty.disputes, sorted(set(inv["debtor_id"])))
