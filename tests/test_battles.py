"""The battle interchange format: parse both shapes, round trip, precise all-or-nothing errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qwen_dash.quality.battles import (
    Battle,
    BattleFormatError,
    battles_frame,
    dump_battles,
    parse_battles,
)


def record(**changes: Any) -> dict[str, Any]:
    """A valid FastChat-shaped record, with ``changes`` applied (None deletes a field)."""
    base: dict[str, Any] = {
        "model_a": "qwen2.5-0.5b",
        "model_b": "qwen3-0.6b",
        "winner": "model_a",
        "tstamp": 1700000000.5,
        "anony": True,
        "question_id": "q-1",
        "turn": 1,
        "run_id": 7,
        "voter": "alice",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def jsonl(*records: dict[str, Any]) -> str:
    """Records as JSON Lines."""
    return "".join(json.dumps(r) + "\n" for r in records)


def test_jsonl_parses_every_record() -> None:
    text = jsonl(record(), record(winner="tie (bothbad)", turn=2, run_id=None, voter=None))
    battles = parse_battles(text, "votes.jsonl")
    assert [b.winner for b in battles] == ["model_a", "tie (bothbad)"]
    assert battles[1].run_id is None and battles[1].voter is None
    assert battles[0] == Battle(
        "qwen2.5-0.5b", "qwen3-0.6b", "model_a", 1700000000.5, True, "q-1", 1, 7, "alice"
    )


def test_json_list_parses_and_fastchat_extras_are_ignored() -> None:
    extras = {"judge": "arena_user_9", "conversation_a": [], "language": "en"}
    fastchat = record(voter=None, run_id=None, **extras)
    battles = parse_battles(json.dumps([record(), fastchat]), "votes.json")
    assert len(battles) == 2
    assert battles[1].voter == "arena_user_9"


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_dump_then_parse_round_trips(fmt: str) -> None:
    battles = parse_battles(jsonl(record(), record(winner="tie", anony=False)), "in.jsonl")
    assert parse_battles(dump_battles(battles, fmt=fmt), f"out.{fmt}") == battles  # type: ignore[arg-type]


def test_blank_lines_are_skipped_but_still_counted() -> None:
    text = jsonl(record()) + "\n" + json.dumps(record(winner="left")) + "\n"
    with pytest.raises(BattleFormatError, match=r"^votes\.jsonl line 3: field 'winner'"):
        parse_battles(text, "votes.jsonl")


@pytest.mark.parametrize(
    ("bad", "field", "detail"),
    [
        (record(winner=None), "winner", "missing"),
        (record(question_id=None), "question_id", "missing"),
        (
            record(winner="left"),
            "winner",
            "must be one of model_a, model_b, tie, tie (bothbad); got 'left'",
        ),
        (record(tstamp="yesterday"), "tstamp", "must be unix seconds as a number"),
        (record(tstamp=True), "tstamp", "must be unix seconds as a number"),
        (record(turn=0), "turn", "must be an integer >= 1"),
        (record(anony="yes"), "anony", "must be true or false"),
        (record(model_b="qwen2.5-0.5b"), "model_b", "must differ from model_a"),
        (record(run_id="7"), "run_id", "must be an integer"),
    ],
)
def test_malformed_jsonl_record_names_file_line_and_field(
    bad: dict[str, Any], field: str, detail: str
) -> None:
    text = jsonl(record(), record(), bad, record())
    with pytest.raises(BattleFormatError) as err:
        parse_battles(text, "votes.jsonl")
    message = str(err.value)
    assert message.startswith(f"votes.jsonl line 3: field '{field}': ")
    assert detail in message


def test_malformed_json_list_item_names_the_index() -> None:
    text = json.dumps([record(), record(tstamp="noon")], indent=1)
    with pytest.raises(BattleFormatError, match=r"^votes\.json item 1: field 'tstamp': "):
        parse_battles(text, "votes.json")


def test_invalid_json_on_line_n_names_the_line() -> None:
    text = jsonl(record(), record()) + '{"model_a": "x", \n'
    with pytest.raises(BattleFormatError, match=r"^votes\.jsonl line 3: invalid JSON"):
        parse_battles(text, "votes.jsonl")


def test_invalid_json_list_names_the_line() -> None:
    text = '[\n{"model_a": "x"},\n{oops}\n]'
    with pytest.raises(BattleFormatError, match=r"^votes\.json line 3: invalid JSON"):
        parse_battles(text, "votes.json")


def test_non_object_record_is_rejected() -> None:
    expected = r"line 2: field '\(record\)': must be a JSON object"
    with pytest.raises(BattleFormatError, match=expected):
        parse_battles(jsonl(record()) + "[1, 2]\n", "votes.jsonl")


def test_empty_text_is_no_battles() -> None:
    assert parse_battles("", "empty.jsonl") == []
    assert parse_battles("[]", "empty.json") == []


def test_keys_equal_for_equal_records_and_differ_otherwise() -> None:
    first = parse_battles(jsonl(record(tstamp=1700000000)), "a.jsonl")[0]
    same = parse_battles(json.dumps([dict(reversed(record(tstamp=1700000000.0).items()))]), "b")
    other = parse_battles(jsonl(record(winner="model_b")), "c.jsonl")[0]
    assert first.key() == same[0].key()
    assert first.key() != other.key()
    assert len({b.key() for b in parse_battles(jsonl(record(), record()), "d.jsonl")}) == 1


def test_dump_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="fmt"):
        dump_battles([], fmt="csv")  # type: ignore[arg-type]


def test_frame_has_the_columns_ratings_read() -> None:
    frame = battles_frame(parse_battles(jsonl(record(), record(winner="tie")), "v.jsonl"))
    assert list(frame["winner"]) == ["model_a", "tie"]
    assert {"model_a", "model_b", "winner", "tstamp"} <= set(frame.columns)
