"""Page tests: each page of the app through Streamlit's AppTest (no browser), with tiny models in
real worker processes and a real SQLite database."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest, Settings

QWEN25, QWEN3 = "qwen2.5-0.5b-instruct", "qwen3-0.6b"
LABELS = {QWEN25: "Qwen2.5-0.5B-Instruct", QWEN3: "Qwen3-0.6B"}


def _result(key: str, text: str, source: str = "tiny", mode: str = "concurrent", **kw: Any):
    values: dict[str, Any] = {
        "ttft_ms": 40.0,
        "e2e_ms": 400.0,
        "decode_tps": 30.0,
        "n_in": 20,
        "n_out": 12,
        "rss_peak_bytes": 400 * 2**20,
    }
    values.update(kw)
    return GenerationResult(
        model_key=key, hf_id=f"Qwen/{key}", source=source, text=text, mode=mode, **values
    )


def seed_run(
    store: Any,
    prompt: str,
    texts: tuple[str, str] = ("the cat sat", "the dog sat"),
    source: str = "tiny",
    mode: str = "concurrent",
    when: datetime | None = None,
    settings: Settings | None = None,
    **kw: Any,
) -> int:
    settings = {QWEN25: settings or Settings(), QWEN3: settings or Settings()}
    request = CompareRequest.from_prompt(prompt, settings, mode=mode)
    results = {
        QWEN25: _result(QWEN25, texts[0], source, mode, **kw),
        QWEN3: _result(QWEN3, texts[1], source, mode, **kw),
    }
    return store.save_comparison(request, results, created_at=when)


def _codes(block: Any) -> list[str]:
    return [c.value for c in block.get("code")]


def _errors(at: Any) -> list[str]:
    return [_plain(e.value) for e in at.error] + [str(e.value) for e in at.exception]


def _plain(markdown: str) -> str:
    """Text as a reader sees it: the pages escape user text for Markdown (backslashes)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


# ---- Compare -------------------------------------------------------------------------------------


def _send(at: Any, prompt: str, max_new_tokens: int = 8, blind: bool = False) -> Any:
    """Send a prompt; named (Blind off) unless asked, so the columns show names and metrics."""
    at.toggle(key="blind").set_value(blind)
    at.text_area(key="prompt").input(prompt)
    at.number_input(key="max_new_tokens").set_value(max_new_tokens)
    at.button(key="run").click()
    return at.run()


def test_compare_streams_both_answers_logs_the_run_and_links_to_it(app, ui_store) -> None:
    at = app()
    assert not _errors(at)
    assert at.text_area(key="prompt").label == "Prompt"
    at = _send(at, "Hello <b>there</b> [x](http://evil)")
    assert not _errors(at)
    live = at.session_state["live"]
    assert live.done and live.run_id is not None
    for key in (QWEN25, QWEN3):
        column = live.columns[key]
        assert column.result is not None and column.result.status == "ok"
        assert column.answer.strip(), f"{key} gave no text"
    # Both answers are on the page, literally (st.code: never HTML or Markdown).
    codes = [c.value for c in at.code]
    assert codes.count("Hello <b>there</b> [x](http://evil)") == 1
    for key in (QWEN25, QWEN3):
        assert live.columns[key].answer in codes
    # Each column's metrics: six per model, with units; nothing measured shows as 0.
    labels = [m.label for m in at.metric]
    for name in ("TTFT", "Decode", "End to end", "Tokens in", "Tokens out", "Peak memory"):
        assert labels.count(name) == 2, labels
    values = {m.label: m.value for m in at.metric}
    assert values["Tokens out"] == "8"
    assert values["Peak memory"].endswith("MiB")
    assert all(m.value not in ("0", "0 ms", "0 B") for m in at.metric)
    # The run is logged and the page links to its History page.
    run = ui_store.get_run(live.run_id)
    assert run.prompt == "Hello <b>there</b> [x](http://evil)"
    assert [g.model_key for g in run.generations] == [QWEN25, QWEN3]
    links = at.get("page_link")
    assert any(f"run #{live.run_id}" in link.proto.label for link in links)
    assert any(f"run={live.run_id}" in str(link.proto) for link in links), links
    # The prompt box is cleared for a follow-up.
    assert at.text_area(key="prompt").value == ""
    assert at.text_area(key="prompt").label.startswith("Follow-up message")


