"""Assertion checks on crafted outputs: each type passes and fails where it should, ``not-``
inverts, ``on: reasoning`` looks at the reasoning, and a case's score and verdict follow
promptfoo's weighted mean and threshold rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from qwen_dash.quality.assertions import (
    KNOWN_TYPES,
    Assertion,
    Output,
    check,
    evaluate,
)

SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
}
METRICS = {"e2e_ms": 800.0, "ttft_ms": 40.0, "n_out": 30, "n_answer": 12, "n_think": 18}


@dataclass(frozen=True)
class FakeCase:
    """The fields :func:`evaluate` reads, without a suite file."""

    asserts: tuple[Assertion, ...]
    threshold: float | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    id: str = "t0"


def out(answer: str, reasoning: str | None = None, **metrics: Any) -> Output:
    return Output(answer, reasoning, {**METRICS, **metrics})


# (type, value, threshold, output that passes, output that fails)
CASES: list[tuple[str, Any, float | None, Output, Output]] = [
    ("equals", "85", None, out(" 85\n"), out("85.")),
    ("contains", "Paris", None, out("It is Paris."), out("It is paris.")),
    ("icontains", "Paris", None, out("it is PARIS"), out("it is Lyon")),
    ("contains-any", ("red", "blue"), None, out("blue sky"), out("green")),
    ("contains-all", ("red", "blue"), None, out("red and blue"), out("red only")),
    ("starts-with", "Yes", None, out("\nYes, it is"), out("No. Yes")),
    ("regex", r"^\d+$", None, out("1024"), out("about 1024")),
    ("is-json", None, None, out('{"a": 1}'), out("a: 1")),
    ("is-json", SCHEMA, None, out('{"name": "Ann", "age": 3}'), out('{"name": "Ann"}')),
    ("contains-json", None, None, out('Here: {"a": [1, 2]} done'), out("no json {here")),
    (
        "contains-json",
        SCHEMA,
        None,
        out('x {"b": 1} y {"name": "A", "age": 1}'),
        out('x {"name": "A", "age": "old"}'),
    ),
    (
        "is-valid-json-schema",
        SCHEMA,
        None,
        out('```json\n{"name": "Ann", "age": 30}\n```'),
        out('{"name": "Ann", "age": 30.5}'),
    ),
    ("levenshtein", "kitten", None, out("sitting"), out("a completely different text")),
    ("levenshtein", "kitten", 1, out("kitteN"), out("sitting")),
    ("latency", None, 1000, out("x"), out("x", e2e_ms=1500.0)),
    ("ttft", None, 50, out("x"), out("x", ttft_ms=51.0)),
    ("max-tokens", 12, None, out("x"), out("x", n_answer=13)),
    ("max-tokens", None, 30, out("x", n_answer=None), out("x", n_answer=None, n_out=31)),
    ("think-tokens", 20, None, out("x"), out("x", n_think=21)),
    ("python", "len(output) < 5 and n_out == 30", None, out("abc"), out("abcdef")),
    ("python", "vars['answer'] in output", None, out("42"), out("41")),
]


@pytest.mark.parametrize(
    ("kind", "value", "threshold", "good", "bad"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_type_passes_and_fails(
    kind: str, value: Any, threshold: float | None, good: Output, bad: Output
) -> None:
    a = Assertion(kind, value, threshold)
    vars_ = {"answer": "42"}
    ok, ko = check(a, good, vars_), check(a, bad, vars_)
    assert (ok.passed, ok.score) == (True, 1.0), ok.reason
    assert (ko.passed, ko.score) == (False, 0.0), ko.reason
    negated = Assertion("not-" + kind, value, threshold)
    n_ok, n_ko = check(negated, good, vars_), check(negated, bad, vars_)
    assert (n_ok.passed, n_ok.score) == (False, 0.0)
    assert (n_ko.passed, n_ko.score) == (True, 1.0)
    assert n_ko.reason.startswith("not: ")


def test_every_known_type_is_exercised() -> None:
    assert {c[0] for c in CASES} == set(KNOWN_TYPES)


def test_reasons_say_what_happened() -> None:
    assert check(Assertion("latency", threshold=1000), out("x", e2e_ms=1500.0)).reason == (
        "e2e_ms 1500 ms > 1000"
    )
    assert (
        "missing ['blue']" in check(Assertion("contains-all", ("red", "blue")), out("red")).reason
    )
    assert "age" in check(Assertion("is-valid-json-schema", SCHEMA), out('{"name": "A"}')).reason


def test_think_tokens_without_reasoning_passes() -> None:
    result = check(Assertion("think-tokens", 5), out("x", n_think=None))
    assert (result.passed, result.reason) == (True, "no reasoning")


def test_unmeasured_metric_fails_even_negated() -> None:
    """ "Not measured" is no evidence: not-latency must not pass on it."""
    no_latency = Output("x", None, {})
    assert not check(Assertion("latency", threshold=10), no_latency).passed
    result = check(Assertion("not-latency", threshold=10), no_latency)
    assert not result.passed
    assert "not measured" in result.reason


def test_on_reasoning_checks_the_reasoning_text() -> None:
    output = out("The answer is 4.", reasoning="2 plus 2 is 4, so four")
    assert check(Assertion("contains", "plus", on="reasoning"), output).passed
    assert not check(Assertion("contains", "plus"), output).passed
    assert check(Assertion("contains", "answer"), output).passed
    result = check(Assertion("contains", "answer", on="reasoning"), output)
    assert not result.passed
    assert result.reason.startswith("reasoning: ")
    # No reasoning at all: nothing is in it.
    assert check(Assertion("not-contains", "x", on="reasoning"), out("x")).passed


def test_python_sees_metrics_reasoning_and_vars() -> None:
    output = out("yes", reasoning="hmm", e2e_ms=900.0)
    expr = "metrics['e2e_ms'] == e2e_ms == 900 and reasoning == 'hmm' and vars['k'] == 1"
    assert check(Assertion("python", expr), output, {"k": 1}).passed


def test_python_number_is_a_score_against_threshold() -> None:
    assert check(Assertion("python", "0.6"), out("x")).passed  # default threshold 0.5
    low = check(Assertion("python", "0.4"), out("x"))
    assert (low.passed, low.score) == (False, 0.4)
    strict = check(Assertion("python", "0.6", threshold=0.8), out("x"))
    assert (strict.passed, strict.score) == (False, 0.6)
    clamped = check(Assertion("python", "len(output) * 10"), out("abc"))
    assert (clamped.passed, clamped.score) == (True, 1.0)
    negated = check(Assertion("not-python", "0.25"), out("x"))
    assert (negated.passed, negated.score) == (True, 0.75)


def test_python_errors_fail_with_the_error() -> None:
    result = check(Assertion("python", "1 / 0"), out("x"))
    assert not result.passed
    assert result.reason == "ZeroDivisionError: division by zero"
    assert not check(Assertion("not-python", "1 / 0"), out("x")).passed
    assert "NameError" in check(Assertion("python", "open('/etc/passwd')"), out("x")).reason
    assert "not a bool or a number" in check(Assertion("python", "'yes'"), out("x")).reason


def test_weighted_mean_and_all_must_pass_without_threshold() -> None:
    """promptfoo's example: equals (weight 2) fails, contains (weight 1) passes -> 1/3."""
    asserts = (Assertion("equals", "Hello world", weight=2), Assertion("contains", "world"))
    result = evaluate(FakeCase(asserts), out("Goodbye world"))
    assert result.score == pytest.approx(1 / 3)
    assert (result.passed, result.status) == (False, "fail")
    assert [a.passed for a in result.assertions] == [False, True]


