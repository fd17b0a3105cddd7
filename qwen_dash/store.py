"""The repository API that pages and the CLI use: save, find, tag, export and aggregate runs.

Open with :func:`open_store` (migrates the database first). Every aggregate runs in SQL. Objects
returned are detached ORM rows (``qwen_dash.schema``) or small frozen dataclasses; they stay
usable after the call. ``list_runs`` loads each run's generations and tags; ``get_run`` also loads
the per-token times, the environment and the votes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy import column as sql_column
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, selectinload, sessionmaker, undefer

from qwen_dash.database import (
    WRITE_OPTION,
    StoreError,
    check_sqlite_location,
    describe,
    explain,
    make_engine,
    migrate_if_needed,
    resolve_url,
    sqlite_path,
)
from qwen_dash.metrics import GenerationResult
from qwen_dash.request import CompareRequest
from qwen_dash.schema import (
    RUN_KINDS,
    SEARCH_FIELD_SEPARATOR,
    TREND_METRICS,
    VOTE_WINNERS,
    Generation,
    Run,
    RunTag,
    Vote,
    decode_token_times,
    encode_token_times,
    fold,
)
from qwen_dash.trend_rollup import RollupQuery, TrendRollups, plan

__all__ = [
    "PAGE_SIZE",
    "TREND_METRICS",
    "PairedDifference",
    "RunFilters",
    "RunPage",
    "Store",
    "StoreError",
    "TrendRow",
    "open_store",
]

PAGE_SIZE = 50
RECENT_SCAN = 5_000  # newest runs a text search scans before it asks the trigram index
MAX_TAG_CHARS = 64
Bucket = Literal["hour", "day"]
ExportFormat = Literal["csv", "jsonl"]
TREND_KEYS = ("model_key", "source", "mode", "thinking", "kind")
_GEN_RESULT_COLUMNS = [
    "model_key",
    "hf_id",
    "revision",
    "source",
    "device",
    "dtype",
    "status",
    "error",
    "finish_reason",
    "mode",
    "overlapped",
    "text",
    "reasoning",
    "queue_ms",
    "tokenize_ms",
    "ttft_ms",
    "e2e_ms",
    "decode_tps",
    "gen_tps",
    "total_tps",
    "itl_p50_ms",
    "itl_p95_ms",
    "n_in",
    "n_out",
    "n_think",
    "n_answer",
    "ttfa_ms",
    "weights_bytes",
    "cuda_peak_alloc_bytes",
    "cuda_peak_reserved_bytes",
    "nvml_process_bytes",
    "nvml_device_used_bytes",
    "rss_peak_bytes",
]
_QUANTILES = "quantiles__"
FIGURE_COLUMNS = (
    "model_key",
    "source",
    "mode",
    "status",
    "ttft_ms",
    "e2e_ms",
    "decode_tps",
    "n_in",
    "n_out",
    "peak_memory_bytes",
)
_FTS = table("runs_fts", sql_column("rowid"))


@dataclass(frozen=True)
class RunFilters:
    """What History, Trends and export narrow runs by. Empty fields filter nothing.

    ``text``: exact substring, case-insensitive (Unicode case folding), of the prompt, system
    prompt, any output, reasoning or error. ``models``/``sources``: the run has a generation of
    one of these models / from one of these sources (in trends: only those generations count).
    ``since`` inclusive, ``until`` exclusive, both timezone-aware.
    """

    text: str | None = None
    models: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    tag: str | None = None
    thinking: bool | None = None
    mode: str | None = None
    kind: str | None = None
    user: str | None = None
    conversation_id: str | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    page: int
    page_size: int
    has_more: bool


@dataclass(frozen=True)
class TrendRow:
    """One series point: generations with status ok in one bucket, for one group key.

    ``key`` holds the group columns asked for (default model_key, source, mode). ``stats`` maps
    ``<metric>_p50``, ``<metric>_p95`` and ``<metric>_mean`` for each of TREND_METRICS to a float
    (None when nothing in the bucket measured it).
    """

    bucket: datetime
    key: dict[str, Any]
    count: int
    stats: dict[str, float | None] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.key:
            return self.key[name]
        return self.stats[name]


@dataclass(frozen=True)
class PairedDifference:
    """One run where both models answered (status ok): model A's metric minus model B's."""

    run_id: int
    created_at: datetime
    mode: str
    thinking: bool
    source_a: str
    source_b: str
    ttft_ms: float | None
    e2e_ms: float | None
    decode_tps: float | None
    n_out: int | None
    peak_memory_bytes: int | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_utc(value: Any) -> datetime:
    """A bucket from SQL ('YYYY-MM-DD[ HH]' text on SQLite, a timestamp elsewhere), aware UTC."""
    if isinstance(value, str):
        value = value + ":00" if len(value) == 13 else value
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    """Tags stripped, without empties and repeats, in the order given."""
    out: list[str] = []
    for tag in tags or ():
        tag = tag.strip()
        if len(tag) > MAX_TAG_CHARS:
            raise StoreError(f"Tag '{tag[:20]}...' is longer than {MAX_TAG_CHARS} characters.")
        if tag and tag not in out:
            out.append(tag)
    return out


def search_document(run: Run) -> str:
    """What text search looks in: the folded prompt, system prompt and every output."""
    fields: list[str | None] = [run.prompt, run.system_prompt]
    for g in run.generations:
        fields += [g.text, g.reasoning, g.error]
    return SEARCH_FIELD_SEPARATOR.join(fold(f) for f in fields if f)


def _generation(
    position: int, result: GenerationResult, created_at: datetime, fallback: dict[str, Any]
) -> Generation:
    values = {name: getattr(result, name) for name in _GEN_RESULT_COLUMNS}
    return Generation(
        position=position,
        created_at=created_at,
        started_at=_parse_time(result.started_at),
        peak_memory_bytes=result.peak_memory_bytes,
        token_times=encode_token_times(result.token_times_ms),
        settings=result.settings or fallback,
        environment=result.environment,
        **values,
    )


def build_run(
    request: CompareRequest,
    results: dict[str, GenerationResult],
    *,
    kind: str = "ui",
    user: str | None = None,
    tags: list[str] | None = None,
    conversation_id: str | None = None,
    turn: int = 0,
    notes: str | None = None,
    created_at: datetime | None = None,
) -> Run:
    """The ORM row for one comparison, not yet saved."""
    if kind not in RUN_KINDS:
        raise StoreError(f"Run kind must be one of {', '.join(RUN_KINDS)}, got '{kind}'.")
    when = created_at or _utcnow()
    settings = {key: s.to_dict() for key, s in request.settings.items()}
    run = Run(
        created_at=when,
        kind=kind,
        mode=request.mode,
        thinking=any(s.thinking for s in request.settings.values()),
        prompt=request.prompt,
        system_prompt=request.system_prompt,
        messages=[{"role": m.role, "content": m.content} for m in request.messages],
        settings=settings,
        meta=dict(request.meta),
        user=user,
        notes=notes,
        conversation_id=conversation_id,
        turn=turn,
        tag_rows=[RunTag(tag=t) for t in clean_tags(tags)],
        generations=[
            _generation(i, r, when, settings.get(key, {}))
            for i, (key, r) in enumerate(results.items())
        ],
    )
    run.search_text = search_document(run)
    return run


class Store:
    """The database of runs. Thread-safe; one per process is enough (the app caches one)."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._has_fts = self.dialect == "sqlite" and inspect(self.engine).has_table("runs_fts")
        # Trend rollups (qwen_dash.trend_rollup) on the dialects with an upsert; others go direct.
        self._rollups = (
            TrendRollups(self.dialect, self._bucket, self._aggregate)
            if self.dialect in ("sqlite", "postgresql")
            else None
        )

    def __repr__(self) -> str:
        return f"Store({describe(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on error."""
        with self._write.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    # ---- saving ----------------------------------------------------------------------------

    def save_run(self, run: Run) -> int:
        with self.writing() as session:
            session.add(run)
            session.flush()
            if self._rollups is not None:
                self._rollups.mark_run(session, run)
            return run.id

    def save_comparison(
        self,
        request: CompareRequest,
        results: dict[str, GenerationResult],
        *,
        kind: str = "ui",
        user: str | None = None,
        tags: list[str] | None = None,
        conversation_id: str | None = None,
        turn: int = 0,
        notes: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Save one comparison and its generations in one transaction; returns the run id."""
        run = build_run(
            request,
            results,
            kind=kind,
            user=user,
            tags=tags,
            conversation_id=conversation_id,
            turn=turn,
            notes=notes,
            created_at=created_at,
        )
        return self.save_run(run)

    # ---- reading ---------------------------------------------------------------------------

    def get_run(self, run_id: int) -> Run | None:
        """A run with everything: generations (with token times, environment), tags, votes."""
        stmt = (
            select(Run)
            .where(Run.id == run_id)
            .options(
                selectinload(Run.generations).options(
                    undefer(Generation.token_times), undefer(Generation.environment)
                ),
                selectinload(Run.tag_rows),
                selectinload(Run.votes),
            )
        )
        with self.reading() as session:
            return session.scalars(stmt).one_or_none()

    def list_runs(
        self, filters: RunFilters | None = None, page: int = 0, page_size: int = PAGE_SIZE
    ) -> RunPage:
        """One page of runs, newest first, with their generations and tags."""
        f = filters or RunFilters()
        with self.reading() as session:
            runs = self._recent_text_page(session, f, page, page_size) if f.text else None
            if runs is None:
                runs = list(session.scalars(self._page(self._runs_query(f), page, page_size)))
        return RunPage(runs[:page_size], page, page_size, has_more=len(runs) > page_size)

    @staticmethod
    def _page(stmt: Select[tuple[Run]], page: int, page_size: int) -> Select[tuple[Run]]:
        return (
            stmt.offset(page * page_size)
            .limit(page_size + 1)
            .options(selectinload(Run.generations), selectinload(Run.tag_rows))
        )

    def _recent_text_page(
        self, session: Session, f: RunFilters, page: int, page_size: int
    ) -> list[Run] | None:
        """A text search page found among the newest runs alone, or None if they hold too few.

        The trigram index is fast for rare text and slow for common text (it lists every
        match); scanning the newest runs is the reverse. If the newest RECENT_SCAN runs hold
        enough matches for this page, those are exactly the newest matches overall.
        """
        if not self._has_fts:
            return None
        recent = select(Run.id).order_by(Run.created_at.desc(), Run.id.desc()).limit(RECENT_SCAN)
        conditions = [*self._run_conditions(f, text_index=False), Run.id.in_(recent)]
        stmt = select(Run).where(*conditions).order_by(Run.created_at.desc(), Run.id.desc())
        runs = list(session.scalars(self._page(stmt, page, page_size)))
        return runs if len(runs) > page_size else None

    def search(self, text_: str, filters: RunFilters | None = None, page: int = 0) -> RunPage:
        """``list_runs`` with a text filter: exact, case-insensitive substring."""
        return self.list_runs(replace(filters or RunFilters(), text=text_), page)

    def generation_figures(
        self, filters: RunFilters | None = None, max_runs: int = 2000
    ) -> list[dict[str, Any]]:
        """The metric columns of every generation of the newest ``max_runs`` matching runs, as
        plain rows, newest first: for charts that need each value (distributions, scatter plots).
        As in trends, model/source/mode filters keep only those generations."""
        f = filters or RunFilters()
        newest = self._runs_query(f).with_only_columns(Run.id).limit(max_runs)
        columns = [getattr(Generation, name) for name in FIGURE_COLUMNS]
        stmt = (
            select(Generation.run_id, Run.created_at, Run.thinking, *columns)
            .join(Run, Run.id == Generation.run_id)
            .where(Generation.run_id.in_(newest), *self._generation_conditions(f, Generation))
            .order_by(Run.created_at.desc(), Run.id.desc(), Generation.position)
        )
        with self.reading() as session:
            return [dict(row._mapping) for row in session.execute(stmt)]

    def count_runs(self, filters: RunFilters | None = None, limit: int | None = None) -> int:
        """How many runs match; with ``limit``, counting stops there (a page header that says
        "10,000+" need not visit every match of a common word)."""
        matching = select(Run.id).where(*self._run_conditions(filters or RunFilters()))
        if limit is not None:
            matching = matching.limit(limit)
        stmt = select(func.count()).select_from(matching.subquery())
        with self.reading() as session:
            return session.scalar(stmt) or 0

    def filter_options(self) -> dict[str, list[str]]:
        """Distinct models, sources, tags, modes, kinds and users, for filter widgets."""
        queries = {
            "models": select(Generation.model_key).distinct(),
            "sources": select(Generation.source).distinct(),
            "tags": select(RunTag.tag).distinct(),
            "modes": select(Run.mode).distinct(),
            "kinds": select(Run.kind).distinct(),
            "users": select(Run.user).where(Run.user.is_not(None)).distinct(),
        }
        with self.reading() as session:
            return {name: sorted(session.scalars(q)) for name, q in queries.items()}

    # ---- editing ---------------------------------------------------------------------------

    def set_tags(self, run_id: int, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags; returns them cleaned. StoreError when the run does not exist."""
        cleaned = clean_tags(tags)
        with self.writing() as session:
            self._require(session, run_id)
            session.execute(delete(RunTag).where(RunTag.run_id == run_id))
            session.add_all(RunTag(run_id=run_id, tag=t) for t in cleaned)
        return cleaned

    def add_tags(self, run_id: int, tags: Iterable[str]) -> list[str]:
        current = self.get_run(run_id)
        if current is None:
            raise StoreError(f"There is no run {run_id}.")
        return self.set_tags(run_id, [*current.tags, *tags])

    def set_notes(self, run_id: int, notes: str | None) -> None:
        with self.writing() as session:
            self._require(session, run_id).notes = notes or None

    def delete_run(self, run_id: int) -> bool:
        """Delete a run with its generations, tags and votes; False when there was none."""
        with self.writing() as session:
            if self._rollups is not None:
                self._rollups.mark_run_id(session, run_id)
            return session.execute(delete(Run).where(Run.id == run_id)).rowcount > 0

    def add_vote(
        self,
        run_id: int,
        winner: str,
        *,
        model_a: str,
        model_b: str,
        voter: str | None = None,
        blind: bool = True,
    ) -> int:
        if winner not in VOTE_WINNERS:
            raise StoreError(f"A vote is one of {', '.join(VOTE_WINNERS)}, got '{winner}'.")
        vote = Vote(
            run_id=run_id,
            created_at=_utcnow(),
            model_a=model_a,
            model_b=model_b,
            winner=winner,
            voter=voter,
            blind=blind,
        )
        with self.writing() as session:
            self._require(session, run_id)
            session.add(vote)
            session.flush()
            return vote.id

    @staticmethod
    def _require(session: Session, run_id: int) -> Run:
        run = session.get(Run, run_id)
        if run is None:
            raise StoreError(f"There is no run {run_id}.")
        return run

    # ---- export ----------------------------------------------------------------------------

    def iter_runs(self, filters: RunFilters | None = None, chunk: int = 500) -> Iterator[Run]:
        """Every matching run, newest first, streamed in chunks, with all of its data."""
        stmt = (
            self._runs_query(filters or RunFilters())
            .options(
                selectinload(Run.generations).options(
                    undefer(Generation.token_times), undefer(Generation.environment)
                ),
                selectinload(Run.tag_rows),
            )
            .execution_options(yield_per=chunk)
        )
        with self.reading() as session:
            yield from session.scalars(stmt)

    def export(self, fmt: ExportFormat, filters: RunFilters | None, out: TextIO) -> int:
        """Write the filtered runs to ``out``; returns how many runs were written.

        ``jsonl``: one JSON object per run, generations nested, token times as a list.
        ``csv``: one row per generation (run columns repeated), settings/environment as JSON.
        """
        runs = self.iter_runs(filters)
        if fmt == "jsonl":
            return _write_jsonl(runs, out)
        if fmt == "csv":
            return _write_csv(runs, out)
        raise StoreError(f"Export format must be csv or jsonl, got '{fmt}'.")

    # ---- aggregates ------------------------------------------------------------------------

    def trends(
        self,
        filters: RunFilters | None = None,
        bucket: Bucket = "day",
        keys: Sequence[str] = ("model_key", "source", "mode"),
    ) -> list[TrendRow]:
        """Per bucket (hour or day, UTC) and group key: count and p50/p95/mean of TREND_METRICS.

        Only generations with status ok count. ``keys`` is any of TREND_KEYS; keep source and
        mode in it (or filter on them) so twins and real weights, concurrent and isolated runs,
        never share a series.

        Answered from the trend rollups when they can answer exactly (see
        ``qwen_dash.trend_rollup.plan``: the Trends page's queries), after recomputing the
        buckets that saves and deletes marked dirty; otherwise computed over the generations.
        Both give the same rows.
        """
        filters = filters or RunFilters()
        unknown = set(keys) - set(TREND_KEYS)
        if unknown:
            raise StoreError(f"Unknown trend keys {sorted(unknown)}; choose from {TREND_KEYS}.")
        self._bucket(Generation.created_at, bucket)  # validates bucket
        query = plan(filters, bucket, keys) if self._rollups is not None else None
        if query is None:
            return self._direct_trends(filters, bucket, keys)
        return [TrendRow(*row) for row in self._rollup_trends(query)]

    def _rollup_trends(
        self, query: RollupQuery
    ) -> list[tuple[datetime, dict[str, Any], int, dict[str, float | None]]]:
        """Rollup rows for ``query``: read at once when none is dirty, else refresh then read."""
        assert self._rollups is not None
        with self.reading() as session:
            if not self._rollups.has_dirty(session, query.bucket_kind):
                return self._rollups.read(session, query)
        with self.writing() as session:
            self._rollups.refresh(session, query.bucket_kind)
            return self._rollups.read(session, query)

    def _aggregate(self, session: Session, base: Any, keys: Sequence[str]) -> list[TrendRow]:
        """count and p50/p95/mean of TREND_METRICS per group of ``keys`` (first is bucket)."""
        stmt = self._percentiles(base, keys, TREND_METRICS)
        return [_trend_row(row, keys[1:]) for row in session.execute(stmt).mappings()]

    def _direct_trends(
        self, filters: RunFilters, bucket: Bucket, keys: Sequence[str]
    ) -> list[TrendRow]:
        """``trends`` computed over the generations themselves (no rollup)."""
        g = Generation
        key_cols = {
            "model_key": g.model_key,
            "source": g.source,
            "mode": g.mode,
            "thinking": Run.thinking,
            "kind": Run.kind,
        }
        base = select(
            self._bucket(g.created_at, bucket).label("bucket"),
            *(key_cols[k].label(k) for k in keys),
            *(getattr(g, m).label(m) for m in TREND_METRICS),
        ).where(g.status == "ok", *self._generation_conditions(filters, g))
        if _needs_run(filters, keys):
            base = base.join(Run, Run.id == g.run_id)
        stmt = self._percentiles(base.subquery("base"), ["bucket", *keys], TREND_METRICS)
        with self.reading() as session:
            rows = session.execute(stmt).mappings().all()
        return [_trend_row(row, keys) for row in rows]

    def paired_differences(
        self,
        model_a: str,
        model_b: str,
        filters: RunFilters | None = None,
        limit: int | None = None,
    ) -> list[PairedDifference]:
        """Per run where both answered with status ok: A minus B, newest first."""
        stmt = self._paired_query(model_a, model_b, filters or RunFilters())
        stmt = stmt.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        with self.reading() as session:
            rows = session.execute(stmt).mappings().all()
        return [PairedDifference(**{k: v for k, v in row.items() if k != "bucket"}) for row in rows]

    def paired_trends(
        self,
        model_a: str,
        model_b: str,
        filters: RunFilters | None = None,
        bucket: Bucket = "day",
        keys: Sequence[str] = ("mode", "source_a", "source_b"),
    ) -> list[TrendRow]:
        """Paired differences per bucket: count and p50/p95/mean of (A - B) per metric."""
        base = self._paired_query(model_a, model_b, filters or RunFilters(), bucket).subquery()
        stmt = self._percentiles(base, ["bucket", *keys], TREND_METRICS)
        with self.reading() as session:
            rows = session.execute(stmt).mappings().all()
        return [_trend_row(row, keys) for row in rows]

    # ---- query building --------------------------------------------------------------------

    def _runs_query(self, filters: RunFilters) -> Select[tuple[Run]]:
        return (
            select(Run)
            .where(*self._run_conditions(filters))
            .order_by(Run.created_at.desc(), Run.id.desc())
        )

    def _run_conditions(self, f: RunFilters, text_index: bool = True) -> list[ColumnElement[bool]]:
        out = self._common_conditions(f, Run.created_at, text_index)
        if f.models or f.sources:
            g = aliased(Generation)
            gen_match = [g.run_id == Run.id]
            if f.models:
                gen_match.append(g.model_key.in_(f.models))
            if f.sources:
                gen_match.append(g.source.in_(f.sources))
            out.append(exists().where(*gen_match))
        if f.mode:
            out.append(Run.mode == f.mode)
        return out

    def _generation_conditions(self, f: RunFilters, g: type[Generation]) -> list[Any]:
        out = self._common_conditions(f, g.created_at)
        if f.models:
            out.append(g.model_key.in_(f.models))
        if f.sources:
            out.append(g.source.in_(f.sources))
        if f.mode:
            out.append(g.mode == f.mode)
        return out

    def _common_conditions(
        self, f: RunFilters, created_at: Any, text_index: bool = True
    ) -> list[Any]:
        """Conditions on the run (``Run`` must be in the FROM clause) and on a time column."""
        out: list[Any] = []
        if f.since is not None:
            out.append(created_at >= f.since)
        if f.until is not None:
            out.append(created_at < f.until)
        if f.text:
            out.append(self._text_condition(f.text, text_index))
        if f.tag:
            out.append(exists().where(RunTag.run_id == Run.id, RunTag.tag == f.tag.strip()))
        if f.thinking is not None:
            out.append(Run.thinking.is_(f.thinking))
        if f.kind:
            out.append(Run.kind == f.kind)
        if f.user:
            out.append(Run.user == f.user)
        if f.conversation_id:
            out.append(Run.conversation_id == f.conversation_id)
        return out

    def _text_condition(self, query: str, use_index: bool = True) -> ColumnElement[bool]:
        """Exact substring of the folded search text.

        SQLite: the FTS5 trigram index narrows the candidates (needles of 3+ characters), and
        ``instr`` checks the exact substring. PostgreSQL: ``LIKE`` with every wildcard escaped,
        which the pg_trgm index serves.
        """
        needle = fold(query)
        if self.dialect == "sqlite":
            exact = func.instr(Run.search_text, needle) > 0
            if use_index and self._has_fts and len(needle) >= 3:
                phrase = '"' + needle.replace('"', '""') + '"'
                match = text("runs_fts MATCH :fts_phrase").bindparams(fts_phrase=phrase)
                return and_(Run.id.in_(select(_FTS.c.rowid).where(match)), exact)
            return exact
        escaped = needle.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return Run.search_text.like(f"%{escaped}%", escape="/")

    def _bucket(self, column: Any, bucket: Bucket) -> Any:
        if bucket not in ("hour", "day"):
            raise StoreError(f"Bucket must be hour or day, got '{bucket}'.")
        if self.dialect == "sqlite":
            # UTCDateTime stores 'YYYY-MM-DD HH:MM:SS.ffffff' text: a prefix is the bucket, and
            # substr is several times cheaper than strftime over every row.
            return func.substr(column, 1, 13 if bucket == "hour" else 10)
        if self.dialect == "postgresql":
            return func.date_trunc(bucket, func.timezone("UTC", column))
        return func.date_trunc(bucket, column)

    def _percentiles(self, base: Any, keys: Sequence[str], metrics: Sequence[str]) -> Select[Any]:
        """count, p50, p95 and mean of each metric per group, one GROUP BY in SQL.

        PostgreSQL: its percentile_cont. SQLite, which has no percentile aggregate: the
        ``qd_quantiles`` aggregate registered on each connection (same interpolation). Other
        databases: portable window functions (row_number, count), exact but sort-heavy.
        """
        if self.dialect == "postgresql":
            return _percentiles_ordered_set(base, keys, metrics, (50, 95))
        if self.dialect == "sqlite":
            return _percentiles_sqlite(base, keys, metrics)
        return _percentiles_window(base, keys, metrics, (50, 95))

    def _paired_query(
        self, model_a: str, model_b: str, f: RunFilters, bucket: Bucket = "day"
    ) -> Select[Any]:
        a = aliased(Generation, name="ga")
        b = aliased(Generation, name="gb")
        diffs = [(getattr(a, m) - getattr(b, m)).label(m) for m in TREND_METRICS]
        stmt = (
            select(
                Run.id.label("run_id"),
                Run.created_at,
                self._bucket(Run.created_at, bucket).label("bucket"),
                Run.mode,
                Run.thinking,
                a.source.label("source_a"),
                b.source.label("source_b"),
                *diffs,
            )
            .join(a, and_(a.run_id == Run.id, a.model_key == model_a, a.status == "ok"))
            .join(b, and_(b.run_id == Run.id, b.model_key == model_b, b.status == "ok"))
            .where(*self._common_conditions(f, Run.created_at))
        )
        if f.sources:
            stmt = stmt.where(a.source.in_(f.sources), b.source.in_(f.sources))
        if f.mode:
            stmt = stmt.where(Run.mode == f.mode)
        return stmt


def _percentile(ranked: Any, metric: str, q: int) -> ColumnElement[Any]:
    """Linear-interpolated percentile (numpy's default) from row numbers, portable SQL.

    With n non-null values sorted, position (n-1)q/100 = lo + frac: v[lo] + (v[lo+1]-v[lo])*frac.
    """
    v, i, n = ranked.c[metric], ranked.c[f"{metric}__i"], ranked.c[f"{metric}__n"]
    pos = (n - 1) * q
    lo = pos // 100
    frac = func.max(cast(pos % 100, Float)) / 100.0
    v_lo = func.max(case((i == lo, v)))
    v_hi = func.coalesce(func.max(case((i == lo + 1, v))), v_lo)
    return v_lo + (v_hi - v_lo) * frac


def _needs_run(f: RunFilters, keys: Sequence[str]) -> bool:
    """Whether a generations query must join runs for these filters and group keys."""
    run_keys = {"thinking", "kind"} & set(keys)
    return bool(run_keys or f.text or f.tag or f.thinking is not None or f.kind or f.user) or bool(
        f.conversation_id
    )


def _percentiles_sqlite(base: Any, keys: Sequence[str], metrics: Sequence[str]) -> Select[Any]:
    groups = [base.c[k] for k in keys]
    quantiles = func.qd_quantiles(*(base.c[m] for m in metrics)).label(_QUANTILES)
    means = [func.avg(base.c[m]).label(f"{m}_mean") for m in metrics]
    out = [*groups, func.count().label("count"), quantiles, *means]
    return select(*out).group_by(*groups).order_by(*groups)


def _percentiles_ordered_set(
    base: Any, keys: Sequence[str], metrics: Sequence[str], quantiles: Sequence[int]
) -> Select[Any]:
    groups = [base.c[k] for k in keys]
    out: list[Any] = [*groups, func.count().label("count")]
    for m in metrics:
        v = base.c[m]
        out += [func.percentile_cont(q / 100).within_group(v).label(f"{m}_p{q}") for q in quantiles]
        out.append(func.avg(v).label(f"{m}_mean"))
    return select(*out).group_by(*groups).order_by(*groups)


def _percentiles_window(
    base: Any, keys: Sequence[str], metrics: Sequence[str], quantiles: Sequence[int]
) -> Select[Any]:
    """count, p<q> and mean of each metric per group of ``keys``, with window functions only."""
    part = [base.c[k] for k in keys]
    cols: list[Any] = list(part)
    for m in metrics:
        v = base.c[m]
        nulls_last = case((v.is_(None), 1), else_=0)
        # One window per metric: row_number ignores the frame, count needs all of it.
        window = {"partition_by": part, "order_by": (nulls_last, v), "rows": (None, None)}
        cols += [
            v,
            (func.row_number().over(**window) - 1).label(f"{m}__i"),
            func.count(v).over(**window).label(f"{m}__n"),
        ]
    ranked = select(*cols).subquery("ranked")
    groups = [ranked.c[k] for k in keys]
    out: list[Any] = [*groups, func.count().label("count")]
    for m in metrics:
        out += [_percentile(ranked, m, q).label(f"{m}_p{q}") for q in quantiles]
        out.append(func.avg(ranked.c[m]).label(f"{m}_mean"))
    return select(*out).group_by(*groups).order_by(*groups)


def _trend_row(row: Any, keys: Sequence[str]) -> TrendRow:
    skip = {"bucket", "count", _QUANTILES, *keys}
    stats = {k: (None if v is None else float(v)) for k, v in row.items() if k not in skip}
    if _QUANTILES in row:  # SQLite: [[p50, p95], ...] in TREND_METRICS order
        for metric, (p50, p95) in zip(TREND_METRICS, json.loads(row[_QUANTILES]), strict=True):
            stats |= {f"{metric}_p50": p50, f"{metric}_p95": p95}
    return TrendRow(_as_utc(row["bucket"]), {k: row[k] for k in keys}, row["count"], stats)


# ---- export formats --------------------------------------------------------------------------

_RUN_FIELDS = [
    "id",
    "created_at",
    "kind",
    "mode",
    "thinking",
    "user",
    "conversation_id",
    "turn",
    "prompt",
    "system_prompt",
    "notes",
]
_GEN_FIELDS = [
    "position",
    *_GEN_RESULT_COLUMNS,
    "started_at",
    "peak_memory_bytes",
]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def run_to_dict(run: Run) -> dict[str, Any]:
    """A run as plain JSON-able data: what JSON Lines export writes per line."""
    data = {name: _jsonable(getattr(run, name)) for name in _RUN_FIELDS}
    data |= {"tags": run.tags, "messages": run.messages, "settings": run.settings}
    data["meta"] = run.meta
    data["generations"] = [
        {name: _jsonable(getattr(g, name)) for name in _GEN_FIELDS}
        | {
            "token_times_ms": decode_token_times(g.token_times),
            "settings": g.settings,
            "environment": g.environment,
        }
        for g in run.generations
    ]
    return data


def _write_jsonl(runs: Iterable[Run], out: TextIO) -> int:
    n = 0
    for run in runs:
        out.write(json.dumps(run_to_dict(run), ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def _write_csv(runs: Iterable[Run], out: TextIO) -> int:
    run_cols = ["run_id", *_RUN_FIELDS[1:], "tags"]
    gen_cols = [c for c in _GEN_FIELDS if c != "mode"] + ["settings", "environment"]
    writer = csv.DictWriter(out, fieldnames=run_cols + gen_cols)
    writer.writeheader()
    n = 0
    for run in runs:
        base = {"run_id": run.id, "tags": ";".join(run.tags)}
        base |= {name: _jsonable(getattr(run, name)) for name in _RUN_FIELDS[1:]}
        for g in run.generations or [None]:
            row = dict(base)
            if g is not None:
                row |= {name: _jsonable(getattr(g, name)) for name in gen_cols[:-2]}
                row["settings"] = json.dumps(g.settings, ensure_ascii=False)
                row["environment"] = json.dumps(g.environment, ensure_ascii=False, default=str)
            writer.writerow(row)
        n += 1
    return n


# ---- opening ---------------------------------------------------------------------------------


def open_store(url: str | URL | None = None) -> Store:
    """Open (and create or migrate) the database: ``url``, else ``$QWEN_DASH_DB_URL``, else
    ``db/qwen_dash.sqlite3``. Raises StoreError with a readable message when it cannot.
    """
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None:
        check_sqlite_location(path)
    try:
        engine = make_engine(resolved)
        try:
            migrate_if_needed(engine)
        finally:
            engine.dispose()
        return Store(resolved)
    except SQLAlchemyError as exc:
        raise explain(exc, resolved) from exc
