"""From a finished comparison to the rows that record it: a run, its generations and tags.

Metric columns are copied by the registry's names (``qwen_dash.core.metrics``), so a new metric
needs its column in ``schema.Generation`` (a test checks the two agree) and nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from qwen_dash.core.metrics import METRIC_NAMES, GenerationResult
from qwen_dash.core.request import CompareRequest
from qwen_dash.store.database import StoreError
from qwen_dash.store.schema import (
    RUN_KINDS,
    SEARCH_FIELD_SEPARATOR,
    Generation,
    Run,
    RunTag,
    encode_token_times,
    fold,
)

MAX_TAG_CHARS = 64
# The result's descriptive fields stored on each generation, beside every metric.
RESULT_FIELDS = (
    "model_key",
    "hf_id",
    "revision",
    "source",
    "device",
    "dtype",
    "status",
    "error",
    "finish_reason",
    "mode",
    "overlapped",
    "text",
    "reasoning",
)
GENERATION_COLUMNS = (*RESULT_FIELDS, *METRIC_NAMES)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    """Tags stripped, without empties and repeats, in the order given."""
    out: list[str] = []
    for tag in tags or ():
        tag = tag.strip()
        if len(tag) > MAX_TAG_CHARS:
            raise StoreError(f"A tag is longer than {MAX_TAG_CHARS} characters: shorten it.")
        if tag and tag not in out:
            out.append(tag)
    return out


def search_document(run: Run) -> str:
    """What text search looks in: the folded prompt, system prompt and every output."""
    fields: list[str | None] = [run.prompt, run.system_prompt]
    for g in run.generations:
        fields += [g.text, g.reasoning, g.error]
    return SEARCH_FIELD_SEPARATOR.join(fold(f) for f in fields if f)


def generation_row(
    position: int, result: GenerationResult, created_at: datetime, fallback: dict[str, Any]
) -> Generation:
    values = {name: getattr(result, name) for name in GENERATION_COLUMNS}
    return Generation(
        position=position,
        created_at=created_at,
        started_at=parse_time(result.started_at),
        token_times=encode_token_times(result.token_times_ms),
        settings=result.settings or fallback,
        environment=result.environment,
        **values,
    )


def build_run(
    request: CompareRequest,
    results: dict[str, GenerationResult],
    *,
    kind: str = "ui",
    user: str | None = None,
    tags: list[str] | None = None,
    conversation_id: str | None = None,
    turn: int = 0,
    notes: str | None = None,
    created_at: datetime | None = None,
) -> Run:
    """The ORM row for one comparison, not yet saved."""
    if kind not in RUN_KINDS:
        raise StoreError(f"Run kind must be one of {', '.join(RUN_KINDS)}, got '{kind}'.")
    when = created_at or utcnow()
    settings = {key: s.to_dict() for key, s in request.settings.items()}
    run = Run(
        created_at=when,
        kind=kind,
        mode=request.mode,
        thinking=any(s.thinking for s in request.settings.values()),
        prompt=request.prompt,
        system_prompt=request.system_prompt,
        messages=[{"role": m.role, "content": m.content} for m in request.messages],
        settings=settings,
        meta={**request.meta, **request.prompt_format()},
        user=user,
        notes=notes,
        conversation_id=conversation_id,
        turn=turn,
        tag_rows=[RunTag(tag=t) for t in clean_tags(tags)],
        generations=[
            generation_row(i, r, when, settings.get(key, {}))
            for i, (key, r) in enumerate(results.items())
        ],
    )
    run.search_text = search_document(run)
    return run
