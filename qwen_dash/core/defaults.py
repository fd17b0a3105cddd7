"""Defaults read from the environment, importable without torch (the pool and the app use them)."""

from __future__ import annotations

import os
from pathlib import Path

SOURCES = ("auto", "hub", "local", "twin", "tiny")


def default_source() -> str:
    """``$QWEN_DASH_SOURCE``, else auto."""
    return os.environ.get("QWEN_DASH_SOURCE", "auto")


def cache_root() -> Path:
    """Twins and worker logs live here: ``$QWEN_DASH_CACHE``, else ~/.cache/qwen-dash."""
    env = os.environ.get("QWEN_DASH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qwen-dash"


def suites_dir() -> Path:
    """The server's own suites (trusted: ``python`` assertions allowed): ``$QWEN_DASH_SUITES``,
    else the repository's ``suites/`` folder."""
    env = os.environ.get("QWEN_DASH_SUITES")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "suites"


DEFAULT_QUEUE_CAP = 3


def queue_cap() -> int:
    """How many requests one person may have waiting or running at once on the local workers:
    ``$QWEN_DASH_QUEUE_CAP``, else 3 (at least 1)."""
    raw = os.environ.get("QWEN_DASH_QUEUE_CAP", "")
    try:
        return max(1, int(raw)) if raw.strip() else DEFAULT_QUEUE_CAP
    except ValueError:
        return DEFAULT_QUEUE_CAP
