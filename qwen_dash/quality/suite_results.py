"""Summaries of suite runs: pass rates with their uncertainty, named metrics, and run-to-run diffs.

Pure functions over :class:`ResultRow` (a case's verdict for one model), so the UI and the CLI
compute the same figures from whatever they stored. Suites are small (tens of cases), so a pass
rate comes with a Wilson 95% interval: 8 of 10 is "somewhere from 49% to 94%", and two models
whose intervals overlap that much have not been told apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from qwen_dash.quality.assertions import STATUS_ERROR, CaseResult

Z95 = 1.959963984540054  # two-sided 95% normal quantile

PASSED_TO_FAILED = "passed→failed"
FAILED_TO_PASSED = "failed→passed"
NEW = "new"
GONE = "gone"
UNCHANGED = "unchanged"
CHANGES = (PASSED_TO_FAILED, FAILED_TO_PASSED, NEW, GONE, UNCHANGED)


@dataclass(frozen=True)
class ResultRow:
    """One case's verdict for one model in one run."""

    case_id: str
    model: str
    result: CaseResult


@dataclass(frozen=True)
class PassRate:
    """A model's pass rate over the cases that produced an answer.

    ``errors`` (generations that failed) are counted apart and left out of ``total``: a crash
    says nothing about the answers the model gives, and counting it as a fail would blame the
    model for the machine.
    """

    passed: int
    total: int
    errors: int
    rate: float | None
    low: float
    high: float


@dataclass(frozen=True)
class MetricMean:
    """The mean score of every assertion tagged with one named metric."""

    mean: float
    count: int


@dataclass(frozen=True)
class CaseChange:
    """How one (case, model) moved between two runs; a status is None where the run lacks it."""

    case_id: str
    model: str
    change: str
    before: str | None
    after: str | None


def wilson(passed: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``passed`` of ``total``: unlike the normal approximation it
    stays inside [0, 1] and is honest at 0/n and n/n, which small suites hit all the time.
    With nothing counted the interval is everything, (0, 1)."""
    if total <= 0:
        return 0.0, 1.0
    if not 0 <= passed <= total:
        raise ValueError(f"passed must be between 0 and total, got {passed} of {total}")
    p = passed / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z / (1 + z2 / total) * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == total else min(1.0, centre + half)
    return low, high


def pass_rate(results: Iterable[CaseResult]) -> PassRate:
    """Pass rate and Wilson interval of some verdicts (errors counted apart)."""
    passed = total = errors = 0
    for r in results:
        if r.status == STATUS_ERROR:
            errors += 1
            continue
        total += 1
        passed += int(r.passed)
    low, high = wilson(passed, total)
    return PassRate(passed, total, errors, passed / total if total else None, low, high)


def pass_rates(rows: Iterable[ResultRow]) -> dict[str, PassRate]:
    """Per model, in the order models first appear."""
    by_model: dict[str, list[CaseResult]] = defaultdict(list)
    for row in rows:
        by_model[row.model].append(row.result)
    return {model: pass_rate(results) for model, results in by_model.items()}


def metric_means(rows: Iterable[ResultRow]) -> dict[str, dict[str, MetricMean]]:
    """Per model, per named metric: the mean assertion score (weight-0 assertions included:
    informational metrics exist to be read here). Errored cases have no scores to add."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for a in row.result.assertions:
            if a.metric:
                sums[row.model][a.metric].append(a.score)
    return {
        model: {m: MetricMean(sum(s) / len(s), len(s)) for m, s in metrics.items()}
        for model, metrics in sums.items()
    }


def _change(before: CaseResult | None, after: CaseResult | None) -> str:
    if before is None:
        return NEW
    if after is None:
        return GONE
    if before.passed and not after.passed:
        return PASSED_TO_FAILED
    if after.passed and not before.passed:
        return FAILED_TO_PASSED
    return UNCHANGED


def diff_runs(before: Iterable[ResultRow], after: Iterable[ResultRow]) -> list[CaseChange]:
    """Per (case, model), how the verdict moved from one run to the other. An error counts as
    not passed, so passed→error shows as passed→failed; the statuses say which it was."""
    old = {(r.case_id, r.model): r.result for r in before}
    new = {(r.case_id, r.model): r.result for r in after}
    keys = list(old) + [k for k in new if k not in old]
    changes = []
    for case_id, model in keys:
        b, a = old.get((case_id, model)), new.get((case_id, model))
        changes.append(
            CaseChange(
                case_id,
                model,
                _change(b, a),
                b.status if b else None,
                a.status if a else None,
            )
        )
    return changes


def diff_counts(changes: Iterable[CaseChange]) -> dict[str, int]:
    """How many (case, model) pairs moved each way, every kind present (zero when none)."""
    counts = dict.fromkeys(CHANGES, 0)
    for c in changes:
        counts[c.change] += 1
    return counts