def test_a_follow_up_sends_each_model_its_own_earlier_answer(app, ui_store) -> None:
    at = _send(app(), "First question")
    first = at.session_state["live"]
    answers = {k: first.columns[k].answer for k in (QWEN25, QWEN3)}
    at = _send(at, "Second question")
    assert not _errors(at)
    second = at.session_state["live"]
    assert second.run_id != first.run_id
    run = ui_store.get_run(second.run_id)
    assert run.turn == 1 and run.conversation_id == first.conversation_id
    for key in (QWEN25, QWEN3):
        history = run.meta["histories"][key]
        assert history == [
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": answers[key]},
        ]
    # Both turns are on the page: the earlier answers above the new ones.
    codes = [c.value for c in at.code]
    assert "First question" in codes and "Second question" in codes
    # A new conversation starts over.
    at.button(key="new_conversation").click()
    at = at.run()
    assert "live" not in at.session_state
    assert at.text_area(key="prompt").label == "Prompt"
    # The follow-up's own page shows the conversation as each model saw it.
    page = app("history", run=str(second.run_id))
    assert [e.label for e in page.expander if "Earlier" in e.label] == [
        "Earlier turns of this conversation (1)"
    ]
    shown = [c.value for c in page.code]
    assert all(answers[k] in shown for k in (QWEN25, QWEN3))
    assert any("turn 2 of a conversation" in _plain(c.value) for c in page.caption)


def test_an_empty_prompt_is_refused_with_a_message(app) -> None:
    at = app()
    at.button(key="run").click()
    at = at.run()
    assert any("prompt is empty" in _plain(e.value) for e in at.error)
    assert "live" not in at.session_state


def test_settings_start_at_each_models_recommended_sampling(app) -> None:
    at = app()
    assert at.number_input(key=f"s:{QWEN25}:temperature").value == 0.7
    assert at.number_input(key=f"s:{QWEN25}:repetition_penalty").value == 1.1
    assert at.number_input(key=f"s:{QWEN3}:top_p").value == 0.8
    at.toggle(key="thinking").set_value(True)
    at = at.run()
    # Qwen3's thinking-mode recommendation; Qwen2.5 cannot think and keeps its own.
    assert at.number_input(key=f"s:{QWEN3}:temperature").value == 0.6
    assert at.number_input(key=f"s:{QWEN3}:top_p").value == 0.95
    assert at.number_input(key=f"s:{QWEN25}:temperature").value == 0.7


def test_a_twin_column_says_its_weights_are_random(app) -> None:
    at = app()
    at.toggle(key="blind").set_value(False)  # named: each column has its banner
    at = at.run()
    warnings = [_plain(w.value) for w in at.warning]
    assert sum("random weights" in w for w in warnings) == 2, warnings


# ---- History -------------------------------------------------------------------------------------


def test_history_lists_runs_newest_first_and_searches(app, ui_store) -> None:
    now = datetime.now(UTC)
    seed_run(ui_store, "older banana prompt", when=now - timedelta(hours=2))
    newest = seed_run(ui_store, "newest apple prompt", when=now)
    at = app("history")
    assert not _errors(at)
    table = at.dataframe[0].value
    assert list(table["prompt"]) == ["newest apple prompt", "older banana prompt"]
    assert table["run"].iloc[0] == newest
    at.text_input(key="h_q").input("BANANA")
    at = at.run()
    assert list(at.dataframe[0].value["prompt"]) == ["older banana prompt"]
    at.text_input(key="h_q").input("no such words")
    at = at.run()
    assert any("No run matches" in _plain(i.value) for i in at.info)


def test_history_empty_state(app) -> None:
    at = app("history")
    assert any("No runs logged yet" in _plain(i.value) for i in at.info)


def test_a_run_page_opens_by_url_with_outputs_metrics_and_environment(app, ui_store) -> None:
    run_id = seed_run(ui_store, "Compare <i>these</i>", texts=("alpha beta", "alpha gamma"))
    at = app("history", run=str(run_id))
    assert not _errors(at)
    assert _plain(at.title[0].value) == f"Run #{run_id}"
    codes = _codes(at.main)
    assert "Compare <i>these</i>" in codes and "alpha beta" in codes and "alpha gamma" in codes
    metrics = at.dataframe[0].value
    assert list(metrics.columns[:2]) == [LABELS[QWEN25], LABELS[QWEN3]]
    assert metrics.loc["TTFT", LABELS[QWEN25]] == "40 ms"
    assert metrics.loc["CUDA peak allocated", LABELS[QWEN3]] == "n/a"  # not measured: not 0
    # The word diff marks what differs, escaped.
    at.toggle(key="diff").set_value(True)
    at = at.run()
    shown = " ".join(_plain(m.value) for m in at.markdown)
    assert ":red-background[beta]" in shown and ":green-background[gamma]" in shown


def test_a_run_page_saves_tags_and_notes_and_deletes(app, ui_store) -> None:
    other = seed_run(ui_store, "tagged before")
    ui_store.set_tags(other, ["demo", "regression"])
    run_id = seed_run(ui_store, "tag me")
    at = app("history", run=str(run_id))
    at.multiselect[0].set_value(["demo", "regression"])
    at.text_area[0].input("looked fine")
    at.button(key="save_notes").click()
    at = at.run()
    run = ui_store.get_run(run_id)
    assert run.tags == ["demo", "regression"] and run.notes == "looked fine"
    at.button(key="delete").click()
    at = at.run()
    assert ui_store.get_run(run_id) is None
    assert "run" not in at.query_params


