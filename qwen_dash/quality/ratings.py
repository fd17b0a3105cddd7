"""Ratings from pairwise battles, computed the way Chatbot Arena computes them.

A battle is ``(model_a, model_b, winner)`` with ``winner`` one of FastChat's values: ``model_a``,
``model_b``, ``tie`` or ``tie (bothbad)``. Functions take a pandas DataFrame with columns
``model_a``, ``model_b``, ``winner`` and, where they need them, ``tstamp`` (unix seconds) and
``len_a`` / ``len_b`` (answer tokens).

The main rating is Bradley-Terry by maximum likelihood on the Elo scale (base 10, scale 400,
centred on 1000): P(a beats b) = 1 / (1 + 10 ** ((R_b - R_a) / 400)). A tie of either kind is half
a win for each side. Battles are grouped into unique (model_a, model_b, outcome) rows with counts,
so a fit costs the same for 1,000 or 1,000,000 battles, and bootstrap rounds only redraw counts.

Why a prior: a model that only wins (or only loses) has no finite maximum-likelihood rating; its
rating runs off to infinity and drags the optimiser with it. Every fit therefore adds an L2
(Gaussian prior) penalty ``prior / 2 * sum(theta ** 2)`` on the natural-scale strengths. The
default ``prior`` equals the curvature of one virtual tie against an average (theta = 0) opponent,
ln(10)**2 / 4: negligible beside a few dozen real battles, yet enough to keep every rating finite.
Because the bootstrap cannot see the uncertainty of such a model (every resample is all wins
again), its interval is instead the Laplace interval of the penalised fit, which is honestly wide.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from threadpoolctl import threadpool_limits

BASE = 10.0
SCALE = 400.0
INIT_RATING = 1000.0
ALPHA = math.log(BASE)
K_FACTOR = 4.0
WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
# Curvature at theta = 0 of one virtual tie against the mean: d2/dtheta2 of
# -(0.5 log s(a t) + 0.5 log s(-a t)) = a**2 / 4 with a = ln(10).
DEFAULT_PRIOR = ALPHA**2 / 4.0
_Z95 = 1.959963984540054
_GTOL = 1e-9
_FTOL = 1e-14
_MAXITER = 500

LEADERBOARD_COLUMNS = [
    "model",
    "rating",
    "ci_low",
    "ci_high",
    "rank",
    "battles",
    "wins",
    "losses",
    "ties",
    "both_bad",
    "separated",
    "rating_length_controlled",
]


@dataclass(frozen=True)
class GroupedBattles:
    """Unique (model_a, model_b, outcome) rows with counts: all that Bradley-Terry needs."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> float:
        """Number of battles the groups stand for."""
        return float(self.counts.sum())


@dataclass(frozen=True)
class LengthControlled:
    """Bradley-Terry fitted jointly with a length covariate; ratings are at equal answer length."""

    ratings: pd.Series
    length_coef: float
    battles_used: int
    battles_dropped: int


@dataclass(frozen=True)
class Leaderboard:
    """One row per model (see ``LEADERBOARD_COLUMNS``), sorted by rating, and how it was made."""

    table: pd.DataFrame
    bootstrap: pd.DataFrame
    length_coef: float | None
    length_battles_used: int
    length_battles_dropped: int
    notes: list[str] = field(default_factory=list)


def validate_battles(battles: pd.DataFrame) -> None:
    """Raise ValueError on anything the fits would silently misread."""
    missing = [c for c in ("model_a", "model_b", "winner") if c not in battles.columns]
    if missing:
        raise ValueError(f"battles lack column(s): {', '.join(missing)}")
    if battles[["model_a", "model_b", "winner"]].isna().any().any():
        raise ValueError("battles have empty model_a, model_b or winner values")
    bad = sorted(set(battles["winner"]) - set(WINNERS))
    if bad:
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}; got {bad}")
    if (battles["model_a"] == battles["model_b"]).any():
        raise ValueError("a battle has model_a == model_b; a model cannot battle itself")


