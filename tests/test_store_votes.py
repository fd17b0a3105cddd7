"""Arena votes in the store, on SQLite and PostgreSQL: one vote per person per run (a change is
recorded, not a second vote), battles per pair, filters, idempotent import, export round trip, and
migration 0004 from a database that already holds votes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from qwen_dash.core.arena import record_key
from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.quality.battles import parse_battles
from qwen_dash.store import RunFilters, Store, StoreError, VoteFilters, open_store
from qwen_dash.store.database import resolve_url, upgrade
from qwen_dash.store.schema import Vote, VoteBattle, VoteChange
from tests.conftest_db import MODEL_A, MODEL_B, make_comparison, make_result

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EVERYTHING = VoteFilters(blind_only=False, include_random=True)


def save(store: Store, prompt: str = "p", source: str = "hub", **kw: Any) -> int:
    request, results = make_comparison(
        prompt,
        a={"source": source, "n_out": 100, "n_answer": 80},
        b={"source": source, "n_out": 50},
    )
    return store.save_comparison(request, results, **kw)


def save_three(store: Store) -> int:
    keys = [MODEL_A, MODEL_B, "qwen3-1.7b"]
    request = CompareRequest.from_prompt("three", {k: Settings() for k in keys})
    results = {k: make_result(k, source="hub") for k in keys}
    return store.save_comparison(request, results)


def record(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model_a": "gpt-4",
        "model_b": "claude-v1",
        "winner": "model_a",
        "tstamp": 1_700_000_000.25,
        "anony": True,
        "question_id": "q1",
        "turn": 1,
        "run_id": None,
        "voter": None,
    }
    return values | overrides


def count(store: Store, table: Any) -> int:
    with store.reading() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_one_vote_per_person_per_run_and_a_change_is_recorded(store: Store) -> None:
    run_id = save(store)
    first = store.cast_vote(run_id, "a", sides=[MODEL_B, MODEL_A], voter="ana", blind=True)
    assert first.created and not first.changed
    same = store.cast_vote(run_id, "a", sides=[MODEL_B, MODEL_A], voter=" ana ", blind=True)
    assert not same.created and not same.changed and same.vote_id == first.vote_id
    changed = store.cast_vote(run_id, "tie", sides=[MODEL_B, MODEL_A], voter="ana", blind=True)
    assert changed.changed and changed.vote_id == first.vote_id
    store.cast_vote(run_id, "b", sides=[MODEL_A, MODEL_B], voter="bo", blind=False)

    assert count(store, Vote) == 2  # ana once (changed), bo once
    vote = store.get_vote(run_id, "ana")
    assert vote is not None and vote.winner == "tie" and vote.sides == [MODEL_B, MODEL_A]
    assert (vote.model_a, vote.model_b, vote.blind) == (MODEL_B, MODEL_A, True)
    assert [(c.old_winner, c.new_winner) for c in vote.changes] == [("a", "tie")]
    assert vote.updated_at >= vote.created_at
    # The ratings see each vote's verdict in force, once.
    battles = store.battles(EVERYTHING)
    assert sorted(zip(battles["model_a"], battles["winner"], strict=True)) == [
        (MODEL_A, "model_b"),
        (MODEL_B, "tie"),
    ]
    assert [v.voter for v in store.run_votes(run_id)] == ["ana", "bo"]


def test_a_vote_must_name_the_runs_models_and_a_real_verdict(store: Store) -> None:
    run_id = save(store)
    with pytest.raises(StoreError, match="vote is one of"):
        store.cast_vote(run_id, "draw", sides=[MODEL_A, MODEL_B], voter="x", blind=True)
    with pytest.raises(StoreError, match="compared"):
        store.cast_vote(run_id, "a", sides=[MODEL_A, "other"], voter="x", blind=True)
    with pytest.raises(StoreError, match="side 'c' does not exist"):
        store.cast_vote(run_id, "c", sides=[MODEL_A, MODEL_B], voter="x", blind=True)
    with pytest.raises(StoreError, match="no run 999"):
        store.cast_vote(999, "a", sides=[MODEL_A, MODEL_B], voter="x", blind=True)
    assert count(store, Vote) == 0


def test_more_than_two_models_store_the_best_beating_each_other(store: Store) -> None:
    run_id = save_three(store)
    sides = ["qwen3-1.7b", MODEL_A, MODEL_B]
    store.cast_vote(run_id, "b", sides=sides, voter="ana", blind=True)
    battles = store.battles(EVERYTHING)
    pairs = list(zip(battles["model_a"], battles["model_b"], battles["winner"], strict=True))
    assert pairs == [(MODEL_A, "qwen3-1.7b", "model_a"), (MODEL_A, MODEL_B, "model_a")]
    store.cast_vote(run_id, "both_bad", sides=sides, voter="ana", blind=True)
    battles = store.battles(EVERYTHING)
    assert battles["winner"] == ["tie (bothbad)"] * 3  # every pair, once
    assert count(store, VoteBattle) == 3 and count(store, Vote) == 1


def test_filters_blind_random_weights_and_run_fields(store: Store) -> None:
    hub = save(store, "real", tags=["demo"])
    twin = save(store, "random", source="twin")
    named = save(store, "named")
    store.cast_vote(hub, "a", sides=[MODEL_A, MODEL_B], voter="ana", blind=True)
    store.cast_vote(twin, "a", sides=[MODEL_A, MODEL_B], voter="ana", blind=True)
    store.cast_vote(named, "b", sides=[MODEL_A, MODEL_B], voter="ana", blind=False)
    store.import_battles([record()])

    def runs_of(f: VoteFilters) -> set[int | None]:
        return set(store.battles(f)["run_id"])

    assert runs_of(VoteFilters()) == {hub, None}  # blind, real weights, imported included
    assert runs_of(VoteFilters(include_random=True)) == {hub, twin, None}
    assert runs_of(VoteFilters(blind_only=False)) == {hub, named, None}
    assert runs_of(VoteFilters(include_imported=False)) == {hub}
    assert runs_of(VoteFilters(runs=RunFilters(tag="demo"))) == {hub}  # needs a local run
    assert runs_of(VoteFilters(runs=RunFilters(sources=("twin",)), include_random=True)) == {twin}
    later = datetime.now(UTC) + timedelta(days=1)
    assert runs_of(VoteFilters(runs=RunFilters(since=later))) == set()
    battles = store.battles(VoteFilters())  # oldest first: the imported battle is from 2023
    # Answer lengths: answer tokens (reasoning left out) where the run is here.
    assert (battles["len_a"], battles["len_b"]) == ([None, 80], [None, 50])
    assert battles["source_a"] == [None, "hub"]
    counts = store.vote_counts()
    assert (counts.votes, counts.battles, counts.not_blind) == (4, 4, 1)
    assert (counts.random_weights, counts.imported) == (1, 1)


def test_import_is_idempotent_and_exports_round_trip(store: Store) -> None:
    records = [
        record(),
        record(winner="tie (bothbad)", tstamp=1_700_000_100, turn=2, voter="arena_user"),
        record(model_a="llama-13b", winner="tie", anony=False, run_id=42, question_id="q9"),
    ]
    first = store.import_battles(records)
    assert (first.added, first.skipped) == (3, 0)
    again = store.import_battles(records)
    assert (again.added, again.skipped) == (0, 3)
    assert count(store, Vote) == 3
    exported = list(store.battle_records())
    expected = [record_key(r) for r in records]
    assert sorted(record_key(r) for r in exported) == sorted(expected)
    assert exported[1]["run_id"] == 42 and exported[1]["anony"] is False  # kept as given
    # This server's own votes, exported and imported back, add nothing either.
    run_id = save(store)
    store.cast_vote(run_id, "b", sides=[MODEL_B, MODEL_A], voter="ana", blind=True)
    mine = [r for r in store.battle_records() if r["run_id"] == run_id]
    assert mine[0]["question_id"] == f"run-{run_id}" and mine[0]["turn"] == 1
    assert mine[0]["winner"] == "model_b" and mine[0]["model_a"] == MODEL_B
    assert store.import_battles(store.battle_records()).added == 0


def test_export_then_import_into_another_database_gives_the_same_records(
    store: Store, tmp_path: Any
) -> None:
    run_id = save_three(store)
    store.cast_vote(run_id, "a", sides=[MODEL_A, MODEL_B, "qwen3-1.7b"], voter="ana", blind=True)
    store.import_battles([record()])
    exported = list(store.battle_records())
    other = open_store(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    try:
        assert other.import_battles(exported).added == 3
        assert list(other.battle_records()) == exported
    finally:
        other.close()


def test_a_deleted_runs_votes_stop_counting_and_purging_removes_them(store: Store) -> None:
    run_id = save(store)
    store.cast_vote(run_id, "a", sides=[MODEL_A, MODEL_B], voter="ana", blind=True)
    store.cast_vote(run_id, "b", sides=[MODEL_A, MODEL_B], voter="ana", blind=True)

    def battles() -> int:
        return len(store.battles(EVERYTHING)["winner"])

    assert battles() == 1
    assert store.delete_run(run_id, actor="admin")  # soft: restorable, so the votes are kept
    assert battles() == 0
    assert store.restore_run(run_id, actor="admin")
    assert battles() == 1
    assert store.purge_run(run_id)
    assert count(store, Vote) == count(store, VoteBattle) == count(store, VoteChange) == 0


def _time(db_url: str, value: str) -> str:
    return value if db_url.startswith("sqlite") else value.replace(" ", "T") + "+00:00"


def test_migration_from_0003_keeps_existing_votes(db_url: str) -> None:
    upgrade(resolve_url(db_url), "0003")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, created_at, kind, mode, thinking, prompt, messages, "
                "settings, meta, turn, search_text) VALUES (5, :t, 'ui', 'concurrent', false, "
                "'old', '[]', '{}', '{}', 0, '')"
            ),
            {"t": _time(db_url, "2025-01-02 03:04:05.000000")},
        )
        old_votes = [
            ("a", "ana", "2025-01-02 03:05:00.000000"),
            ("b", "ana", "2025-01-02 03:06:00.000000"),  # ana changed her mind (0003: 2 rows)
            ("tie", "bo", "2025-01-02 03:07:00.000000"),
            ("both_bad", None, "2025-01-02 03:08:00.000000"),
        ]
        for winner, voter, when in old_votes:
            conn.execute(
                text(
                    "INSERT INTO votes (run_id, created_at, model_a, model_b, winner, voter, "
                    "blind) VALUES (5, :t, :a, :b, :w, :v, true)"
                ),
                {"t": _time(db_url, when), "a": MODEL_A, "b": MODEL_B, "w": winner, "v": voter},
            )
    engine.dispose()

    store = open_store(db_url)  # migrates to head
    try:
        votes = {v.voter: v for v in store.run_votes(5)}
        assert set(votes) == {"ana", "bo", None}
        ana = votes["ana"]
        assert ana.winner == "b" and ana.sides == [MODEL_A, MODEL_B]
        assert ana.created_at == datetime(2025, 1, 2, 3, 5, tzinfo=UTC)
        assert ana.updated_at == datetime(2025, 1, 2, 3, 6, tzinfo=UTC)
        assert [(c.old_winner, c.new_winner) for c in ana.changes] == [("a", "b")]
        assert [(b.model_a, b.model_b, b.winner) for b in ana.battles] == [(MODEL_A, MODEL_B, "b")]
        assert votes[None].winner == "both_bad" and votes["bo"].winner == "tie"
        assert sorted(store.battles(EVERYTHING)["winner"]) == [
            "model_b",
            "tie",
            "tie (bothbad)",
        ]
        # Old votes export, and an import of their own export adds nothing.
        exported = list(store.battle_records())
        assert {r["question_id"] for r in exported} == {"run-5"}
        assert store.import_battles(exported).added == 0
        # New votes work next to them: ana's vote changes again, not a new row.
        store.cast_vote(5, "a", sides=[MODEL_B, MODEL_A], voter="ana", blind=True)
        assert len(store.run_votes(5)) == 3
    finally:
        store.close()


def test_a_parsed_file_imports_as_parsed() -> None:
    text_ = '{"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": 1, "anony": true, '
    text_ += '"question_id": "q", "turn": 1}\n'
    (battle,) = parse_battles(text_, "f.jsonl")
    assert battle.key() == record_key(battle.to_record())
