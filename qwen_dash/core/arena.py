"""Arena vocabulary every layer shares: verdicts, FastChat's winner names, the idempotency key of
a battle record, and which weights sources give random text.

A *vote* is one person's verdict on one run; a *battle* is one pair of models and who won. A vote
on two models is one battle; a vote on more is one battle per pair (the picked model beats each of
the others; a tie or "all bad" ties every pair).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Side letters as the Compare page shows them (Model A, Model B, ...), up to four models.
SIDE_LETTERS = ("a", "b", "c", "d")
TIE = "tie"
BOTH_BAD = "both_bad"
# What a vote can say: one side is best, or a tie, or all answers are bad.
VOTE_WINNERS = (*SIDE_LETTERS, TIE, BOTH_BAD)
# What one battle (a pair) can say.
BATTLE_WINNERS = ("a", "b", TIE, BOTH_BAD)
# The same four, as FastChat's clean battles spell them.
TO_FASTCHAT = {"a": "model_a", "b": "model_b", TIE: "tie", BOTH_BAD: "tie (bothbad)"}
FROM_FASTCHAT = {v: k for k, v in TO_FASTCHAT.items()}
# A battle as it is exported and imported: FastChat's clean-battle record, plus our run id and
# voter. The store writes it, quality/battles.py parses it: one list for both.
BATTLE_RECORD_FIELDS = (
    "model_a",
    "model_b",
    "winner",
    "tstamp",
    "anony",
    "question_id",
    "turn",
    "run_id",
    "voter",
)
# Weights that produce random text: votes on their answers rate noise.
RANDOM_SOURCES = frozenset({"twin", "tiny"})
# Where a vote row came from.
VOTE_ORIGINS = ("local", "import")


def side_label(index: int) -> str:
    """'Model A' for side 0, 'Model B' for side 1, ..."""
    return f"Model {SIDE_LETTERS[index].upper()}"


def record_key(record: Mapping[str, Any]) -> str:
    """Idempotency key of one battle record (FastChat's fields plus run_id and voter): a stable
    hash of the whole normalised record. Equal battles give equal keys whatever their JSON
    spelling (1700000000 or 1700000000.0, field order)."""
    normal = dict(record)
    normal["tstamp"] = float(normal["tstamp"])
    text = json.dumps(normal, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def pair_battles(sides: list[str], winner: str) -> list[tuple[str, str, str]]:
    """The battles one vote stands for: (model_a, model_b, battle winner) per pair.

    Two sides: the vote itself. More: the picked side beats each other side (it is on side a of
    each of its battles); a tie or "both bad" ties / both-bads every pair.
    """
    if winner not in VOTE_WINNERS:
        raise ValueError(f"a vote is one of {', '.join(VOTE_WINNERS)}; got {winner!r}")
    if len(sides) < 2 or len(set(sides)) != len(sides):
        raise ValueError(f"a vote needs two or more different models; got {sides}")
    if winner in SIDE_LETTERS:
        best = SIDE_LETTERS.index(winner)
        if best >= len(sides):
            raise ValueError(f"side {winner!r} does not exist with {len(sides)} models")
        if len(sides) == 2:
            return [(sides[0], sides[1], winner)]
        return [(sides[best], other, "a") for i, other in enumerate(sides) if i != best]
    return [
        (sides[i], sides[j], winner) for i in range(len(sides)) for j in range(i + 1, len(sides))
    ]
