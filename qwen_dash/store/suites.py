"""Suite runs: start one, save each case's answers (a run of kind ``suite``) with its verdicts,
finish it; read them back for the results matrix, the regressions and the pass-rate chart.

The store knows nothing of assertions: verdicts arrive as plain values (:class:`SuiteVerdict`)
and leave as :class:`SuiteResultRow`; ``qwen_dash.quality`` judges, the store keeps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import CompareRequest
from qwen_dash.store.base import StoreBase
from qwen_dash.store.database import StoreError
from qwen_dash.store.runs import build_run, utcnow
from qwen_dash.store.schema import SUITE_RUN_STATUSES, SuiteResult, SuiteRun

SUITE_RUNS_LIMIT = 200


@dataclass(frozen=True)
class SuiteCaseRef:
    """Which case of the suite a saved answer is: its place, stable id, name and repeat."""

    position: int
    case_id: str
    name: str
    repeat_index: int = 0


@dataclass(frozen=True)
class SuiteVerdict:
    """One model's verdict on one case, as the store keeps it."""

    model_key: str
    status: str  # pass | fail | error
    passed: bool
    score: float
    assertions: list[dict[str, Any]]
    error: str | None = None
    e2e_ms: float | None = None


@dataclass(frozen=True)
class SuiteRunInfo:
    """A suite run's row, without its text (``suite_text()`` reads that)."""

    id: int
    created_at: datetime
    finished_at: datetime | None
    suite: str
    description: str | None
    suite_sha256: str
    models: list[str]
    source: str
    mode: str
    repeat: int
    total_cases: int
    done_cases: int
    status: str
    user: str | None
    error: str | None


@dataclass(frozen=True)
class SuiteResultRow:
    """One (case, model) verdict of a suite run, with the run that holds the answer."""

    suite_run_id: int
    run_id: int | None
    position: int
    case_id: str
    case_name: str
    repeat_index: int
    model_key: str
    status: str
    passed: bool
    score: float
    e2e_ms: float | None
    assertions: list[dict[str, Any]]
    error: str | None


@dataclass(frozen=True)
class SuitePassPoint:
    """One model's counts in one suite run, for the pass rate over time (errors apart)."""

    suite_run_id: int
    created_at: datetime
    model_key: str
    passed: int
    judged: int
    errors: int


def _info(row: SuiteRun) -> SuiteRunInfo:
    values = {name: getattr(row, name) for name in SuiteRunInfo.__dataclass_fields__}
    values["models"] = list(row.models or [])
    return SuiteRunInfo(**values)


def _result_row(r: SuiteResult) -> SuiteResultRow:
    fields = SuiteResultRow.__dataclass_fields__
    return SuiteResultRow(**{name: getattr(r, name) for name in fields})


