"""What History, Trends and export narrow runs by, and the SQL conditions that do it.

One :class:`RunFilters` value describes a selection; :class:`Conditions` turns it into SQLAlchemy
conditions on runs or on generations, text search included (the dialect decides how).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select, table, text
from sqlalchemy import column as sql_column
from sqlalchemy.orm import aliased

from qwen_dash.store.schema import Generation, Run, RunTag, fold

_FTS = table("runs_fts", sql_column("rowid"))


@dataclass(frozen=True)
class RunFilters:
    """What History, Trends and export narrow runs by. Empty fields filter nothing.

    ``text``: exact substring, case-insensitive (Unicode case folding), of the prompt, system
    prompt, any output, reasoning or error. ``models``/``sources``: the run has a generation of
    one of these models / from one of these sources (in trends: only those generations count).
    ``since`` inclusive, ``until`` exclusive, both timezone-aware. ``deleted``: False (the
    default) leaves soft-deleted runs out, True keeps only them, None keeps both.
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
    deleted: bool | None = False

    def needs_run(self, keys: Sequence[str] = ()) -> bool:
        """Whether a generations query must join runs for these filters and group keys."""
        run_keys = {"thinking", "kind"} & set(keys)
        on_run = (self.text, self.tag, self.thinking is not None, self.kind, self.user)
        return bool(run_keys) or any(on_run) or bool(self.conversation_id)


@dataclass(frozen=True)
class Conditions:
    """Builds WHERE conditions for one database: ``dialect`` and whether SQLite's FTS5 trigram
    index (migration 0002) is there."""

    dialect: str
    has_fts: bool

    def runs(self, f: RunFilters, text_index: bool = True) -> list[ColumnElement[bool]]:
        """Conditions on ``Run``: the run matches ``f``."""
        out = self.common(f, Run.created_at, text_index)
        out += self.run_deleted(f)
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

    def generations(self, f: RunFilters, g: Any = Generation) -> list[ColumnElement[bool]]:
        """Conditions on generations (``g``): only the generations ``f`` asks for count."""
        out = self.common(f, g.created_at)
        out += self.generation_deleted(f, g)
        if f.models:
            out.append(g.model_key.in_(f.models))
        if f.sources:
            out.append(g.source.in_(f.sources))
        if f.mode:
            out.append(g.mode == f.mode)
        return out

    @staticmethod
    def run_deleted(f: RunFilters) -> list[ColumnElement[bool]]:
        """Soft-deleted runs out (the default), only them, or both."""
        if f.deleted is None:
            return []
        return [Run.deleted_at.is_not(None) if f.deleted else Run.deleted_at.is_(None)]

    @staticmethod
    def generation_deleted(f: RunFilters, g: Any = Generation) -> list[ColumnElement[bool]]:
        """:meth:`run_deleted` for a query on generations alone, without joining runs: the
        deleted runs are few, and their ids come from runs' ``deleted_at`` index."""
        if f.deleted is None:
            return []
        deleted_ids = select(Run.id).where(Run.deleted_at.is_not(None))
        in_deleted = g.run_id.in_(deleted_ids)
        return [in_deleted if f.deleted else ~in_deleted]

    def common(
        self, f: RunFilters, created_at: Any, text_index: bool = True
    ) -> list[ColumnElement[bool]]:
        """Conditions on the run (``Run`` must be in the FROM clause) and on a time column."""
        out: list[ColumnElement[bool]] = []
        if f.since is not None:
            out.append(created_at >= f.since)
        if f.until is not None:
            out.append(created_at < f.until)
        if f.text:
            out.append(self.text(f.text, text_index))
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

    def text(self, query: str, use_index: bool = True) -> ColumnElement[bool]:
        """Exact substring of the folded search text.

        SQLite: the FTS5 trigram index narrows the candidates (needles of 3+ characters), and
        ``instr`` checks the exact substring. PostgreSQL: ``LIKE`` with every wildcard escaped,
        which the pg_trgm index serves.
        """
        needle = fold(query)
        if self.dialect == "sqlite":
            exact = func.instr(Run.search_text, needle) > 0
            if use_index and self.has_fts and len(needle) >= 3:
                phrase = '"' + needle.replace('"', '""') + '"'
                match = text("runs_fts MATCH :fts_phrase").bindparams(fts_phrase=phrase)
                return and_(Run.id.in_(select(_FTS.c.rowid).where(match)), exact)
            return exact
        escaped = needle.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return Run.search_text.like(f"%{escaped}%", escape="/")
