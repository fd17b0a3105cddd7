"""The one way pages put text into anything Streamlit renders as Markdown.

Streamlit renders Markdown in messages, captions, titles and most widget labels. Text that is not
a constant of the page (a user's name, a tag, a URL parameter, an error from below, a model label
from a spec file) goes through :func:`md`, which escapes every value it formats, or
:func:`literal`. tests/test_safe_text.py checks that pages call Markdown-rendering functions only
with constants or with these.
"""

from __future__ import annotations

from typing import Any

from qwen_dash.views.safe_text import escape_markdown


def literal(value: Any) -> str:
    """Any value as Markdown that shows it exactly, nothing interpreted."""
    return escape_markdown(str(value))


def md(template: str, /, **values: Any) -> str:
    """``template.format(**values)`` with every value escaped: the template is the page's own
    Markdown; the values are shown literally."""
    return template.format(**{k: escape_markdown(str(v), inline=True) for k, v in values.items()})
