"""Suite files: the shipped ones load and expand; bad ones fail whole, each with one clear error
naming file, line and path; defaultTest merges, repeats expand; and the summaries of results
(Wilson intervals, pass rates, metric means, run diffs) give known values."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_dash.quality.assertions import AssertionResult, CaseResult, Output, evaluate
from qwen_dash.quality.suite_results import (
    FAILED_TO_PASSED,
    GONE,
    NEW,
    PASSED_TO_FAILED,
    UNCHANGED,
    ResultRow,
    diff_counts,
    diff_runs,
    metric_means,
    pass_rates,
    wilson,
)
from qwen_dash.quality.suites import Suite, SuiteError, load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
MODELS = ("qwen2.5-0.5b-instruct", "qwen3-0.6b")


def errors_of(text: str, *, allow_python: bool = False) -> list[str]:
    """The errors a suite text gives; fails the test if it loads."""
    with pytest.raises(SuiteError) as info:
        load_suite(text, name="suite.yaml", allow_python=allow_python)
    return info.value.errors


def line_with(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``, to check reported lines."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- shipped suites ----------------------------------------------------------------------------


def test_arithmetic_suite_loads_and_expands() -> None:
    suite = load_suite(SUITES / "arithmetic.yaml", allow_python=True, known_models=MODELS)
    assert suite.name == "arithmetic.yaml"
    assert suite.has_python
    assert suite.models == MODELS
    cases = suite.cases()
    assert len(cases) == len(suite.tests) >= 10
    first = cases[0]
    assert (first.id, first.name) == ("t0", "two-digit addition")
    assert first.prompt.startswith("What is 47 + 38? Reply with the number only")
    types = [a.type for a in first.asserts]
    assert types == ["python", "equals", "latency"]
    assert first.asserts[1].value == "85"  # templated from vars.answer
    assert suite.settings_for("qwen3-0.6b")["thinking"] is False
    assert "thinking" not in suite.settings_for("qwen2.5-0.5b-instruct")


def test_arithmetic_python_assertion_judges_numbers() -> None:
    suite = load_suite(SUITES / "arithmetic.yaml", allow_python=True)
    case = suite.cases()[0]  # 47 + 38
    metrics = {"e2e_ms": 500.0}
    right = evaluate(case, Output("The answer is 85.", None, metrics))
    assert (right.passed, [a.passed for a in right.assertions]) == (True, [True, False, True])
    assert not evaluate(case, Output("84", None, metrics)).passed
    assert not evaluate(case, Output("85", None, {"e2e_ms": 20_000.0})).passed


def test_arithmetic_needs_python_allowed() -> None:
    with pytest.raises(SuiteError, match="type 'python' runs code"):
        load_suite(SUITES / "arithmetic.yaml", allow_python=False)


@pytest.mark.parametrize("allow_python", [True, False])
def test_json_and_thinking_suite_loads_and_expands(allow_python: bool) -> None:
    suite = load_suite(
        SUITES / "json_and_thinking.yaml", allow_python=allow_python, known_models=MODELS
    )
    assert not suite.has_python
    cases = suite.cases()
    assert len(cases) == 2 * len(suite.tests)
    ids = [c.id for c in cases]
    assert ids[:2] == ["p0:t0", "p1:t0"]
    assert cases[0].prompt.endswith("/no_think") and cases[1].prompt.endswith("/think")
    assert cases[0].name == "JSON object with typed fields (prompt 0)"
    assert {a.type for c in cases for a in c.asserts} >= {
        "is-valid-json-schema",
        "think-tokens",
        "icontains",
        "not-icontains",
    }
    qwen3 = suite.settings_for("qwen3-0.6b")
    assert (qwen3["thinking"], qwen3["max_new_tokens"]) == (True, 1024)
    assert "system" in suite.settings_for("qwen2.5-0.5b-instruct")


def test_json_suite_judges_schema_and_thinking_budget() -> None:
    suite = load_suite(SUITES / "json_and_thinking.yaml", allow_python=False)
    case = suite.cases()[1]  # JSON person, thinking on
    good = Output('{"name": "Ann", "age": 30}', "think", {"n_think": 200, "n_answer": 12})
    assert evaluate(case, good).passed
    too_long = Output('{"name": "Ann", "age": 30}', "think", {"n_think": 900, "n_answer": 12})
    assert not evaluate(case, too_long).passed
    bad_age = Output('{"name": "Ann", "age": "thirty"}', None, {"n_think": None, "n_answer": 12})
    assert not evaluate(case, bad_age).passed


# --- bad files: one clear error, no suite ------------------------------------------------------

UNKNOWN_TYPE = """\
description: typo in a type
prompts:
  - "What is {{a}} + {{b}}?"
