"""The runs: save, find, tag, vote on, delete, restore and export them (the write and read paths).

Every change records who made it (``actor``: the signed-in person's email, a local user's name,
the CLI) in the audit log, in the same transaction as the change. Who may make which change is
decided above the store (``qwen_dash.core.access``); the store records, it does not judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO, cast

from sqlalchemy import (
    CursorResult,
    Select,
    String,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, selectinload, undefer

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest
from qwen_dash.store import export
from qwen_dash.store.database import StoreError
from qwen_dash.store.filters import RunFilters
from qwen_dash.store.runs import build_run, clean_tags, utcnow
from qwen_dash.store.schema import AuditEvent, Generation, Run, RunTag
from qwen_dash.store.suites import SuiteQueries
from qwen_dash.store.trends import TrendQueries
from qwen_dash.store.votes import VoteQueries

PAGE_SIZE = 50
AUDIT_PAGE = 200
RECENT_SCAN = 5_000  # newest runs a text search scans before it asks the trigram index
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    page: int
    page_size: int
    has_more: bool


class Store(TrendQueries, VoteQueries, SuiteQueries):
    """The database of runs. Thread-safe; one per process is enough (the app caches one).

    Objects returned are detached ORM rows (``qwen_dash.store.schema``) or small frozen
    dataclasses; they stay usable after the call. ``list_runs`` loads each run's generations and
    tags; ``get_run`` also loads the per-token times, the environment and the votes.
    """

    # ---- saving ----------------------------------------------------------------------------

    def save_run(self, run: Run) -> int:
        with self.writing() as session:
            return self.add_run(session, run)

    def save_comparison(
        self,
        request: CompareRequest,
        results: dict[str, GenerationResult],
        **fields: Any,
    ) -> int:
        """Save one comparison and its generations in one transaction; returns the run id.

        ``fields`` are :func:`qwen_dash.store.runs.build_run`'s: kind, user, tags,
        conversation_id, turn, notes, created_at."""
        return self.save_run(build_run(request, results, **fields))

    def bulk_load(self, chunks: Iterable[tuple[Rows, Rows, Rows]]) -> None:
        """Insert rows written around the ORM, in one transaction: (runs, generations, tags)
        per chunk, with ids given. For imports and benchmarks: far faster than one save each.

        On SQLite the search index's insert trigger is set aside and the index rebuilt once at
        the end (one trigger call per row is ~4x slower). Every trend rollup is marked dirty, and
        the planner's statistics are refreshed (ANALYZE)."""
        with self.writing() as session:
            trigger = self._suspend_fts_trigger(session)
            for runs, gens, tags in chunks:
                session.execute(insert(Run), runs)
                session.execute(insert(Generation), gens)
                if tags:
                    session.execute(insert(RunTag), tags)
            if trigger is not None:
                session.execute(text("INSERT INTO runs_fts(runs_fts) VALUES ('rebuild')"))
                session.execute(text(trigger))
            if self.rollups is not None:
                self.rollups.mark_all(session)
            # Fresh planner statistics: without them SQLite reads Trends' paired differences
            # (newest 2,000 runs where both answered) by sorting every run, 2-4 s at 200k runs
            # instead of ~0.1 s. A full ANALYZE: a sampled one (analysis_limit) still misleads it.
            session.execute(text("ANALYZE"))

    def _suspend_fts_trigger(self, session: Session) -> str | None:
        """Drop the FTS insert trigger (this transaction only); returns its SQL to recreate it."""
        if not self.conditions.has_fts:
            return None
        sql = session.scalar(
            text(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'runs_fts_insert'"
            )
        )
        if sql is not None:
            session.execute(text("DROP TRIGGER runs_fts_insert"))
        return sql

    # ---- reading ---------------------------------------------------------------------------

    def get_run(self, run_id: int, *, include_deleted: bool = False) -> Run | None:
        """A run with everything: generations (with token times, environment), tags, votes.
        A deleted run is None unless ``include_deleted`` (an admin restoring it)."""
        stmt = (
            select(Run)
            .where(Run.id == run_id, *([] if include_deleted else [Run.deleted_at.is_(None)]))
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
    def _page(stmt: Select[Run], page: int, page_size: int) -> Select[Run]:
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
        if not self.conditions.has_fts:
            return None
        recent = (
            select(Run.id)
            .where(*self.conditions.run_deleted(f))
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(RECENT_SCAN)
        )
        conditions = [*self.conditions.runs(f, text_index=False), Run.id.in_(recent)]
        stmt = select(Run).where(*conditions).order_by(Run.created_at.desc(), Run.id.desc())
        runs = list(session.scalars(self._page(stmt, page, page_size)))
        return runs if len(runs) > page_size else None

    def count_runs(self, filters: RunFilters | None = None, limit: int | None = None) -> int:
        """How many runs match; with ``limit``, counting stops there (a page header that says
        "10,000+" need not visit every match of a common word)."""
        matching = select(Run.id).where(*self.conditions.runs(filters or RunFilters()))
        if limit is not None:
            matching = matching.limit(limit)
        stmt = select(func.count()).select_from(matching.subquery())
        with self.reading() as session:
            return session.scalar(stmt) or 0

    def filter_options(self) -> dict[str, list[str]]:
        """Distinct models, sources and tags of the runs that are not deleted, for filters.

        Each list is read by a loose index scan (:func:`distinct_values`): one index probe per
        distinct value, so the cost follows how many values there are, not how many rows (a
        plain SELECT DISTINCT reads every generation on every History and Trends render). A
        value found only on deleted runs is then left out, one indexed probe per value."""
        not_deleted = RunFilters()
        columns = {
            "models": (Generation.model_key, self.conditions.generation_deleted(not_deleted)),
            "sources": (Generation.source, self.conditions.generation_deleted(not_deleted)),
            "tags": (RunTag.tag, self.conditions.generation_deleted(not_deleted, RunTag)),
        }
        with self.reading() as session:
            found = {
                name: distinct_values(session, column) for name, (column, _) in columns.items()
            }
            if not session.execute(
                select(Run.id).where(Run.deleted_at.is_not(None)).limit(1)
            ).first():
                return {name: sorted(values) for name, values in found.items()}
            return {
                name: sorted(_live_values(session, column, found[name], live))
                for name, (column, live) in columns.items()
            }

    # ---- editing ---------------------------------------------------------------------------

    def set_tags(self, run_id: int, tags: Iterable[str], *, actor: str | None = None) -> list[str]:
        """Replace a run's tags; returns them cleaned. StoreError when the run does not exist."""
        cleaned = clean_tags(tags)
        with self.writing() as session:
            run = self._require(session, run_id)
            before = run.tags
            if before == cleaned:
                return cleaned
            session.execute(delete(RunTag).where(RunTag.run_id == run_id))
            session.add_all(RunTag(run_id=run_id, tag=t) for t in cleaned)
            self._audit(session, actor, "run.tags", run_id, {"before": before, "after": cleaned})
        return cleaned

    def set_notes(self, run_id: int, notes: str | None, *, actor: str | None = None) -> None:
        with self.writing() as session:
            run = self._require(session, run_id)
            before, run.notes = run.notes, notes or None
            if before != run.notes:
                detail = {"before": before, "after": run.notes}
                self._audit(session, actor, "run.notes", run_id, detail)

    def delete_run(self, run_id: int, *, actor: str | None = None) -> bool:
        """Soft-delete a run: it records who and when, and leaves lists, filters, trends and
        exports; :meth:`restore_run` brings it back. False when there is no such run (or it
        is deleted already)."""
        with self.writing() as session:
            run = session.get(Run, run_id)
            if run is None or run.deleted_at is not None:
                return False
            run.deleted_at, run.deleted_by = utcnow(), actor
            if self.rollups is not None:
                self.rollups.mark_run_id(session, run_id)
            self._audit(session, actor, "run.delete", run_id, {"owner": run.user})
            return True

    def restore_run(self, run_id: int, *, actor: str | None = None) -> bool:
        """Undo a soft delete; False when the run does not exist or is not deleted."""
        with self.writing() as session:
            run = session.get(Run, run_id)
            if run is None or run.deleted_at is None:
                return False
            detail = {"deleted_by": run.deleted_by, "deleted_at": run.deleted_at.isoformat()}
            run.deleted_at = run.deleted_by = None
            if self.rollups is not None:
                self.rollups.mark_run_id(session, run_id)
            self._audit(session, actor, "run.restore", run_id, detail)
            return True

    def purge_run(self, run_id: int) -> bool:
        """Delete a run for good, with its generations, tags and votes (its audit records stay);
        False when there was none. Not offered in the app: a delete there is soft."""
        with self.writing() as session:
            if self.rollups is not None:
                self.rollups.mark_run_id(session, run_id)
            result = cast(CursorResult[Any], session.execute(delete(Run).where(Run.id == run_id)))
            return result.rowcount > 0

    # ---- the audit log ---------------------------------------------------------------------

    def audit_log(
        self,
        *,
        run_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = AUDIT_PAGE,
    ) -> list[AuditEvent]:
        """The newest audit records first, optionally of one run, one person or one action."""
        conditions = []
        if run_id is not None:
            conditions.append(AuditEvent.run_id == run_id)
        if actor:
            conditions.append(AuditEvent.actor == actor)
        if action:
            conditions.append(AuditEvent.action == action)
        stmt = (
            select(AuditEvent)
            .where(*conditions)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
        with self.reading() as session:
            return list(session.scalars(stmt))

    @staticmethod
    def _require(session: Session, run_id: int) -> Run:
        """The run, for a change; a deleted run cannot be changed (restore it first)."""
        run = session.get(Run, run_id)
        if run is None or run.deleted_at is not None:
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

    def export(self, fmt: str, filters: RunFilters | None, out: TextIO) -> int:
        """Write the filtered runs to ``out``; returns how many runs were written.

        ``jsonl``: one JSON object per run, generations nested, token times as a list.
        ``csv``: one row per generation (run columns repeated), settings/environment as JSON.
        """
        if fmt not in export.FORMATS:
            raise StoreError(f"Export format must be csv or jsonl, got '{fmt}'.")
        return export.write(fmt, self.iter_runs(filters), out)


def distinct_values_query(column: Any) -> Select[Any]:
    """The distinct non-null values of an indexed column, by a loose index scan: a recursive
    query that asks the index for the smallest value above the last one found. The same values
    as ``SELECT DISTINCT``, in index order, at one index probe per value; SQLite and PostgreSQL
    both serve each step from an index that leads with the column."""
    found = select(func.min(column).label("value")).cte("found", recursive=True)
    following = select(func.min(column)).where(column > found.c.value).scalar_subquery()
    found = found.union_all(select(following).where(found.c.value.is_not(None)))
    return select(found.c.value).where(found.c.value.is_not(None))


def _live_values(
    session: Session, column: Any, values: list[Any], conditions: list[Any]
) -> list[Any]:
    """Those of ``values`` that occur on a run that is not deleted: one statement, one
    indexed probe per value (asked only when some run is deleted)."""
    if not values:
        return []
    probes = [
        select(sql_cast(literal(v), String).label("v")).where(
            exists().where(column == v, *conditions)
        )
        for v in values
    ]
    return list(session.scalars(union_all(*probes)))


def distinct_values(session: Session, column: Any) -> list[Any]:
    """:func:`distinct_values_query`'s values."""
    return list(session.scalars(distinct_values_query(column)))
