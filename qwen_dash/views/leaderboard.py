"""The Leaderboard page's logic, without streamlit: battles from the store, the arena table,
its plotly figures, and the "which model?" view (rating beside the cost measured here).

Ratings are ``qwen_dash.quality.ratings``'s Bradley-Terry fit with bootstrap intervals; this module
only chooses what goes in (the filters) and how it reads.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qwen_dash.core.arena import RANDOM_SOURCES, SIDE_LETTERS
from qwen_dash.quality.ratings import (
    LEADERBOARD_COLUMNS,
    Leaderboard,
    battle_count_matrix,
    leaderboard,
    online_elo,
    win_rate_matrix,
)
from qwen_dash.store import BATTLE_COLUMNS, RunFilters, Store, VoteCounts, VoteFilters
from qwen_dash.views.display import NA, fmt_bytes, fmt_metric

DEFAULT_BOOTSTRAP = 100
COST_MAX_RUNS = 2000  # the newest isolated runs the cost columns are the median of
COST_METRICS = ("decode_tps", "ttft_ms", "peak_memory_bytes")
REAL_WEIGHTS_NOTE = (
    "Votes on twin or tiny models are left out by default: those models have random weights, so "
    "their answers are random text and a vote between them rates noise, not the models."
)
GET_REAL_WEIGHTS = (
    "To vote on real answers, run the dashboard with the real weights: with network access the "
    "default source (auto) downloads them from the Hugging Face hub (or set "
    "QWEN_DASH_SOURCE=hub); offline, give a model spec a local_path (a folder with config, "
    "tokenizer and safetensors) and set QWEN_DASH_SOURCE=local. The README says how ('What you "
    "get', 'Adding a model')."
)
PAIRWISE_NOTE = (
    "With more than two models side by side, a vote for the best answer counts as that model "
    "beating each of the others (one battle per pair); a tie or 'all bad' ties every pair."
)
RATING_NOTE = (
    "Bradley-Terry ratings on the Elo scale (base 10, scale 400, mean 1000), fitted by maximum "
    "likelihood; a tie or 'both bad' counts as half a win for each side. The interval is the 95% "
    "range of {rounds} seeded bootstrap refits. Rank = 1 + the number of models whose whole "
    "interval lies above this model's, so models whose intervals overlap share a rank. A model "
    "with only wins or only losses has no finite maximum-likelihood rating: a weak prior (worth "
    "one tie against an average model) keeps it finite, and its interval is the wider Laplace "
    "interval, as the bootstrap cannot show its uncertainty."
)
LENGTH_NOTE = (
    "Length-controlled: the same fit with the normalised difference in answer tokens as a "
    "covariate (arena 'style control'), i.e. the rating at equal answer length. A model whose "
    "plain rating is well above its length-controlled one wins partly by talking more."
)


@dataclass(frozen=True)
class ArenaData:
    """What the Leaderboard page draws: the battles kept, the arena table, and the counts."""

    battles: pd.DataFrame
    board: Leaderboard | None
    counts: VoteCounts
    filters: VoteFilters
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.board is None


def battles_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """``Store.battles`` columns as the frame the ratings take (lengths as floats, NaN when
    unknown; tstamp as unix seconds)."""
    frame = pd.DataFrame({name: list(columns.get(name, ())) for name in BATTLE_COLUMNS})
    for name in ("len_a", "len_b", "tstamp"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def load(
    store: Store,
    filters: VoteFilters | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> ArenaData:
    """Battles that match ``filters`` and the arena table over them (None when none match)."""
    f = filters or VoteFilters()
    battles = battles_frame(store.battles(f))
    counts = store.vote_counts()
    board = leaderboard(battles, bootstrap=bootstrap, seed=seed) if len(battles) else None
    return ArenaData(battles, board, counts, f, _notes(counts, f))


def _notes(counts: VoteCounts, f: VoteFilters) -> list[str]:
    """Why battles in the database are not in the table, in plain words."""
    notes = []
    if not f.include_random and counts.random_weights:
        notes.append(
            f"{counts.random_weights:,} battle(s) on random-weight answers (twin/tiny) are left "
            "out. " + REAL_WEIGHTS_NOTE
        )
    if f.blind_only and counts.not_blind:
        notes.append(
            f"{counts.not_blind:,} battle(s) from named (not blind) votes are left out: a voter "
            "who knows the names is swayed by them."
        )
    return notes


def model_label(labels: Mapping[str, str], key: str) -> str:
    return labels.get(key, key)


# ---- the table ----------------------------------------------------------------------------------


def records(board: Leaderboard) -> list[dict[str, Any]]:
    """One JSON-ready object per model (the CLI's --json), best first; NaN becomes null."""
    out = []
    for row in board.table[LEADERBOARD_COLUMNS].to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif isinstance(value, float):
                value = round(value, 2)
            clean[str(key)] = value
        out.append(clean)
    return out


def display_table(board: Leaderboard, labels: Mapping[str, str]) -> pd.DataFrame:
    """The arena table as the page shows it, best first."""
    t = board.table
    return pd.DataFrame(
        {
            "Rank": t["rank"].astype(int),
            "Model": [model_label(labels, m) for m in t["model"]],
            "Rating": t["rating"].round(0),
            "95% CI": [
                f"{lo:,.0f} to {hi:,.0f}" for lo, hi in zip(t["ci_low"], t["ci_high"], strict=True)
            ],
            "Length-controlled": t["rating_length_controlled"].round(0),
            "Battles": t["battles"],
            "Wins": t["wins"],
            "Losses": t["losses"],
            "Ties": t["ties"],
            "Both bad": t["both_bad"],
        }
    )


def text_table(board: Leaderboard) -> str:
    """The arena table for a terminal."""
    head = f"{'rank':>4}  {'model':<28} {'rating':>7}  {'95% CI':>15}  {'len-ctl':>7}  "
    head += f"{'battles':>7} {'wins':>5} {'losses':>6} {'ties':>5} {'bothbad':>7}"
    lines = [head]
    for r in records(board):
        lc = r["rating_length_controlled"]
        ci = f"{r['ci_low']:.0f}-{r['ci_high']:.0f}"
        lines.append(
            f"{r['rank']:>4}  {r['model'][:28]:<28} {r['rating']:>7.0f}  {ci:>15}  "
            f"{(f'{lc:.0f}' if lc is not None else NA):>7}  {r['battles']:>7} {r['wins']:>5} "
            f"{r['losses']:>6} {r['ties']:>5} {r['both_bad']:>7}"
        )
    return "\n".join(lines)


# ---- which model? -------------------------------------------------------------------------------


def cost_frame(
    store: Store, run_filters: RunFilters, include_random: bool, max_runs: int = COST_MAX_RUNS
) -> pd.DataFrame:
    """Per model: median decode tok/s, TTFT and peak memory over its answers (status ok) in
    isolated runs, and how many answers and which sources that is.

    Isolated runs only: concurrent runs share the machine, so their speed depends on the other
    model. Twins count (their timing and memory are real: the real architecture); tiny models
    only with ``include_random``.
    """
    isolated = RunFilters(
        since=run_filters.since,
        until=run_filters.until,
        tag=run_filters.tag,
        thinking=run_filters.thinking,
        sources=run_filters.sources,
        mode="isolated",
    )
    rows = pd.DataFrame(store.generation_figures(isolated, max_runs))
    columns = ["model", *COST_METRICS, "answers", "cost_sources"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows[rows["status"] == "ok"]
    if not include_random:
        rows = rows[rows["source"] != "tiny"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby("model_key")
    frame = grouped[list(COST_METRICS)].median()
    frame["answers"] = grouped.size()
    frame["cost_sources"] = grouped["source"].agg(lambda s: ", ".join(sorted(set(s))))
    return frame.rename_axis("model").reset_index()[columns]


def which_model(board: Leaderboard, cost: pd.DataFrame) -> pd.DataFrame:
    """Per rated model: rating with its interval beside the cost measured here (NaN where no
    isolated run of that model matched)."""
    table = board.table[["model", "rank", "rating", "ci_low", "ci_high", "battles"]]
    merged = table.merge(cost, on="model", how="left")
    return merged.reset_index(drop=True)


def which_model_display(frame: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """The which-model table as the page shows it: figures formatted, 'n/a' where unmeasured."""
    return pd.DataFrame(
        {
            "Model": [model_label(labels, m) for m in frame["model"]],
            "Rank": frame["rank"].astype(int),
            "Rating (95% CI)": [
                f"{r:,.0f} ({lo:,.0f} to {hi:,.0f})"
                for r, lo, hi in zip(
                    frame["rating"], frame["ci_low"], frame["ci_high"], strict=True
                )
            ],
            "Decode (median)": [_fmt(v, "decode_tps") for v in frame["decode_tps"]],
            "TTFT (median)": [_fmt(v, "ttft_ms") for v in frame["ttft_ms"]],
            "Peak memory (median)": [
                NA if _missing(v) else fmt_bytes(float(v)) for v in frame["peak_memory_bytes"]
            ],
            "Isolated answers": [0 if _missing(v) else int(v) for v in frame["answers"]],
            "Cost measured on": [
                "" if not isinstance(v, str) else v for v in frame["cost_sources"]
            ],
        }
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, metric: str) -> str:
    return NA if _missing(value) else fmt_metric(metric, float(value))


# ---- figures ------------------------------------------------------------------------------------


def _figure_label(labels: Mapping[str, str], key: str) -> str:
    """A model name for a figure: plotly reads a few HTML tags in text, so they are escaped
    (imported battles may name models anything)."""
    return html.escape(model_label(labels, key))


def _style(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.0,
            "xanchor": "right",
            "x": 1.0,
            "title": None,
        },
    )
    return fig


def rating_figure(board: Leaderboard, labels: Mapping[str, str]) -> go.Figure:
    """Each model's rating with its 95% interval (bars), and its length-controlled rating."""
    t = board.table.iloc[::-1]  # best on top
    names = [_figure_label(labels, m) for m in t["model"]]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=t["rating"],
            y=names,
            mode="markers",
            name="Rating, 95% interval",
            marker={"size": 11},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": t["ci_high"] - t["rating"],
                "arrayminus": t["rating"] - t["ci_low"],
            },
        )
    )
    fig.add_trace(
        go.Scatter(
            x=t["rating_length_controlled"],
            y=names,
            mode="markers",
            name="Length-controlled",
            marker={"symbol": "diamond-open", "size": 10},
        )
    )
    fig.update_xaxes(title="Rating (Elo scale)")
    return _style(fig, "Ratings with 95% intervals", height=160 + 40 * len(names))