tests:
  - vars: {a: 1, b: 2}
    assert:
      - type: contains
        value: "3"
  - vars: {a: 2, b: 2}
    assert:
      - type: equals
        value: "4"
      - type: contians
        value: "4"
"""


def test_unknown_type_names_line_path_and_suggestion() -> None:
    assert errors_of(UNKNOWN_TYPE) == [
        "suite.yaml line 13: tests[1].assert[1].type: unknown type 'contians' "
        "(did you mean 'contains'?)"
    ]
    assert line_with(UNKNOWN_TYPE, "contians") == 13


def test_unknown_negated_type_suggests_negated() -> None:
    text = UNKNOWN_TYPE.replace("type: contians", "type: not-contians")
    assert errors_of(text) == [
        "suite.yaml line 13: tests[1].assert[1].type: unknown type 'not-contians' "
        "(did you mean 'not-contains'?)"
    ]


def test_unknown_top_level_key() -> None:
    text = "description: x\npromts: hi\ntests:\n  - vars: {}\n"
    assert errors_of(text) == [
        "suite.yaml line 1: prompts: missing; a suite needs a prompt template such as "
        "'{{question}}'",
        "suite.yaml line 2: promts: unknown key 'promts' (did you mean 'prompts'?)",
    ]


def test_missing_tests() -> None:
    assert errors_of("description: no tests\nprompts: hi\n") == [
        "suite.yaml line 1: tests: missing; a suite needs a list of tests, each with vars and "
        "assert"
    ]


def test_template_variable_no_test_defines() -> None:
    text = """\
prompts:
  - "Q: {{question}}"
tests:
  - vars: {question: "2+2?"}
  - description: forgot the question
    vars: {questoin: "3+3?"}
"""
    assert errors_of(text) == [
        "suite.yaml line 5: tests[1]: prompts[0] uses variable 'question' that this test does "
        "not define (did you mean 'questoin'?) (vars: questoin)"
    ]


def test_template_variable_in_an_assertion_value() -> None:
    text = """\
prompts: "{{q}}"
defaultTest:
  assert:
    - type: contains
      value: "{{expected}}"
tests:
  - vars: {q: a, expected: b}
  - vars: {q: c}
"""
    assert errors_of(text) == [
        "suite.yaml line 4: defaultTest.assert[0] (in tests[1]): value uses variable 'expected' "
        "that this test does not define (vars: q)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "prompts: hi\ntests:\n  - vars: {a: 1\n",
            "suite.yaml line 4: invalid YAML: expected ',' or '}', but got '<stream end>'",
        ),
        (
            "prompts: hi\ntests:\n  - vars:\n      a: 1\n     b: 2\n",
            "suite.yaml line 5: invalid YAML: expected <block end>, but found "
            "'<block mapping start>'",
        ),
        (
            "prompts: hi\ntests:\n  - vars: {a: 1}\n    vars: {b: 2}\n",
            "suite.yaml line 4: invalid YAML: duplicate key 'vars'",
        ),
    ],
)
def test_invalid_yaml_names_the_line(text: str, expected: str) -> None:
    assert errors_of(text) == [expected]


def test_python_in_an_uploaded_suite() -> None:
    text = """\
prompts: hi
tests:
  - assert:
      - type: contains
        value: x
      - type: python
        value: "len(output) < 10"
