"""Export formats: a run as plain JSON-able data (JSON Lines), or one CSV row per generation.

The generation columns are the registry's (``qwen_dash.core.metrics``) beside the result fields.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, TextIO

from qwen_dash.core.metrics import MEASURED, METRIC_NAMES
from qwen_dash.store.database import StoreError
from qwen_dash.store.runs import RESULT_FIELDS
from qwen_dash.store.schema import Generation, Run, decode_token_times

ExportFormat = Literal["csv", "jsonl"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")
RUN_FIELDS = (
    "id",
    "created_at",
    "kind",
    "mode",
    "thinking",
    "user",
    "conversation_id",
    "turn",
    "prompt",
    "system_prompt",
    "notes",
    "deleted_at",
    "deleted_by",
)
DERIVED = tuple(name for name in METRIC_NAMES if name not in MEASURED)
# Measured metrics, the start time, then the derived ones: the order exports have always had.
GEN_FIELDS = ("position", *RESULT_FIELDS, *MEASURED, "started_at", *DERIVED)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def run_to_dict(run: Run) -> dict[str, Any]:
    """A run as plain JSON-able data: what JSON Lines export writes per line."""
    data = {name: _jsonable(getattr(run, name)) for name in RUN_FIELDS}
    data |= {"tags": run.tags, "messages": run.messages, "settings": run.settings}
    data["meta"] = run.meta
    data["generations"] = [
        {name: _jsonable(getattr(g, name)) for name in GEN_FIELDS}
        | {
            "token_times_ms": decode_token_times(g.token_times),
            "settings": g.settings,
            "environment": g.environment,
        }
        for g in run.generations
    ]
    return data


def write_jsonl(runs: Iterable[Run], out: TextIO) -> int:
    n = 0
    for run in runs:
        out.write(json.dumps(run_to_dict(run), ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def write_csv(runs: Iterable[Run], out: TextIO) -> int:
    run_cols = ["run_id", *RUN_FIELDS[1:], "tags"]
    gen_cols = [c for c in GEN_FIELDS if c != "mode"]
    writer = csv.DictWriter(out, fieldnames=[*run_cols, *gen_cols, "settings", "environment"])
    writer.writeheader()
    n = 0
    for run in runs:
        base = {"run_id": run.id, "tags": ";".join(run.tags)}
        base |= {name: _jsonable(getattr(run, name)) for name in RUN_FIELDS[1:]}
        generations: list[Generation | None] = list(run.generations) or [None]
        for g in generations:
            row = dict(base)
            if g is not None:
                row |= {name: _jsonable(getattr(g, name)) for name in gen_cols}
                row["settings"] = json.dumps(g.settings, ensure_ascii=False)
                row["environment"] = json.dumps(g.environment, ensure_ascii=False, default=str)
            writer.writerow(row)
        n += 1
    return n


def write(fmt: str, runs: Iterable[Run], out: TextIO) -> int:
    """Write ``runs`` in ``fmt``; returns how many runs were written."""
    if fmt == "jsonl":
        return write_jsonl(runs, out)
    if fmt == "csv":
        return write_csv(runs, out)
    raise StoreError(f"Export format must be csv or jsonl, got '{fmt}'.")
