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
