"""The arena's pages through AppTest (tiny models in real workers, a real SQLite database): blind
votes on Compare, a named vote on a History run page, the Leaderboard with data and without."""

from __future__ import annotations

import re
from typing import Any

from qwen_dash.views.leaderboard import GET_REAL_WEIGHTS
from tests.test_pages import LABELS, QWEN3, QWEN25, _errors, _send, seed_run


def _plain(markdown: str) -> str:
    """Text as a reader sees it: pages escape text for Markdown (backslashes, word joiners)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def _frame(at: Any, column: str) -> Any:
    """The first table on the page with this column (AppTest keeps no key on a dataframe)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _subheaders(at: Any) -> list[str]:
    return [_plain(h.value) for h in at.subheader]


def test_blind_compare_hides_names_until_the_vote_then_reveals_them(app, ui_store) -> None:
    at = app()
    assert at.toggle(key="blind").value is True  # blind by default
    at = _send(at, "Which is better?", blind=True)
    assert not _errors(at)
    live = at.session_state["live"]
    assert live.done and live.run_id is not None and live.hidden
    assert _subheaders(at)[:2] == ["Model A", "Model B"]
    # Names appear only where models are listed (sidebar, settings), never on an answer.
    main = at.main
    shown = " ".join(_plain(str(e.value)) for e in [*main.caption, *main.info, *main.warning])
    assert not any(name in shown for name in LABELS.values()), shown
    assert at.metric.len == 0  # every metric hidden until the vote
    assert any("Hidden until you vote" in _plain(i.value) for i in at.info)
    # One note that the weights are random, for the whole comparison, not per column.
    assert sum("Random weights (tiny)" in _plain(w.value) for w in at.warning) == 1
    run = ui_store.get_run(live.run_id)
    sides = run.meta["arena"]["sides"]
    assert run.meta["arena"]["blind"] is True and sorted(sides) == sorted([QWEN25, QWEN3])

    at.button(key="vote-b").click()
    at = at.run()
    assert not _errors(at)
    vote = ui_store.get_vote(live.run_id, at.session_state["anonymous_voter"])
    assert vote is not None and vote.winner == "b" and vote.blind is True
    assert vote.sides == sides  # the side assignment the voter saw
    assert _subheaders(at)[:2] == [
        f"Model {s} · {LABELS[k]}" for s, k in zip("AB", sides, strict=True)
    ]
    assert at.metric.len == 12
    assert any("Your vote (blind): B" in _plain(c.value) for c in at.caption)
    # Changing the vote after the reveal records the change, named now.
    at.button(key="vote-tie").click()
    at = at.run()
    vote = ui_store.get_vote(live.run_id, at.session_state["anonymous_voter"])
    assert vote.winner == "tie" and vote.blind is False
    assert [(c.old_winner, c.new_winner) for c in vote.changes] == [("b", "tie")]


def test_a_history_run_page_takes_a_named_vote(app, ui_store) -> None:
    run_id = seed_run(ui_store, "vote later")
    at = app("history", run=str(run_id))
    at.sidebar.text_input(key="user").input("Ana <b>")
    at.button(key="vote-a").click()
    at = at.run()
    assert not _errors(at)
    vote = ui_store.get_vote(run_id, "Ana <b>")
    assert vote.winner == "a" and vote.blind is False and vote.sides == [QWEN25, QWEN3]
    table = _frame(at, "Voter")
    assert table["Voter"].tolist() == ["Ana <b>"]  # a voter's name is data, never markup
    assert table["Verdict"].tolist() == [f"A ({LABELS[QWEN25]}) is better"]


def test_leaderboard_empty_state_says_how_to_get_real_weights(app) -> None:
    at = app("leaderboard")
    assert not _errors(at)
    infos = [_plain(i.value) for i in at.info]
    assert any("No votes yet" in i for i in infos)
    assert GET_REAL_WEIGHTS in infos


def _vote(store: Any, run_id: int, winner: str, voter: str = "ana", blind: bool = True) -> None:
    store.cast_vote(run_id, winner, sides=[QWEN25, QWEN3], voter=voter, blind=blind)


def test_leaderboard_leaves_out_random_weights_unless_asked(app, ui_store) -> None:
    for i, winner in enumerate(["a", "a", "b", "tie"]):
        _vote(ui_store, seed_run(ui_store, f"tiny {i}"), winner)
    at = app("leaderboard")
    assert not _errors(at)
    assert any("No battle matches" in _plain(i.value) for i in at.info)
    assert any("random-weight answers" in t.value for t in at.text)
    at.toggle(key="l_random").set_value(True)
    at = at.run()
    assert not _errors(at)
    table = _frame(at, "Length-controlled")
    assert table["Model"].tolist() == [LABELS[QWEN25], LABELS[QWEN3]]
    assert table["Battles"].tolist() == [4, 4] and table["Wins"].tolist() == [2, 1]
    assert table["Rank"].tolist() == [1, 1]  # four votes separate nothing


def test_leaderboard_rates_blind_votes_and_puts_cost_beside_them(app, ui_store) -> None:
    runs = [
        seed_run(ui_store, f"real {i}", source="hub", mode="isolated", decode_tps=30.0 + i)
        for i in range(6)
    ]
    for run_id, winner in zip(runs, ["b", "b", "b", "a", "tie", "both_bad"], strict=True):
        _vote(ui_store, run_id, winner)
    _vote(ui_store, runs[0], "a", voter="bo", blind=False)  # named: not in the headline
    at = app("leaderboard")
    assert not _errors(at)
    table = _frame(at, "Length-controlled")
    assert table["Model"].tolist() == [LABELS[QWEN3], LABELS[QWEN25]]
    assert table["Battles"].tolist() == [6, 6] and table["Both bad"].tolist() == [1, 1]
    assert any("named (not blind) votes are left out" in t.value for t in at.text)
    which = _frame(at, "Decode (median)")
    assert which["Decode (median)"].tolist() == ["32.5 tok/s", "32.5 tok/s"]
    assert which["Isolated answers"].tolist() == [6, 6]
    charts = [c.proto.id for c in at.get("plotly_chart")]
    assert len(charts) == 5  # ratings, speed, win rate, counts, online Elo
    at.toggle(key="l_blind").set_value(False)
    at = at.run()
    assert _frame(at, "Length-controlled")["Battles"].tolist() == [7, 7]
