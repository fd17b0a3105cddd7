"""The Models page: the seed note's comparison table, live, one column per model; no streamlit.

Facts come from three places and the table keeps them apart: the model loaded in this server (its
worker's ``info``) and its spec; the runs logged here; and figures quoted by others (the seed note,
Qwen's official speed pages), transcribed as data in the spec files (``reference`` tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from qwen_dash.core.specs import ModelSpec
from qwen_dash.views.display import (
    NA,
    fmt_bytes,
    fmt_bytes_si,
    fmt_count,
    fmt_ms,
    fmt_number,
    source_label,
)

SPEED_PAGES_NOTE = (
    "Qwen's two speed pages are not comparable with each other: the Qwen2.5 page measured on an "
    "NVIDIA A100 80GB and counts generated tokens / time, memory in GiB "
    "(torch.cuda.max_memory_allocated); the Qwen3 page measured on an NVIDIA H20 96GB and counts "
    "(prompt + generated tokens) / time, memory in MB by an unstated method. Under the Qwen2.5 "
    "formula Qwen3-0.6B's figures would be about 58.5 / 38.7 / 21.1 / 11.0 generated tokens/s. "
    "The 'Measured here' rows use one protocol for every model, on this server."
)

SECTIONS = (
    "This server",
    "Measured here",
    "The seed note quotes",
    "Qwen's official speed pages (batch 1, 2,048 new tokens; input 1 / 6,144 / 14,336 / 30,720)",
)
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _kv(spec: ModelSpec, dtype: str | None) -> str:
    bf16 = spec.kv_bytes_per_token(2)
    if bf16 is None:
        return NA
    text = f"{bf16:,} B (bf16)"
    width = _DTYPE_BYTES.get(dtype or "")
    if width and width != 2:
        loaded = spec.kv_bytes_per_token(width)
        text += f" · {loaded:,} B ({dtype}, as loaded)"
    return text


def _count(value: int | None) -> str:
    return NA if value is None else f"{value:,} ({fmt_count(value)})"


BF16_BYTES = 2


def checkpoint_values(spec: ModelSpec, info: Mapping[str, Any]) -> int | None:
    """How many values the real checkpoint stores: every parameter, plus the tied output head
    again where the published file stores it as a tensor of its own (Qwen3-0.6B's does)."""
    n_params = info.get("n_params")
    if n_params is None:
        return None
    if not spec.checkpoint_stores_tied_head:
        return int(n_params)
    non_embedding = info.get("n_params_non_embedding")
    if non_embedding is None:
        return None
    return int(n_params) + int(n_params) - int(non_embedding)


def storage_facts(spec: ModelSpec, info: Mapping[str, Any]) -> dict[str, str]:
    """'Storage on disk' as the real checkpoint has it. A twin's weights are cached here in fp32,
    twice the size of the bf16 file Qwen publishes; its storage is computed from the parameter
    count (tensor data, without the safetensors header of a few tens of kB), and the cache
    file's size is shown beside it, labelled. Other sources show their files' size."""
    on_disk = info.get("storage_bytes")
    if info.get("source") != "twin":
        return {"Storage on disk": fmt_bytes_si(on_disk)}
    values = checkpoint_values(spec, info)
    if values is None:
        return {"Storage on disk": NA, "Twin cache file (fp32, this server)": fmt_bytes_si(on_disk)}
    head = ", the tied output head stored twice as in the published file"
    how = f"bf16 safetensors, computed: 2 B x {values:,} values" + (
        head if spec.checkpoint_stores_tied_head else ""
    )
    return {
        "Storage on disk": f"{fmt_bytes_si(BF16_BYTES * values)} ({how})",
        "Twin cache file (fp32, this server)": fmt_bytes_si(on_disk),
    }


def server_facts(spec: ModelSpec, info: Mapping[str, Any]) -> dict[str, str]:
    """What this server knows of one model: counted from the loaded model, or from its spec."""

    def got(name: str) -> Any:
        return info.get(name)

    source = got("source")
    return {
        "Weights": source_label(source) if source else "not loaded yet",
        "Hugging Face id": spec.hf_id,
        "Parameters (counted)": _count(got("n_params")),
        "Non-embedding parameters": _count(got("n_params_non_embedding")),
        "Layers": fmt_number(got("num_hidden_layers")),
        "Attention heads": fmt_number(got("num_attention_heads")),
        "KV heads": fmt_number(got("num_key_value_heads")),
        "Hidden size": fmt_number(got("hidden_size")),
        "Context window": f"{spec.context_window:,} tokens",
        "Max new tokens": f"{spec.max_new_tokens:,}",
        "Thinking mode": "yes" if spec.can_think else "no",
        "License": spec.license or NA,
        **storage_facts(spec, info),
        "KV cache per token": _kv(spec, got("dtype")),
        "Load time": fmt_ms(got("load_ms")),
        "Warm-up": fmt_ms(got("warmup_ms")),
        "Weight memory": fmt_bytes(got("weights_bytes")),
        "Device · dtype": (f"{got('device_name') or NA} · {got('dtype') or NA}" if info else NA),
        **backend_facts(spec, info),
    }


def backend_facts(spec: ModelSpec, info: Mapping[str, Any]) -> dict[str, str]:
    """Where the model runs: a local worker, or a server (what the server says of itself)."""
    if not spec.remote:
        return {"Backend": "local worker process", "Served as": NA, "Server version": NA}
    return {
        "Backend": f"OpenAI-compatible server at {spec.base_url}",
        "Served as": str(info.get("served_model") or spec.served_model or spec.hf_id),
        "Server version": str(info.get("server_version") or "not reported by the server"),
    }


def measured_facts(frame: pd.DataFrame, key: str, source: str | None) -> dict[str, str]:
    """Medians of this model's logged answers (status ok) from ``source``, per timing mode.
    Benchmark runs (forced lengths, synthetic prompts) have a section of their own."""
    rows: dict[str, str] = {}
    if frame.empty:
        part = frame
    else:
        answers = (frame["model_key"] == key) & (frame["status"] == "ok")
        part = frame[answers & (frame["kind"] != "benchmark")]
        if source is not None:
            part = part[part["source"] == source]
    label = f" ({source})" if source else ""
    for mode in ("isolated", "concurrent"):
        sub = part[part["mode"] == mode] if not part.empty else part
        n = len(sub)
        prefix = f"{mode.capitalize()}{label}"
        if n == 0:
            rows[f"{prefix}: answers"] = "none logged yet"
            continue

        def med(col: str, sub: pd.DataFrame = sub) -> float | None:
            values = pd.to_numeric(sub[col], errors="coerce").dropna()
            return float(values.median()) if len(values) else None

        tps = med("decode_tps")
        rows[f"{prefix}: answers"] = f"{n:,}"
        rows[f"{prefix}: decode speed (median)"] = f"{tps:,.1f} tok/s" if tps is not None else NA
        rows[f"{prefix}: TTFT (median)"] = fmt_ms(med("ttft_ms"))
        rows[f"{prefix}: peak memory (median)"] = fmt_bytes(med("peak_memory_bytes"))
    return rows


def reference_facts(spec: ModelSpec) -> tuple[dict[str, str], dict[str, str]]:
    """What the seed note and Qwen's official speed page quote for this model (its spec's
    ``reference`` tables), n/a where they quote nothing."""
    seed = spec.reference.get("seed") or {"Model size": NA}
    official = spec.reference.get("official") or {"GPU · software": NA}
    return dict(seed), dict(official)


def comparison_table(
    specs: Mapping[str, ModelSpec],
    infos: Mapping[str, Mapping[str, Any]],
    generations: pd.DataFrame,
) -> pd.DataFrame:
    """The whole table: a (section, fact) row index, one column per model (its label)."""
    columns: dict[str, dict[tuple[str, str], str]] = {}
    for key, spec in specs.items():
        info = infos.get(key, {})
        seed, official = reference_facts(spec)
        col: dict[tuple[str, str], str] = {}
        parts = (
            server_facts(spec, info),
            measured_facts(generations, key, info.get("source")),
            seed,
            official,
        )
        for section, facts in zip(SECTIONS, parts, strict=True):
            col.update({(section, name): value for name, value in facts.items()})
        columns[spec.label] = col
    index: list[tuple[str, str]] = []
    for col in columns.values():
        index += [k for k in col if k not in index]
    table = pd.DataFrame(
        {label: [col.get(k, NA) for k in index] for label, col in columns.items()},
        index=pd.MultiIndex.from_tuples(index, names=["section", "fact"]),
    )
    return table


def kv_ratio(specs: Mapping[str, ModelSpec]) -> str | None:
    """'Qwen3-0.6B's KV cache grows 9.3 times faster than Qwen2.5-0.5B-Instruct's', if two."""
    sized = [(s.label, kv) for s in specs.values() if (kv := s.kv_bytes_per_token())]
    if len(sized) < 2:
        return None
    ordered = sorted(sized, key=lambda item: item[1])
    (la, ka), (lb, kb) = ordered[0], ordered[-1]
    if ka == kb:
        return None
    return f"{lb}'s KV cache grows {kb / ka:.1f} times faster per token than {la}'s."
