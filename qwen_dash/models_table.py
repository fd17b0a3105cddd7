"""The Models page: the seed note's comparison table, live, one column per model; no streamlit.

Facts come from three places and the table keeps them apart: the model loaded in this server (its
worker's ``info``) and its spec; the runs logged here; and figures quoted by others (the seed note,
Qwen's official speed pages), transcribed below with where they come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qwen_dash.display import NA, fmt_bytes, fmt_count, fmt_ms, fmt_number, source_label
from qwen_dash.specs import ModelSpec

SPEED_PAGES_NOTE = (
    "Qwen's two speed pages are not comparable with each other: the Qwen2.5 page measured on an "
    "NVIDIA A100 80GB and counts generated tokens / time, memory in GiB "
    "(torch.cuda.max_memory_allocated); the Qwen3 page measured on an NVIDIA H20 96GB and counts "
    "(prompt + generated tokens) / time, memory in MB by an unstated method. Under the Qwen2.5 "
    "formula Qwen3-0.6B's figures would be about 58.5 / 38.7 / 21.1 / 11.0 generated tokens/s. "
    "The 'Measured here' rows use one protocol for every model, on this server."
)


@dataclass(frozen=True)
class Reference:
    """Figures others quote for one model (by Hugging Face id)."""

    seed_size: str
    seed_context: str
    seed_hardware: str
    seed_memory: str
    seed_storage: str
    seed_throughput: str
    official_gpu: str
    official_formula: str
    official_tps: str  # input 1 / 6144 / 14336 / 30720 tokens
    official_memory: str
    official_vllm: str


REFERENCES: dict[str, Reference] = {
    "Qwen/Qwen2.5-0.5B-Instruct": Reference(
        seed_size="0.49B",
        seed_context="32,768 / 8,192",
        seed_hardware="NVIDIA A100 80GB",
        seed_memory="2.34 GB (30,720 input tokens)",
        seed_storage="988 MB",
        seed_throughput="47.16 tokens/s",
        official_gpu="A100 80GB · PyTorch 2.3.1 · transformers 4.46.0",
        official_formula="generated tokens / time",
        official_tps="47.40 / 47.45 / 47.11 / 47.16",
        official_memory="0.97 / 1.23 / 1.60 / 2.34 GB",
        official_vllm="311.55 / 304.79 / 290.28 / 264.51 (vLLM 0.6.3)",
    ),
    "Qwen/Qwen3-0.6B": Reference(
        seed_size="0.6B",
        seed_context="32,768 / 8,192",
        seed_hardware="NVIDIA H20 96GB",
        seed_memory="4.76 GB (30,720 input tokens)",
        seed_storage="1.6 GB",
        seed_throughput="175.93 tokens/s",
        official_gpu="H20 96GB · PyTorch 2.6.0 · transformers 4.51.3",
        official_formula="(prompt + generated tokens) / time",
        official_tps="58.57 / 154.82 / 168.48 / 175.93",
        official_memory="1394 / 2066 / 2963 / 4755 MB",
        official_vllm="414.17 / 1426.46 / 2478.02 / 3577.42 (SGLang 0.4.6.post1)",
    ),
}

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
        "Storage on disk": fmt_bytes(got("storage_bytes")),
        "KV cache per token": _kv(spec, got("dtype")),
        "Load time": fmt_ms(got("load_ms")),
        "Warm-up": fmt_ms(got("warmup_ms")),
        "Weight memory": fmt_bytes(got("weights_bytes")),
        "Device · dtype": (f"{got('device_name') or NA} · {got('dtype') or NA}" if info else NA),
    }


def measured_facts(frame: pd.DataFrame, key: str, source: str | None) -> dict[str, str]:
    """Medians of this model's logged answers (status ok) from ``source``, per timing mode."""
    rows: dict[str, str] = {}
    if frame.empty:
        part = frame
    else:
        part = frame[(frame["model_key"] == key) & (frame["status"] == "ok")]
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
    ref = REFERENCES.get(spec.hf_id)
    if ref is None:
        seed = {"Model size": NA, "Storage": spec.seed_storage or NA}
        return seed, {"GPU": NA}
    seed = {
        "Model size": ref.seed_size,
        "Context window / generation": ref.seed_context,
        "Hardware": ref.seed_hardware,
        "Memory": ref.seed_memory,
        "Storage": spec.seed_storage or ref.seed_storage,
        "Throughput": ref.seed_throughput,
    }
    official = {
        "GPU · software": ref.official_gpu,
        "Formula": ref.official_formula,
        "HF transformers tokens/s": ref.official_tps,
        "HF transformers memory": ref.official_memory,
        "Serving engine tokens/s": ref.official_vllm,
    }
    return seed, official


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
    sized = [(s.label, s.kv_bytes_per_token()) for s in specs.values()]
    sized = [(label, kv) for label, kv in sized if kv]
    if len(sized) < 2:
        return None
    ordered = sorted(sized, key=lambda item: item[1])
    (la, ka), (lb, kb) = ordered[0], ordered[-1]
    if ka == kb:
        return None
    return f"{lb}'s KV cache grows {kb / ka:.1f} times faster per token than {la}'s."
