"""Prompt suites: promptfoo's file shape (prompts, tests, defaultTest, assert) plus qwen-dash keys.

A suite file runs its prompts over its tests on each model and judges the answers with
assertions. Loading is all-or-nothing: every problem found is reported with the file, the line
and the path of the offending key (``suite.yaml line 14: tests[3].assert[0].type: ...``) and no
:class:`Suite` comes back, so a half-valid suite never runs half its cases.

qwen-dash's keys beside promptfoo's:

* ``models``: model keys to run (optional; the runner's choice when absent).
* ``settings``: generation settings shared by all models (``max_new_tokens: 256``), per model
  (``qwen3-0.6b: {thinking: true}``), or both in one mapping; per-model values win.
* ``mode``: ``isolated`` (one model at a time, clean timings; the default) or ``concurrent``.
* ``repeat``: how many times each case runs (sampling varies; the pass rate says how often).

Prompts and string assertion values are Jinja2 templates rendered in a sandbox with strict
undefined variables; a variable that some test does not define is a load error, not a surprise
at run time. ``python`` assertions run code, so only suites from trusted places may hold them.
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jsonschema
import yaml
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from qwen_dash.quality import _yaml
from qwen_dash.quality._yaml import LineDict, LineList, line_of
from qwen_dash.quality.assertions import (
    CODE_TYPES,
    KNOWN_TYPES,
    NOT_PREFIX,
    TARGETS,
    Assertion,
    compile_python,
)

TOP_KEYS = (
    "description",
    "prompts",
    "tests",
    "defaultTest",
    "models",
    "settings",
    "mode",
    "repeat",
)
TEST_KEYS = ("description", "vars", "assert", "threshold")
DEFAULT_TEST_KEYS = ("vars", "assert", "threshold")
ASSERT_KEYS = ("type", "value", "threshold", "weight", "metric", "on")
MODES = ("isolated", "concurrent")
_MODEL_CUTOFF = 0.85
MAX_TEXT = 1_000_000  # characters of YAML
MAX_REPEAT = 100
MAX_CASES = 5_000
MAX_RENDERED = 100_000  # characters of one rendered prompt or value
MAX_RANGE = 1_000  # items of range() in a template
_ALL_TYPES = (*KNOWN_TYPES, *(NOT_PREFIX + t for t in KNOWN_TYPES))
_TEXT_TYPES = frozenset({"equals", "contains", "icontains", "starts-with", "levenshtein", "regex"})
_LIST_TYPES = frozenset({"contains-any", "contains-all"})
_SCHEMA_TYPES = frozenset({"is-json", "contains-json", "is-valid-json-schema"})
_BUDGET_TYPES = frozenset({"latency", "ttft", "max-tokens", "think-tokens"})
PYTHON_NOT_ALLOWED = (
    "type 'python' runs code and is allowed only for suites read from disk by the CLI or from the "
    "server's suites/ folder, not for an uploaded suite"
)


class SuiteError(ValueError):
    """Everything wrong with a suite file, one line per problem (``errors``)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class SuiteTest:
    """One entry of ``tests`` with ``defaultTest`` merged in (vars, then asserts, threshold)."""

    index: int
    description: str | None
    vars: Mapping[str, Any]
    asserts: tuple[Assertion, ...]
    threshold: float | None
    line: int


@dataclass(frozen=True)
class Case:
    """One prompt rendered for one test (and one repeat): what a model is asked, and how the
    answer is judged. ``id`` is stable across runs of the same file so runs can be diffed."""

    id: str
    name: str
    prompt_index: int
    test_index: int
    repeat_index: int
    prompt: str
    vars: Mapping[str, Any]
    asserts: tuple[Assertion, ...]
    threshold: float | None