"""
    assert errors_of(text) == [
        "suite.yaml line 6: tests[0].assert[1].type: type 'python' runs code and is allowed only "
        "for suites read from disk by the CLI or from the server's suites/ folder, not for an "
        "uploaded suite"
    ]
    assert load_suite(text, allow_python=True).has_python


def test_python_that_does_not_compile() -> None:
    text = "prompts: hi\ntests:\n  - assert:\n      - type: python\n        value: 'len(output'\n"
    assert errors_of(text, allow_python=True) == [
        "suite.yaml line 5: tests[0].assert[0].value: python expression does not compile: "
        "'(' was never closed"
    ]


def test_bad_assertion_fields_all_reported() -> None:
    text = """\
prompts: hi
tests:
  - assert:
      - type: latency
      - {type: contains, value: [1]}
      - {type: is-json, value: {type: foo}}
      - {type: contains, value: x, weight: -1, on: think, metrc: m}
      - {type: regex, value: "("}
"""
    assert errors_of(text) == [
        "suite.yaml line 4: tests[0].assert[0].value: 'latency' needs a number ≥ 0 as "
        "threshold (or value), got null",
        "suite.yaml line 5: tests[0].assert[1].value: 'contains' needs a text value, got a list",
        "suite.yaml line 6: tests[0].assert[2].value: invalid JSON schema: 'foo' is not valid "
        "under any of the given schemas",
        "suite.yaml line 7: tests[0].assert[3].metrc: unknown key 'metrc' (did you mean 'metric'?)",
        "suite.yaml line 7: tests[0].assert[3].weight: must be a number ≥ 0, got -1",
        "suite.yaml line 7: tests[0].assert[3].on: must be one of answer, reasoning, got 'think'",
    ]


def test_invalid_regex_is_a_load_error() -> None:
    text = 'prompts: hi\ntests:\n  - assert:\n      - {type: regex, value: "("}\n'
    assert errors_of(text) == [
        "suite.yaml line 4: tests[0].assert[0].value: invalid regex: missing ), unterminated "
        "subpattern at position 0"
    ]


def test_settings_and_models_are_checked() -> None:
    text = """\
prompts: hi
models: [qwen3-0.6b]
settings:
  temprature: 0.5
  top_p: 2
  qwen3-0.6b: {thinking: yes, max_new_tokens: 64}
  qwen2.5-0.5b: {greedy: true}
mode: paralel
repeat: 0
tests: [{}]
"""
    assert errors_of(text) == [
        "suite.yaml line 4: settings.temprature: unknown setting 'temprature' "
        "(did you mean 'temperature'?)",
        "suite.yaml line 5: settings.top_p: must be a number in (0, 1], got 2",
        "suite.yaml line 6: settings.qwen3-0.6b.thinking: must be true or false, got 'yes'",
        "suite.yaml line 7: settings.qwen2.5-0.5b: unknown model 'qwen2.5-0.5b' "
        "(models: qwen3-0.6b)",
        "suite.yaml line 8: mode: must be one of isolated, concurrent, got 'paralel'",
        "suite.yaml line 9: repeat: must be an integer from 1 to 100, got 0",
    ]


def test_unknown_model_against_known_models() -> None:
    with pytest.raises(SuiteError) as info:
        load_suite(
            "prompts: hi\nmodels: [qwen3-06b]\ntests: [{}]\n",
            allow_python=False,
            known_models=MODELS,
        )
    assert str(info.value) == (
        "suite line 2: models[0]: unknown model 'qwen3-06b' (did you mean 'qwen3-0.6b'?)"
    )


def test_sandbox_stops_template_tricks() -> None:
    assert errors_of("prompts: '{{ \"\".__class__ }}'\ntests: [{}]\n") == [
        "suite.yaml line 2: tests[0]: cannot render: access to attribute '__class__' of 'str' "
        "object is unsafe."
    ]
    assert errors_of("prompts: '{{ \"a\" * 10000000 }}'\ntests: [{}]\n") == [
        "suite.yaml line 2: tests[0]: cannot render: repeated sequence too long"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "suite.yaml line 1: a suite must be a mapping with prompts and tests, got empty"),
        (
            "- a\n",
            "suite.yaml line 1: a suite must be a mapping with prompts and tests, got a list",
        ),
        (
            "prompts: hi\ntests: []\n",
            "suite.yaml line 2: tests: must be a non-empty list of tests, got a list (empty)",
        ),
        (
            "prompts: file://p.txt\ntests: [{}]\n",
            "suite.yaml line 1: prompts[0]: file:// "
            "prompts are not supported; write the prompt inline",
        ),
        (
            "prompts: '{{ x }'\ntests: [{vars: {x: 1}}]\n",
            "suite.yaml line 1: prompts[0]: template error: unexpected '}' (template line 1)",
        ),
    ],
)
def test_other_shapes_that_are_not_suites(text: str, expected: str) -> None:
    assert errors_of(text) == [expected]


def test_missing_file() -> None:
    with pytest.raises(SuiteError, match=r"^nope\.yaml: cannot read the file"):
        load_suite(Path("/nonexistent/nope.yaml"), allow_python=False)


# --- merging and expansion ---------------------------------------------------------------------

MERGE = """\
prompts: "{{greeting}}, {{name}}"
defaultTest:
  vars: {greeting: Hello, name: world}
  assert:
    - {type: icontains, value: "{{name}}", metric: mentions}
  threshold: 0.5
