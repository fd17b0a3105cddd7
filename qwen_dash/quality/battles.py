"""The battle interchange format: FastChat's clean-battle records plus our run_id and voter.

One record per vote: model_a, model_b, winner (model_a / model_b / tie / tie (bothbad)),
tstamp (unix seconds), anony, question_id, turn, and our optional run_id and voter. Files are a
JSON list or JSON Lines. Parsing is all-or-nothing: one bad record raises ``BattleFormatError``
naming the file, the line (JSON Lines) or item index (JSON list) and the field, and nothing is
returned, so a half-imported file never ends up in the ratings. Unknown fields are ignored, so a
FastChat export (conversation_a, language, ...) imports as is; its ``judge`` fills ``voter``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import pandas as pd

from qwen_dash.core.arena import BATTLE_RECORD_FIELDS, TO_FASTCHAT, record_key

WINNERS = tuple(TO_FASTCHAT.values())  # model_a, model_b, tie, tie (bothbad)
FIELDS = BATTLE_RECORD_FIELDS
REQUIRED = ("model_a", "model_b", "winner", "tstamp", "anony", "question_id", "turn")


class BattleFormatError(ValueError):
    """A battle file that cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class Battle:
    """One pairwise vote, in FastChat's clean-battle shape."""

    model_a: str
    model_b: str
    winner: str
    tstamp: float
    anony: bool
    question_id: str
    turn: int
    run_id: int | None = None
    voter: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready record, fields in a fixed order."""
        return asdict(self)

    def key(self) -> str:
        """Idempotency key: a stable hash of the whole normalised record.

        Equal votes give equal keys whatever their JSON spelling (1700000000 or 1700000000.0,
        field order), so importing the same file twice can add nothing.
        """
        return record_key(self.to_record())


class _FieldError(Exception):
    """A field that fails validation; the caller adds the file and line."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"field {name!r}: {problem}")


def _text(record: Mapping[str, Any], name: str) -> str:
    """A non-empty string."""
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(name, f"must be a non-empty string; got {value!r}")
    return value


def _optional_text(record: Mapping[str, Any], name: str) -> str | None:
    """A non-empty string or null."""
    return None if record.get(name) is None else _text(record, name)


def _winner(record: Mapping[str, Any]) -> str:
    """One of FastChat's four winner values."""
    value = record.get("winner")
    if value not in WINNERS:
        raise _FieldError("winner", f"must be one of {', '.join(WINNERS)}; got {value!r}")
    return str(value)


def _tstamp(record: Mapping[str, Any]) -> float:
    """Unix seconds: a finite, non-negative number (not a bool, not a string)."""
    value = record.get("tstamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FieldError("tstamp", f"must be unix seconds as a number; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise _FieldError("tstamp", f"must be finite and not negative; got {value!r}")
    return float(value)


def _integer(record: Mapping[str, Any], name: str, minimum: int) -> int:
    """A whole number at least ``minimum`` (bools are not numbers here)."""
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _FieldError(name, f"must be an integer >= {minimum}; got {value!r}")
    return value


def _optional_integer(record: Mapping[str, Any], name: str, minimum: int) -> int | None:
    """A whole number at least ``minimum``, or null."""
    return None if record.get(name) is None else _integer(record, name, minimum)


def _anony(record: Mapping[str, Any]) -> bool:
    """Whether the voter saw the models' names hidden."""
    value = record.get("anony")
    if not isinstance(value, bool):
        raise _FieldError("anony", f"must be true or false; got {value!r}")
    return value


def battle_from_record(record: Any) -> Battle:
    """Validate one decoded record; raises ``_FieldError`` naming the first bad field."""
    if not isinstance(record, dict):
        raise _FieldError("(record)", f"must be a JSON object; got {type(record).__name__}")
    for name in REQUIRED:
        if name not in record:
            raise _FieldError(name, "missing")
    model_a = _text(record, "model_a")
    model_b = _text(record, "model_b")
    if model_a == model_b:
        raise _FieldError("model_b", f"must differ from model_a; both are {model_a!r}")
    voter = record.get("voter", record.get("judge"))
    return Battle(
        model_a=model_a,
        model_b=model_b,
        winner=_winner(record),
        tstamp=_tstamp(record),
        anony=_anony(record),
        question_id=_text(record, "question_id"),
        turn=_integer(record, "turn", 1),
        run_id=_optional_integer(record, "run_id", 0),
        voter=_optional_text({"voter": voter}, "voter"),
    )


def _parse_list(text: str, source_name: str) -> list[Battle]:
    """A JSON list: errors name the item index (and the line for invalid JSON)."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise BattleFormatError(
            f"{source_name} line {err.lineno}: invalid JSON: {err.msg}"
        ) from err
    if not isinstance(items, list):
        raise BattleFormatError(f"{source_name}: must be a JSON list or JSON Lines")
    battles = []
    for index, item in enumerate(items):
        try:
            battles.append(battle_from_record(item))
        except _FieldError as err:
            raise BattleFormatError(f"{source_name} item {index}: {err}") from None
    return battles


def _parse_lines(text: str, source_name: str) -> list[Battle]:
    """JSON Lines: one record per line, blank lines skipped, errors name the 1-based line."""
    battles = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            battles.append(battle_from_record(json.loads(line)))
        except json.JSONDecodeError as err:
            where = f"{source_name} line {number}"
            raise BattleFormatError(f"{where}: invalid JSON: {err.msg}") from None
        except _FieldError as err:
            raise BattleFormatError(f"{source_name} line {number}: {err}") from None
    return battles


def parse_battles(text: str, source_name: str) -> list[Battle]:
    """Every battle in ``text`` (a JSON list or JSON Lines, detected), or an error and none.

    A text starting with ``[`` is a JSON list; anything else is read as JSON Lines.
    """
    if text.lstrip().startswith("["):
        return _parse_list(text, source_name)
    return _parse_lines(text, source_name)


def dump_battles(battles: Iterable[Battle], fmt: Literal["jsonl", "json"] = "jsonl") -> str:
    """Battles as JSON Lines (one record a line) or an indented JSON list; parse reads both."""
    records = [b.to_record() for b in battles]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=1) + "\n"
    raise ValueError(f"fmt must be 'jsonl' or 'json'; got {fmt!r}")


def battles_frame(battles: Iterable[Battle]) -> pd.DataFrame:
    """The battles as the DataFrame the ratings module takes (one row each, all fields)."""
    return pd.DataFrame([b.to_record() for b in battles], columns=list(FIELDS))
