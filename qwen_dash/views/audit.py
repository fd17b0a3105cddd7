"""The audit view's tables (admins): who changed what, when, on which run; the deleted runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

import pandas as pd

ACTION_LABELS = {
    "run.save": "saved a run",
    "run.delete": "deleted a run",
    "run.restore": "restored a run",
    "run.tags": "changed tags",
    "run.notes": "changed notes",
    "vote.add": "voted",
}
AUDIT_COLUMNS = ("when", "who", "action", "run", "detail")
DELETED_COLUMNS = ("run", "deleted", "deleted_by", "owner", "prompt")
PROMPT_CHARS = 80


def _when(value: Any, tz: tzinfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _detail(detail: Any) -> str:
    if not detail:
        return ""
    return json.dumps(detail, ensure_ascii=False, sort_keys=True)


def audit_table(events: Sequence[Any], tz: tzinfo) -> pd.DataFrame:
    """One row per audit record, newest first as given."""
    rows = [
        {
            "when": _when(e.at, tz),
            "who": e.actor or "(nobody named)",
            "action": ACTION_LABELS.get(e.action, e.action),
            "run": e.run_id,
            "detail": _detail(e.detail),
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def deleted_table(runs: Sequence[Any], tz: tzinfo) -> pd.DataFrame:
    """The deleted runs an admin may restore."""
    rows = [
        {
            "run": r.id,
            "deleted": _when(r.deleted_at, tz),
            "deleted_by": r.deleted_by or "",
            "owner": r.user or "",
            "prompt": r.prompt[:PROMPT_CHARS],
        }
        for r in runs
    ]
    return pd.DataFrame(rows, columns=list(DELETED_COLUMNS))
