"""The payment-behaviour model: how long after its due date each part of an invoice is paid, per debtor.

A client's history, as known at a date T (only what had happened by T: invoices issued, receivable moves and
payments dated on or before T), becomes one observation per piece of an invoice, weighted by the share of the
invoice it is (so a big invoice does not outweigh a thousand small ones when the timing is learned):

    paid piece        days from the due date to the payment      event
    credited/written  days to the credit or write-off            censored (it was not paid until then)
    still open at T   days from the due date to T                censored

Each debtor's habit is a shift: the mean lateness of what it paid, shrunk towards its segment's mean by how much
it has paid (`n / (n + DEBTOR_PRIOR)`), so a debtor with two invoices borrows most of its habit from its segment.
The remaining spread is learned per segment as a Kaplan-Meier survival curve (lifelines) of the residual lateness
(lateness - debtor shift), itself shrunk towards the client's whole book (`n / (n + SEGMENT_PRIOR)` invoices). The
curve's plateau is the share of money that is never paid.

Each debtor's chance of ever paying an invoice weighs what it paid against what it paid plus what is still open,
each open piece counted by the share of payers (of its segment, after its shift) that would have paid it by now; so a
debtor whose invoices all lie well past its usual time is seen as not paying without waiting for them to mature.

What is left of an invoice once a part of it is paid is timed from that first payment, on the book's own curve of
remainders (days from the first payment to each later one), once the book has MIN_PART_PAID part-paid invoices.

The module is numbers only (numpy arrays and pandas frames, days as ordinals); `provider.forecast.data` reads the
ledger and `provider.forecast.forecast` turns a fitted model into weekly collections.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OFFSET = 90  # payments up to 90 days before the due date are told apart; earlier ones count as at -90
GRID = 720  # days of the survival curves (from -90 to +630 days after the due date); beyond it nothing is paid
DEBTOR_PRIOR = 2.0  # invoices of evidence at which a debtor's own habit counts half
SEGMENT_PRIOR = 40.0  # paid invoices at which a segment's own curve counts half against the client's book
CLIP_LATE = (-60, 365)
# lateness used for means (a payment two years late does not drag a mean for ever)
MIN_PART_PAID = 20  # part-paid invoices needed before what is left of one is timed from its first payment


@dataclass
class Observations:
    """One row per piece of an invoice known at `as_of` (columns: invoice_id, debtor_id, currency, due, dur,
    event, weight, amount) and one row per invoice (columns: invoice_id, debtor_id, currency, issue, due, base,
    open)."""

    as_of: int
    pieces: pd.DataFrame
    invoices: pd.DataFrame


@dataclass
class Model:
    """Survival curves per segment (rows of `curves`, index GRID days of residual lateness + OFFSET) and each
    debtor's shift and segment; `book_raw` is the whole book's curve of lateness itself (for invoices not yet
    issued)."""

    as_of: int
    segments: list[str]
    curves: np.ndarray
    book_raw: np.ndarray
    debtor_shift: dict[int, float] = field(default_factory=dict)
    debtor_segment: dict[int, str] = field(default_factory=dict)
    debtor_pays: dict[int, float] = field(default_factory=dict)  # chance an invoice of the debtor is ever paid
    summary: dict[str, Any] = field(default_factory=dict)
    rest: np.ndarray | None = None  # survival of what is left after a part payment, by days since that payment

    def curve_index(self, segment: str) -> int:
        return self.segments.index(segment) if segment in self.segments else self.segments.index("*")


def observations(invoices: pd.DataFrame, moves: pd.DataFrame, as_of: int) -> Observations:
    """The pieces of every invoice issued by `as_of`, from receivable moves dated by `as_of`.

    `invoices`: id, debtor_id, currency, issue, due (ordinals), amount (as placed). `moves`: invoice_id, day, cash
    (bool), amount (signed change of the receivable after placement: raised +, paid, credited, written off -)."""
    inv = invoices[invoices["issue"] <= as_of]
    mv = moves[(moves["day"] <= as_of) & moves["invoice_id"].isin(inv["id"])]
    added = mv[(~mv["cash"]) & (mv["amount"] > 0)].groupby("invoice_id")["amount"].sum()
    moved = mv.groupby("invoice_id")["amount"].sum()
    per = inv.set_index("id")[["debtor_id", "currency", "issue", "due", "amount"]].copy()
    per["base"] = per["amount"] + added.reindex(per.index).fillna(0).astype("int64")
    per["open"] = per["amount"] + moved.reindex(per.index).fillna(0).astype("int64")
    per = per[per["base"] > 0]
    cash = mv[mv["cash"]].groupby(["invoice_id", "day"])["amount"].sum()
    cash = -cash[cash < 0]
    removed = mv[(~mv["cash"]) & (mv["amount"] < 0)].groupby(["invoice_id", "day"])["amount"].sum()
    removed = -removed
    frames = []
    for series, event in ((cash, 1), (removed, 0)):
        if len(series):
            f = series.rename("amount").reset_index()
            f["event"] = event
            frames.append(f)
    still = per[per["open"] > 0].reset_index()[["id", "open"]].rename(columns={"id": "invoice_id", "open": "amount"})
    still["day"], still["event"] = as_of, 0
    frames.append(still)
    pieces = pd.concat(frames, ignore_index=True)
    pieces = pieces[pieces["invoice_id"].isin(per.index)]
    joined = per.loc[pieces["invoice_id"].to_numpy()]
    pieces["debtor_id"] = joined["debtor_id"].to_numpy()
    pieces["currency"] = joined["currency"].to_numpy()
    pieces["due"] = joined["due"].to_numpy()
    pieces["dur"] = pieces["day"].to_numpy() - pieces["due"].to_numpy()
    pieces["weight"] = pieces["amount"].to_numpy() / joined["base"].to_numpy()
    # a part paid: what is left of the invoice is timed from that first payment (`since`, days), not from the due date
    first = cash.reset_index().groupby("invoice_id")["day"].min() if len(cash) else pd.Series(dtype="int64")
    first_day = first.reindex(pieces["invoice_id"].to_numpy()).to_numpy(dtype=float)
    is_first = (pieces["event"].to_numpy() == 1) & (pieces["day"].to_numpy() == first_day)
    later = ~np.isnan(first_day) & ~is_first & (pieces["day"].to_numpy() >= np.nan_to_num(first_day, nan=np.inf))
    pieces["since"] = np.where(later, pieces["day"].to_numpy() - first_day, np.nan)
    per["first_paid"] = first.reindex(per.index).to_numpy(dtype=float)
    per = per.reset_index().rename(columns={"id": "invoice_id"})
    return Observations(as_of, pieces.reset_index(drop=True), per)


def km_curve(durations: np.ndarray, events: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival on days 0..GRID-1 (lifelines), or no payment at all without data."""
    if len(durations) == 0 or float(weights.sum()) <= 0:
        return np.ones(GRID)
    from lifelines import KaplanMeierFitter

    # the same fit on the pieces summed by (day, event): at most 2 x GRID weighted rows, whatever the book's size
    days = np.clip(np.rint(durations), 0, GRID - 1).astype(np.int64)
    summed = np.bincount(2 * days + events.astype(np.int64), weights=weights, minlength=2 * GRID)
    keys = np.flatnonzero(summed > 0)
    kmf = KaplanMeierFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines notes that fractional weights are used on purpose
        kmf.fit(keys // 2, event_observed=keys % 2, weights=summed[keys])
        curve = kmf.survival_function_at_times(np.arange(GRID)).to_numpy(dtype=float)
    return np.minimum.accumulate(np.clip(curve, 0.0, 1.0))


def debtor_means(pieces: pd.DataFrame) -> pd.DataFrame:
    """Per debtor: the weighted mean lateness of what it paid and how many invoices it paid something of."""
    paid = pieces[pieces["event"] == 1]
    if paid.empty:
        return pd.DataFrame(columns=["late", "n"], dtype=float)
    late = np.clip(paid["dur"].to_numpy(), *CLIP_LATE) * paid["weight"].to_numpy()
    frame = pd.DataFrame({"debtor_id": paid["debtor_id"].to_numpy(), "lw": late, "w": paid["weight"].to_numpy()})
    grouped = frame.groupby("debtor_id").agg(lw=("lw", "sum"), w=("w", "sum"))
    grouped["late"] = grouped["lw"] / grouped["w"]
    grouped["n"] = paid.groupby("debtor_id")["invoice_id"].nunique()
    return grouped[["late", "n"]]


def fit(obs: Observations, segment_of: dict[int, str]) -> Model:
    """Fit the shifts and the segment curves on `obs` (data known at `obs.as_of` only)."""
    pieces = obs.pieces
    means = debtor_means(pieces)
    seg = pieces["debtor_id"].map(segment_of).fillna("new").to_numpy()
    pieces = pieces.assign(segment=seg)
    paid = pieces[pieces["event"] == 1]
    seg_mean = (
        (np.clip(paid["dur"], *CLIP_LATE) * paid["weight"]).groupby(paid["segment"]).sum()
        / paid["weight"].groupby(paid["segment"]).sum()
        if not paid.empty
        else pd.Series(dtype=float)
    )
    own_seg = pd.Series([segment_of.get(int(d), "new") for d in means.index], index=means.index, dtype=object)
    m_seg = own_seg.map(seg_mean).astype(float).fillna(means["late"].astype(float))
    n = means["n"].astype(float)
    shift_values = n / (n + DEBTOR_PRIOR) * (means["late"].astype(float) - m_seg)
    shifts = {int(d): float(v) for d, v in shift_values.items()}
    shift = pieces["debtor_id"].map(shifts).fillna(0.0).to_numpy()
    resid = np.rint(pieces["dur"].to_numpy() - shift + OFFSET)
    events, weights = pieces["event"].to_numpy(), pieces["weight"].to_numpy()
    book = km_curve(resid, events, weights)
    book_raw = km_curve(pieces["dur"].to_numpy() + OFFSET, events, weights)
    names, curves = ["*"], [book]
    summary: dict[str, Any] = {"pieces": len(pieces), "debtors": len(means), "segments": {}}
    for name in sorted(set(seg)):
        mask = seg == name
        own = km_curve(resid[mask], events[mask], weights[mask])
        n_paid = int(paid[paid["segment"] == name]["invoice_id"].nunique())
        k = n_paid / (n_paid + SEGMENT_PRIOR)
        names.append(name)
        curves.append(k * own + (1 - k) * book)
        summary["segments"][name] = {"paid_invoices": n_paid, "own_weight": round(k, 3)}
    curves_ = np.vstack(curves)
    pays = _pay_chances(pieces, shift, names, curves_)
    rest = None
    since = pieces["since"].to_numpy(dtype=float)
    after = ~np.isnan(since)
    n_rest = int(pieces["invoice_id"][after].nunique())
    summary["part_paid_invoices"] = n_rest
    if n_rest >= MIN_PART_PAID:
        rest = km_curve(since[after], events[after], weights[after])
    return Model(obs.as_of, names, curves_, book_raw, shifts, dict(segment_of), pays, summary, rest)


def rest_shares(model: Model, since: np.ndarray, weeks: int = 13) -> np.ndarray:
    """For what is left of part-paid invoices, `since` days after their first payment, the share of it each of the
    next `weeks` weeks is expected to bring (rows: pieces, columns: weeks), from the book's curve of remainders."""
    if model.rest is None:
        raise ValueError("the book has too few part-paid invoices for a curve of remainders")
    days = np.clip(np.rint(since[:, None] + 7 * np.arange(weeks + 1)[None, :]).astype(int), 0, GRID - 1)
    surv = model.rest[days]
    left = np.maximum(surv[:, :1], 1e-9)
    return np.clip((surv[:, :-1] - surv[:, 1:]) / left, 0.0, 1.0)


def _pay_chances(pieces: pd.DataFrame, shift: np.ndarray, names: list[str], curves: np.ndarray) -> dict[int, float]:
    """Per debtor, the chance an invoice is ever paid, from all its invoices: what it paid, against what it paid plus
    what is still open weighted by the share of payers that would have paid by now (an invoice two days overdue says
    little about a debtor who usually pays a month late; one a year overdue says it will not be paid), shrunk
    towards its segment's chance (the plateau of the segment's curve) by DEBTOR_PRIOR invoices."""
    index = {name: i for i, name in enumerate(names)}
    rows = pd.Series(pieces["segment"].to_numpy()).map(index).fillna(0).to_numpy(dtype=int)
    ever = np.maximum(1.0 - curves[:, -1], 1e-9)
    weight = pieces["weight"].to_numpy(dtype=float)
    paid = np.where(pieces["event"].to_numpy() == 1, weight, 0.0)
    still = (pieces["event"].to_numpy() == 0) & (pieces["day"].to_numpy() == pieces["day"].max())
    at = np.clip(np.rint(pieces["dur"].to_numpy() - shift + OFFSET).astype(int), 0, GRID - 1)
    would = np.clip((1.0 - curves[rows, at]) / ever[rows], 0.0, 1.0)  # share of payers paid by this lateness
    frame = pd.DataFrame({"debtor_id": pieces["debtor_id"].to_numpy(), "paid": paid,
                          "decided": paid + np.where(still, weight * would, 0.0), "prior": ever[rows]})  # fmt: skip
    per = frame.groupby("debtor_id").agg(paid=("paid", "sum"), decided=("decided", "sum"), prior=("prior", "first"))
    chance = (per["paid"] + DEBTOR_PRIOR * per["prior"]) / (per["decided"] + DEBTOR_PRIOR)
    return {int(d): float(min(max(v, 0.0), 1.0)) for d, v in chance.items()}


def weekly_shares(model: Model, debtor_ids: np.ndarray, lateness: np.ndarray, weeks: int = 13) -> np.ndarray:
    """For open pieces of invoices `lateness` days past due today (negative: not yet due), the share of what is
    open that each of the next `weeks` weeks is expected to bring (rows: pieces, columns: weeks)."""
    index = {name: i for i, name in enumerate(model.segments)}
    ids = pd.Series(debtor_ids)
    rows = ids.map(model.debtor_segment).map(index).fillna(index.get("new", 0)).to_numpy(dtype=int)
    shift = ids.map(model.debtor_shift).fillna(0.0).to_numpy(dtype=float)
    start = lateness - shift + OFFSET
    days = np.clip(np.rint(start[:, None] + 7 * np.arange(weeks + 1)[None, :]).astype(int), 0, GRID - 1)
    surv = model.curves[rows[:, None], days]
    # the curve as timing of what is paid (0..1) times the debtor's own chance of paying at all
    ever = np.maximum(1.0 - model.curves[rows, -1], 1e-9)
    segment_pays = 1.0 - model.curves[rows, -1]
    pays = ids.map(model.debtor_pays).fillna(pd.Series(segment_pays, index=ids.index)).to_numpy(dtype=float)
    paid_by = pays[:, None] * np.clip((1.0 - surv) / ever[:, None], 0.0, 1.0)
    left = np.maximum(1.0 - paid_by[:, :1], 1e-9)
    return np.clip((paid_by[:, 1:] - paid_by[:, :-1]) / left, 0.0, 1.0)