def test_rerun_runs_the_same_request_again_on_the_compare_page(app, ui_store) -> None:
    chosen = Settings(temperature=0.3, top_p=0.9, max_new_tokens=6, seed=7)
    run_id = seed_run(ui_store, "again please", mode="isolated", settings=chosen)
    at = app("history", run=str(run_id))
    at.button(key="rerun").click()
    at = at.run()
    assert not _errors(at)
    assert _plain(at.title[0].value) == "Compare"
    live = at.session_state["live"]
    assert live.done
    again = ui_store.get_run(live.run_id)
    old = ui_store.get_run(run_id)
    assert again.meta["rerun_of"] == run_id
    assert (again.prompt, again.mode, again.settings) == (old.prompt, old.mode, old.settings)
    assert all(g.n_out == 6 for g in again.generations)
    # The Compare page shows the settings that were used.
    assert at.number_input(key=f"s:{QWEN3}:temperature").value == 0.3
    assert at.segmented_control(key="mode").value == "isolated"


def test_an_unknown_run_says_so(app) -> None:
    at = app("history", run="999")
    assert any("There is no run #999" in _plain(e.value) for e in at.error)


def test_history_offers_csv_and_json_lines_downloads(app, ui_store) -> None:
    seed_run(ui_store, "export me")
    at = app("history")
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["CSV", "JSON Lines"]


# ---- Trends --------------------------------------------------------------------------------------


def _figures(at: Any) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_trends_empty_state_is_helpful(app) -> None:
    at = app("trends")
    assert not _errors(at)
    assert any("Nothing to chart yet" in _plain(i.value) for i in at.info)
    assert not at.get("plotly_chart")


def test_trends_never_mix_twins_and_tiny_or_modes_in_one_series(app, ui_store) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        seed_run(ui_store, f"t{i}", source="tiny", when=now - timedelta(days=i))
        seed_run(ui_store, f"w{i}", source="twin", mode="isolated", when=now - timedelta(days=i),
                 n_in=20 + 50 * i, rss_peak_bytes=(500 + 10 * i) * 2**20)  # fmt: skip
    at = app("trends")
    assert not _errors(at)
    figures = _figures(at)
    assert len(figures) == 4  # only the open tab is drawn: 4 trends
    for tab in ("Distributions", "A - B", "Memory vs input"):
        at.session_state["t_tab"] = tab
        at = at.run()
        assert not _errors(at)
        figures += _figures(at)
    assert len(figures) >= 14  # 4 trends, 4 distributions, output length, 4 paired, memory
    names = {t.get("name") for f in figures for t in f["data"] if t.get("name")}
    assert "Qwen3-0.6B · tiny · concurrent" in names
    assert "Qwen3-0.6B · twin · isolated" in names
    assert not any("tiny" in n and "twin" in n for n in names)
    titles = [f["layout"]["title"]["text"] for f in figures]
    assert any(t.startswith("TTFT: median") for t in titles)
    assert any("Qwen2.5-0.5B-Instruct - Qwen3-0.6B" in t for t in titles)
    assert "Peak memory against input tokens" in titles


# ---- Models --------------------------------------------------------------------------------------


def test_models_page_has_one_column_per_model_beside_the_quoted_figures(app, ui_store) -> None:
    seed_run(ui_store, "measure me", mode="isolated", decode_tps=33.0)
    speed = CompareRequest.raw(
        "我" * 16, {QWEN25: Settings(max_new_tokens=8, min_new_tokens=8)}, 16
    )
    bench = _result(QWEN25, "", "tiny", "isolated", n_in=16, n_out=8, gen_tps=20.0, total_tps=60.0,
                    decode_tps=99.0, device="Test CPU", dtype="float32")  # fmt: skip
    ui_store.save_comparison(speed, {QWEN25: bench}, kind="benchmark", tags=["bench-speed"])
    at = app("models")
    assert not _errors(at)
    tables = [t.value for t in at.table]
    server, measured, seed, official = tables[:4]
    assert list(server.columns) == [LABELS[QWEN25], LABELS[QWEN3]]
    assert server.loc["Context window", LABELS[QWEN3]] == "32,768 tokens"
    assert server.loc["License", LABELS[QWEN25]] == "Apache-2.0"
    assert server.loc["KV cache per token", LABELS[QWEN25]].startswith("12,288 B (bf16)")
    assert server.loc["KV cache per token", LABELS[QWEN3]].startswith("114,688 B (bf16)")
    assert measured.loc["Isolated (tiny): decode speed (median)", LABELS[QWEN3]] == "33.0 tok/s"
    assert seed.loc["Throughput", LABELS[QWEN25]] == "47.16 tokens/s"
    assert official.loc["Formula", LABELS[QWEN3]] == "(prompt + generated tokens) / time"
    notes = " ".join(_plain(i.value) for i in at.info)
    assert "not comparable" in notes and "A100" in notes and "H20" in notes
    # The benchmark run is in the speed table, not in the answers' medians.
    assert measured.loc["Isolated (tiny): answers", LABELS[QWEN25]] == "1"
    (speed_table,) = [d.value for d in at.dataframe]
    here = speed_table[speed_table["Figures from"].str.startswith("measured here")]
    assert list(here["Input tokens"]) == [16] and list(here["Model"]) == [LABELS[QWEN25]]
    assert here.iloc[0]["Generated / time (tok/s)"] == "20.00"
    assert here.iloc[0]["Hardware · software"] == "Test CPU · float32"
    assert "**Fair:**" in notes and "**Not fair:**" in notes


