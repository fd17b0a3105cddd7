"""The dashboard's logic without streamlit: word diff, safe Markdown, a live comparison's column
state, conversations, charts and the Models table."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pandas as pd
import pytest

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import RequestError, Settings
from qwen_dash.core.specs import load_specs
from qwen_dash.engine import Event
from qwen_dash.views import charts, display
from qwen_dash.views.compare import ColumnState, Conversation, Turn, build_request, request_from_run
from qwen_dash.views.diff import side_markdown, similarity, tokens, word_diff
from qwen_dash.views.models import (
    BF16_BYTES,
    checkpoint_values,
    comparison_table,
    kv_ratio,
    storage_facts,
)
from qwen_dash.views.safe_text import escape_markdown
from qwen_dash.views.speed import (
    GEN,
    TABLE_COLUMNS,
    TOTAL,
    fairness_notes,
    speed_frame,
    speed_table,
)

QWEN25, QWEN3 = "qwen2.5-0.5b-instruct", "qwen3-0.6b"


# ---- diff ----------------------------------------------------------------------------------------


def test_tokens_keep_the_text_whole() -> None:
    text = "Hello,  world!\n\tNew line"
    assert "".join(tokens(text)) == text


def test_word_diff_marks_what_each_side_has_alone() -> None:
    segments = word_diff("the quick brown fox", "the slow brown fox jumps")
    ops = [(s.op, s.text.strip()) for s in segments if s.text.strip()]
    assert ("delete", "quick") in ops and ("insert", "slow") in ops
    assert ("insert", "jumps") in ops
    assert "".join(s.text for s in segments if s.op != "insert") == "the quick brown fox"
    assert "".join(s.text for s in segments if s.op != "delete") == "the slow brown fox jumps"


def test_similarity() -> None:
    assert similarity("", "") == 1.0
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("a b", "c d") == 0.0


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "[click](http://evil.example)",
        "![img](http://evil.example/x.png)",
        "www.evil.example and https://evil.example",
        ":red[colour] :material/home: :smile:",
        "$x^2$ and **bold** and `code`",
        "# heading\n> quote\n1. list\n- item\n    indented code",
        "<img src=x onerror=alert(1)>",
        "a | table |\n|---|",
    ],
)
def test_escaped_markdown_has_no_live_syntax(hostile: str) -> None:
    escaped = escape_markdown(hostile)
    # Every ASCII punctuation character is preceded by a backslash: nothing is syntax.
    unescaped = re.findall(r"(?<!\\)[!-/:-@\[-`{-~]", escaped.replace("\\\\", ""))
    assert [c for c in unescaped if c != "\\"] == []
    assert "<" not in escaped.replace("\\<", "")
    # Line structure is kept as hard breaks; no line starts with spaces (no code block).
    assert all(not line.startswith(" ") for line in escaped.split("  \n"))


def test_side_markdown_highlights_only_that_sides_words() -> None:
    segments = word_diff("keep <b>old</b>", "keep [new](x)")
    a, b = side_markdown(segments, "a"), side_markdown(segments, "b")
    assert a.startswith("keep ") and ":red-background[" in a and "green" not in a
    assert b.startswith("keep ") and ":green-background[" in b and "red" not in b
    assert "\\<b\\>old\\<\\/b\\>" in a
    assert "\\[new\\]\\(x\\)" in b
    with pytest.raises(ValueError):
        side_markdown(segments, "c")


# ---- display -------------------------------------------------------------------------------------


def test_unmeasured_reads_na_never_zero() -> None:
    assert display.fmt_metric("ttft_ms", None) == "n/a"
    assert display.fmt_metric("cuda_peak_alloc_bytes", None) == "n/a"
    assert display.fmt_metric("ttft_ms", 0.0) == "0.0 ms"
    assert display.fmt_metric("e2e_ms", 1290.0) == "1.29 s"
    assert display.fmt_metric("decode_tps", 34.24) == "34.2 tok/s"
    assert display.fmt_metric("peak_memory_bytes", 449 * 2**20) == "449 MiB"
    assert display.fmt_metric("n_out", 1234) == "1,234"


def test_random_weights_are_announced() -> None:
    assert "random weights" in (display.twin_warning("twin") or "").lower()
    assert "random weights" in (display.twin_warning("tiny") or "")
    assert display.twin_warning("hub") is None and display.twin_warning("local") is None


# ---- a live comparison's columns and conversations -----------------------------------------------


def test_column_state_follows_events_and_keeps_reasoning_apart() -> None:
    col = ColumnState(QWEN3)
    col.apply(Event(QWEN3, "queued"))
    assert col.state == "queued"
    col.apply(Event(QWEN3, "started"))
    parts = [("reasoning", "Let me"), ("reasoning", " think"), ("answer", ""), ("answer", "Hi")]
    for i, (part, text) in enumerate([*parts, ("answer", "!")]):
        col.apply(Event(QWEN3, "delta", text, part, n=i + 2, t_ms=10.0 * (i + 1)))
    assert col.state == "running"
    assert (col.reasoning, col.answer) == ("Let me think", "Hi!")
    assert col.has_reasoning and col.reasoning_tokens == 2 and col.reasoning_ms == 20.0
    result = GenerationResult(
        QWEN3, "Qwen/Qwen3-0.6B", "tiny", text="Hi!", reasoning="Let me think", n_think=4,
        token_times_ms=[5.0, 10.0, 20.0, 30.0, 40.0, 50.0],
    )  # fmt: skip
    col.apply(Event(QWEN3, "result", result=result))
    assert col.state == "done" and col.reasoning_tokens == 4 and col.reasoning_ms == 30.0


def test_a_column_without_thinking_has_no_reasoning() -> None:
    col = ColumnState(QWEN25)
    col.apply(Event(QWEN25, "delta", "Hello", "answer", n=1, t_ms=5.0))
    assert not col.has_reasoning and col.reasoning_tokens is None


def _result(key: str, text: str, status: str = "ok") -> GenerationResult:
    return GenerationResult(key, f"Qwen/{key}", "tiny", status=status, text=text)


def test_follow_ups_carry_each_models_own_answers_to_that_model() -> None:
    settings = {QWEN25: Settings(), QWEN3: Settings()}
    conversation = Conversation()
    first = build_request("Hi", settings, "  ", "concurrent", conversation)
    assert first.system_prompt is None and "histories" not in first.meta
    conversation.turns.append(
        Turn("Hi", {QWEN25: _result(QWEN25, "A1"), QWEN3: _result(QWEN3, "B1")})
    )
    conversation.turns.append(Turn("Again", {QWEN25: _result(QWEN25, "", "error"),
                                             QWEN3: _result(QWEN3, "B2")}))  # fmt: skip
    follow = build_request("More", settings, "Be brief", "isolated", conversation)
    sent_a = follow.chat_for(QWEN25)
    sent_b = follow.chat_for(QWEN3)
    assert sent_a == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "More"},
    ]
    assert [m["content"] for m in sent_b] == ["Be brief", "Hi", "B1", "Again", "B2", "More"]
    assert follow.prompt == "More" and follow.mode == "isolated"


def test_a_logged_run_becomes_the_same_request_again() -> None:
    run = SimpleNamespace(
        id=7,
        generations=[SimpleNamespace(model_key=QWEN25), SimpleNamespace(model_key=QWEN3)],
        settings={QWEN25: Settings(seed=3).to_dict(), QWEN3: Settings(thinking=True).to_dict()},
        messages=[{"role": "user", "content": "Q"}],
        prompt="Q",
        system_prompt="S",
        mode="isolated",
        meta={"histories": {QWEN25: [], QWEN3: []}},
    )
    request = request_from_run(run, [QWEN25, QWEN3])
    assert request.settings[QWEN25].seed == 3 and request.settings[QWEN3].thinking
    assert (request.prompt, request.system_prompt, request.mode) == ("Q", "S", "isolated")
    assert request.meta["rerun_of"] == 7
    with pytest.raises(RequestError, match="has not loaded"):
        request_from_run(run, [QWEN25])


# ---- charts and the Models table -----------------------------------------------------------------


def _row(bucket: str, model: str, source: str, mode: str, ttft: float) -> SimpleNamespace:
    stats = {f"{m}_{q}": ttft for m in ("ttft_ms", "e2e_ms", "decode_tps", "peak_memory_bytes")
             for q in ("p50", "p95", "mean")}  # fmt: skip
    return SimpleNamespace(
        bucket=pd.Timestamp(bucket, tz="UTC"),
        key={"model_key": model, "source": source, "mode": mode},
        count=3,
        stats=stats,
    )


def test_trend_series_separate_sources_and_modes() -> None:
    rows = [
        _row("2026-01-01", QWEN3, "twin", "isolated", 100.0),
        _row("2026-01-02", QWEN3, "twin", "isolated", 120.0),
        _row("2026-01-01", QWEN3, "hub", "isolated", 50.0),
        _row("2026-01-01", QWEN3, "twin", "concurrent", 200.0),
    ]
    frame = charts.trend_frame(rows, {QWEN3: "Qwen3-0.6B"})
    assert frame["series"].nunique() == 3
    fig = charts.trend_figure(frame, "ttft_ms")
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(legend) == [
        "Qwen3-0.6B · hub · isolated",
        "Qwen3-0.6B · twin · concurrent",
        "Qwen3-0.6B · twin · isolated",
    ]
    assert fig.layout.yaxis.range[1] > 200.0  # the top point is inside the plot


def test_memory_slope_per_input_token() -> None:
    frame = pd.DataFrame(
        {
            "series": ["a"] * 3 + ["b"],
            "n_in": [10, 20, 30, 10],
            "peak_memory_bytes": [1000.0, 2000.0, 3000.0, 5.0],
        }
    )
    slopes = charts.memory_slopes(frame).set_index("series")
    assert slopes.loc["a", "bytes_per_input_token"] == pytest.approx(100.0)
    assert pd.isna(slopes.loc["b", "bytes_per_input_token"])  # one prompt size: no slope


def test_models_table_columns_and_kv_ratio() -> None:
    specs = {k: s for k, s in load_specs().items() if k in (QWEN25, QWEN3)}
    info = {
        QWEN25: {"source": "twin", "n_params": 494_032_768, "dtype": "float32", "load_ms": 2500.0},
    }
    table = comparison_table(specs, info, charts.generations_frame([], {}))
    assert list(table.columns) == ["Qwen2.5-0.5B-Instruct", "Qwen3-0.6B"]
    server = table.xs("This server", level="section")
    assert server.loc["Parameters (counted)", "Qwen2.5-0.5B-Instruct"] == "494,032,768 (0.49B)"
    assert server.loc["Parameters (counted)", "Qwen3-0.6B"] == "n/a"  # not loaded yet
    assert server.loc["Load time", "Qwen2.5-0.5B-Instruct"] == "2.50 s"
    assert (
        "24,576 B (float32, as loaded)" in server.loc["KV cache per token", "Qwen2.5-0.5B-Instruct"]
    )
    assert kv_ratio(specs) == (
        "Qwen3-0.6B's KV cache grows 9.3 times faster per token than Qwen2.5-0.5B-Instruct's."
    )


# Published model.safetensors sizes (Hugging Face file listings, with their sha256): tensor data
# plus an 8-byte length and a JSON header of a few tens of kB.
PUBLISHED_CHECKPOINT_BYTES = {QWEN25: 988_097_824, QWEN3: 1_503_300_328}
TWIN_INFO = {
    QWEN25: {"n_params": 494_032_768, "n_params_non_embedding": 494_032_768 - 151_936 * 896},
    QWEN3: {"n_params": 596_049_920, "n_params_non_embedding": 596_049_920 - 151_936 * 1024},
}


@pytest.mark.parametrize("key", [QWEN25, QWEN3])
def test_twin_storage_is_the_real_bf16_checkpoints(key: str) -> None:
    spec = load_specs()[key]
    values = checkpoint_values(spec, TWIN_INFO[key])
    assert values is not None
    header = PUBLISHED_CHECKPOINT_BYTES[key] - BF16_BYTES * values
    assert 0 < header < 64_000  # computed tensor bytes = the published file, less its header
    fp32_cache = 4 * TWIN_INFO[key]["n_params"] + 10_000
    facts = storage_facts(spec, {**TWIN_INFO[key], "source": "twin", "storage_bytes": fp32_cache})
    expected = {QWEN25: "988 MB", QWEN3: "1.50 GB"}[key]
    assert facts["Storage on disk"].startswith(f"{expected} (bf16 safetensors, computed: 2 B x ")
    assert facts["Twin cache file (fp32, this server)"] == display.fmt_bytes_si(fp32_cache)


def test_storage_of_other_sources_is_their_files() -> None:
    spec = load_specs()[QWEN25]
    hub = storage_facts(spec, {**TWIN_INFO[QWEN25], "source": "hub", "storage_bytes": 988_097_824})
    assert hub == {"Storage on disk": "988 MB"}
    assert storage_facts(spec, {"source": "tiny"}) == {"Storage on disk": "n/a"}
    table = comparison_table(
        {QWEN25: spec},
        {QWEN25: {**TWIN_INFO[QWEN25], "source": "twin", "storage_bytes": 1_976_228_000}},
        charts.generations_frame([], {}),
    )
    server = table.xs("This server", level="section")
    assert server.loc["Storage on disk", "Qwen2.5-0.5B-Instruct"].startswith("988 MB (bf16")
    assert server.loc["Twin cache file (fp32, this server)", "Qwen2.5-0.5B-Instruct"] == "1.98 GB"


def _speed_row(key: str, n_in: int, gen: float, **kw: object) -> dict[str, object]:
    e2e_s = 128 / gen
    return {
        "model_key": key, "source": "twin", "status": "ok", "device": "Some CPU",
        "dtype": "float32", "n_in": n_in, "n_out": 128, "ttft_ms": 250.0, "gen_tps": gen,
        "total_tps": (n_in + 128) / e2e_s, "rss_peak_bytes": 2500 * 2**20,
        "cuda_peak_alloc_bytes": None, "nvml_process_bytes": None, **kw,
    }  # fmt: skip


def test_speed_table_sets_measured_official_and_note_figures_side_by_side() -> None:
    specs = {k: s for k, s in load_specs().items() if k in (QWEN25, QWEN3)}
    labels = {k: s.label for k, s in specs.items()}
    frame = speed_frame(
        [
            _speed_row(QWEN25, 1, 8.0),
            _speed_row(QWEN25, 1, 6.0),
            _speed_row(QWEN3, 512, 5.0),
            _speed_row(QWEN3, 512, 1.0, status="error"),  # failed cases are left out
        ]
    )
    table = speed_table(specs, labels, frame)
    assert list(table.columns) == list(TABLE_COLUMNS)
    q25 = table[table["Model"] == "Qwen2.5-0.5B-Instruct"]
    assert list(q25["Input tokens"]) == [1, 1, 6144, 14336, 30720, 30720]  # measured, official...
    here = q25.iloc[0]
    assert here["Figures from"] == "measured here (twin: random weights; median of 2 runs)"
    assert here["Hardware · software"] == "Some CPU · float32"
    assert here[GEN] == "7.00" and here["New tokens"] == 128
    assert here[TOTAL] == f"{(1 + 128) / (128 / 7.0):.2f}"  # (n_in + n_out) / e2e, the median
    assert here["Memory"] == "2,500 MiB (RSS peak of the CPU process, weights included)"
    official = q25.iloc[1]
    assert official["Hardware · software"].startswith("NVIDIA A100 80GB · PyTorch 2.3.1")
    assert official[GEN] == "47.40 (the page's formula)"
    assert official[TOTAL] == "≈ 47.42 (converted)"
    assert official["Memory"] == "0.97 GiB (torch.cuda.max_memory_allocated)"
    q3 = table[table["Model"] == "Qwen3-0.6B"].set_index(["Input tokens", "Figures from"])
    page = q3.loc[(30720, "Qwen's official speed page (HF transformers)")]
    assert page[TOTAL] == "175.93 (the page's formula)" and page[GEN] == "≈ 11.00 (converted)"
    assert page["Memory"] == "4755 MB (method not stated)"
    note = q3.loc[(30720, "the seed note (quoting Qwen's page; no formula or method named)")]
    assert note[TOTAL] == "175.93 (as quoted)" and note["Memory"] == "4.76 GB (as quoted)"
    assert q3.loc[(512, "measured here (twin: random weights; median of 1 run)"), GEN] == "5.00"


def test_fairness_is_stated_plainly() -> None:
    specs = {k: s for k, s in load_specs().items() if k in (QWEN25, QWEN3)}
    nothing = fairness_notes(speed_frame([]), specs)
    assert nothing[0][0] == "Nothing measured here yet"
    assert any(v == "Not fair" and "A100 80GB vs NVIDIA H20 96GB" in w for v, w in nothing)
    notes = dict(fairness_notes(speed_frame([_speed_row(QWEN25, 1, 8.0)]), specs))
    assert "the models against each other in the rows measured here" in notes["Fair"]
    verdicts = [v for v, _ in fairness_notes(speed_frame([_speed_row(QWEN25, 1, 8.0)]), specs)]
    assert verdicts == ["Fair", "Not fair", "Not fair", "Note"]
    measured_vs_official = fairness_notes(speed_frame([_speed_row(QWEN25, 1, 8.0)]), specs)[1][1]
    assert "other hardware (Some CPU) and dtype (float32" in measured_vs_official
    assert "128 new tokens rather than Qwen's 2,048" in measured_vs_official
    assert "RSS peak" in measured_vs_official
