"""The repository API that History, Trends and the CLI rely on, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from qwen_dash.core.metrics import percentile
from qwen_dash.store import PAGE_SIZE, RunFilters, Store, StoreError
from qwen_dash.store.aggregates import percentiles_window
from qwen_dash.store.schema import Generation, Run, RunTag
from tests.conftest_db import MODEL_A, MODEL_B, make_comparison

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def save(store: Store, prompt: str = "p", *, at: datetime | None = None, **kw: object) -> int:
    options = {k: kw.pop(k) for k in ("mode", "thinking", "a", "b") if k in kw}
    request, results = make_comparison(prompt, **options)  # type: ignore[arg-type]
    return store.save_comparison(request, results, created_at=at, **kw)  # type: ignore[arg-type]


def ids(page: object) -> list[int]:
    return [r.id for r in page.runs]  # type: ignore[attr-defined]


def test_a_saved_run_comes_back_with_every_field(store: Store) -> None:
    request, results = make_comparison("Why is the sky blue?", thinking=True)
    request.system_prompt = "Be brief."
    results[MODEL_B].reasoning = "Rayleigh scattering..."
    results[MODEL_B].cuda_peak_alloc_bytes = 1_234_567_890
    results[MODEL_A].cuda_peak_alloc_bytes = None
    run_id = store.save_comparison(
        request, results, kind="cli", user="ana", tags=["physics", " sky ", "physics"],
        conversation_id="c1", turn=2,
    )  # fmt: skip

    run = store.get_run(run_id)
    assert run is not None
    assert (run.kind, run.user, run.conversation_id, run.turn) == ("cli", "ana", "c1", 2)
    assert run.prompt == "Why is the sky blue?" and run.system_prompt == "Be brief."
    assert run.messages == [{"role": "user", "content": "Why is the sky blue?"}]
    assert run.thinking is True and run.mode == "concurrent"
    assert run.settings[MODEL_B]["thinking"] is True
    assert run.tags == ["physics", "sky"]
    assert run.created_at.tzinfo is not None and run.created_at.utcoffset() == timedelta(0)
    a, b = run.generations
    assert (a.model_key, b.model_key) == (MODEL_A, MODEL_B)
    assert b.reasoning == "Rayleigh scattering..."
    # Peak memory: CUDA allocator peak where there is one, else RSS.
    assert b.peak_memory_bytes == 1_234_567_890
    assert a.peak_memory_bytes == a.rss_peak_bytes == 2_000_000_000
    assert a.token_times_ms == pytest.approx(results[MODEL_A].token_times_ms)
    assert a.environment == {"torch": "2.13.0"}
    for name in ("ttft_ms", "e2e_ms", "decode_tps", "n_in", "n_out", "source", "dtype"):
        assert getattr(a, name) == getattr(results[MODEL_A], name)
    assert a.started_at is not None and a.started_at.tzinfo is not None
    assert a.gen_tps is None  # not measured stays null, never 0


def test_history_is_newest_first_in_pages_of_50(store: Store) -> None:
    made = [save(store, f"prompt {i}", at=T0 + timedelta(minutes=i)) for i in range(120)]
    first = store.list_runs()
    assert ids(first) == made[::-1][:PAGE_SIZE] and first.has_more
    third = store.list_runs(page=2)
    assert ids(third) == made[::-1][100:] and not third.has_more
    assert store.count_runs() == 120


def test_filters_narrow_history(store: Store) -> None:
    day = timedelta(days=1)
    r1 = save(store, "one", at=T0, tags=["eval"], mode="isolated")
    r2 = save(store, "two", at=T0 + day, thinking=True, b={"source": "hub"}, kind="cli")
    r3 = save(store, "three", at=T0 + 2 * day, a={"model_key": "qwen2.5-1.5b"}, user="bo")

    def found(**kw: object) -> list[int]:
        return ids(store.list_runs(RunFilters(**kw)))  # type: ignore[arg-type]

    assert found() == [r3, r2, r1]
    assert found(models=("qwen2.5-1.5b",)) == [r3]
    assert found(models=(MODEL_A,)) == [r2, r1]
    assert found(sources=("hub",)) == [r2]
    assert found(since=T0 + day) == [r3, r2]
    assert found(since=T0, until=T0 + day) == [r1]
    assert found(tag="eval") == [r1]
    assert found(thinking=True) == [r2]
    assert found(thinking=False) == [r3, r1]
    assert found(mode="isolated") == [r1]
    assert found(kind="cli") == [r2]
    assert found(user="bo") == [r3]
    assert found(mode="isolated", tag="nope") == []
    options = store.filter_options()
    assert options["models"] == sorted([MODEL_A, MODEL_B, "qwen2.5-1.5b"])
    assert options["tags"] == ["eval"] and options["sources"] == ["hub", "twin"]
    with store.reading() as session:  # the loose index scan finds what DISTINCT finds
        for name, column in (("models", Generation.model_key), ("tags", RunTag.tag)):
            assert options[name] == sorted(session.scalars(select(column).distinct()))


ODD_TEXTS = [
    "a_b",
    "axb",
    "50% off",
    "50 percent off",
    "C:\\path\\to",
    "C:/path/to",
    'O\'Reilly said "quoted"',
    "DROP TABLE runs; --",
    "naïve café 日本語 🚀",
    "NAÏVE CAFÉ",
    "SELECT * FROM x WHERE y LIKE '%_%' ESCAPE '\\'",
    "plain text",
]
QUERIES = [
    "a_b", "%", "_", "50%", "\\", "\\path", "'", '"quoted"', "drop table", "café", "NAÏVE",
    "日本", "🚀", "ab", "xyz", "off", "'%_%'", "escape '\\'", "like", "a",
]  # fmt: skip


def test_text_is_stored_and_searched_exactly(store: Store) -> None:
    by_id = {}
    for i, t in enumerate(ODD_TEXTS):
        # Half the texts are prompts, half are one model's output; the rest is a dash.
        prompt, output = (t, "—") if i % 2 else ("—", t)
        run_id = save(store, prompt, a={"text": output}, b={"text": "—"})
        by_id[run_id] = t
    for run_id, t in by_id.items():
        run = store.get_run(run_id)
        assert run is not None and t in (run.prompt, run.generations[0].text)
    for q in QUERIES:
        expected = {rid for rid, t in by_id.items() if q.casefold() in t.casefold()}
        got = set(ids(store.list_runs(RunFilters(text=q))))
        assert got == expected, q


def test_a_common_word_pages_like_history_and_a_rare_one_is_found_far_back(
    store: Store,
) -> None:
    made = [save(store, f"common word {i}", at=T0 + timedelta(seconds=i)) for i in range(70)]
    rare = save(store, "a needle here", at=T0 - timedelta(days=30))
    page0 = store.list_runs(RunFilters(text="COMMON word"))
    page1 = store.list_runs(RunFilters(text="common word"), page=1)
    assert ids(page0) == made[::-1][:50] and page0.has_more
    assert ids(page1) == made[::-1][50:] and not page1.has_more
    assert ids(store.list_runs(RunFilters(text="needle"))) == [rare]
    assert ids(store.list_runs(RunFilters(text="NEEDLE", since=T0))) == []


def test_tags_notes_and_delete(store: Store) -> None:
    run_id = save(store, "tag me", tags=["a"])
    other = save(store, "keep me")
    assert store.set_tags(run_id, [" b", "a", "b", ""]) == ["b", "a"]
    assert store.set_tags(run_id, ["z"]) == ["z"]
    store.set_notes(run_id, "looks wrong at token 40")
    store.add_vote(run_id, "both_bad", model_a=MODEL_A, model_b=MODEL_B, voter="ana")
    run = store.get_run(run_id)
    assert run is not None and run.tags == ["z"] and run.notes == "looks wrong at token 40"
    assert [v.winner for v in run.votes] == ["both_bad"] and run.votes[0].blind is True
    with pytest.raises(StoreError, match="vote is one of"):
        store.add_vote(run_id, "draw", model_a=MODEL_A, model_b=MODEL_B)
    with pytest.raises(StoreError, match="no run 999"):
        store.set_notes(999, "x")

    assert store.delete_run(run_id) is True  # soft: hidden, kept, restorable
    assert store.delete_run(run_id) is False
    assert store.get_run(run_id) is None
    assert ids(store.list_runs(RunFilters(tag="z"))) == []
    assert ids(store.list_runs(RunFilters(text="tag me"))) == []
    assert ids(store.list_runs()) == [other]
    assert store.purge_run(run_id) is True  # for good: generations and votes go with it
    assert store.purge_run(run_id) is False
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 2
    assert ids(store.list_runs(RunFilters(deleted=None))) == [other]


def test_a_failure_mid_save_leaves_no_half_run(store: Store) -> None:
    def fail(*_: object) -> None:
        raise RuntimeError("disk fell off")

    event.listen(Generation, "before_insert", fail)
    try:
        with pytest.raises(RuntimeError, match="disk fell off"):
            save(store, "half")
    finally:
        event.remove(Generation, "before_insert", fail)
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert session.scalar(select(func.count()).select_from(Generation)) == 0
    assert ids(store.list_runs(RunFilters(text="half"))) == []
    assert save(store, "whole") > 0


def test_export_csv_and_jsonl(store: Store) -> None:
    text = 'line one\nline "two", with comma; 100% ünïcode'
    keep = save(store, text, tags=["x", "y"], a={"text": text})
    save(store, "filtered out", at=T0)

    out = io.StringIO()
    assert store.export("csv", RunFilters(tag="x"), out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(int(r["run_id"]), r["model_key"]) for r in rows] == [(keep, MODEL_A), (keep, MODEL_B)]
    assert rows[0]["prompt"] == text and rows[0]["text"] == text and rows[0]["tags"] == "x;y"
    assert float(rows[0]["ttft_ms"]) == 40.0 and rows[1]["gen_tps"] == ""
    assert json.loads(rows[0]["environment"]) == {"torch": "2.13.0"}

    out = io.StringIO()
    assert store.export("jsonl", RunFilters(text="ÜNÏCODE"), out) == 1
    (line,) = out.getvalue().splitlines()
    data = json.loads(line)
    assert data["id"] == keep and data["prompt"] == text and data["tags"] == ["x", "y"]
    assert [g["model_key"] for g in data["generations"]] == [MODEL_A, MODEL_B]
    assert data["generations"][0]["token_times_ms"][:2] == [40.0, 73.25]
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None
    with pytest.raises(StoreError, match="csv or jsonl"):
        store.export("xml", None, io.StringIO())  # type: ignore[arg-type]


def test_trends_are_exact_percentiles_per_model_bucket_source_and_mode(store: Store) -> None:
    ttfts = [10.0, 20.0, 35.0, 40.0, 100.0, 7.5, 64.0]
    for i, t in enumerate(ttfts):
        save(store, f"r{i}", at=T0 + timedelta(minutes=i), a={"ttft_ms": t, "n_out": 10 + i})
    # Another day; a twin in isolated mode, and an error that must not count.
    save(store, "iso", at=T0 + timedelta(days=1), mode="isolated", a={"ttft_ms": 999.0})
    save(store, "err", at=T0, a={"status": "error", "ttft_ms": 5000.0})
    save(store, "hub", at=T0, a={"source": "hub", "ttft_ms": 1.0})

    rows = store.trends(RunFilters(models=(MODEL_A,)), bucket="day")
    series = {(r.bucket, r["source"], r["mode"]): r for r in rows}
    day0 = T0.replace(hour=0, minute=0)
    assert set(series) == {
        (day0, "twin", "concurrent"),
        (day0, "hub", "concurrent"),
        (day0 + timedelta(days=1), "twin", "isolated"),
    }
    main = series[(day0, "twin", "concurrent")]
    assert main.count == len(ttfts) and main["model_key"] == MODEL_A
    assert main["ttft_ms_p50"] == pytest.approx(percentile(ttfts, 50))
    assert main["ttft_ms_p95"] == pytest.approx(percentile(ttfts, 95))
    assert main["ttft_ms_mean"] == pytest.approx(sum(ttfts) / len(ttfts))
    assert main["n_out_p95"] == pytest.approx(percentile([10.0 + i for i in range(7)], 95))
    assert main["decode_tps_p50"] == pytest.approx(30.0)
    assert main["peak_memory_bytes_p50"] == pytest.approx(2_000_000_000)

    hourly = store.trends(RunFilters(models=(MODEL_A,), sources=("twin",), mode="concurrent"),
                          bucket="hour")  # fmt: skip
    assert [(r.bucket, r.count) for r in hourly] == [(T0.replace(minute=0), len(ttfts))]
    by_thinking = store.trends(RunFilters(thinking=False), keys=("model_key", "thinking"))
    assert {r["thinking"] for r in by_thinking} == {False}
    assert store.trends(RunFilters(tag="nothing")) == []
    with pytest.raises(StoreError, match="Unknown trend keys"):
        store.trends(keys=("colour",))


def test_paired_differences_only_where_both_models_answered(store: Store) -> None:
    both = save(store, "both", at=T0, a={"ttft_ms": 50.0, "n_out": 30}, b={"ttft_ms": 80.0})
    save(store, "b failed", at=T0 + timedelta(minutes=1), b={"status": "error"})
    twin = save(store, "twin", at=T0 + timedelta(minutes=2), a={"ttft_ms": 10.0})
    save(store, "hub", at=T0 + timedelta(minutes=3), a={"source": "hub"}, b={"source": "hub"})

    diffs = store.paired_differences(MODEL_A, MODEL_B, RunFilters(sources=("twin",)))
    assert [d.run_id for d in diffs] == [twin, both]
    d = diffs[1]
    assert d.ttft_ms == pytest.approx(-30.0) and d.n_out == 30 - 27 and d.e2e_ms == 0
    assert (d.source_a, d.source_b, d.mode) == ("twin", "twin", "concurrent")
    assert len(store.paired_differences(MODEL_A, MODEL_B)) == 3


def test_portable_window_percentiles_agree_with_the_native_ones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window-function fallback (for databases without a percentile aggregate)."""
    for i, (t, n) in enumerate([(3.0, 9), (1.0, 4), (8.0, None), (2.5, 7), (40.0, 1)]):
        save(store, f"w{i}", at=T0 + timedelta(hours=i % 2), a={"ttft_ms": t, "n_out": n})
    native = store.trends_direct(RunFilters(), "hour")
    monkeypatch.setattr(store.sql, "percentiles", percentiles_window)
    portable = store.trends_direct(RunFilters(), "hour")
    assert [(r.bucket, r.key, r.count) for r in portable] == [
        (r.bucket, r.key, r.count) for r in native
    ]
    for p, n in zip(portable, native, strict=True):
        assert p.stats == pytest.approx(n.stats, nan_ok=True)