def test_threshold_sets_the_pass_mark() -> None:
    asserts = (Assertion("equals", "Hello world", weight=2), Assertion("contains", "world"))
    assert not evaluate(FakeCase(asserts, threshold=0.5), out("Goodbye world")).passed
    lenient = evaluate(FakeCase(asserts, threshold=0.2), out("Goodbye world"))
    assert (lenient.passed, lenient.status) == (True, "pass")
    assert evaluate(FakeCase(asserts, threshold=0.0), out("nothing")).passed


def test_weight_zero_is_informational() -> None:
    asserts = (Assertion("contains", "a"), Assertion("contains", "zzz", weight=0, metric="info"))
    result = evaluate(FakeCase(asserts), out("abc"))
    assert (result.passed, result.score) == (True, 1.0)
    info = result.assertions[1]
    assert (info.passed, info.metric, info.weight) == (False, "info", 0.0)


def test_no_assertions_passes() -> None:
    result = evaluate(FakeCase(()), out("anything"))
    assert (result.passed, result.score, result.status) == (True, 1.0, "pass")


def test_error_output_is_an_error_not_a_fail() -> None:
    case = FakeCase((Assertion("contains", "x"),), id="p1:t2")
    result = evaluate(case, Output(error="CUDA out of memory"))
    assert (result.case_id, result.status, result.passed) == ("p1:t2", "error", False)
    assert result.error == "CUDA out of memory"
    assert result.assertions == ()