# ---- bad input and broken parts: a clear message, nothing lost ----------------------------------


def test_an_oversized_prompt_is_refused_with_the_limit(app) -> None:
    from qwen_dash.core.request import MAX_PROMPT_CHARS

    at = app()
    at = _send(at, "x" * (MAX_PROMPT_CHARS + 1))
    assert any(f"the limit is {MAX_PROMPT_CHARS:,}" in _plain(e.value) for e in at.error)
    assert "live" not in at.session_state


def test_an_unusable_database_is_named_compare_still_answers_and_the_run_lands_later(
    app, tmp_path, monkeypatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("where the database folder should be")
    path = blocker / "db" / "runs.sqlite3"
    monkeypatch.setenv("QWEN_DASH_DB_URL", f"sqlite:///{path}")
    at = app()
    warnings = [_plain(w.value) for w in at.warning]
    assert any("cannot be used right now" in w and "Cannot create" in w for w in warnings)
    at = _send(at, "Still answer me", max_new_tokens=3)
    live = at.session_state["live"]
    assert live.done and live.run_id is None  # never "Logged" for a run that is not saved
    assert all(c.result is not None and c.result.status == "ok" for c in live.columns.values())
    shown = [_plain(w.value) for w in at.warning]
    assert any("Not saved yet" in w and "kept" in w for w in shown), shown
    history = app("history")
    assert any("The database cannot be opened" in _plain(e.value) for e in history.error)
    # The database becomes usable: the kept run is retried and lands.
    blocker.unlink()
    deadline = time.monotonic() + 30
    while live.run_id is None:
        assert time.monotonic() < deadline, live.log_error
        time.sleep(0.2)
    from qwen_dash.store import open_store

    store = open_store(f"sqlite:///{path}")
    run = store.get_run(live.run_id)
    assert run is not None and run.prompt == "Still answer me"
    store.close()


def test_a_model_that_fails_to_load_says_why(app, monkeypatch) -> None:
    monkeypatch.setenv("QWEN_DASH_SOURCE", "local")  # no local folder: loading must fail
    monkeypatch.delenv("QWEN_DASH_LOCAL_DIR", raising=False)
    at = app()
    at = _send(at, "Hello", max_new_tokens=3)
    live = at.session_state["live"]
    assert live.done
    for column in live.columns.values():
        assert column.result.status == "error"
        assert "source 'local' needs a folder" in column.result.error
    shown = " ".join([_plain(e.value) for e in at.error] + [_plain(c.value) for c in at.caption])
    assert "failed to load" in shown and "needs a folder" in shown


def test_invalid_settings_block_send_with_the_reason_beside_it(app) -> None:
    at = app()
    at.number_input(key=f"s:{QWEN3}:temperature").set_value(1000.0)
    at = at.run()
    assert at.button(key="run").disabled
    # The reason is shown beside Send, even though the settings panel is closed.
    assert any("temperature must be between 0 and 2, got 1000" in e for e in _errors(at))
    assert at.number_input(key=f"s:{QWEN3}:temperature").value == 1000.0  # kept, not replaced
    at.number_input(key=f"s:{QWEN3}:temperature").set_value(0.5)
    at = at.run()
    assert not at.button(key="run").disabled and not _errors(at)


def test_an_unexpected_failure_is_a_clear_message_not_a_traceback(app, ui_store, monkeypatch):
    from qwen_dash.store import Store

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("SELECT secret_internal_detail FROM runs")

    monkeypatch.setattr(Store, "count_runs", broken)
    at = app("history")
    assert not at.exception  # no traceback reaches the page
    shown = " ".join(_errors(at))
    assert "Something went wrong on this page" in shown and "reference" in shown
    assert "secret_internal_detail" not in shown
