"""Behaviour segments, risk grades and suggested credit limits, each with its reasons in words.

A debtor's segment as known at a date T comes from its own history by T (rules, first match wins):

    new                 fewer than two invoices due yet: too little to judge
    promises_and_breaks at least two promises broken, and more broken than kept
    silent              less than a quarter of what fell due paid, and nothing paid in the last 90 days
    slow_and_partial    pays on average more than 45 days late, or pays part of an invoice and leaves the
                        rest on a third or more of what it pays
    pays_late           pays on average more than 7 days after the due date
    pays_on_time        otherwise

The risk grade (A best .. E worst) starts from the segment and moves for disputes and old debt; the suggested
credit limit is the debtor's average monthly invoicing times the months the client's policy allows for its grade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from provider.forecast.labels import SEGMENT_LABELS, SEGMENTS
from provider.forecast.model import CLIP_LATE, Observations

__all__ = ["SEGMENTS", "SEGMENT_LABELS"]

# worse is later in this order (a move to a later one is "behaviour worsened")
RANK = {"pays_on_time": 0, "new": 1, "pays_late": 2, "slow_and_partial": 3, "promises_and_breaks": 4, "silent": 5}
GRADE_OF = {"pays_on_time": "A", "pays_late": "B", "new": "C", "slow_and_partial": "C",
            "promises_and_breaks": "D", "silent": "E"}  # fmt: skip
GRADES = ("A", "B", "C", "D", "E")
# months of average invoicing a debtor of each grade may owe (the default limit policy)
DEFAULT_MONTHS = {"A": 3.0, "B": 2.0, "C": 1.0, "D": 0.5, "E": 0.0}


@dataclass
class Behaviour:
    debtor_id: int
    segment: str
    reasons: list[str]
    due_invoices: int
    paid_share: float
    mean_late: float | None
    partial_share: float
    kept: int
    broken: int
    disputes: int
    last_paid: int | None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def behaviours(
    obs: Observations, promises: pd.DataFrame, disputes: pd.DataFrame, debtor_ids: list[int]
) -> dict[int, Behaviour]:
    """Each debtor's segment and reasons as known at `obs.as_of`. `promises`: debtor_id, status, resolved
    (ordinal of the day kept or broken, or None); `disputes`: debtor_id, opened (ordinal)."""
    t = obs.as_of
    pieces, inv = obs.pieces, obs.invoices
    due_inv = inv[inv["due"] <= t]
    due_count = due_inv.groupby("debtor_id")["invoice_id"].count()
    due_pieces = pieces[pieces["due"] <= t]
    paid_w = due_pieces[due_pieces["event"] == 1].groupby("debtor_id")["weight"].sum()
    open_w = due_pieces[(due_pieces["event"] == 0) & (due_pieces["day"] == t)].groupby("debtor_id")["weight"].sum()
    paid = pieces[pieces["event"] == 1]
    late = (np.clip(paid["dur"], *CLIP_LATE) * paid["weight"]).groupby(paid["debtor_id"]).sum() / paid.groupby(
        "debtor_id"
    )["weight"].sum()
    last_paid = paid.groupby("debtor_id")["day"].max()
    pieces_per_inv = paid.groupby(["debtor_id", "invoice_id"]).size()
    open_after_paid = set(
        pieces[(pieces["event"] == 0) & (pieces["day"] == t) & (pieces["due"] <= t)]["invoice_id"]
    ) & set(paid["invoice_id"])
    partial = pieces_per_inv.reset_index(name="n")
    partial["partial"] = (partial["n"] > 1) | partial["invoice_id"].isin(open_after_paid)
    partial_share = partial.groupby("debtor_id")["partial"].mean()
    known = promises[promises["resolved"].notna() & (promises["resolved"] <= t)] if len(promises) else promises
    kept = known[known["status"] == "kept"].groupby("debtor_id").size() if len(known) else pd.Series(dtype=int)
    broken = known[known["status"] == "broken"].groupby("debtor_id").size() if len(known) else pd.Series(dtype=int)
    opened = disputes[disputes["opened"] <= t].groupby("debtor_id").size() if len(disputes) else pd.Series(dtype=int)
    # every figure as one array over `debtor_ids` (then plain Python per debtor: only the words are made there)
    index = pd.Index(debtor_ids)

    def col(series: pd.Series, fill: float) -> list[Any]:
        return series.reindex(index).astype(float).fillna(fill).tolist()

    nan = float("nan")
    figures = zip(
        debtor_ids, col(due_count, 0), col(paid_w, 0.0), col(open_w, 0.0), col(late, nan), col(partial_share, 0.0),
        col(kept, 0), col(broken, 0), col(opened, 0), col(last_paid, nan), strict=True,
    )  # fmt: skip
    out: dict[int, Behaviour] = {}
    for d, n_due_, pw, ow, mean_, part, k_, b_, disp_, last_ in figures:
        n_due, k, b, disp = int(n_due_), int(k_), int(b_), int(disp_)
        share = pw / (pw + ow) if pw + ow > 0 else 0.0
        mean = None if mean_ != mean_ else float(mean_)  # NaN: nothing paid yet
        last = None if last_ != last_ else int(last_)
        segment, reasons = _rules(t, n_due, share, mean, part, k, b, last)
        if disp:
            reasons.append(f"{_plural(disp, 'dispute')} opened")
        out[d] = Behaviour(d, segment, reasons, n_due, share, mean, part, k, b, disp, last)
    return out


def _rules(
    t: int, n_due: int, share: float, mean: float | None, part: float, kept: int, broken: int, last: int | None
) -> tuple[str, list[str]]:
    paid_words = f"paid {share:.0%} of what fell due"
    late_words = (
        "no payment yet"
        if mean is None
        else (
            f"pays on average {abs(mean):.0f} days {'after' if mean >= 0 else 'before'} the due date"
            if round(mean)
            else "pays on average on the due date"
        )
    )
    if n_due < 2:
        return "new", [f"only {_plural(n_due, 'invoice')} due so far", late_words]
    if broken >= 2 and broken > kept:
        return "promises_and_breaks", [f"broke {broken} of {kept + broken} promises to pay", paid_words]
    quiet = last is None or t - last > 90
    if share < 0.25 and quiet:
        since = "never paid" if last is None else f"nothing paid for {t - last} days"
        return "silent", [paid_words, since]
    if (mean is not None and mean > 45) or part >= 0.33:
        why = [late_words, paid_words]
        if part >= 0.33:
            why.append(f"paid only part at first on {part:.0%} of the invoices it paid")
        return "slow_and_partial", why
    if mean is not None and mean > 7:
        return "pays_late", [late_words, paid_words]
    return "pays_on_time", [late_words, paid_words]


def grade(b: Behaviour, overdue_90_share: float) -> tuple[str, list[str]]:
    """Risk grade A..E with its reasons: from the segment, one worse for an open dispute history or when more than
    half of what the debtor owes is over 90 days past due."""
    g = GRADES.index(GRADE_OF[b.segment])
    reasons = [f"behaviour: {SEGMENT_LABELS[b.segment].lower()}"]
    if b.disputes and g < 4:
        g += 1
        reasons.append("has raised disputes")
    if overdue_90_share > 0.5 and g < 4:
        g += 1
        reasons.append(f"{overdue_90_share:.0%} of what it owes is over 90 days past due")
    return GRADES[g], reasons


def credit_limit(monthly_minor: int, grade_: str, policy: dict[str, Any] | None) -> int:
    """Suggested limit in minor units: average monthly invoicing times the months the policy allows for the
    grade, capped by the policy's cap (0 = none)."""
    months = dict(DEFAULT_MONTHS)
    cap = 0
    if policy:
        months.update({k: float(v) for k, v in (policy.get("months") or {}).items() if k in months})
        cap = int(policy.get("cap_minor") or 0)
    limit = round(monthly_minor * months[grade_])
    return min(limit, cap) if cap else limit
