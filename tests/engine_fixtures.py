"""Fixtures for the engine tests: tiny models, in a pool of real worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen_dash.core.request import CompareRequest, Settings
from qwen_dash.core.specs import DEFAULT_MODELS
from qwen_dash.engine import ModelPool

QWEN25, QWEN3 = DEFAULT_MODELS


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qwen-dash-cache")


@pytest.fixture(scope="session", autouse=True)
def _offline(engine_cache: Path) -> Iterator[None]:
    """No test may reach the network or a user's cache: offline hub, private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("QWEN_DASH_CACHE", str(engine_cache))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_pool(_offline: None) -> Iterator[ModelPool]:
    """Both default models, tiny, each in its own worker process, shared by the engine tests."""
    pool = ModelPool(source="tiny")
    pool.start()
    status = pool.wait_ready(timeout=300)
    assert all(s.state == "ready" for s in status.values()), status
    yield pool
    pool.shutdown()


def greedy(max_new_tokens: int = 16, **kw: object) -> Settings:
    return Settings(greedy=True, max_new_tokens=max_new_tokens, seed=0, **kw)  # type: ignore[arg-type]


def request_for(
    prompt: str, max_new_tokens: int = 16, mode: str = "concurrent", **kw: object
) -> CompareRequest:
    settings = {k: greedy(max_new_tokens, **kw) for k in DEFAULT_MODELS}
    return CompareRequest.from_prompt(prompt, settings, mode=mode)