@dataclass(frozen=True)
class Suite:
    """A suite that loaded without a single error."""

    name: str
    description: str | None
    prompts: tuple[str, ...]
    tests: tuple[SuiteTest, ...]
    models: tuple[str, ...] | None = None
    shared_settings: Mapping[str, Any] = field(default_factory=dict)
    model_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    mode: str = "isolated"
    repeat: int = 1

    def settings_for(self, model: str) -> dict[str, Any]:
        """The settings this suite asks of ``model``: shared ones overlaid by its own."""
        return {**self.shared_settings, **self.model_settings.get(model, {})}

    @property
    def has_python(self) -> bool:
        """Whether any case runs code (a caller may want to say so before running)."""
        return any(a.base_type in CODE_TYPES for t in self.tests for a in t.asserts)

    def cases(self) -> list[Case]:
        """Every (test, prompt, repeat) case, in file order."""
        several = len(self.prompts) > 1
        out: list[Case] = []
        for test in self.tests:
            asserts = tuple(_render_assertion(a, test.vars) for a in test.asserts)
            for p, template in enumerate(self.prompts):
                prompt = render(template, test.vars)
                for r in range(self.repeat):
                    out.append(self._case(test, p, r, prompt, asserts, several))
        return out

    def _case(
        self,
        test: SuiteTest,
        p: int,
        r: int,
        prompt: str,
        asserts: tuple[Assertion, ...],
        several: bool,
    ) -> Case:
        case_id = f"p{p}:t{test.index}" if several else f"t{test.index}"
        if self.repeat > 1:
            case_id += f"#{r}"
        name = test.description or _vars_label(test.vars)
        if several:
            name += f" (prompt {p})"
        return Case(case_id, name, p, test.index, r, prompt, test.vars, asserts, test.threshold)


def _vars_label(vars_: Mapping[str, Any], limit: int = 80) -> str:
    """A readable name for a test without a description: its vars, shortened."""
    text = ", ".join(f"{k}={v}" for k, v in vars_.items()) or "(no vars)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- templating ---------------------------------------------------------------------------------


class _SuiteEnvironment(SandboxedEnvironment):
    """The sandbox, plus a cap on ``*`` and ``**`` so that an uploaded suite cannot ask for a
    gigabyte string or a huge power while it is only being rendered."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 1000:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
            if sized and len(seq) * count > MAX_RENDERED:
                raise SecurityError("repeated sequence too long")
        return operator.mul(left, right)


_ENV = _SuiteEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# range() is cut at MAX_RANGE items; the sandbox's own allows 100,000.
_ENV.globals["range"] = lambda *args: range(*args)[:MAX_RANGE]


@functools.lru_cache(maxsize=512)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render(source: str, vars_: Mapping[str, Any]) -> str:
    """Render one template with a test's vars (sandboxed, undefined variables raise). Rendered
    piece by piece so that a loop producing too much text stops at the cap, not out of memory."""
    parts: list[str] = []
    size = 0
    for part in _template(source).generate(**vars_):
        size += len(part)
        if size > MAX_RENDERED:
            raise SecurityError(f"rendered text longer than {MAX_RENDERED:,} characters")
        parts.append(part)
    return "".join(parts)


def variables(source: str) -> set[str]:
    """The variables a template reads from its test (Jinja's own globals such as ``range``
    excluded); raises ``jinja2.TemplateSyntaxError``."""
    return set(meta.find_undeclared_variables(_ENV.parse(source))) - set(_ENV.globals)


def _templated_strings(a: Assertion) -> list[str]:
    """The assertion values that are templates: text and list values, never code or schemas."""
    if a.base_type in _TEXT_TYPES and isinstance(a.value, str):
        return [a.value]
    if a.base_type in _LIST_TYPES:
        return [v for v in a.value if isinstance(v, str)]
    return []


def _render_assertion(a: Assertion, vars_: Mapping[str, Any]) -> Assertion:
    if a.base_type in _TEXT_TYPES and isinstance(a.value, str):
        return _replace_value(a, render(a.value, vars_))
    if a.base_type in _LIST_TYPES:
        return _replace_value(a, tuple(render(v, vars_) for v in a.value))
    return a


def _replace_value(a: Assertion, value: Any) -> Assertion:
    return Assertion(a.type, value, a.threshold, a.weight, a.metric, a.on)


# --- error reporting ----------------------------------------------------------------------------


@dataclass
class _Report:
    """Collects errors so one load can report all of them, each with file, line and path, in
    the order of the file (a fix goes top to bottom), whatever order the checks ran in."""

    file: str
    entries: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, path: str, message: str) -> None:
        where = f"{self.file} line {line}"
        text = f"{where}: {path}: {message}" if path else f"{where}: {message}"
        self.entries.append((line, text))

    @property
    def errors(self) -> list[str]:
        return [text for _, text in sorted(self.entries, key=lambda e: e[0])]


def _did_you_mean(word: Any, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """A suggestion for a misspelt name; model keys use a higher cutoff because they differ
    from each other by a digit or two and a loose match would point at the wrong model."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(
    mapping: LineDict, allowed: tuple[str, ...], path: str, report: _Report, what: str = "key"
) -> None:
    for key in mapping:
        if key not in allowed:
            sub = f"{path}.{key}" if path else str(key)
            hint = _did_you_mean(key, allowed) or f" (known: {', '.join(allowed)})"
            report.add(line_of(mapping, key), sub, f"unknown {what} {key!r}{hint}")


