"""Running a prompt suite: every case to every chosen model through the pool, each answer
judged by its assertions and logged (a run of kind ``suite``, linked to its suite run).

A :class:`SuiteRunner` belongs to the process, not to a browser tab: ``start`` runs the suite on
a background thread and keeps a :class:`LiveSuiteRun` in its registry, so a page that is left or
reloaded finds the run again (``live``/``active``) and polls its :class:`Progress`. ``run`` does
the same in the caller's thread (the CLI). Stop ends the suite between cases and cancels the case
in flight; every finished case is already in the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from qwen_dash.core.metrics import GenerationResult
from qwen_dash.core.request import (
    CompareRequest,
    RequestError,
    Settings,
    recommended_settings,
    validate_request,
)
from qwen_dash.core.specs import ModelSpec
from qwen_dash.engine import Comparison
from qwen_dash.quality.assertions import CaseResult, Output, evaluate
from qwen_dash.quality.suites import MAX_REPEAT, Case, Suite
from qwen_dash.store import Store, SuiteCaseRef, SuiteVerdict

CASE_TIMEOUT_S = 900.0
KEEP_FINISHED = 20  # finished runs the registry remembers (the store keeps them all)
_NOT_SETTINGS = ("system", "thinking")


class SuiteRunError(ValueError):
    """The suite cannot run as asked (unknown model, a setting a model refuses); nothing ran."""


class Pool(Protocol):
    """What the runner needs of ``qwen_dash.engine.ModelPool``."""

    specs: dict[str, ModelSpec]
    source: str

    @property
    def workers(self) -> Mapping[str, Any]: ...

    def compare(self, request: CompareRequest, timeout_s: float = ...) -> Comparison: ...


# ---- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuitePlan:
    """What to run: a loaded suite, its text as it was read, the models, who asked."""

    suite: Suite
    text: str
    models: tuple[str, ...]
    user: str | None = None


def choose_models(
    suite: Suite, requested: Sequence[str] | None, available: Sequence[str]
) -> tuple[str, ...]:
    """The models to run: those asked for, else the suite's own, else every available one."""
    models = list(requested or suite.models or available)
    unknown = [m for m in models if m not in available]
    if unknown:
        raise SuiteRunError(
            f"Model(s) {', '.join(unknown)} not available here; available: {', '.join(available)}."
        )
    if not models:
        raise SuiteRunError("No model chosen: pick at least one model.")
    return tuple(dict.fromkeys(models))


def with_repeat(suite: Suite, repeat: int | None) -> Suite:
    """The suite with its ``repeat`` replaced (the CLI's ``--repeat``)."""
    if repeat is None:
        return suite
    if not 1 <= repeat <= MAX_REPEAT:
        raise SuiteRunError(f"--repeat must be from 1 to {MAX_REPEAT}, got {repeat}.")
    return replace(suite, repeat=repeat)


def model_settings(suite: Suite, spec: ModelSpec) -> Settings:
    """The model's recommended settings overlaid by what the suite asks of it."""
    asked = suite.settings_for(spec.key)
    overrides = {k: v for k, v in asked.items() if k not in _NOT_SETTINGS}
    return recommended_settings(spec, bool(asked.get("thinking", False)), **overrides)


def case_request(
    suite: Suite, case: Case, models: Sequence[str], specs: Mapping[str, ModelSpec]
) -> CompareRequest:
    """One case as the pool takes it. Models whose system prompts differ each get their own
    (as a first message of their history), so one run still holds every model's answer."""
    settings = {m: model_settings(suite, specs[m]) for m in models}
    systems = {m: suite.settings_for(m).get("system") or None for m in models}
    shared = set(systems.values())
    request = CompareRequest.from_prompt(
        case.prompt,
        settings,
        system_prompt=next(iter(shared)) if len(shared) == 1 else None,
        mode=suite.mode,
    )
    if len(shared) > 1:
        request.meta["histories"] = {
            m: [{"role": "system", "content": s}] if s else [] for m, s in systems.items()
        }
    return request


def check_plan(plan: SuitePlan, specs: Mapping[str, ModelSpec]) -> list[Case]:
    """Every case, each request validated before anything runs; SuiteRunError if one fails."""
    cases = plan.suite.cases()
    for case in cases:
        try:
            validate_request(case_request(plan.suite, case, plan.models, specs), dict(specs))
        except RequestError as exc:
            raise SuiteRunError(f"{plan.suite.name}: case {case.id}: {exc}") from exc
    return cases


