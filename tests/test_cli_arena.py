"""The arena's command line through a real interpreter: votes export/import (FastChat clean
battles, idempotent, all or nothing) and the leaderboard table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwen_dash.quality.battles import parse_battles
from qwen_dash.quality.ratings import simulate_battles
from tests.test_cli import run_cli


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"QWEN_DASH_DB_URL": f"sqlite:///{tmp_path / 'arena.sqlite3'}", "HF_HUB_OFFLINE": "1"}


JSON_FIELDS = {
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
    "rating_length_controlled",
}


def fastchat_records(n: int = 300) -> list[dict[str, Any]]:
    """Battles as a FastChat clean-battle dump has them (extra fields included)."""
    true = {"vicuna-13b": 1100.0, "alpaca-13b": 950.0, "llama-13b": 900.0}
    frame = simulate_battles(true, n, seed=3)
    return [
        {
            "question_id": f"q{i:04d}",
            "model_a": a,
            "model_b": b,
            "winner": w,
            "judge": f"arena_user_{i % 7}",
            "turn": 1,
            "anony": True,
            "language": "English",
            "tstamp": float(t),
        }
        for i, (a, b, w, t) in enumerate(
            zip(frame["model_a"], frame["model_b"], frame["winner"], frame["tstamp"], strict=True)
        )
    ]


def test_import_twice_export_and_round_trip(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "clean_battle.json"
    records = fastchat_records()
    source.write_text(json.dumps(records))
    first = run_cli("votes", "import", str(source), env=cli_env)
    assert first.returncode == 0, first.stderr
    assert "imported 300 battles; 0 were here already" in first.stderr
    again = run_cli("votes", "import", str(source), env=cli_env)
    assert again.returncode == 0 and "imported 0 battles; 300 were here already" in again.stderr

    out = tmp_path / "votes.jsonl"
    export = run_cli("votes", "export", "-o", str(out), env=cli_env)
    assert export.returncode == 0 and "exported 300 battles" in export.stderr
    exported = parse_battles(out.read_text(), "votes.jsonl")
    assert len(exported) == 300
    assert sorted(b.key() for b in exported) == sorted(
        b.key() for b in parse_battles(json.dumps(records), "clean_battle.json")
    )
    assert {b.voter for b in exported} == {f"arena_user_{i}" for i in range(7)}  # from judge
    # The export imports as is (nothing new), and as a JSON list too.
    as_list = run_cli("votes", "export", "--format", "json", env=cli_env)
    assert json.loads(as_list.stdout)[0].keys() >= {"model_a", "winner", "tstamp", "run_id"}
    back = run_cli("votes", "import", str(out), env=cli_env)
    assert "imported 0 battles; 300 were here already" in back.stderr

    board = run_cli("leaderboard", "--bootstrap", "20", "--json", env=cli_env)
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)
    assert rows[0]["model"] == "vicuna-13b"
    assert all(set(r) >= JSON_FIELDS for r in rows)
    assert all(r["ci_low"] <= r["rating"] <= r["ci_high"] for r in rows)
    assert sum(r["battles"] for r in rows) == 600  # each battle counts for both models
    # No answer lengths in a clean-battle dump: no length-controlled rating, and it says so.
    assert all(r["rating_length_controlled"] is None for r in rows)
    assert "no battle has both answer lengths" in board.stderr
    text = run_cli("leaderboard", "--bootstrap", "20", env=cli_env)
    assert text.stdout.splitlines()[0].split()[:3] == ["rank", "model", "rating"]
    assert "vicuna-13b" in text.stdout


def test_a_malformed_file_names_the_line_and_field_and_imports_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    lines = [json.dumps(r) for r in fastchat_records(3)]
    bad = json.loads(lines[2]) | {"winner": "model_c"}
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([*lines[:2], json.dumps(bad)]) + "\n")
    proc = run_cli("votes", "import", str(path), env=cli_env)
    assert proc.returncode == 2
    assert f"error: {path} line 3: field 'winner'" in proc.stderr
    export = run_cli("votes", "export", env=cli_env)
    assert export.stdout == "" and "exported 0 battles" in export.stderr
    board = run_cli("leaderboard", "--json", env=cli_env)
    assert board.returncode == 0 and json.loads(board.stdout) == []
