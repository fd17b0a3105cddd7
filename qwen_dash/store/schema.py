"""The database schema, in one place: runs, their generations, tags, votes, trend rollups, and
the audit log of who changed what.

SQLAlchemy 2 typed ORM. Alembic migrations under ``db/versions`` create exactly these tables; a
test checks that autogenerate finds no difference. Objects that only one dialect has (SQLite's FTS5
table, PostgreSQL's trigram index) live in the migrations alone, see ``SEARCH_OBJECTS``.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from qwen_dash.core.arena import BATTLE_WINNERS, VOTE_ORIGINS, VOTE_WINNERS
from qwen_dash.core.metrics import TREND_METRICS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_KINDS = ("ui", "cli", "suite", "benchmark")
BUCKET_KINDS = ("hour", "day")
# trend_rollups.thinking / .kind value for "all runs" (the rollup over both / every kind).
ROLLUP_ANY = "*"
# A suite run: running until its thread ends it (done), Stop ends it (stopped), or it fails.
SUITE_RUN_STATUSES = ("running", "done", "stopped", "failed")
# One case's verdict for one model (qwen_dash.quality.assertions STATUS_*).
SUITE_CASE_STATUSES = ("pass", "fail", "error")
AUDIT_ACTIONS = ("run.save", "run.delete", "run.restore", "run.tags", "run.notes", "vote.add")

# Dialect-specific search structures made by migration 0002; autogenerate ignores them.
SEARCH_OBJECTS = frozenset({"runs_fts", "ix_runs_search_trgm"})
# Separates the fields of Run.search_text, so that a match never spans two fields.
SEARCH_FIELD_SEPARATOR = "\x1e"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time as text (sortable), and it
    is given back as an aware UTC datetime. Naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def encode_token_times(times_ms: list[float]) -> bytes | None:
    """Per-token times (ms since the generate call) as little-endian float32: 4 bytes a token."""
    if not times_ms:
        return None
    packed = array("f", times_ms)
    if packed.itemsize != 4:  # pragma: no cover - every platform Python supports has 4-byte f
        raise RuntimeError("float32 array type is not 4 bytes on this platform")
    return packed.tobytes()


def decode_token_times(blob: bytes | None) -> list[float]:
    """The inverse of :func:`encode_token_times` (float32 precision: ~7 significant digits)."""
    if not blob:
        return []
    return array("f", blob).tolist()


def include_in_autogenerate(name: str | None, type_: str, _parent: Any) -> bool:
    """Alembic ``include_name``: leave out the search objects (and FTS5's shadow tables)."""
    if name is None:
        return True
    if type_ == "table" and name.startswith("runs_fts"):
        return False
    return name not in SEARCH_OBJECTS


def fold(text: str) -> str:
    """Case folding for search, done in Python so that SQLite and PostgreSQL agree exactly."""
    return text.casefold()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        str: String(255),
        int: Integer(),
        float: Float(),
        bytes: LargeBinary(),
    }


class Run(Base):
    """One prompt submission: the conversation, the settings, and one generation per model."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"kind IN {RUN_KINDS!r}", name="kind"),
        Index("ix_runs_created_at_id", "created_at", "id"),  # newest first, ties by id
        Index("ix_runs_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16), default="ui")
    mode: Mapped[str] = mapped_column(String(16))
    thinking: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[list[Any]]
    settings: Mapped[dict[str, Any]]
    meta: Mapped[dict[str, Any]]
    user: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    turn: Mapped[int] = mapped_column(default=0)
    # Added by migration 0002: the folded prompt and outputs, which the search indexes cover.
    search_text: Mapped[str] = mapped_column(Text, default="", deferred=True)
    # Added by migration 0006: a delete is soft (who and when); lists, filters, trends and
    # exports leave deleted runs out unless asked, and an admin can restore them.
    deleted_at: Mapped[datetime | None] = mapped_column(index=True)
    deleted_by: Mapped[str | None] = mapped_column(String(255))

    generations: Mapped[list[Generation]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Generation.position",
    )
    tag_rows: Mapped[list[RunTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RunTag.tag"
    )
    votes: Mapped[list[Vote]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tags(self) -> list[str]:
        return [t.tag for t in self.tag_rows]

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def generation(self, model_key: str) -> Generation | None:
        return next((g for g in self.generations if g.model_key == model_key), None)


class RunTag(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Generation(Base):
    """One model's answer within a run, with every metric of ``qwen_dash.core.metrics``."""

    __tablename__ = "generations"
    __table_args__ = (
        Index("ix_generations_model_key_created_at", "model_key", "created_at"),
        Index("ix_generations_source_created_at", "source", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)  # 0 = model A, 1 = model B, ...
    created_at: Mapped[datetime]  # the run's time, repeated so time+model indexes cover one table
    model_key: Mapped[str] = mapped_column(String(128))
    hf_id: Mapped[str] = mapped_column(String(256))
    revision: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(128))
    dtype: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    overlapped: Mapped[bool | None] = mapped_column(Boolean)
    started_at: Mapped[datetime | None]
    text: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str | None] = mapped_column(Text)
    queue_ms: Mapped[float | None]
    tokenize_ms: Mapped[float | None]
    ttft_ms: Mapped[float | None]
    e2e_ms: Mapped[float | None]
    decode_tps: Mapped[float | None]
    gen_tps: Mapped[float | None]
    total_tps: Mapped[float | None]
    itl_p50_ms: Mapped[float | None]
    itl_p95_ms: Mapped[float | None]
    n_in: Mapped[int | None]
    n_out: Mapped[int | None]
    n_think: Mapped[int | None]
    n_answer: Mapped[int | None]
    ttfa_ms: Mapped[float | None]
    weights_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cuda_peak_alloc_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cuda_peak_reserved_bytes: Mapped[int | None] = mapped_column(BigInteger)
    nvml_process_bytes: Mapped[int | None] = mapped_column(BigInteger)
    nvml_device_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    rss_peak_bytes: Mapped[int | None] = mapped_column(BigInteger)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)  # CUDA alloc peak, else RSS
    token_times: Mapped[bytes | None] = mapped_column(deferred=True)  # encode_token_times
    settings: Mapped[dict[str, Any]]
    environment: Mapped[dict[str, Any]] = mapped_column(deferred=True)

    run: Mapped[Run] = relationship(back_populates="generations")

    @property
    def token_times_ms(self) -> list[float]:
        return decode_token_times(self.token_times)


