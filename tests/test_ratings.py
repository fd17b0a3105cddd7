"""Arena ratings against known truth, an independent fit, and hand-made examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from qwen_dash.quality.ratings import (
    DEFAULT_PRIOR,
    LEADERBOARD_COLUMNS,
    battle_count_matrix,
    bench_leaderboard,
    bt_ratings,
    leaderboard,
    length_controlled_ratings,
    model_counts,
    online_elo,
    rank_from_intervals,
    simulate_battles,
    win_rate_matrix,
)

TRUE = {"alpha": 1200.0, "beta": 1100.0, "gamma": 1000.0, "delta": 950.0, "eps": 850.0}


def centred(ratings: dict[str, float]) -> pd.Series:
    """True ratings shifted to mean 1000, as the fit reports them."""
    series = pd.Series(ratings)
    return series - series.mean() + 1000.0


def widths(battles: pd.DataFrame) -> pd.Series:
    """95% interval width per model."""
    table = leaderboard(battles, bootstrap=100, seed=0).table.set_index("model")
    return (table["ci_high"] - table["ci_low"]).sort_index()


def sklearn_ratings(battles: pd.DataFrame, c: float) -> pd.Series:
    """FastChat's older compute_mle_elo: LogisticRegression on +-ln(10) features.

    As there, a decisive battle is a row weighted 2 and a tie is one win for each side (two
    rows weighted 1), i.e. half a win each - the same convention as ours.
    """
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    index = {m: i for i, m in enumerate(models)}
    rows, labels, weights = [], [], []
    for (a, b, winner), n in battles.groupby(["model_a", "model_b", "winner"]).size().items():
        x = np.zeros(len(models))
        x[index[a]], x[index[b]] = math.log(10), -math.log(10)
        if winner in ("model_a", "model_b"):
            rows.append(x)
            labels.append(int(winner == "model_a"))
            weights.append(2.0 * n)
        else:
            rows += [x, x]
            labels += [1, 0]
            weights += [float(n), float(n)]
    fit = LogisticRegression(fit_intercept=False, C=c, tol=1e-12, max_iter=10_000)
    fit.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    rating = 400.0 * fit.coef_[0] + 1000.0
    return pd.Series(rating - rating.mean() + 1000.0, index=models)


def test_fitted_ratings_cover_the_truth() -> None:
    battles = simulate_battles(TRUE, 4000, seed=3, tie_rate=0.3)
    assert battles["winner"].isin(["tie", "tie (bothbad)"]).any()
    table = leaderboard(battles, bootstrap=100, seed=0).table.set_index("model")
    truth = centred(TRUE)[table.index]
    error = (table["rating"] - truth).abs()
    half_width = (table["ci_high"] - table["ci_low"]) / 2
    # 1.5x: with five models, a plain 95% check fails somewhere one seed in ten
    assert (error <= half_width * 1.5).all(), pd.DataFrame({"error": error, "half": half_width})
    assert ((table["ci_low"] <= truth) & (truth <= table["ci_high"])).mean() >= 0.8
    assert list(table.index) == list(TRUE)  # order recovered


def test_intervals_shrink_as_battles_grow() -> None:
    small = widths(simulate_battles(TRUE, 500, seed=4))
    large = widths(simulate_battles(TRUE, 20_000, seed=4))
    assert (large < small / 3).all()


def test_a_model_with_only_wins_gets_a_finite_rating_and_a_wide_interval() -> None:
    others = simulate_battles(TRUE, 3000, seed=5)
    champ = pd.DataFrame(
        {"model_a": ["champ"] * 40, "model_b": list(TRUE) * 8, "winner": ["model_a"] * 40}
    )
    board = leaderboard(pd.concat([others, champ], ignore_index=True))
    table = board.table.set_index("model")
    width = table["ci_high"] - table["ci_low"]
    assert np.isfinite(table.loc["champ", ["rating", "ci_low", "ci_high"]].astype(float)).all()
    assert table.index[0] == "champ"
    assert bool(table.loc["champ", "separated"])
    assert width["champ"] > 2 * width.drop("champ").max()
    assert any("champ" in note for note in board.notes)


def test_a_model_with_only_losses_is_finite_too() -> None:
    battles = pd.DataFrame(
        {"model_a": ["x", "y", "x"], "model_b": ["z", "z", "y"], "winner": ["model_a"] * 3}
    )
    ratings = bt_ratings(battles)
    assert np.isfinite(ratings).all()
    assert ratings.idxmin() == "z"


@pytest.mark.parametrize("prior", [DEFAULT_PRIOR, 1e-8])
def test_agrees_with_an_independent_logistic_regression(prior: float) -> None:
    battles = simulate_battles(TRUE, 3000, seed=6, tie_rate=0.3)
    ours = bt_ratings(battles, prior=prior).sort_index()
    # sklearn minimises ||w||^2 / 2 + C * loss, its loss doubled by the weight-2 convention;
    # ours minimises loss + prior / 2 * ||theta||^2, so C = 1 / (2 * prior) is the same penalty.
    theirs = sklearn_ratings(battles, c=1.0 / (2.0 * prior)).sort_index()
    assert (ours - theirs).abs().max() < 1.0


def test_anchor_puts_the_named_model_at_1000() -> None:
    battles = simulate_battles(TRUE, 2000, seed=7)
    board = leaderboard(battles, bootstrap=20, anchor="gamma").table.set_index("model")
    assert board.loc["gamma", "rating"] == pytest.approx(1000.0)
    plain = bt_ratings(battles)
    gaps = board["rating"] - plain[board.index]
    assert np.allclose(gaps, gaps.iloc[0])  # anchoring shifts, never reshapes


def test_rank_counts_models_clearly_above() -> None:
    low = np.array([1100.0, 1090.0, 1000.0, 980.0])
    high = np.array([1200.0, 1150.0, 1095.0, 990.0])
    # model 2 overlaps model 1 (1090 < 1095) but not model 0 (1100 > 1095);
    # model 3 is clearly below all three, so three models count against it
    assert list(rank_from_intervals(low, high)) == [1, 1, 2, 4]


def test_leaderboard_shape_sorting_and_bootstrap_reproducible() -> None:
    battles = simulate_battles(TRUE, 2000, seed=8)
    first = leaderboard(battles, bootstrap=30, seed=1)
    again = leaderboard(battles, bootstrap=30, seed=1)
    assert list(first.table.columns) == LEADERBOARD_COLUMNS
    assert first.table["rating"].is_monotonic_decreasing
    assert first.table["rating"].mean() == pytest.approx(1000.0)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert first.bootstrap.shape == (30, len(TRUE))
    counts = first.table[["wins", "losses", "ties", "both_bad"]].sum(axis=1)
    assert (counts == first.table["battles"]).all()


def test_empty_and_invalid_input() -> None:
    empty = pd.DataFrame(columns=["model_a", "model_b", "winner"])
    assert leaderboard(empty).table.empty
    with pytest.raises(ValueError, match="winner must be one of"):
        leaderboard(pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["left"]}))
    with pytest.raises(ValueError, match="cannot battle itself"):
        bt_ratings(pd.DataFrame({"model_a": ["x"], "model_b": ["x"], "winner": ["tie"]}))


def test_online_elo_depends_on_order() -> None:
    early = ["model_b"] * 20 + ["model_a"] * 20  # x loses first, wins last
    battles = pd.DataFrame(
        {"model_a": "x", "model_b": "y", "winner": early, "tstamp": np.arange(40.0)}
    )
    late = battles.assign(tstamp=battles["tstamp"][::-1].to_numpy())  # same votes, reversed
    final_early = online_elo(battles).groupby("model")["rating"].last()
    final_late = online_elo(late).groupby("model")["rating"].last()
    assert final_early["x"] > 1000.0 > final_late["x"]
    # Bradley-Terry ignores order: 20 wins each way is an even match
    assert bt_ratings(battles)["x"] == pytest.approx(1000.0, abs=1e-6)


def test_online_elo_first_step_and_zero_sum() -> None:
    battles = simulate_battles(TRUE, 500, seed=9)
    shuffled = battles.sample(frac=1.0, random_state=0)  # tstamp still orders it
    history = online_elo(shuffled)
    assert list(history.columns) == ["tstamp", "model", "rating"]
    assert len(history) == 2 * len(battles)
    assert history["tstamp"].is_monotonic_increasing
    first = history.iloc[:2]["rating"].to_numpy()
    step = {"model_a": 2.0, "model_b": -2.0}.get(battles["winner"].iloc[0], 0.0)
    assert first == pytest.approx([1000.0 + step, 1000.0 - step])  # K/2 from an even start
    final = history.groupby("model")["rating"].last()
    assert final.sum() == pytest.approx(1000.0 * len(TRUE))


def test_length_control_removes_the_talkers_advantage() -> None:
    equal = dict.fromkeys(TRUE, 1000.0)
    lengths = {"alpha": 900.0}  # others ~300 tokens
    battles = simulate_battles(equal, 8000, seed=10, lengths=lengths, length_coef=1.5)
    battles.loc[battles.index[:500], ["len_a", "len_b"]] = np.nan  # some votes lack lengths
    board = leaderboard(battles, bootstrap=20)
    table = board.table.set_index("model")
    assert board.length_coef is not None and board.length_coef > 0.5
    assert board.length_battles_dropped == 500
    assert board.length_battles_used == len(battles) - 500
    assert any("left out of that fit only" in note for note in board.notes)
    assert table.loc["alpha", "rating"] > 1050.0  # plain rating rewards talking
    assert table.loc["alpha", "rating_length_controlled"] < table.loc["alpha", "rating"] - 40
    assert abs(table.loc["alpha", "rating_length_controlled"] - 1000.0) < 30.0


def test_length_control_without_lengths_is_nan() -> None:
    result = length_controlled_ratings(simulate_battles(TRUE, 200, seed=11))
    assert result.ratings.isna().all() and math.isnan(result.length_coef)
    assert result.battles_used == 0 and result.battles_dropped == 200


HAND = pd.DataFrame(
    {
        "model_a": ["x", "x", "y", "z", "x"],
        "model_b": ["y", "z", "z", "x", "y"],
        "winner": ["model_a", "tie", "tie (bothbad)", "model_b", "model_b"],
    }
)


def test_counts_per_model_on_a_hand_made_example() -> None:
    counts = model_counts(HAND)
    expected = pd.DataFrame(
        {
            "battles": [4, 3, 3],
            "wins": [2, 1, 0],
            "losses": [1, 1, 1],
            "ties": [1, 0, 1],
            "both_bad": [0, 1, 1],
        },
        index=pd.Index(["x", "y", "z"], name="model"),
    )
    pd.testing.assert_frame_equal(counts, expected)


def test_win_rate_and_count_matrices_on_a_hand_made_example() -> None:
    rates = win_rate_matrix(HAND)
    assert rates.loc["x", "y"] == pytest.approx(0.5)  # one win, one loss
    assert rates.loc["x", "z"] == pytest.approx(0.75)  # a tie (half) and a win as model_b
    assert rates.loc["y", "z"] == pytest.approx(0.5)  # both bad counts half
    off_diagonal = ~np.eye(3, dtype=bool)
    assert np.allclose((rates + rates.T).to_numpy()[off_diagonal], 1.0)
    assert np.isnan(np.diag(rates.to_numpy())).all()
    counts = battle_count_matrix(HAND)
    assert counts.loc["x", "y"] == counts.loc["y", "x"] == 2
    assert counts.loc["x", "z"] == 2 and counts.loc["y", "z"] == 1
    assert (np.diag(counts.to_numpy()) == 0).all()


def test_win_rate_is_nan_for_models_that_never_met() -> None:
    battles = pd.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "z"], "winner": ["tie"] * 2})
    assert np.isnan(win_rate_matrix(battles).loc["x", "z"])


def test_bench_runs_small_and_reports_accuracy() -> None:
    result = bench_leaderboard(n_battles=5000, n_models=5, rounds=10, seed=0)
    assert result["seconds_median"] > 0
    assert result["max_abs_error_length_controlled"] < 60
