"""Checks on one model answer, and the score and verdict of a case, in promptfoo's terms.

Each assertion gives a score in [0, 1]. A case's score is the weighted mean of its assertions'
scores (weight 0 makes an assertion informational: it is reported, and its ``metric`` still
aggregates, but it neither moves the score nor fails the case). Without a case ``threshold`` every
weighted assertion must pass; with one, the score must reach it. A ``not-`` prefix inverts any
type (pass becomes fail, score becomes 1 - score), except where the check could not be made at
all (a metric that was not measured): "not measured" is no evidence either way, so it fails both.

A generation that failed has no answer to judge: its case is ``error``, never ``fail``, so a
crashed worker is not counted against the model's quality.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import jsonschema
from rapidfuzz.distance import Levenshtein

KNOWN_TYPES: tuple[str, ...] = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "starts-with",
    "regex",
    "is-json",
    "contains-json",
    "is-valid-json-schema",
    "levenshtein",
    "latency",
    "ttft",
    "max-tokens",
    "think-tokens",
    "python",
)
NOT_PREFIX = "not-"
TARGETS: tuple[str, ...] = ("answer", "reasoning")
CODE_TYPES: frozenset[str] = frozenset({"python"})
DEFAULT_LEVENSHTEIN = 5
DEFAULT_PYTHON_THRESHOLD = 0.5
_MAX_JSON_STARTS = 200  # contains-json tries at most this many '{' / '[' positions
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*?)\n?```$", re.DOTALL)

STATUS_PASS = "pass"
STATUS_FAIL = "fail"
STATUS_ERROR = "error"


@dataclass(frozen=True)
class Assertion:
    """One check from a suite file; ``type`` keeps its ``not-`` prefix as written."""

    type: str
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    metric: str | None = None
    on: str = "answer"

    @property
    def negated(self) -> bool:
        """Whether the verdict of the base check is inverted."""
        return self.type.startswith(NOT_PREFIX)

    @property
    def base_type(self) -> str:
        """The type without its ``not-`` prefix, which is what selects the check."""
        return self.type[len(NOT_PREFIX) :] if self.negated else self.type


@dataclass(frozen=True)
class Output:
    """What one model produced for one case: the text split as the dashboard splits Qwen3
    output, the run's metrics (``e2e_ms``, ``ttft_ms``, ``n_out``, ``n_answer``, ``n_think``...)
    and, when the generation failed, its error instead of an answer."""

    answer: str = ""
    reasoning: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class AssertionResult:
    """The verdict of one assertion; ``weight`` travels along so summaries can tell the
    informational ones (weight 0) apart."""

    type: str
    passed: bool
    score: float
    reason: str
    metric: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class CaseResult:
    """The verdict of a case for one model: ``status`` is pass, fail or error."""

    case_id: str
    passed: bool
    score: float
    status: str
    assertions: tuple[AssertionResult, ...] = ()
    error: str | None = None


class Judgeable(Protocol):
    """What :func:`evaluate` needs of a case (``suites.Case`` has it); a protocol so this module
    does not import the parser that imports it."""

    @property
    def id(self) -> str: ...

    @property
    def vars(self) -> Mapping[str, Any]: ...

    @property
    def asserts(self) -> Sequence[Assertion]: ...

    @property
    def threshold(self) -> float | None: ...


class _Check(NamedTuple):
    passed: bool
    score: float
    reason: str
    invertible: bool = True  # False: the check could not be made, so not- must not flip it


def _verdict(passed: bool, reason: str) -> _Check:
    return _Check(passed, 1.0 if passed else 0.0, reason)


def _short(text: str, limit: int = 60) -> str:
    """A quotable excerpt for reasons, so a long answer does not flood the results table."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


Checker = Callable[[Assertion, str, Output, Mapping[str, Any]], _Check]