class Vote(Base):
    """One person's verdict on one run (or one imported battle): which answer was best.

    One vote per (run, voter): changing it updates this row and adds a ``VoteChange``; the
    ratings read its ``battles``. ``sides`` lists the run's models in the order the voter saw
    them (side a first: in blind mode the order drawn at random), so ``winner`` (a side letter,
    tie or both_bad) always says which model was picked. ``model_a``/``model_b`` are the first
    two sides. Imported battles (``origin`` import) have no local run: their FastChat fields
    (question_id, turn, tstamp, anony = blind) and the run id they named (``source_run_id``) are
    kept as given, so an export gives them back unchanged.
    """

    __tablename__ = "votes"
    __table_args__ = (
        CheckConstraint(f"winner IN {VOTE_WINNERS!r}", name="winner"),
        CheckConstraint(f"origin IN {VOTE_ORIGINS!r}", name="origin"),
        UniqueConstraint("run_id", "voter"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(index=True)  # first cast (imported: tstamp)
    updated_at: Mapped[datetime]  # the verdict in force was cast then
    tstamp: Mapped[float]  # updated_at as unix seconds (imported: exactly as given)
    model_a: Mapped[str] = mapped_column(String(128))
    model_b: Mapped[str] = mapped_column(String(128))
    sides: Mapped[list[Any]]
    winner: Mapped[str] = mapped_column(String(16))
    voter: Mapped[str | None] = mapped_column(String(128))
    blind: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(8), default="local")
    question_id: Mapped[str | None] = mapped_column(String(128))
    turn: Mapped[int | None]
    source_run_id: Mapped[int | None]

    run: Mapped[Run | None] = relationship(back_populates="votes")
    battles: Mapped[list[VoteBattle]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="VoteBattle.id"
    )
    changes: Mapped[list[VoteChange]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="VoteChange.id"
    )


class VoteBattle(Base):
    """One pair of models within a vote and who won: what the ratings read.

    ``battle_key`` is the idempotency key of the battle's exported record
    (``qwen_dash.core.arena.record_key``): importing a battle whose key is here adds nothing.
    """

    __tablename__ = "vote_battles"
    __table_args__ = (CheckConstraint(f"winner IN {BATTLE_WINNERS!r}", name="winner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id", ondelete="CASCADE"), index=True)
    model_a: Mapped[str] = mapped_column(String(128))
    model_b: Mapped[str] = mapped_column(String(128))
    winner: Mapped[str] = mapped_column(String(16))
    battle_key: Mapped[str | None] = mapped_column(String(32), unique=True)


class VoteChange(Base):
    """A vote that was changed: what it said before, what it says now, and when."""

    __tablename__ = "vote_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id", ondelete="CASCADE"), index=True)
    changed_at: Mapped[datetime]
    old_winner: Mapped[str] = mapped_column(String(16))
    new_winner: Mapped[str] = mapped_column(String(16))
    old_sides: Mapped[list[Any]]
    new_sides: Mapped[list[Any]]