def _scores(winner: pd.Series) -> np.ndarray:
    """Model A's score per battle: 1 for a win, 0.5 for either kind of tie, 0 for a loss."""
    return np.select([winner == "model_a", winner == "model_b"], [1.0, 0.0], default=0.5)


def _model_codes(battles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer codes for model_a and model_b over one sorted model list (stable across calls)."""
    n = len(battles)
    both = pd.concat([battles["model_a"], battles["model_b"]], ignore_index=True).astype(str)
    codes, uniques = pd.factorize(both, sort=True)
    return codes[:n].astype(np.int64), codes[n:].astype(np.int64), [str(m) for m in uniques]


def group_battles(battles: pd.DataFrame) -> GroupedBattles:
    """Collapse battles into unique (a, b, outcome) rows, so fits cost O(models**2), not O(N)."""
    validate_battles(battles)
    a, b, models = _model_codes(battles)
    outcome = (2.0 * _scores(battles["winner"])).astype(np.int64)  # 0, 1, 2
    m = len(models)
    key = (a * m + b) * 3 + outcome
    counts = np.bincount(key, minlength=m * m * 3)
    rows = np.flatnonzero(counts)
    pair, out = np.divmod(rows, 3)
    ga, gb = np.divmod(pair, max(m, 1))
    return GroupedBattles(models, ga, gb, out / 2.0, counts[rows].astype(np.float64))


def _loss_and_grad(
    params: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    weights: np.ndarray,
    x: np.ndarray | None,
    n_models: int,
    prior: float,
    total: float,
) -> tuple[float, np.ndarray]:
    """Penalised weighted log-loss per battle and its gradient (divided by N so tolerances hold
    whatever the number of battles)."""
    theta = params[:n_models]
    z = ALPHA * (theta[a] - theta[b])
    if x is not None:
        z = z + params[n_models] * x
    loss = float(weights @ (np.logaddexp(0.0, z) - score * z))
    resid = weights * (expit(z) - score)
    grad = np.empty_like(params)
    grad[:n_models] = ALPHA * (np.bincount(a, resid, n_models) - np.bincount(b, resid, n_models))
    if x is not None:
        grad[n_models] = resid @ x
    loss += 0.5 * prior * float(params @ params)
    grad += prior * params
    return loss / total, grad / total


def _minimise(
    a: np.ndarray,
    b: np.ndarray,
    score: np.ndarray,
    weights: np.ndarray,
    n_models: int,
    prior: float,
    x: np.ndarray | None = None,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """L-BFGS-B on the penalised loss; returns natural-scale strengths (and the covariate)."""
    n_params = n_models + (0 if x is None else 1)
    start = np.zeros(n_params) if x0 is None else np.asarray(x0, dtype=np.float64)
    total = max(float(weights.sum()), 1.0)
    result = minimize(
        _loss_and_grad,
        start,
        args=(a, b, score, weights, x, n_models, prior, total),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": _MAXITER, "gtol": _GTOL, "ftol": _FTOL},
    )
    return np.asarray(result.x)


def fit_bt(
    grouped: GroupedBattles,
    counts: np.ndarray | None = None,
    prior: float = DEFAULT_PRIOR,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """Natural-scale Bradley-Terry strengths (logit = ln(10) * (theta_a - theta_b)).

    ``counts`` replaces the group counts (a bootstrap draw); ``x0`` warm-starts the optimiser.
    """
    weights = grouped.counts if counts is None else np.asarray(counts, dtype=np.float64)
    return _minimise(
        grouped.a, grouped.b, grouped.score, weights, len(grouped.models), prior, x0=x0
    )


def to_elo_scale(theta: np.ndarray, models: list[str], anchor: str | None = None) -> np.ndarray:
    """400 * theta + 1000, then shifted so the mean (or the ``anchor`` model) sits at 1000.

    Works on one vector or on rows of bootstrap draws (last axis = models).
    """
    ratings = SCALE * np.asarray(theta, dtype=np.float64) + INIT_RATING
    if anchor is not None:
        if anchor not in models:
            raise ValueError(f"anchor model {anchor!r} is not among the rated models")
        centre = ratings[..., [models.index(anchor)]]
    else:
        centre = ratings.mean(axis=-1, keepdims=True)
    return ratings - centre + INIT_RATING


def bt_ratings(
    battles: pd.DataFrame, prior: float = DEFAULT_PRIOR, anchor: str | None = None
) -> pd.Series:
    """Bradley-Terry ratings on the Elo scale, one per model, sorted best first."""
    grouped = group_battles(battles)
    ratings = to_elo_scale(fit_bt(grouped, prior=prior), grouped.models, anchor)
    return pd.Series(ratings, index=grouped.models, name="rating").sort_values(ascending=False)


def bootstrap_thetas(
    grouped: GroupedBattles,
    rounds: int = 100,
    seed: int = 0,
    prior: float = DEFAULT_PRIOR,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """``rounds`` x models natural-scale strengths, one fit per multinomial redraw of the counts.

    Redrawing the grouped counts is the same bootstrap as resampling battles with replacement,
    at a fraction of the cost; each fit warm-starts from ``start`` (the full-data fit).
    """
    rng = np.random.default_rng(seed)
    n = int(grouped.total)
    draws = rng.multinomial(n, grouped.counts / grouped.total, size=rounds).astype(np.float64)
    x0 = fit_bt(grouped, prior=prior) if start is None else start
    return np.vstack([fit_bt(grouped, draw, prior, x0) for draw in draws])


def laplace_sd(grouped: GroupedBattles, theta: np.ndarray, prior: float) -> np.ndarray:
    """Standard deviation of each centred strength from the penalised Hessian (Laplace).

    Used for models whose data are separated (only wins or only losses), where the bootstrap
    shows no spread although the data pin the rating down only from one side.
    """
    m = len(grouped.models)
    p = expit(ALPHA * (theta[grouped.a] - theta[grouped.b]))
    w = grouped.counts * p * (1.0 - p) * ALPHA**2
    hessian = prior * np.eye(m)
    np.add.at(hessian, (grouped.a, grouped.a), w)
    np.add.at(hessian, (grouped.b, grouped.b), w)
    np.add.at(hessian, (grouped.a, grouped.b), -w)
    np.add.at(hessian, (grouped.b, grouped.a), -w)
    centre = np.eye(m) - 1.0 / m
    cov = centre @ np.linalg.inv(hessian) @ centre
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))


def rank_from_intervals(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """Arena rank: 1 + the number of models whose lower bound beats this model's upper bound.

    Models whose intervals overlap share a rank, so a rank never claims more than the data show.
    """
    low = np.asarray(ci_low, dtype=np.float64)
    high = np.asarray(ci_high, dtype=np.float64)
    return 1 + (low[None, :] > high[:, None]).sum(axis=1)


def model_counts(battles: pd.DataFrame) -> pd.DataFrame:
    """Per model: battles, wins, losses, ties (plain), both_bad; the four add up to battles."""
    validate_battles(battles)
    a, b, models = _model_codes(battles)
    w = battles["winner"].to_numpy()
    m = len(models)

    def tally(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
        """How often each model was on a side where that side's mask holds."""
        return np.bincount(a, mask_a, m) + np.bincount(b, mask_b, m)

    a_won, b_won = w == "model_a", w == "model_b"
    tie, bothbad = w == "tie", w == "tie (bothbad)"
    counts = {
        "battles": tally(np.ones(len(w)), np.ones(len(w))),
        "wins": tally(a_won, b_won),
        "losses": tally(b_won, a_won),
        "ties": tally(tie, tie),
        "both_bad": tally(bothbad, bothbad),
    }
    frame = pd.DataFrame(counts, index=pd.Index(models, name="model"))
    return frame.astype(np.int64)


def _pair_table(values: pd.Series, battles: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Sum ``values`` into a models x models table indexed (model_a, model_b)."""
    table = (
        pd.DataFrame({"a": battles["model_a"].astype(str), "b": battles["model_b"].astype(str)})
        .assign(v=values.to_numpy(dtype=np.float64))
        .pivot_table(index="a", columns="b", values="v", aggfunc="sum", fill_value=0.0)
    )
    return table.reindex(index=models, columns=models, fill_value=0.0)


def battle_count_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """Symmetric count of battles between each pair of models (either side); diagonal zero."""
    validate_battles(battles)
    models = _model_codes(battles)[2]
    ones = pd.Series(np.ones(len(battles)))
    table = _pair_table(ones, battles, models)
    return (table + table.T).astype(np.int64).rename_axis(index="model", columns="opponent")


def win_rate_matrix(battles: pd.DataFrame) -> pd.DataFrame:
    """Fraction of battles the row model scored against the column model, ties counting half.

    NaN where two models never met (and on the diagonal), so a chart shows a gap, not 0.
    """
    validate_battles(battles)
    models = _model_codes(battles)[2]
    score = pd.Series(_scores(battles["winner"]))
    a_score = _pair_table(score, battles, models)
    b_score = _pair_table(1.0 - score, battles, models)
    ones = _pair_table(pd.Series(np.ones(len(battles))), battles, models)
    played = ones + ones.T
    rate = (a_score + b_score.T) / played.where(played > 0)
    return rate.rename_axis(index="model", columns="opponent")


def online_elo(battles: pd.DataFrame, k: float = K_FACTOR) -> pd.DataFrame:
    """Classic online Elo (K=4, base 10, scale 400, start 1000) in tstamp order.

    Returns tidy rows (tstamp, model, rating): both models' ratings after each battle, for a
    rating-over-time chart. Unlike Bradley-Terry, the result depends on the order of battles;
    without a tstamp column the row order is used and tstamp is the row number.
    """
    validate_battles(battles)
    if "tstamp" in battles.columns:
        ordered = battles.sort_values("tstamp", kind="mergesort")
        stamps = ordered["tstamp"].to_numpy(dtype=np.float64)
    else:
        ordered = battles
        stamps = np.arange(len(battles), dtype=np.float64)
    a, b, models = _model_codes(ordered)
    scores = _scores(ordered["winner"])
    ratings = np.full(len(models), INIT_RATING)
    after = np.empty((len(ordered), 2))
    for i, (ia, ib, s) in enumerate(zip(a.tolist(), b.tolist(), scores.tolist(), strict=True)):
        expected = 1.0 / (1.0 + BASE ** ((ratings[ib] - ratings[ia]) / SCALE))
        delta = k * (s - expected)
        ratings[ia] += delta
        ratings[ib] -= delta
        after[i] = ratings[ia], ratings[ib]
    names = np.asarray(models, dtype=object)
    return pd.DataFrame(
        {
            "tstamp": np.repeat(stamps, 2),
            "model": np.column_stack([names[a], names[b]]).ravel(),
            "rating": after.ravel(),
        }
    )


def _length_feature(battles: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Usable-row mask and (len_a - len_b) / (len_a + len_b) for those rows."""
    if "len_a" not in battles.columns or "len_b" not in battles.columns:
        return np.zeros(len(battles), dtype=bool), np.zeros(0)
    la = pd.to_numeric(battles["len_a"], errors="coerce").to_numpy(dtype=np.float64)
    lb = pd.to_numeric(battles["len_b"], errors="coerce").to_numpy(dtype=np.float64)
    usable = np.isfinite(la) & np.isfinite(lb) & (la >= 0) & (lb >= 0) & (la + lb > 0)
    return usable, (la[usable] - lb[usable]) / (la[usable] + lb[usable])


def length_controlled_ratings(
    battles: pd.DataFrame, prior: float = DEFAULT_PRIOR, anchor: str | None = None
) -> LengthControlled:
    """Bradley-Terry plus a length covariate, fitted jointly ("style control").

    logit P(a wins) = ln(10) * (theta_a - theta_b) + coef * (len_a - len_b) / (len_a + len_b).
    The ratings are the thetas alone, i.e. what each model would score at equal answer length;
    ``length_coef`` > 0 means voters favour the longer answer. Battles without both lengths are
    left out of this fit only (``battles_dropped``); models with no such battle get NaN.
    """
    validate_battles(battles)
    models = _model_codes(battles)[2]
    usable, x = _length_feature(battles)
    dropped = int((~usable).sum())
    if not usable.any():
        return LengthControlled(pd.Series(np.nan, index=models), math.nan, 0, dropped)
    subset = battles[usable]
    a, b, sub_models = _model_codes(subset)
    score = _scores(subset["winner"])
    params = _minimise(a, b, score, np.ones(len(subset)), len(sub_models), prior, x=x)
    use_anchor = anchor if anchor in sub_models else None
    rated = pd.Series(to_elo_scale(params[:-1], sub_models, use_anchor), index=sub_models)
    return LengthControlled(rated.reindex(models), float(params[-1]), int(usable.sum()), dropped)


def _empty_leaderboard(note: str) -> Leaderboard:
    """A leaderboard with the right columns and no rows."""
    return Leaderboard(
        pd.DataFrame(columns=LEADERBOARD_COLUMNS), pd.DataFrame(), None, 0, 0, [note]
    )


def _intervals(
    grouped: GroupedBattles,
    theta: np.ndarray,
    draws: np.ndarray,
    separated: np.ndarray,
    prior: float,
    anchor: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """2.5 / 97.5 bootstrap percentiles; Laplace intervals for separated models (see module)."""
    boot = to_elo_scale(draws, grouped.models, anchor)
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    if separated.any():
        rating = to_elo_scale(theta, grouped.models, anchor)
        half = _Z95 * SCALE * laplace_sd(grouped, theta, prior)
        low = np.where(separated, np.minimum(low, rating - half), low)
        high = np.where(separated, np.maximum(high, rating + half), high)
    return low, high


def leaderboard(
    battles: pd.DataFrame,
    bootstrap: int = 100,
    seed: int = 0,
    anchor: str | None = None,
    prior: float = DEFAULT_PRIOR,
) -> Leaderboard:
    """The arena table: BT rating with a 95% bootstrap interval, rank, counts and the
    length-controlled rating, one row per model, best first.

    Runs with one BLAS thread: the fits are many tiny problems (models x models), where BLAS
    threads only contend; on a busy 2-core machine they made it 3-5x slower (bench arena).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _leaderboard(battles, bootstrap, seed, anchor, prior)


def _leaderboard(
    battles: pd.DataFrame, bootstrap: int, seed: int, anchor: str | None, prior: float
) -> Leaderboard:
    if bootstrap < 1:
        raise ValueError("bootstrap must be at least 1 round; intervals and ranks need it")
    if len(battles) == 0:
        return _empty_leaderboard("no battles")
    grouped = group_battles(battles)
    theta = fit_bt(grouped, prior=prior)
    draws = bootstrap_thetas(grouped, bootstrap, seed, prior, start=theta)
    counts = model_counts(battles).reindex(grouped.models)
    separated = ((counts["losses"] == 0) | (counts["wins"] == 0)).to_numpy() & (
        counts["ties"] + counts["both_bad"] == 0
    ).to_numpy()
    low, high = _intervals(grouped, theta, draws, separated, prior, anchor)
    length = length_controlled_ratings(battles, prior, anchor)
    table = counts.reset_index().assign(
        rating=to_elo_scale(theta, grouped.models, anchor),
        ci_low=low,
        ci_high=high,
        rank=rank_from_intervals(low, high),
        separated=separated,
        rating_length_controlled=length.ratings.reindex(grouped.models).to_numpy(),
    )
    table = table[LEADERBOARD_COLUMNS].sort_values(["rating", "model"], ascending=[False, True])
    notes = _notes(length, separated, grouped.models)
    boot = pd.DataFrame(to_elo_scale(draws, grouped.models, anchor), columns=grouped.models)
    return Leaderboard(
        table.reset_index(drop=True),
        boot,
        None if math.isnan(length.length_coef) else length.length_coef,
        length.battles_used,
        length.battles_dropped,
        notes,
    )


def _notes(length: LengthControlled, separated: np.ndarray, models: list[str]) -> list[str]:
    """Plain-language caveats a reader of the table needs."""
    notes = []
    if length.battles_used == 0:
        notes.append("no battle has both answer lengths: no length-controlled rating")
    elif length.battles_dropped:
        notes.append(
            f"length-controlled rating uses {length.battles_used} battles; "
            f"{length.battles_dropped} without both answer lengths were left out of that fit only"
        )
    for model in np.asarray(models, dtype=object)[separated]:
        notes.append(
            f"{model} has only wins or only losses: its rating is held finite by the prior and "
            "its interval is the (wide) Laplace interval"
        )
    return notes


def simulate_battles(
    true_ratings: dict[str, float],
    n_battles: int,
    seed: int = 0,
    tie_rate: float = 0.2,
    lengths: dict[str, float] | None = None,
    length_coef: float = 0.0,
) -> pd.DataFrame:
    """Random battles from known Elo-scale ratings, for tests and benchmarks.

    Ties are drawn so that model A's expected score stays the BT probability p (tie chance
    ``tie_rate * 2 * min(p, 1 - p)``, taken equally from both win chances); that keeps the
    half-a-win tie convention unbiased. With ``lengths`` (mean tokens per model), answer lengths
    are drawn around those means and shift the logit by ``length_coef`` times the normalised
    length difference.
    """
    rng = np.random.default_rng(seed)
    names = list(true_ratings)
    r = np.array([true_ratings[n] for n in names], dtype=np.float64)
    a = rng.integers(0, len(names), n_battles)
    b = (a + rng.integers(1, len(names), n_battles)) % len(names)
    logit = ALPHA * (r[a] - r[b]) / SCALE
    labels = np.asarray(names, dtype=object)
    frame: dict[str, np.ndarray] = {"model_a": labels[a], "model_b": labels[b]}
    if lengths is not None:
        mean = np.array([lengths.get(n, 300.0) for n in names])
        len_a = np.maximum(1, np.round(mean[a] * rng.lognormal(0.0, 0.4, n_battles)))
        len_b = np.maximum(1, np.round(mean[b] * rng.lognormal(0.0, 0.4, n_battles)))
        logit = logit + length_coef * (len_a - len_b) / (len_a + len_b)
        frame |= {"len_a": len_a.astype(np.int64), "len_b": len_b.astype(np.int64)}
    p = expit(logit)
    tie = tie_rate * 2.0 * np.minimum(p, 1.0 - p)
    u = rng.random(n_battles)
    winner = np.where(u < p - tie / 2, "model_a", np.where(u < p + tie / 2, "tie", "model_b"))
    bothbad = (winner == "tie") & (rng.random(n_battles) < 0.3)
    frame["winner"] = np.where(bothbad, "tie (bothbad)", winner)
    frame["tstamp"] = 1.7e9 + np.arange(n_battles, dtype=np.float64)
    return pd.DataFrame(frame)


def bench_leaderboard(
    n_battles: int = 100_000, n_models: int = 20, rounds: int = 100, seed: int = 0
) -> dict[str, float]:
    """Time ``leaderboard`` on simulated battles (with lengths); median of 3 runs, in seconds.

    Also returns the worst error against the true ratings, so a fast-but-wrong change shows.
    """
    true = {f"m{i:02d}": 800.0 + 400.0 * i / max(n_models - 1, 1) for i in range(n_models)}
    lengths = {name: 200.0 + 20.0 * i for i, name in enumerate(true)}
    battles = simulate_battles(true, n_battles, seed, lengths=lengths, length_coef=0.5)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        board = leaderboard(battles, bootstrap=rounds, seed=seed)
        times.append(time.perf_counter() - start)
    truth = pd.Series(true) - float(np.mean(list(true.values()))) + INIT_RATING
    fitted = board.table.set_index("model")["rating_length_controlled"]
    return {
        "n_battles": float(n_battles),
        "n_models": float(n_models),
        "rounds": float(rounds),
        "seconds_median": float(np.median(times)),
        "seconds_min": float(np.min(times)),
        "max_abs_error_length_controlled": float((fitted - truth).abs().max()),
    }