class SuiteQueries(StoreBase):
    """What the suite runner writes and the Suites page reads."""

    def start_suite_run(
        self,
        *,
        suite: str,
        suite_text: str,
        models: Sequence[str],
        source: str,
        mode: str,
        repeat: int,
        total_cases: int,
        description: str | None = None,
        user: str | None = None,
    ) -> int:
        """A new suite run, status running; returns its id."""
        row = SuiteRun(
            created_at=utcnow(),
            suite=suite[:255],
            description=description,
            suite_text=suite_text,
            suite_sha256=hashlib.sha256(suite_text.encode("utf-8")).hexdigest(),
            models=list(models),
            source=source,
            mode=mode,
            repeat=repeat,
            total_cases=total_cases,
            done_cases=0,
            status="running",
            user=user,
        )
        with self.writing() as session:
            session.add(row)
            session.flush()
            return row.id

    def save_suite_case(
        self,
        suite_run_id: int,
        case_ref: SuiteCaseRef,
        verdicts: Sequence[SuiteVerdict],
        request: CompareRequest | None = None,
        results: dict[str, GenerationResult] | None = None,
        user: str | None = None,
    ) -> int | None:
        """One case, in one transaction: its answers as a run of kind ``suite`` (when there are
        any), a verdict row per model, and the suite run's count of cases done. Returns the
        run's id."""
        with self.writing() as session:
            run_id = None
            if request is not None and results:
                run = build_run(request, results, kind="suite", user=user)
                run_id = self.add_run(session, run)
            session.add_all(
                SuiteResult(
                    suite_run_id=suite_run_id,
                    run_id=run_id,
                    position=case_ref.position,
                    case_id=case_ref.case_id,
                    case_name=case_ref.name,
                    repeat_index=case_ref.repeat_index,
                    model_key=v.model_key,
                    status=v.status,
                    passed=v.passed,
                    score=v.score,
                    e2e_ms=v.e2e_ms,
                    assertions=v.assertions,
                    error=v.error,
                )
                for v in verdicts
            )
            session.execute(
                update(SuiteRun)
                .where(SuiteRun.id == suite_run_id)
                .values(done_cases=SuiteRun.done_cases + 1)
            )
            return run_id

    def finish_suite_run(self, suite_run_id: int, status: str, error: str | None = None) -> None:
        if status not in SUITE_RUN_STATUSES or status == "running":
            raise StoreError(f"A suite run ends done, stopped or failed, not '{status}'.")
        with self.writing() as session:
            row = session.get(SuiteRun, suite_run_id)
            if row is None:
                raise StoreError(f"There is no suite run {suite_run_id}.")
            row.status, row.error, row.finished_at = status, error, utcnow()

    # ---- reading ---------------------------------------------------------------------------

    def suite_run(self, suite_run_id: int) -> SuiteRunInfo | None:
        with self.reading() as session:
            row = session.get(SuiteRun, suite_run_id)
            return None if row is None else _info(row)

    def suite_text(self, suite_run_id: int) -> str | None:
        """The suite file as it ran."""
        with self.reading() as session:
            return session.scalar(select(SuiteRun.suite_text).where(SuiteRun.id == suite_run_id))

    def list_suite_runs(
        self, suite: str | None = None, limit: int = SUITE_RUNS_LIMIT
    ) -> list[SuiteRunInfo]:
        """Suite runs, newest first; of one suite when ``suite`` is given."""
        stmt = select(SuiteRun).order_by(SuiteRun.created_at.desc(), SuiteRun.id.desc())
        if suite is not None:
            stmt = stmt.where(SuiteRun.suite == suite)
        with self.reading() as session:
            return [_info(r) for r in session.scalars(stmt.limit(limit))]

    def suite_names(self) -> list[str]:
        """Every suite that has been run, the most recently run first."""
        stmt = (
            select(SuiteRun.suite)
            .group_by(SuiteRun.suite)
            .order_by(func.max(SuiteRun.created_at).desc())
        )
        with self.reading() as session:
            return list(session.scalars(stmt))

    def suite_results(self, suite_run_id: int) -> list[SuiteResultRow]:
        """Every verdict of a suite run, in suite order, models in the order they ran."""
        stmt = (
            select(SuiteResult)
            .where(SuiteResult.suite_run_id == suite_run_id)
            .order_by(SuiteResult.position, SuiteResult.id)
        )
        with self.reading() as session:
            return [_result_row(r) for r in session.scalars(stmt)]

    def suite_pass_history(self, suite: str, limit: int = SUITE_RUNS_LIMIT) -> list[SuitePassPoint]:
        """Per run of ``suite`` (the newest ``limit``, oldest first) and model: passed, judged
        (not errors) and errored cases, counted in SQL."""
        recent = (
            select(SuiteRun.id)
            .where(SuiteRun.suite == suite)
            .order_by(SuiteRun.created_at.desc(), SuiteRun.id.desc())
            .limit(limit)
        )
        r = SuiteResult
        stmt = (
            select(
                SuiteRun.id,
                SuiteRun.created_at,
                r.model_key,
                func.sum(case((r.status == "pass", 1), else_=0)),
                func.sum(case((r.status != "error", 1), else_=0)),
                func.sum(case((r.status == "error", 1), else_=0)),
            )
            .join(r, r.suite_run_id == SuiteRun.id)
            .where(SuiteRun.id.in_(recent))
            .group_by(SuiteRun.id, SuiteRun.created_at, r.model_key)
            .order_by(SuiteRun.created_at, SuiteRun.id, r.model_key)
        )
        with self.reading() as session:
            return [
                SuitePassPoint(int(i), t, m, int(p or 0), int(j or 0), int(e or 0))
                for i, t, m, p, j, e in session.execute(stmt)
            ]

    def delete_suite_run(self, suite_run_id: int) -> bool:
        """Delete a suite run and its verdicts (the answers' runs stay in History)."""
        with self.writing() as session:
            row = session.get(SuiteRun, suite_run_id)
            if row is None:
                return False
            session.delete(row)
            return True