def plain(value: Any) -> Any:
    """Plain dicts and lists in place of the line-keeping ones, for values a suite keeps."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _type_name(x: Any) -> str:
    names = {LineDict: "a mapping", LineList: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(x), "null" if x is None else f"a {type(x).__name__}")


# --- assertions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Where a parsed thing came from, for errors found after parsing (template variables)."""

    path: str
    line: int


def _value_error(base: str, value: Any, threshold: Any) -> str | None:
    """What is wrong with an assertion's ``value`` for its type, or None."""
    if base in _TEXT_TYPES:
        if value is None or not isinstance(value, str | int | float):
            return f"'{base}' needs a text value, got {_type_name(value)}"
    elif base in _LIST_TYPES:
        if not isinstance(value, list | str) or not value:
            return f"'{base}' needs a non-empty list of strings, got {_type_name(value)}"
        if isinstance(value, list) and not all(isinstance(v, str | int | float) for v in value):
            return f"'{base}' needs a list of strings"
    elif base in _SCHEMA_TYPES:
        return _schema_error(base, value)
    elif base in _BUDGET_TYPES:
        limit = threshold if threshold is not None else value
        if not _is_number(limit) or limit < 0:
            return f"'{base}' needs a number ≥ 0 as threshold (or value), got {_type_name(limit)}"
    elif base == "python" and (not isinstance(value, str) or not value.strip()):
        return f"'python' needs an expression as value, got {_type_name(value)}"
    return None


def _schema_error(base: str, value: Any) -> str | None:
    if value is None and base != "is-valid-json-schema":
        return None
    if not isinstance(value, dict):
        return f"'{base}' needs a JSON schema (a mapping) as value, got {_type_name(value)}"
    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.exceptions.SchemaError as exc:
        return f"invalid JSON schema: {exc.message}"
    return None


def _field_errors(raw: LineDict) -> list[tuple[str, str]]:
    """Problems with the fields every type shares: (key, message) pairs."""
    problems: list[tuple[str, str]] = []
    threshold, weight = raw.get("threshold"), raw.get("weight", 1)
    if threshold is not None and not _is_number(threshold):
        problems.append(("threshold", f"must be a number, got {_type_name(threshold)}"))
    if not _is_number(weight) or weight < 0:
        problems.append(("weight", f"must be a number ≥ 0, got {weight!r}"))
    metric = raw.get("metric")
    if metric is not None and (not isinstance(metric, str) or not metric.strip()):
        problems.append(("metric", "must be a non-empty string"))
    on = raw.get("on", "answer")
    if on not in TARGETS:
        problems.append(("on", f"must be one of {', '.join(TARGETS)}, got {on!r}"))
    return problems


def _code_error(base: str, value: Any, allow_python: bool) -> tuple[str, str] | None:
    """Whether a code-running assertion may appear here, and whether its code compiles."""
    if base not in CODE_TYPES:
        return None
    if not allow_python:
        return "type", PYTHON_NOT_ALLOWED
    try:
        compile_python(str(value))
    except SyntaxError as exc:
        return "value", f"python expression does not compile: {exc.msg}"
    return None


def _normal_value(base: str, value: Any) -> Any:
    """Values as the checkers want them: text as str, lists as tuples of str."""
    if base in _TEXT_TYPES and value is not None:
        return str(value)
    if base in _LIST_TYPES:
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(v).strip() if isinstance(value, str) else str(v) for v in items)
    return value