def _equals(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    """Surrounding whitespace is ignored: the models end answers with newlines nobody means."""
    want = str(a.value).strip()
    got = text.strip()
    return _verdict(got == want, f"answer {_short(got)} {'=' if got == want else '≠'} {want!r}")


def _contains(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    want = str(a.value)
    found = want in text
    return _verdict(found, f"{want!r} {'found' if found else 'not found'}")


def _icontains(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    want = str(a.value)
    found = want.casefold() in text.casefold()
    return _verdict(found, f"{want!r} {'found' if found else 'not found'} (any case)")


def _contains_any(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    hits = [str(w) for w in a.value if str(w) in text]
    return _verdict(bool(hits), f"found {hits!r}" if hits else f"none of {list(a.value)!r} found")


def _contains_all(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    missing = [str(w) for w in a.value if str(w) not in text]
    return _verdict(not missing, f"missing {missing!r}" if missing else "all found")


def _starts_with(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    """Leading whitespace is ignored for the same reason as in ``equals``."""
    want = str(a.value)
    ok = text.lstrip().startswith(want)
    return _verdict(ok, f"{'starts' if ok else 'does not start'} with {want!r}")


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regex_check(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    match = _regex(str(a.value)).search(text)
    if match:
        return _verdict(True, f"matched {_short(match.group(0))}")
    return _verdict(False, f"no match for /{a.value}/")


def _unfence(text: str) -> str:
    """Drop one Markdown code fence around the whole answer: chat models wrap JSON in one out of
    habit even when told not to, and the fence is not what a JSON check is about."""
    stripped = text.strip()
    match = _FENCE.match(stripped)
    return match.group(1).strip() if match else stripped


def _schema_problem(data: Any, schema: Any) -> str | None:
    """The first schema violation as one line, or None when the data fits."""
    if schema is None:
        return None
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


def _json_whole(a: Assertion, text: str, schema: Any) -> _Check:
    try:
        data = json.loads(_unfence(text))
    except ValueError as exc:
        return _verdict(False, f"not JSON: {exc}")
    problem = _schema_problem(data, schema)
    if problem:
        return _verdict(False, f"JSON does not match the schema: {problem}")
    return _verdict(True, "valid JSON" + (" matching the schema" if schema is not None else ""))


def _is_json(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    return _json_whole(a, text, a.value)


def _is_valid_json_schema(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    return _json_whole(a, text, a.value)


def _json_candidates(text: str) -> list[Any]:
    """Every JSON object or array that starts somewhere in the text, earliest first."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    starts = [i for i, ch in enumerate(text) if ch in "{["][:_MAX_JSON_STARTS]
    end = -1
    for i in starts:
        if i < end:
            continue  # inside a value already found
        try:
            data, end = decoder.raw_decode(text, i)
        except ValueError:
            continue
        found.append(data)
    return found


def _contains_json(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    candidates = _json_candidates(text)
    if not candidates:
        return _verdict(False, "no JSON object or array in the answer")
    if a.value is None:
        return _verdict(True, f"found {len(candidates)} JSON value(s)")
    problems = [_schema_problem(c, a.value) for c in candidates]
    if any(p is None for p in problems):
        return _verdict(True, "found JSON matching the schema")
    return _verdict(False, f"no JSON in the answer matches the schema: {problems[0]}")


def _levenshtein(a: Assertion, text: str, _o: Output, _v: Mapping[str, Any]) -> _Check:
    limit = int(a.threshold if a.threshold is not None else DEFAULT_LEVENSHTEIN)
    distance = Levenshtein.distance(text.strip(), str(a.value).strip())
    return _verdict(distance <= limit, f"edit distance {distance} (at most {limit})")


def _metric(output: Output, *names: str) -> tuple[str, float] | None:
    """The first of ``names`` that was measured, with its value."""
    for name in names:
        value = output.metrics.get(name)
        if value is not None:
            return name, float(value)
    return None


def _at_most(output: Output, limit: float, unit: str, *names: str) -> _Check:
    got = _metric(output, *names)
    if got is None:
        return _Check(False, 0.0, f"{' / '.join(names)} not measured", invertible=False)
    name, value = got
    ok = value <= limit
    return _verdict(ok, f"{name} {value:g} {unit}{'≤' if ok else '>'} {limit:g}")


def _limit(a: Assertion) -> float:
    """Budgets may be written as ``value`` or ``threshold``; the parser ensures one is there."""
    return float(a.threshold if a.threshold is not None else a.value)


def _latency(a: Assertion, _t: str, output: Output, _v: Mapping[str, Any]) -> _Check:
    return _at_most(output, _limit(a), "ms ", "e2e_ms")


def _ttft(a: Assertion, _t: str, output: Output, _v: Mapping[str, Any]) -> _Check:
    return _at_most(output, _limit(a), "ms ", "ttft_ms")


def _max_tokens(a: Assertion, _t: str, output: Output, _v: Mapping[str, Any]) -> _Check:
    """Answer tokens; ``n_out`` stands in for models that have no reasoning part to subtract."""
    return _at_most(output, _limit(a), "tokens ", "n_answer", "n_out")


def _think_tokens(a: Assertion, _t: str, output: Output, _v: Mapping[str, Any]) -> _Check:
    """No thinking part (a model that cannot think, or thinking off) is within any budget."""
    if output.metrics.get("n_think") is None:
        return _verdict(True, "no reasoning")
    return _at_most(output, _limit(a), "tokens ", "n_think")


_SAFE_BUILTINS: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in [
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "enumerate",
        "filter",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "map",
        "max",
        "min",
        "range",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
    ]
}


@functools.lru_cache(maxsize=256)
def compile_python(code: str) -> Any:
    """Compile a ``python`` assertion's expression (the parser calls it to report syntax errors
    before anything runs)."""
    return compile(code, "<python assertion>", "eval")


def _python_names(text: str, output: Output, vars_: Mapping[str, Any]) -> dict[str, Any]:
    names: dict[str, Any] = {k: v for k, v in output.metrics.items() if k.isidentifier()}
    names.update(
        output=text,
        reasoning=output.reasoning,
        vars=dict(vars_),
        metrics=dict(output.metrics),
        json=json,
        re=re,
        math=math,
    )
    return names


def _python_score(result: Any, threshold: float) -> _Check:
    if isinstance(result, bool):
        return _verdict(result, f"expression gave {result}")
    if isinstance(result, int | float) and not math.isnan(result):
        score = min(1.0, max(0.0, float(result)))
        clamped = "" if score == result else f" (clamped from {result:g})"
        ok = score >= threshold
        return _Check(ok, score, f"score {score:g}{clamped} {'≥' if ok else '<'} {threshold:g}")
    return _verdict(False, f"expression gave {type(result).__name__}, not a bool or a number")


def _python(a: Assertion, text: str, output: Output, vars_: Mapping[str, Any]) -> _Check:
    """Trusted suites only (the parser refuses uploads); the restricted builtins keep an honest
    expression from reaching for files or imports by accident, they are not a sandbox."""
    names = _python_names(text, output, vars_)
    try:
        result = eval(compile_python(str(a.value)), {"__builtins__": _SAFE_BUILTINS}, names)
    except Exception as exc:
        return _Check(False, 0.0, f"{type(exc).__name__}: {exc}", invertible=False)
    threshold = a.threshold if a.threshold is not None else DEFAULT_PYTHON_THRESHOLD
    return _python_score(result, threshold)


_CHECKERS: dict[str, Checker] = {
    "equals": _equals,
    "contains": _contains,
    "icontains": _icontains,
    "contains-any": _contains_any,
    "contains-all": _contains_all,
    "starts-with": _starts_with,
    "regex": _regex_check,
    "is-json": _is_json,
    "contains-json": _contains_json,
    "is-valid-json-schema": _is_valid_json_schema,
    "levenshtein": _levenshtein,
    "latency": _latency,
    "ttft": _ttft,
    "max-tokens": _max_tokens,
    "think-tokens": _think_tokens,
    "python": _python,
}
assert set(_CHECKERS) == set(KNOWN_TYPES), "every known type needs a checker"


def check(
    assertion: Assertion, output: Output, vars_: Mapping[str, Any] | None = None
) -> AssertionResult:
    """Run one assertion on one output (its answer, or its reasoning with ``on: reasoning``)."""
    checker = _CHECKERS.get(assertion.base_type)
    if checker is None:
        raise ValueError(f"unknown assertion type {assertion.type!r}")
    text = (output.reasoning or "") if assertion.on == "reasoning" else output.answer
    result = checker(assertion, text, output, vars_ or {})
    passed, score, reason = result.passed, result.score, result.reason
    if assertion.negated and result.invertible:
        passed, score, reason = not passed, 1.0 - score, f"not: {reason}"
    if assertion.on == "reasoning":
        reason = f"reasoning: {reason}"
    return AssertionResult(
        assertion.type, passed, score, reason, assertion.metric, float(assertion.weight)
    )


def combine(results: Sequence[AssertionResult], threshold: float | None) -> tuple[bool, float]:
    """Weighted mean score, and the verdict: ``threshold`` if set, else all weighted ones pass.

    No assertions (or only weight-0 ones) means nothing was asked: the case passes with score 1.
    """
    total = sum(r.weight for r in results)
    score = sum(r.weight * r.score for r in results) / total if total > 0 else 1.0
    if threshold is not None:
        return score >= threshold, score
    return all(r.passed for r in results if r.weight > 0), score


def evaluate(case: Judgeable, output: Output) -> CaseResult:
    """Judge one model's output for one case."""
    if output.error is not None:
        return CaseResult(case.id, False, 0.0, STATUS_ERROR, (), output.error)
    results = tuple(check(a, output, case.vars) for a in case.asserts)
    passed, score = combine(results, case.threshold)
    return CaseResult(case.id, passed, score, STATUS_PASS if passed else STATUS_FAIL, results)