tests:
  - description: defaults only
  - vars: {name: Ann}
    threshold: 1
    assert:
      - {type: starts-with, value: Hi}
"""


def test_default_test_merges_vars_asserts_and_threshold() -> None:
    suite = load_suite(MERGE, allow_python=False)
    first, second = suite.cases()
    assert (first.prompt, first.threshold, first.name) == ("Hello, world", 0.5, "defaults only")
    assert [(a.type, a.value) for a in first.asserts] == [("icontains", "world")]
    assert (second.prompt, second.threshold, second.name) == (
        "Hello, Ann",
        1.0,
        "greeting=Hello, name=Ann",
    )
    assert [(a.type, a.value) for a in second.asserts] == [
        ("icontains", "Ann"),
        ("starts-with", "Hi"),
    ]
    assert second.asserts[0].metric == "mentions"
    # The template stays a template on the suite; only cases are rendered.
    assert suite.tests[1].asserts[0].value == "{{name}}"


def test_repeat_expands_each_case_with_stable_ids() -> None:
    text = (
        "prompts: ['{{x}}', 'again {{x}}']\nrepeat: 3\ntests:\n  - vars: {x: 1}\n  - vars: {x: 2}\n"
    )
    suite = load_suite(text, allow_python=False)
    cases = suite.cases()
    assert len(cases) == 2 * 2 * 3
    assert [c.id for c in cases[:6]] == [
        "p0:t0#0",
        "p0:t0#1",
        "p0:t0#2",
        "p1:t0#0",
        "p1:t0#1",
        "p1:t0#2",
    ]
    assert {c.repeat_index for c in cases} == {0, 1, 2}
    assert cases == suite.cases()  # stable: the same file gives the same ids
    single = load_suite("prompts: hi\ntests: [{}, {}]\n", allow_python=False)
    assert [c.id for c in single.cases()] == ["t0", "t1"]


def test_mode_defaults_and_concurrent() -> None:
    assert load_suite("prompts: hi\ntests: [{}]\n", allow_python=False).mode == "isolated"
    suite = load_suite("prompts: hi\nmode: concurrent\ntests: [{}]\n", allow_python=False)
    assert (suite.mode, suite.repeat, suite.models) == ("concurrent", 1, None)
    assert isinstance(suite, Suite)


def test_yaml_1_1_booleans_do_not_eat_the_on_key() -> None:
    text = "prompts: hi\ntests:\n  - assert:\n      - {type: contains, value: x, on: reasoning}\n"
    assert load_suite(text, allow_python=False).tests[0].asserts[0].on == "reasoning"


# --- summaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("passed", "total", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
    ],
)
def test_wilson_known_values(passed: int, total: int, low: float, high: float) -> None:
    assert wilson(passed, total) == pytest.approx((low, high), abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def verdict(case_id: str, passed: bool, status: str | None = None, **metrics: float) -> CaseResult:
    asserts = tuple(AssertionResult("contains", s == 1.0, s, "", m) for m, s in metrics.items())
    status = status or ("pass" if passed else "fail")
    return CaseResult(case_id, passed, 1.0 if passed else 0.0, status, asserts)


def test_pass_rates_and_metric_means() -> None:
    rows = [
        ResultRow("t0", "a", verdict("t0", True, correct=1.0, json=1.0)),
        ResultRow("t1", "a", verdict("t1", False, correct=0.0)),
        ResultRow("t2", "a", verdict("t2", False, "error")),
        ResultRow("t0", "b", verdict("t0", True, correct=1.0)),
    ]
    rates = pass_rates(rows)
    assert list(rates) == ["a", "b"]
    a = rates["a"]
    assert (a.passed, a.total, a.errors, a.rate) == (1, 2, 1, 0.5)
    assert (a.low, a.high) == pytest.approx(wilson(1, 2))
    means = metric_means(rows)
    assert means["a"]["correct"].mean == 0.5 and means["a"]["correct"].count == 2
    assert means["a"]["json"].mean == 1.0
    assert means["b"]["correct"].mean == 1.0


def test_metric_means_from_real_evaluations() -> None:
    text = """\