def _parse_assertion(
    raw: Any, path: str, line: int, report: _Report, allow_python: bool
) -> Assertion | None:
    if not isinstance(raw, LineDict):
        report.add(line, path, f"an assertion must be a mapping with a type, got {_type_name(raw)}")
        return None
    before = len(report.errors)
    _check_keys(raw, ASSERT_KEYS, path, report)
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _ALL_TYPES:
        hint = _did_you_mean(kind, _ALL_TYPES) if isinstance(kind, str) else ""
        msg = f"unknown type {kind!r}{hint}" if kind is not None else "missing"
        report.add(line_of(raw, "type", line), f"{path}.type", msg)
        return None
    base = kind.removeprefix(NOT_PREFIX)
    problems = _field_errors(raw)
    value_problem = _value_error(base, raw.get("value"), raw.get("threshold"))
    if value_problem:
        problems.append(("value", value_problem))
    code = _code_error(base, raw.get("value"), allow_python)
    if code:
        problems.append(code)
    for key, message in problems:
        report.add(line_of(raw, key, line), f"{path}.{key}", message)
    if len(report.errors) > before:
        return None
    return Assertion(
        type=kind,
        value=plain(_normal_value(base, raw.get("value"))),
        threshold=raw.get("threshold"),
        weight=float(raw.get("weight", 1)),
        metric=raw.get("metric"),
        on=raw.get("on", "answer"),
    )


def _parse_asserts(
    raw: Any, path: str, line: int, report: _Report, allow_python: bool
) -> list[tuple[Assertion, _Where]]:
    if raw is None:
        return []
    if not isinstance(raw, LineList):
        report.add(line, path, f"must be a list of assertions, got {_type_name(raw)}")
        return []
    out: list[tuple[Assertion, _Where]] = []
    for k, item in enumerate(raw):
        sub, sub_line = f"{path}[{k}]", line_of(raw, k, line)
        parsed = _parse_assertion(item, sub, sub_line, report, allow_python)
        if parsed is not None:
            out.append((parsed, _Where(sub, sub_line)))
    return out


# --- tests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Defaults:
    vars: Mapping[str, Any]
    asserts: list[tuple[Assertion, _Where]]
    threshold: float | None


@dataclass(frozen=True)
class _ParsedTest:
    test: SuiteTest
    wheres: tuple[_Where, ...]  # one per assertion, defaultTest's first


def _parse_vars(raw: Any, path: str, line: int, report: _Report) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, LineDict):
        report.add(
            line, path, f"must be a mapping of variable names to values, got {_type_name(raw)}"
        )
        return {}
    bad = [k for k in raw if not isinstance(k, str) or not k.isidentifier()]
    for key in bad:
        report.add(
            line_of(raw, key, line), f"{path}.{key}", "a variable name must be an identifier"
        )
    return {k: plain(v) for k, v in raw.items() if k not in bad}


def _parse_threshold(raw: LineDict, path: str, report: _Report) -> float | None:
    value = raw.get("threshold")
    if value is None:
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        report.add(
            line_of(raw, "threshold"),
            f"{path}.threshold",
            f"must be a number from 0 to 1, got {value!r}",
        )
        return None
    return float(value)


def _parse_defaults(doc: LineDict, report: _Report, allow_python: bool) -> _Defaults:
    raw = doc.get("defaultTest")
    if raw is None:
        return _Defaults({}, [], None)
    if not isinstance(raw, LineDict):
        report.add(
            line_of(doc, "defaultTest"),
            "defaultTest",
            f"must be a mapping (vars, assert, threshold), got {_type_name(raw)}",
        )
        return _Defaults({}, [], None)
    _check_keys(raw, DEFAULT_TEST_KEYS, "defaultTest", report)
    return _Defaults(
        _parse_vars(raw.get("vars"), "defaultTest.vars", line_of(raw, "vars"), report),
        _parse_asserts(
            raw.get("assert"), "defaultTest.assert", line_of(raw, "assert"), report, allow_python
        ),
        _parse_threshold(raw, "defaultTest", report),
    )


