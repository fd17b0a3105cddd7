"""User text is never rendered as Markdown or HTML: the helpers that make it safe, and a check
over every page that each call Streamlit renders as Markdown gets only constants or text that
went through ``pages/_ui/text.py`` (``md`` or ``literal``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pages._ui.text import literal, md
from qwen_dash.views.safe_text import clean_search, escape_html, parse_run_id

ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]
# Streamlit calls whose text argument is rendered as Markdown (or a Markdown subset).
RENDERS_MARKDOWN = {
    "title", "header", "subheader", "markdown", "caption", "error", "warning", "info",
    "success", "toast", "write", "expander", "page_link", "progress", "popover", "button",
    "toggle", "checkbox", "metric", "tabs", "download_button", "text_input", "text_area",
    "number_input", "selectbox", "multiselect", "segmented_control", "date_input", "radio",
    "status", "spinner", "exception",
}  # fmt: skip
TEXT_KEYWORDS = ("label", "text", "body", "help", "placeholder")
# md and literal escape; side_markdown (the word diff) escapes every word it wraps.
SAFE_CALLS = {"md", "literal", "side_markdown"}
NUMBER_FIRST = {"progress"}  # the first argument is a number; the text is ``text=``


def _safe(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.IfExp):
        return _safe(node.body) and _safe(node.orelse)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in SAFE_CALLS
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
    ):
        # "sep".join(safe for ... in ...): each piece escaped, the separator a constant
        parts = node.args[0] if node.args else None
        return (
            isinstance(node.func.value, ast.Constant)
            and isinstance(parts, ast.GeneratorExp | ast.ListComp)
            and _safe(parts.elt)
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        # CONSTANT_TABLE.get(...): a lookup in a module constant of the page
        owner = node.func.value
        return isinstance(owner, ast.Name) and owner.id.isupper() and node.func.attr == "get"
    if isinstance(node, ast.Name):
        return node.id.isupper()  # a module constant of the page
    if isinstance(node, ast.List | ast.Tuple):
        return all(_safe(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _safe(node.left) and _safe(node.right)
    return False


def unsafe_calls(path: Path) -> list[str]:
    if path.name == "text.py":
        return []
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in RENDERS_MARKDOWN:
            continue
        first = [] if node.func.attr in NUMBER_FIRST else node.args[:1]
        args = first + [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS]
        out += [
            f"{path.name}:{node.lineno} .{node.func.attr}({ast.unparse(a)[:60]})"
            for a in args
            if not _safe(a)
        ]
    return out


def test_pages_pass_only_constants_or_escaped_text_to_markdown() -> None:
    found = [line for path in PAGE_FILES for line in unsafe_calls(path)]
    assert not found, "text that may carry user input, rendered as Markdown:\n" + "\n".join(found)


def test_the_check_sees_an_unescaped_value(tmp_path: Path) -> None:
    page = tmp_path / "page.py"
    page.write_text(
        "st.error(f'bad {name}')\nst.caption(md('ok {n}', n=name))\nst.title(literal(x))\n"
        "st.button(label=user)\n"
    )
    found = unsafe_calls(page)
    assert len(found) == 2 and ".error(" in found[0] and ".button(" in found[1]


@pytest.mark.parametrize(
    "payload",
    [
        "[phish](http://evil.example/login)",
        "![x](http://evil.example/x.png)",
        "<img src=http://evil.example/y.png>",
        ":red[alarm] :material/home: $x^2$ **b**",
    ],
)
def test_md_escapes_values_but_keeps_the_template(payload: str) -> None:
    out = md("**{who}** said", who=payload)
    assert out.startswith("**") and out.endswith("** said")
    inner = out[2 : -len("** said")]
    assert inner == literal(payload) and "](" not in inner
    assert not re.search(r"(?<!\\)[<\[\]:$*]", inner)


def test_plotly_text_is_html_escaped() -> None:
    assert escape_html('<a href="http://evil.example">x</a>') == (
        "&lt;a href=&quot;http://evil.example&quot;&gt;x&lt;/a&gt;"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7", 7),
        ("0007", 7),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),  # beyond a 64-bit integer
        ("99999999999999999999999", None),
        ("0", None),
        ("-1", None),
        ("²", None),  # str.isdigit() says yes
        ("\u0661", None),  # Arabic-Indic one: int() would read 1
        ("7 ", None),
        ("1e3", None),
        ("", None),
        (None, None),
    ],
)
def test_run_ids_are_parsed_strictly(raw: str | None, expected: int | None) -> None:
    assert parse_run_id(raw) == expected


def test_search_text_is_cleaned_of_what_a_database_cannot_take() -> None:
    assert clean_search("  a\x00b\ud800c  ") == "abc"
    assert clean_search("tab\tand\nline") == "tab\tand\nline"
    assert clean_search("\x00 \x01") is None
    assert clean_search("x" * 5000) == "x" * 1000