class AuditEvent(Base):
    """Who changed what, when, on which run: saves, votes, tags, notes, deletes, restores.

    ``run_id`` is a plain column, not a foreign key: the record outlives the run it names.
    ``detail`` holds what changed (the tags before and after, the vote, ...)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(f"action IN {AUDIT_ACTIONS!r}", name="action"),
        Index("ix_audit_events_at_id", "at", "id"),  # newest first, ties by id
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(index=True)
    detail: Mapped[dict[str, Any]]


class TrendRollup(Base):
    """Trends precomputed per bucket: count and p50/p95/mean of TREND_METRICS (status ok only).

    One row per (bucket kind, bucket start, model, source, mode) and per split: ``thinking`` and
    ``kind`` each hold a value ("true"/"false", a run kind) or ROLLUP_ANY for all runs, so every
    generation counts in four rows (percentiles of parts cannot be combined, so each grain the
    Trends page asks for is kept whole). Saving or deleting a run only marks the (any, any) row of
    its units ``dirty`` (creating it with count 0 if new); ``qwen_dash.store.rollups`` recomputes
    every row of a dirty unit, exactly, before it answers.
    """

    __tablename__ = "trend_rollups"
    __table_args__ = (
        CheckConstraint(f"bucket_kind IN {BUCKET_KINDS!r}", name="bucket_kind"),
        Index("ix_trend_rollups_dirty_bucket_kind", "dirty", "bucket_kind"),
    )

    # Key order: what a read asks for first (kind of bucket, split) is a prefix.
    bucket_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    thinking: Mapped[str] = mapped_column(String(8), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    model_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), primary_key=True)
    dirty: Mapped[bool] = mapped_column(Boolean, default=True)
    count: Mapped[int] = mapped_column(default=0)
    ttft_ms_p50: Mapped[float | None]
    ttft_ms_p95: Mapped[float | None]
    ttft_ms_mean: Mapped[float | None]
    e2e_ms_p50: Mapped[float | None]
    e2e_ms_p95: Mapped[float | None]
    e2e_ms_mean: Mapped[float | None]
    decode_tps_p50: Mapped[float | None]
    decode_tps_p95: Mapped[float | None]
    decode_tps_mean: Mapped[float | None]
    n_out_p50: Mapped[float | None]
    n_out_p95: Mapped[float | None]
    n_out_mean: Mapped[float | None]
    peak_memory_bytes_p50: Mapped[float | None]
    peak_memory_bytes_p95: Mapped[float | None]
    peak_memory_bytes_mean: Mapped[float | None]


class SuiteRun(Base):
    """One run of a prompt suite: which suite (its name and its whole text, as it was), on which
    models, and how far it got. Each case's answers are runs of kind ``suite``; the verdicts are
    ``suite_results`` rows, which link the two."""

    __tablename__ = "suite_runs"
    __table_args__ = (
        CheckConstraint(f"status IN {SUITE_RUN_STATUSES!r}", name="status"),
        Index("ix_suite_runs_suite_created_at", "suite", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    suite: Mapped[str] = mapped_column(String(255))  # the suite's name: its file name
    description: Mapped[str | None] = mapped_column(Text)
    suite_text: Mapped[str] = mapped_column(Text, deferred=True)  # the YAML, as it ran
    suite_sha256: Mapped[str] = mapped_column(String(64))
    models: Mapped[list[Any]]
    source: Mapped[str] = mapped_column(String(16))  # the weights source asked for
    mode: Mapped[str] = mapped_column(String(16))
    repeat: Mapped[int] = mapped_column(default=1)
    total_cases: Mapped[int] = mapped_column(default=0)
    done_cases: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")
    user: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)

    results: Mapped[list[SuiteResult]] = relationship(
        back_populates="suite_run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SuiteResult.position",
    )


class SuiteResult(Base):
    """One case's verdict for one model in a suite run, and the run that holds the answer
    (``run_id``; null once that run is deleted: the verdict stays)."""

    __tablename__ = "suite_results"
    __table_args__ = (
        CheckConstraint(f"status IN {SUITE_CASE_STATUSES!r}", name="status"),
        Index("ix_suite_results_suite_run_id_position", "suite_run_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    suite_run_id: Mapped[int] = mapped_column(ForeignKey("suite_runs.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)  # the case's place in the suite
    case_id: Mapped[str] = mapped_column(String(64))
    case_name: Mapped[str] = mapped_column(Text)
    repeat_index: Mapped[int] = mapped_column(default=0)
    model_key: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(8))
    passed: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float]
    e2e_ms: Mapped[float | None]  # the answer's latency, copied for the summary's median
    assertions: Mapped[list[Any]]  # [{type, passed, score, reason, metric, weight}, ...]
    error: Mapped[str | None] = mapped_column(Text)

    suite_run: Mapped[SuiteRun] = relationship(back_populates="results")


ROLLUP_STATS = tuple(f"{m}_{s}" for m in TREND_METRICS for s in ("p50", "p95", "mean"))