def _parse_test(
    raw: Any, i: int, line: int, defaults: _Defaults, report: _Report, allow_python: bool
) -> _ParsedTest | None:
    path = f"tests[{i}]"
    if not isinstance(raw, LineDict):
        report.add(
            line,
            path,
            f"a test must be a mapping (description, vars, assert), got {_type_name(raw)}",
        )
        return None
    _check_keys(raw, TEST_KEYS, path, report)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        report.add(line_of(raw, "description"), f"{path}.description", "must be a string")
        description = None
    vars_ = {
        **defaults.vars,
        **_parse_vars(raw.get("vars"), f"{path}.vars", line_of(raw, "vars"), report),
    }
    own = _parse_asserts(
        raw.get("assert"), f"{path}.assert", line_of(raw, "assert"), report, allow_python
    )
    merged = [*defaults.asserts, *own]
    threshold = _parse_threshold(raw, path, report)
    test = SuiteTest(
        index=i,
        description=description,
        vars=vars_,
        asserts=tuple(a for a, _ in merged),
        threshold=threshold if threshold is not None else defaults.threshold,
        line=raw.line,
    )
    return _ParsedTest(test, tuple(w for _, w in merged))


def _parse_tests(
    doc: LineDict, defaults: _Defaults, report: _Report, allow_python: bool
) -> list[_ParsedTest]:
    if "tests" not in doc:
        report.add(
            doc.line, "tests", "missing; a suite needs a list of tests, each with vars and assert"
        )
        return []
    raw = doc["tests"]
    line = line_of(doc, "tests")
    if not isinstance(raw, LineList) or not raw:
        report.add(
            line,
            "tests",
            f"must be a non-empty list of tests, got {_type_name(raw)}"
            + (" (empty)" if isinstance(raw, list) else ""),
        )
        return []
    parsed = [
        _parse_test(t, i, line_of(raw, i, line), defaults, report, allow_python)
        for i, t in enumerate(raw)
    ]
    return [p for p in parsed if p is not None]


# --- prompts and variables ----------------------------------------------------------------------


def _parse_prompts(doc: LineDict, report: _Report) -> list[str] | None:
    if "prompts" not in doc:
        report.add(
            doc.line, "prompts", "missing; a suite needs a prompt template such as '{{question}}'"
        )
        return None
    raw, line = doc["prompts"], line_of(doc, "prompts")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, LineList | list) or not items:
        report.add(
            line,
            "prompts",
            f"must be a string or a non-empty list of strings, got {_type_name(raw)}",
        )
        return None
    before = len(report.errors)
    for j, prompt in enumerate(items):
        _check_prompt(prompt, f"prompts[{j}]", line_of(raw, j, line), report)
    return list(items) if len(report.errors) == before else None


def _check_prompt(prompt: Any, path: str, line: int, report: _Report) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        report.add(line, path, f"a prompt must be a non-empty string, got {_type_name(prompt)}")
    elif prompt.startswith("file://"):
        report.add(line, path, "file:// prompts are not supported; write the prompt inline")
    else:
        try:
            variables(prompt)
        except jinja2.TemplateSyntaxError as exc:
            report.add(line, path, f"template error: {exc.message} (template line {exc.lineno})")


def _missing_var_message(what: str, name: str, vars_: Mapping[str, Any]) -> str:
    defined = ", ".join(sorted(vars_)) or "none"
    hint = _did_you_mean(name, vars_)
    return f"{what} uses variable {name!r} that this test does not define{hint} (vars: {defined})"


def _check_variables(prompts: list[str], tests: list[_ParsedTest], report: _Report) -> None:
    """Every variable a prompt or an assertion value reads must be in each test's vars."""
    used = [(f"prompts[{j}]", sorted(variables(p))) for j, p in enumerate(prompts)]
    for parsed in tests:
        test = parsed.test
        path = f"tests[{test.index}]"
        for what, names in used:
            for name in names:
                if name not in test.vars:
                    msg = _missing_var_message(what, name, test.vars)
                    report.add(test.line, path, msg)
        for assertion, where in zip(test.asserts, parsed.wheres, strict=True):
            _check_assertion_variables(assertion, where, path, test, report)


def _check_assertion_variables(
    a: Assertion, where: _Where, test_path: str, test: SuiteTest, report: _Report
) -> None:
    for source in _templated_strings(a):
        try:
            names = sorted(variables(source))
        except jinja2.TemplateSyntaxError as exc:
            report.add(where.line, f"{where.path}.value", f"template error: {exc.message}")
            continue
        for name in names:
            if name not in test.vars:
                subject = (
                    where.path
                    if where.path.startswith(test_path)
                    else (f"{where.path} (in {test_path})")
                )
                report.add(where.line, subject, _missing_var_message("value", name, test.vars))