def _matrix_figure(
    matrix: pd.DataFrame, labels: Mapping[str, str], title: str, text: list[list[str]], **kw: Any
) -> go.Figure:
    names = [_figure_label(labels, m) for m in matrix.index]
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(dtype=float),
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            hoverongaps=False,
            **kw,
        )
    )
    fig.update_xaxes(title="Opponent", side="bottom")
    fig.update_yaxes(title="Model", autorange="reversed")
    return _style(fig, title, height=200 + 45 * len(names))


def win_rate_figure(battles: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Share of its battles against the column model that the row model won (ties half)."""
    rate = win_rate_matrix(battles)
    text = [["" if math.isnan(v) else f"{v:.0%}" for v in row] for row in rate.to_numpy()]
    return _matrix_figure(
        rate,
        labels,
        "Win rate of the row model against the column model",
        text,
        zmin=0,
        zmax=1,
        colorscale="RdBu",
        colorbar={"title": "win rate", "tickformat": ".0%"},
    )


def count_figure(battles: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """How many battles each pair of models fought (either side)."""
    matrix = battle_count_matrix(battles)
    values = matrix.to_numpy(dtype=float, copy=True)
    np.fill_diagonal(values, np.nan)  # a model never battles itself: a gap, not 0
    counts = pd.DataFrame(values, index=matrix.index, columns=matrix.columns)
    text = [["" if math.isnan(v) else f"{int(v):,}" for v in row] for row in counts.to_numpy()]
    return _matrix_figure(
        counts, labels, "Battles per pair of models", text, colorscale="Blues", showscale=False
    )


def elo_figure(battles: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Online Elo (K=4) after each battle, in time order."""
    elo = online_elo(battles)
    elo["when"] = pd.to_datetime(elo["tstamp"], unit="s", utc=True)
    fig = go.Figure()
    for model, rows in elo.groupby("model", sort=True):
        fig.add_trace(
            go.Scatter(
                x=rows["when"],
                y=rows["rating"],
                mode="lines+markers" if len(rows) < 30 else "lines",
                name=_figure_label(labels, str(model)),
            )
        )
    fig.update_yaxes(title="Online Elo")
    fig.update_layout(hovermode="x unified")
    return _style(fig, "Online Elo over time (K = 4, in vote order)")


def speed_figure(frame: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """Rating (with its interval) against median decode speed in isolated runs."""
    measured = frame.dropna(subset=["decode_tps"])
    fig = go.Figure(
        go.Scatter(
            x=measured["decode_tps"],
            y=measured["rating"],
            mode="markers+text",
            text=[_figure_label(labels, m) for m in measured["model"]],
            textposition="top center",
            marker={"size": 12},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": measured["ci_high"] - measured["rating"],
                "arrayminus": measured["rating"] - measured["ci_low"],
            },
            hovertemplate="%{text}<br>decode %{x:.1f} tokens/s<br>rating %{y:.0f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="Median decode speed, isolated runs (tokens/s)")
    fig.update_yaxes(title="Rating (Elo scale)")
    return _style(fig, "Rating against speed: up and to the right is better")


def random_models(battles: pd.DataFrame) -> bool:
    """Whether any kept battle has an answer from random weights."""
    sources = set(battles["source_a"].dropna()) | set(battles["source_b"].dropna())
    return bool(sources & RANDOM_SOURCES)


# ---- voting -------------------------------------------------------------------------------------


def vote_choices(n_sides: int) -> list[tuple[str, str]]:
    """(verdict, button text) for a run of ``n_sides`` models, as the vote buttons offer them."""
    if n_sides == 2:
        return [
            ("a", "A is better"),
            ("b", "B is better"),
            ("tie", "Tie"),
            ("both_bad", "Both are bad"),
        ]
    sides = [(SIDE_LETTERS[i], f"{SIDE_LETTERS[i].upper()} is best") for i in range(n_sides)]
    return [*sides, ("tie", "Tie"), ("both_bad", "All are bad")]


def verdict_text(winner: str, sides: Sequence[str], labels: Mapping[str, str]) -> str:
    """A verdict in words, with the names: 'A (Qwen3-0.6B) is better'."""
    if winner == "tie":
        return "Tie"
    if winner == "both_bad":
        return "Both are bad" if len(sides) == 2 else "All are bad"
    index = SIDE_LETTERS.index(winner)
    name = model_label(labels, sides[index]) if index < len(sides) else "?"
    return f"{winner.upper()} ({name}) is {'better' if len(sides) == 2 else 'best'}"


def votes_table(votes: Sequence[Any], labels: Mapping[str, str]) -> pd.DataFrame:
    """Every vote on a run: who, what, blind or named, when, how often changed."""
    return pd.DataFrame(
        {
            "Voter": [v.voter or "(anonymous)" for v in votes],
            "Verdict": [verdict_text(v.winner, list(v.sides), labels) for v in votes],
            "Blind": [bool(v.blind) for v in votes],
            "When": [v.updated_at.strftime("%Y-%m-%d %H:%M UTC") for v in votes],
            "Changed": [len(v.changes) for v in votes],
        }
    )
