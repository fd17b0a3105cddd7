"""User text, made safe for the places that would otherwise interpret it.

Prompts, names, tags, notes, URL parameters, search text and model output are untrusted. Where
the UI renders Markdown (captions, messages, labels) they go through :func:`escape_markdown`;
where plotly renders its HTML subset (legend, hover), through :func:`escape_html`. URL parameters
are parsed strictly (:func:`parse_run_id`) and search text is cleaned of what a database cannot
store (:func:`clean_search`).
"""

from __future__ import annotations

import html
import re
import string

_PUNCT = frozenset(string.punctuation)
MAX_RUN_ID = 2**63 - 1  # the largest id a 64-bit integer column holds
MAX_SEARCH_CHARS = 1000
# ASCII digits only: str.isdigit() also accepts '²' and other scripts' digits.
_RUN_ID = re.compile(r"[0-9]{1,19}")
# NUL (PostgreSQL refuses it in text), other C0 controls but tab and line breaks, and lone
# surrogates (they cannot be encoded as UTF-8).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def escape_markdown(text: str, *, inline: bool = False) -> str:
    """Text that Markdown shows literally: every ASCII punctuation character escaped, line
    breaks kept (hard breaks), leading spaces kept as no-break spaces (no code blocks).

    GitHub-flavoured Markdown also turns bare ``http://...``, ``www.`` and e-mail addresses into
    links, escapes or not; an invisible WORD JOINER after such a scheme or ``www`` and after ``@``
    breaks those patterns without changing what a reader sees.

    ``inline``: the text goes inside a line of other Markdown, so its first line's leading
    spaces are not at a line start and stay plain spaces."""
    lines = []
    for i, line in enumerate(_unlink(text).split("\n")):
        escaped = "".join("\\" + ch if ch in _PUNCT else ch for ch in line)
        if inline and i == 0:
            lines.append(escaped)
            continue
        stripped = escaped.lstrip(" \t")
        indent = len(escaped) - len(stripped)
        lines.append("\u00a0" * indent + stripped)
    return "  \n".join(lines)


WORD_JOINER = "\u2060"
# What GFM turns into links by itself: http(s)/ftp URLs, mailto:/xmpp: addresses, www. hosts and
# e-mail addresses (at their @).
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|xmpp)(?=:)|(www)(?=\.)|(@)")


def _unlink(text: str) -> str:
    return _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, text)


def escape_html(text: str) -> str:
    """Text that plotly's legend and hover labels show literally (no tags, no links)."""
    return html.escape(text, quote=True)


def parse_run_id(raw: str | None) -> int | None:
    """A run id from a URL parameter: 1 to 19 ASCII digits within a 64-bit integer, else None."""
    if raw is None or not _RUN_ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_RUN_ID else None


def clean_search(text: str | None) -> str | None:
    """Search text a database can take: control characters and lone surrogates removed,
    whitespace trimmed, at most MAX_SEARCH_CHARS characters; None when nothing is left."""
    if text is None:
        return None
    cleaned = _UNSTORABLE.sub("", text).strip()[:MAX_SEARCH_CHARS]
    return cleaned or None