# ---- judging ---------------------------------------------------------------------------------


def output_of(result: GenerationResult) -> Output:
    """What the assertions judge: the answer, the reasoning, the metrics, or the failure."""
    error = None if result.status == "ok" else (result.error or result.status)
    return Output(result.text, result.reasoning, result.metric_values(), error)


def verdict_for_store(model: str, verdict: CaseResult, e2e_ms: float | None) -> SuiteVerdict:
    return SuiteVerdict(
        model_key=model,
        status=verdict.status,
        passed=verdict.passed,
        score=verdict.score,
        assertions=[asdict(a) for a in verdict.assertions],
        error=verdict.error,
        e2e_ms=e2e_ms,
    )


@dataclass(frozen=True)
class CaseOutcome:
    """One case, answered by every model and judged; ``run_id`` is the logged run."""

    position: int
    case: Case
    run_id: int | None
    verdicts: dict[str, CaseResult]
    results: dict[str, GenerationResult]


@dataclass(frozen=True)
class Progress:
    """Where a suite run stands, for a progress bar."""

    suite_run_id: int
    suite: str
    models: tuple[str, ...]
    done: int
    total: int
    status: str  # running | done | stopped | failed
    elapsed_s: float
    eta_s: float | None
    error: str | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class _Answered:
    """A case every model has answered, waiting to be judged and saved."""

    position: int
    case: Case
    request: CompareRequest
    results: dict[str, GenerationResult]
    submit_s: float


# ---- one run -----------------------------------------------------------------------------------


@dataclass
class LiveSuiteRun:
    """A suite run in this process: its cases, its outcomes so far, and its stop switch."""

    id: int
    plan: SuitePlan
    cases: list[Case]
    pool: Pool
    store: Store
    on_case: Callable[[CaseOutcome], None] | None = None
    outcomes: list[CaseOutcome] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)  # runner work per case (its own clock)
    status: str = "running"
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _finished: threading.Event = field(default_factory=threading.Event)
    _current: Comparison | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        return len(self.cases)

    def stop(self) -> None:
        """End the suite: no further case starts, the one in flight is cancelled and dropped."""
        self._stop.set()
        with self._lock:
            current = self._current
        if current is not None:
            current.cancel()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the run ended within ``timeout`` seconds."""
        return self._finished.wait(timeout)

    def progress(self) -> Progress:
        done = len(self.outcomes)
        elapsed = (self.ended or time.monotonic()) - self.started
        eta = None
        if self.status == "running" and done:
            eta = elapsed / done * (self.total - done)
        return Progress(
            self.id,
            self.plan.suite.name,
            self.plan.models,
            done,
            self.total,
            self.status,
            elapsed,
            eta,
            self.error,
        )

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Every case in order until done or stopped. The suite run's row records the end
        before ``status`` says it, so whoever sees the run end finds it ended in the store."""
        final, error = "done", None
        try:
            self._loop()
            final = "stopped" if self._stop.is_set() else "done"
        except KeyboardInterrupt:  # Ctrl-C on the CLI: a stop, recorded as one
            self.stop()
            final = "stopped"
            raise
        except Exception as exc:  # the thread must record why it ended, whatever it was
            final, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.ended = time.monotonic()
            self.error = self._record_end(final, error)
            self.status = final
            self._finished.set()

    def _loop(self) -> None:
        """One case generates while the one before it is judged and saved: case i+1 is sent
        only once case i has answered, so no two cases ever overlap (isolated timing holds),
        and the runner's own work is hidden behind the next generation."""
        answered: _Answered | None = None
        for position, case in enumerate(self.cases):
            if self._stop.is_set():
                break
            t0 = time.perf_counter()
            request, comparison = self._submit(case)
            busy = time.perf_counter() - t0
            if answered is not None:
                self._complete(answered)
            results = comparison.wait()
            with self._lock:
                self._current = None
            if self._stop.is_set() and any(r.status == "cancelled" for r in results.values()):
                answered = None  # stopped in flight: dropped, never saved
                break
            answered = _Answered(position, case, request, results, busy)
        if answered is not None:
            self._complete(answered)

    def _record_end(self, status: str, error: str | None) -> str | None:
        """Write how the run ended; the error to report (with why it was not written)."""
        try:
            self.store.finish_suite_run(self.id, status, error)
        except Exception as exc:
            return (error or "") + f" (the end was not recorded: {exc})"
        return error

    def _submit(self, case: Case) -> tuple[CompareRequest, Comparison]:
        request = case_request(self.plan.suite, case, self.plan.models, self.pool.specs)
        request.meta.update(suite_run_id=self.id, suite=self.plan.suite.name, case_id=case.id)
        comparison = self.pool.compare(request, CASE_TIMEOUT_S)
        with self._lock:
            self._current = comparison
        return request, comparison

    def _complete(self, a: _Answered) -> None:
        """Judge and save an answered case; count it done."""
        t0 = time.perf_counter()
        outcome = self._judge_and_save(a.position, a.case, a.request, a.results)
        self.overhead_ms.append((a.submit_s + time.perf_counter() - t0) * 1000)
        self.outcomes.append(outcome)
        if self.on_case is not None:
            self.on_case(outcome)

    def _judge_and_save(
        self,
        position: int,
        case: Case,
        request: CompareRequest,
        results: dict[str, GenerationResult],
    ) -> CaseOutcome:
        ordered = {m: results[m] for m in self.plan.models}
        verdicts = {m: evaluate(case, output_of(r)) for m, r in ordered.items()}
        ref = SuiteCaseRef(position, case.id, case.name, case.repeat_index)
        stored = [verdict_for_store(m, v, ordered[m].e2e_ms) for m, v in verdicts.items()]
        run_id = self.store.save_suite_case(self.id, ref, stored, request, ordered, self.plan.user)
        return CaseOutcome(position, case, run_id, verdicts, ordered)