def _check_rendering(suite: Suite, tests: list[_ParsedTest], report: _Report) -> None:
    """Render every case once so template errors that only values reveal (``x.y`` on a string,
    an invalid regex after substitution) are load errors too."""
    for parsed in tests:
        test = parsed.test
        try:
            for prompt in suite.prompts:
                render(prompt, test.vars)
            rendered = [_render_assertion(a, test.vars) for a in test.asserts]
        except (jinja2.TemplateError, SecurityError, TypeError, ValueError) as exc:
            report.add(test.line, f"tests[{test.index}]", f"cannot render: {exc}")
            continue
        for a, where in zip(rendered, parsed.wheres, strict=True):
            if a.base_type == "regex":
                _check_regex(a.value, where, report)


def _check_regex(pattern: str, where: _Where, report: _Report) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        report.add(where.line, f"{where.path}.value", f"invalid regex: {exc}")


# --- qwen-dash keys -----------------------------------------------------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_SETTINGS: dict[str, tuple[str, Any]] = {
    "temperature": ("a number ≥ 0", lambda v: _is_number(v) and v >= 0),
    "top_p": ("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1),
    "top_k": ("an integer ≥ 0", lambda v: _is_int(v) and v >= 0),
    "min_p": ("a number in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    "repetition_penalty": ("a number > 0", lambda v: _is_number(v) and v > 0),
    "seed": ("an integer or null", lambda v: v is None or _is_int(v)),
    "greedy": ("true or false", lambda v: isinstance(v, bool)),
    "max_new_tokens": ("an integer ≥ 1", lambda v: _is_int(v) and v >= 1),
    "thinking": ("true or false", lambda v: isinstance(v, bool)),
    "system": ("a string", lambda v: isinstance(v, str)),
}
SETTING_KEYS = tuple(_SETTINGS)


def _check_setting(raw: LineDict, key: str, path: str, report: _Report) -> bool:
    expected, ok = _SETTINGS[key]
    if ok(raw[key]):
        return True
    report.add(line_of(raw, key), path, f"must be {expected}, got {raw[key]!r}")
    return False


def _parse_model_settings(raw: LineDict, path: str, report: _Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _check_keys(raw, SETTING_KEYS, path, report, what="setting")
    for key in raw:
        if key in _SETTINGS and _check_setting(raw, key, f"{path}.{key}", report):
            out[key] = raw[key]
    return out


def _parse_settings(
    doc: LineDict, models: Collection[str] | None, report: _Report
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Shared settings are keys that name a setting; a key whose value is a mapping is a model's
    own settings (no setting takes a mapping, so the two cannot be confused)."""
    raw = doc.get("settings")
    if raw is None:
        return {}, {}
    if not isinstance(raw, LineDict):
        report.add(
            line_of(doc, "settings"), "settings", f"must be a mapping, got {_type_name(raw)}"
        )
        return {}, {}
    shared: dict[str, Any] = {}
    per_model: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        path = f"settings.{key}"
        if key in _SETTINGS:
            if _check_setting(raw, key, path, report):
                shared[key] = value
        elif isinstance(value, LineDict):
            if models is not None and key not in models:
                hint = (
                    _did_you_mean(key, models, _MODEL_CUTOFF) or f" (models: {', '.join(models)})"
                )
                report.add(line_of(raw, key), path, f"unknown model {key!r}{hint}")
            per_model[str(key)] = _parse_model_settings(value, path, report)
        else:
            hint = _did_you_mean(key, SETTING_KEYS) or f" (known: {', '.join(SETTING_KEYS)})"
            report.add(line_of(raw, key), path, f"unknown setting {key!r}{hint}")
    return shared, per_model


def _parse_models(
    doc: LineDict, known: Collection[str] | None, report: _Report
) -> list[str] | None:
    if "models" not in doc:
        return None
    raw, line = doc["models"], line_of(doc, "models")
    if not isinstance(raw, LineList) or not raw or not all(isinstance(m, str) for m in raw):
        report.add(line, "models", f"must be a non-empty list of model keys, got {raw!r}")
        return None
    for k, model in enumerate(raw):
        if known is not None and model not in known:
            hint = _did_you_mean(model, known, _MODEL_CUTOFF) or f" (known: {', '.join(known)})"
            report.add(line_of(raw, k, line), f"models[{k}]", f"unknown model {model!r}{hint}")
        if raw.index(model) != k:
            report.add(line_of(raw, k, line), f"models[{k}]", f"{model!r} is listed twice")
    return list(raw)


def _parse_run_keys(doc: LineDict, report: _Report) -> tuple[str, int]:
    mode = doc.get("mode", "isolated")
    if mode not in MODES:
        report.add(
            line_of(doc, "mode"),
            "mode",
            f"must be one of {', '.join(MODES)}, got {mode!r}{_did_you_mean(mode, MODES)}",
        )
    repeat = doc.get("repeat", 1)
    if not _is_int(repeat) or not 1 <= repeat <= MAX_REPEAT:
        report.add(
            line_of(doc, "repeat"),
            "repeat",
            f"must be an integer from 1 to {MAX_REPEAT}, got {repeat!r}",
        )
    return str(mode), repeat if _is_int(repeat) else 1


def _parse_description(doc: LineDict, report: _Report) -> str | None:
    value = doc.get("description")
    if value is not None and not isinstance(value, str):
        report.add(line_of(doc, "description"), "description", "must be a string")
        return None
    return value


# --- loading ------------------------------------------------------------------------------------


def _read(path_or_text: str | Path, name: str | None) -> tuple[str, str]:
    """The YAML text and the file name errors should carry."""
    if isinstance(path_or_text, Path):
        label = name or path_or_text.name
        try:
            return path_or_text.read_text(encoding="utf-8"), label
        except (OSError, UnicodeDecodeError) as exc:
            raise SuiteError([f"{label}: cannot read the file: {exc}"]) from exc
    return path_or_text, name or "suite"


def _parse_yaml(text: str, label: str) -> LineDict:
    if len(text) > MAX_TEXT:
        raise SuiteError([f"{label}: file larger than {MAX_TEXT:,} characters"])
    try:
        doc = _yaml.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise SuiteError([f"{label}{line}: invalid YAML: {problem}"]) from exc
    except RecursionError as exc:
        raise SuiteError([f"{label}: invalid YAML: nested too deeply"]) from exc
    if not isinstance(doc, LineDict):
        what = "empty" if doc is None else _type_name(doc)
        raise SuiteError(
            [f"{label} line 1: a suite must be a mapping with prompts and tests, got {what}"]
        )
    return doc


def load_suite(
    path_or_text: str | Path,
    *,
    name: str | None = None,
    allow_python: bool,
    known_models: Collection[str] | None = None,
) -> Suite:
    """Parse and check a suite: a :class:`~pathlib.Path` is read from disk, a ``str`` is the YAML
    itself. ``name`` labels errors and the suite (default: the file name, or "suite").

    ``allow_python`` must be False for a suite a browser uploaded: its ``python`` assertions would
    run code on the server. ``known_models``, when given, checks ``models`` and per-model
    ``settings`` keys. Raises :class:`SuiteError` listing every problem; returns only a suite
    that is valid throughout.
    """
    text, label = _read(path_or_text, name)
    doc = _parse_yaml(text, label)
    report = _Report(label)
    _check_keys(doc, TOP_KEYS, "", report)
    description = _parse_description(doc, report)
    prompts = _parse_prompts(doc, report)
    defaults = _parse_defaults(doc, report, allow_python)
    tests = _parse_tests(doc, defaults, report, allow_python)
    models = _parse_models(doc, known_models, report)
    shared, per_model = _parse_settings(doc, models or known_models, report)
    mode, repeat = _parse_run_keys(doc, report)
    if prompts is not None:
        _check_variables(prompts, tests, report)
    if report.errors:
        raise SuiteError(report.errors)
    suite = Suite(
        name=label,
        description=description,
        prompts=tuple(prompts or ()),
        tests=tuple(p.test for p in tests),
        models=tuple(models) if models is not None else None,
        shared_settings=shared,
        model_settings=per_model,
        mode=mode,
        repeat=repeat,
    )
    _check_size(suite, doc, report)
    _check_rendering(suite, tests, report)
    if report.errors:
        raise SuiteError(report.errors)
    return suite


def _check_size(suite: Suite, doc: LineDict, report: _Report) -> None:
    count = len(suite.prompts) * len(suite.tests) * suite.repeat
    if count > MAX_CASES:
        report.add(
            doc.line,
            "",
            f"{count:,} cases (prompts x tests x repeat); at most {MAX_CASES:,} per suite",
        )
