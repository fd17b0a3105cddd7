"""``python -m qwen_dash bench arena``: how fast the arena is at scale.

1. The leaderboard (Bradley-Terry fit, bootstrap intervals, counts, length-controlled fit) on
   100,000 simulated battles among 20 models with 100 bootstrap rounds: the computation alone, and
   the whole path the Leaderboard page takes (battles read from a database, then the table).
   Target: <= 2 s.
2. Recording a vote (and changing one) in a database of 200,000 runs. Target: <= 20 ms.
Medians; the databases are temporary SQLite files.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_dash.bench.store import MODELS, fill
from qwen_dash.quality.ratings import bench_leaderboard, simulate_battles
from qwen_dash.store import VoteFilters, open_store
from qwen_dash.views import leaderboard as arena

TARGETS = {"leaderboard_s": 2.0, "leaderboard_from_db_s": 2.0, "vote_ms": 20.0}


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _records(n_battles: int, n_models: int) -> list[dict[str, Any]]:
    true = {f"m{i:02d}": 800.0 + 400.0 * i / max(n_models - 1, 1) for i in range(n_models)}
    frame = simulate_battles(true, n_battles, seed=1)
    return [
        {
            "model_a": a,
            "model_b": b,
            "winner": w,
            "tstamp": float(t),
            "anony": True,
            "question_id": f"q{i}",
            "turn": 1,
            "run_id": None,
            "voter": None,
        }
        for i, (a, b, w, t) in enumerate(
            zip(frame["model_a"], frame["model_b"], frame["winner"], frame["tstamp"], strict=True)
        )
    ]


def leaderboard_from_db(tmp: Path, n_battles: int, n_models: int, rounds: int) -> dict[str, float]:
    """Import simulated battles, then time what the page does: read them, build the table."""
    store = open_store(f"sqlite:///{tmp / 'arena.sqlite3'}")
    try:
        t0 = time.perf_counter()
        store.import_battles(_records(n_battles, n_models))
        import_s = time.perf_counter() - t0
        seconds = _median(lambda: arena.load(store, VoteFilters(), bootstrap=rounds), 3)
    finally:
        store.close()
    return {"import_s": import_s, "leaderboard_from_db_s": seconds}


def vote_times(tmp: Path, n_runs: int, repeat: int = 41) -> dict[str, float]:
    """Median time to record a new vote, and to change one, among ``n_runs`` runs."""
    store = open_store(f"sqlite:///{tmp / 'votes.sqlite3'}")
    try:
        t0 = time.perf_counter()
        fill(store, n_runs)
        fill_s = time.perf_counter() - t0
        rng = random.Random(0)
        runs = rng.sample(range(1, n_runs + 1), repeat + 1)
        sides = [key for key, _ in MODELS]
        voted = iter(runs)
        store.cast_vote(runs[-1], "a", sides=sides, voter="warm", blind=True)  # warm caches

        def new_vote() -> None:
            store.cast_vote(next(voted), "a", sides=sides, voter="bench", blind=True)

        changes = iter(runs)

        def change_vote() -> None:
            store.cast_vote(next(changes), "tie", sides=sides[::-1], voter="bench", blind=True)

        vote_s = _median(new_vote, repeat)
        change_s = _median(change_vote, repeat)
    finally:
        store.close()
    return {"fill_s": fill_s, "vote_ms": vote_s * 1000, "change_vote_ms": change_s * 1000}


def run_arena_bench(
    n_battles: int = 100_000,
    n_models: int = 20,
    rounds: int = 100,
    n_runs: int = 200_000,
    as_json: bool = False,
) -> dict[str, Any]:
    compute = bench_leaderboard(n_battles, n_models, rounds)
    figures: dict[str, Any] = {
        "battles": n_battles,
        "models": n_models,
        "rounds": rounds,
        "runs": n_runs,
        "leaderboard_s": compute["seconds_median"],
        "max_abs_error_length_controlled": compute["max_abs_error_length_controlled"],
    }
    with tempfile.TemporaryDirectory(prefix="qwen-dash-arena-") as tmp:
        figures |= leaderboard_from_db(Path(tmp), n_battles, n_models, rounds)
        figures |= vote_times(Path(tmp), n_runs)
    _report(figures, as_json)
    return figures


def _report(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()})
        )
        return
    print(
        f"Leaderboard: {figures['battles']:,} battles, {figures['models']} models, "
        f"{figures['rounds']} bootstrap rounds (imported in {figures['import_s']:.1f} s)"
    )
    for name, label in (("leaderboard_s", "computation"), ("leaderboard_from_db_s", "from the db")):
        _line(label, figures[name], "s", TARGETS[name])
    print(
        f"  worst length-controlled error vs the true ratings: "
        f"{figures['max_abs_error_length_controlled']:.1f} points"
    )
    print(f"Votes: {figures['runs']:,} runs (filled in {figures['fill_s']:.0f} s)")
    _line("record a vote", figures["vote_ms"], "ms", TARGETS["vote_ms"])
    _line("change a vote", figures["change_vote_ms"], "ms", TARGETS["vote_ms"])


def _line(label: str, value: float, unit: str, target: float) -> None:
    verdict = "ok" if value <= target else "OVER TARGET"
    print(f"  {label:<16} {value:8.3f} {unit} median (target <= {target:g} {unit})  {verdict}")