# ---- the registry ------------------------------------------------------------------------------


class SuiteRunner:
    """Runs suites on one pool, logging to one store; remembers the runs of this process."""

    def __init__(self, pool: Pool, store: Store) -> None:
        self.pool = pool
        self.store = store
        self._runs: dict[int, LiveSuiteRun] = {}
        self._lock = threading.Lock()

    def prepare(
        self, plan: SuitePlan, on_case: Callable[[CaseOutcome], None] | None = None
    ) -> LiveSuiteRun:
        """Check every case (SuiteRunError if one cannot run) and record the suite run."""
        missing = [m for m in plan.models if m not in self.pool.workers]
        if missing:
            raise SuiteRunError(f"Model(s) not in this pool: {', '.join(missing)}.")
        cases = check_plan(plan, self.pool.specs)
        suite = plan.suite
        suite_run_id = self.store.start_suite_run(
            suite=suite.name,
            suite_text=plan.text,
            models=plan.models,
            source=self.pool.source,
            mode=suite.mode,
            repeat=suite.repeat,
            total_cases=len(cases),
            description=suite.description,
            user=plan.user,
        )
        live = LiveSuiteRun(suite_run_id, plan, cases, self.pool, self.store, on_case)
        with self._lock:
            self._runs[suite_run_id] = live
            self._forget_old()
        return live

    def start(self, plan: SuitePlan) -> LiveSuiteRun:
        """Prepare, then run on a background thread of this process; returns at once."""
        live = self.prepare(plan)
        thread = threading.Thread(target=live.run, name=f"suite-run-{live.id}", daemon=True)
        thread.start()
        return live

    def run(
        self, plan: SuitePlan, on_case: Callable[[CaseOutcome], None] | None = None
    ) -> LiveSuiteRun:
        """Prepare and run in the caller's thread (the CLI); returns when the suite ends."""
        live = self.prepare(plan, on_case)
        live.run()
        return live

    def live(self, suite_run_id: int) -> LiveSuiteRun | None:
        with self._lock:
            return self._runs.get(suite_run_id)

    def active(self) -> list[LiveSuiteRun]:
        """The runs still running in this process, oldest first."""
        with self._lock:
            return [r for r in self._runs.values() if r.status == "running"]

    def stop_all(self) -> None:
        for live in self.active():
            live.stop()

    def _forget_old(self) -> None:
        finished = [i for i, r in self._runs.items() if r.status != "running"]
        for suite_run_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._runs[suite_run_id]