prompts: hi
defaultTest:
  assert:
    - {type: contains, value: "4", metric: correct}
    - {type: max-tokens, value: 5, metric: short, weight: 0}
tests: [{}, {}]
"""
    first, second = load_suite(text, allow_python=False).cases()
    rows = [
        ResultRow(first.id, "m", evaluate(first, Output("4", None, {"n_answer": 3}))),
        ResultRow(second.id, "m", evaluate(second, Output("5", None, {"n_answer": 9}))),
    ]
    means = metric_means(rows)["m"]
    assert (means["correct"].mean, means["short"].mean) == (0.5, 0.5)
    assert [r.result.passed for r in rows] == [True, False]  # short is weight 0: no gate


def test_run_diff() -> None:
    before = [
        ResultRow("t0", "m", verdict("t0", True)),
        ResultRow("t1", "m", verdict("t1", False)),
        ResultRow("t2", "m", verdict("t2", True)),
        ResultRow("t3", "m", verdict("t3", True)),
        ResultRow("t4", "m", verdict("t4", True)),
    ]
    after = [
        ResultRow("t0", "m", verdict("t0", False)),
        ResultRow("t1", "m", verdict("t1", True)),
        ResultRow("t2", "m", verdict("t2", True)),
        ResultRow("t4", "m", verdict("t4", False, "error")),
        ResultRow("t5", "m", verdict("t5", True)),
        ResultRow("t0", "other", verdict("t0", True)),
    ]
    changes = diff_runs(before, after)
    got = {(c.case_id, c.model): (c.change, c.before, c.after) for c in changes}
    assert got == {
        ("t0", "m"): (PASSED_TO_FAILED, "pass", "fail"),
        ("t1", "m"): (FAILED_TO_PASSED, "fail", "pass"),
        ("t2", "m"): (UNCHANGED, "pass", "pass"),
        ("t3", "m"): (GONE, "pass", None),
        ("t4", "m"): (PASSED_TO_FAILED, "pass", "error"),
        ("t5", "m"): (NEW, None, "pass"),
        ("t0", "other"): (NEW, None, "pass"),
    }
    assert diff_counts(changes) == {
        PASSED_TO_FAILED: 2,
        FAILED_TO_PASSED: 1,
        NEW: 2,
        GONE: 1,
        UNCHANGED: 1,
    }


def test_template_loops_stop_at_the_size_cap() -> None:
    text = "prompts: '{% for i in range(10**6) %}{{ \"x\" * 999 }}{% endfor %}'\ntests: [{}]\n"
    assert errors_of(text) == [
        "suite.yaml line 2: tests[0]: cannot render: rendered text longer than 100,000 characters"
    ]
    looped = load_suite(
        "prompts: '{% for i in range(5) %}{{ i }}{% endfor %}'\ntests: [{}]\n", allow_python=False
    )
    assert looped.cases()[0].prompt == "01234"
