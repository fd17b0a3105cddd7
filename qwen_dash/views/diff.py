"""Word-level diff of two answers, and safe Markdown to show it.

Model output is untrusted: ``safe_text.escape_markdown`` backslash-escapes every ASCII punctuation
character (CommonMark allows it for all of them), so no link, image, HTML tag, emoji shortcode,
math or Streamlit directive can come out of a model's text; only the highlighting this module adds
is markup.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from qwen_dash.views.safe_text import escape_markdown

_TOKEN = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Segment:
    """A run of text that is in both answers (``equal``), only in A (``delete``) or only in B
    (``insert``)."""

    op: str
    text: str


def tokens(text: str) -> list[str]:
    """Words and the whitespace between them; joined back they give the text unchanged."""
    return _TOKEN.findall(text)


def word_diff(a: str, b: str) -> list[Segment]:
    """The word-level edit from ``a`` to ``b``; whitespace changes alone count as equal."""
    ta, tb = tokens(a), tokens(b)
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    out: list[Segment] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.append(Segment("equal", "".join(ta[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(Segment("delete", "".join(ta[i1:i2])))
        if op in ("insert", "replace"):
            out.append(Segment("insert", "".join(tb[j1:j2])))
    return _merge(out)


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segments:
        if not seg.text:
            continue
        if merged and merged[-1].op == seg.op:
            merged[-1] = Segment(seg.op, merged[-1].text + seg.text)
        else:
            merged.append(seg)
    return merged


def similarity(a: str, b: str) -> float:
    """Share of words the two answers have in common, 0..1 (1 for two empty answers)."""
    ta = [t for t in tokens(a) if not t.isspace()]
    tb = [t for t in tokens(b) if not t.isspace()]
    if not ta and not tb:
        return 1.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()


def _highlight(text: str, color: str) -> str:
    """Highlight each word of ``text``, keeping whitespace and line breaks outside the markup."""
    out = []
    for tok in tokens(text):
        if tok.isspace():
            out.append(escape_markdown(tok) if "\n" in tok else tok)
        else:
            out.append(f":{color}-background[{escape_markdown(tok)}]")
    return "".join(out)


def side_markdown(segments: list[Segment], side: str) -> str:
    """One side of the diff as Markdown: A shows equal + deleted words (red), B equal +
    inserted words (green)."""
    if side not in ("a", "b"):
        raise ValueError("side must be 'a' or 'b'")
    own, color = ("delete", "red") if side == "a" else ("insert", "green")
    parts = []
    for seg in segments:
        if seg.op == "equal":
            parts.append(escape_markdown(seg.text))
        elif seg.op == own:
            parts.append(_highlight(seg.text, color))
    return "".join(parts) or "_(empty)_"