def test_count_runs_can_stop_at_a_limit(store: Store) -> None:
    for i in range(5):
        save(store, f"count me {i}")
    save(store, "not this one")
    assert store.count_runs(RunFilters(text="count me")) == 5
    assert store.count_runs(RunFilters(text="count me"), limit=3) == 3
    assert store.count_runs(RunFilters(text="count me"), limit=10) == 5


def test_generation_figures_are_the_newest_runs_metric_columns(store: Store) -> None:
    old = save(store, "old", at=T0, a={"ttft_ms": 11.0})
    new = save(store, "new", at=T0 + timedelta(hours=1), a={"ttft_ms": 22.0}, mode="isolated")
    rows = store.generation_figures()
    assert [(r["run_id"], r["model_key"]) for r in rows] == [
        (new, MODEL_A), (new, MODEL_B), (old, MODEL_A), (old, MODEL_B),
    ]  # fmt: skip
    assert rows[0]["ttft_ms"] == 22.0 and rows[2]["ttft_ms"] == 11.0
    assert rows[0]["mode"] == "isolated" and rows[0]["created_at"].tzinfo is not None
    assert "text" not in rows[0]  # metric columns only, no outputs
    assert rows[0]["kind"] == "ui"  # the run's kind, so benchmarks can be told apart
    newest_only = store.generation_figures(max_runs=1)
    assert {r["run_id"] for r in newest_only} == {new}
    one_model = store.generation_figures(RunFilters(models=(MODEL_B,)))
    assert [r["model_key"] for r in one_model] == [MODEL_B, MODEL_B]
    assert store.generation_figures(RunFilters(text="old"))[0]["run_id"] == old
