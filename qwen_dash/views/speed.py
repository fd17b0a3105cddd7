"""The Models page's speed table; no streamlit.

Per model and input length: the ``bench speed`` figures measured here, Qwen's official speed
page's and the seed note's, each row labelled with its hardware, each speed under a named
formula (the one a page did not use is converted and marked), each memory figure with its unit
and method. Then, in plain words, which of these comparisons are fair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pandas as pd

from qwen_dash.core.specs import ModelSpec, SpeedReference
from qwen_dash.core.speed import SPEED_TAG, convert_tps
from qwen_dash.store import Store
from qwen_dash.store.filters import RunFilters
from qwen_dash.views.display import NA, fmt_ms, source_label

SPEED_COLUMNS = (
    "model_key",
    "source",
    "status",
    "device",
    "dtype",
    "n_in",
    "n_out",
    "ttft_ms",
    "gen_tps",
    "total_tps",
    "rss_peak_bytes",
    "cuda_peak_alloc_bytes",
    "nvml_process_bytes",
)
MAX_SPEED_RUNS = 1000
GEN = "Generated / time (tok/s)"
TOTAL = "(Prompt + generated) / time (tok/s)"
TABLE_COLUMNS = (
    "Model",
    "Input tokens",
    "Figures from",
    "Hardware · software",
    "New tokens",
    GEN,
    TOTAL,
    "TTFT",
    "Memory",
)
_ORIGIN_ORDER = {"measured": 0, "official": 1, "note": 2}
_FORMULA_COLUMN = {"generated": GEN, "total": TOTAL}
_GROUP = ["model_key", "source", "device", "dtype", "n_in", "n_out"]


def load_speed_runs(store: Store, max_runs: int = MAX_SPEED_RUNS) -> pd.DataFrame:
    """One row per generation of the newest ``bench speed`` runs."""
    rows = store.generation_figures(
        RunFilters(kind="benchmark", tag=SPEED_TAG), max_runs, SPEED_COLUMNS
    )
    return speed_frame(rows)


_TEXT_COLUMNS = ("model_key", "source", "status", "device", "dtype")


def speed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame whose figures are numbers (an unmeasured figure is NaN, never 0)."""
    frame = pd.DataFrame.from_records(rows, columns=list(SPEED_COLUMNS))
    for column in SPEED_COLUMNS:
        if column not in _TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def memory_text(rss: Any, alloc: Any, nvml: Any) -> str:
    """Memory as measured, each figure with its unit and method."""
    parts = []
    if pd.notna(alloc):
        parts.append(f"{alloc / 2**30:.2f} GiB (CUDA allocator peak)")
    if pd.notna(nvml):
        parts.append(f"{nvml / 2**20:,.0f} MiB (NVML, this process)")
    if not parts and pd.notna(rss):
        parts.append(f"{rss / 2**20:,.0f} MiB (RSS peak of the CPU process, weights included)")
    return " · ".join(parts) or NA


def _tps(value: Any) -> str:
    return f"{value:,.2f}" if pd.notna(value) else NA


def measured_rows(frame: pd.DataFrame, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Medians of the logged cases, per model, source, hardware, dtype and lengths."""
    ok = frame[frame["status"] == "ok"] if not frame.empty else frame
    rows = []
    for keys, group in ok.groupby(_GROUP, dropna=False, sort=True):
        key, source, device, dtype, n_in, n_out = cast(tuple[Any, ...], keys)
        med = group.median(numeric_only=True)
        runs = len(group)
        rows.append(
            {
                "_key": key,
                "_origin": "measured",
                "Model": labels.get(key, key),
                "Input tokens": int(n_in),
                "Figures from": f"measured here ({source_label(source)}; median of {runs} run"
                + ("s)" if runs > 1 else ")"),
                "Hardware · software": f"{device} · {dtype}",
                "New tokens": int(n_out),
                GEN: _tps(med["gen_tps"]),
                TOTAL: _tps(med["total_tps"]),
                "TTFT": fmt_ms(med["ttft_ms"]),
                "Memory": memory_text(
                    med["rss_peak_bytes"], med["cuda_peak_alloc_bytes"], med["nvml_process_bytes"]
                ),
            }
        )
    return rows


def _speeds(ref: SpeedReference, tps: float, n_in: int) -> dict[str, str]:
    """The page's own figure under its formula; the other formula converted, marked '≈'."""
    other = "total" if ref.formula == "generated" else "generated"
    converted = convert_tps(tps, ref.formula, other, n_in, ref.output_tokens)
    return {
        _FORMULA_COLUMN[ref.formula]: f"{tps:,.2f} (the page's formula)",
        _FORMULA_COLUMN[other]: f"≈ {converted:,.2f} (converted)",
    }


def reference_rows(key: str, spec: ModelSpec) -> list[dict[str, Any]]:
    """Qwen's official page per input length, and the seed note's quote of it."""
    ref = spec.speed_reference
    if ref is None:
        return []
    base = {"_key": key, "Model": spec.label, "New tokens": ref.output_tokens, "TTFT": NA}
    rows = []
    for n_in, tps, memory in zip(ref.input_tokens, ref.tokens_per_s, ref.memory, strict=True):
        rows.append(
            {
                **base,
                "_origin": "official",
                "Input tokens": int(n_in),
                "Figures from": "Qwen's official speed page (HF transformers)",
                "Hardware · software": f"{ref.hardware} · {ref.software}",
                **_speeds(ref, tps, n_in),
                "Memory": f"{memory:g} {ref.memory_unit} ({ref.memory_method})",
            }
        )
    if ref.note_input_tokens is not None and ref.note_tokens_per_s is not None:
        other = GEN if ref.formula == "total" else TOTAL
        rows.append(
            {
                **base,
                "_origin": "note",
                "Input tokens": ref.note_input_tokens,
                "Figures from": "the seed note (quoting Qwen's page; no formula or method named)",
                "Hardware · software": ref.hardware,
                _FORMULA_COLUMN[ref.formula]: f"{ref.note_tokens_per_s:,.2f} (as quoted)",
                other: NA,
                "Memory": f"{ref.note_memory or NA} (as quoted)",
            }
        )
    return rows


def speed_table(
    specs: Mapping[str, ModelSpec], labels: Mapping[str, str], frame: pd.DataFrame
) -> pd.DataFrame:
    """Every figure per model and input length: measured here, then official, then the note's."""
    order = {key: i for i, key in enumerate(specs)}
    rows = [r for r in measured_rows(frame, labels) if r["_key"] in order]
    for key, spec in specs.items():
        rows += reference_rows(key, spec)
    rows.sort(key=lambda r: (order[r["_key"]], r["Input tokens"], _ORIGIN_ORDER[r["_origin"]]))
    table = pd.DataFrame.from_records(rows, columns=["_key", "_origin", *TABLE_COLUMNS])
    return table[list(TABLE_COLUMNS)].fillna(NA)


def fairness_notes(frame: pd.DataFrame, specs: Mapping[str, ModelSpec]) -> list[tuple[str, str]]:
    """(verdict, why) pairs, in plain words: which rows of the table may be compared."""
    ok = frame[frame["status"] == "ok"] if not frame.empty else frame
    notes: list[tuple[str, str]] = []
    if ok.empty:
        notes.append(
            ("Nothing measured here yet", "run `python -m qwen_dash bench speed` to add rows.")
        )
    else:
        notes.append(
            (
                "Fair",
                "the models against each other in the rows measured here with the same input "
                "tokens, new tokens and hardware · dtype: one machine, one protocol (Qwen's "
                "prompt, the output length forced, batch 1, one model at a time), both formulas "
                "from the same logged counts and times, one memory method.",
            )
        )
        notes.append(("Not fair", _measured_vs_official(ok)))
    refs = [s.speed_reference for s in specs.values() if s.speed_reference is not None]
    if len({(r.hardware, r.formula, r.memory_unit) for r in refs}) > 1:
        hardware = " vs ".join(dict.fromkeys(r.hardware for r in refs))
        notes.append(
            (
                "Not fair",
                f"Qwen's official pages against each other, as the seed note sets them: other "
                f"GPUs ({hardware}) and software, other formulas (each page's own is marked; "
                f"the other is converted, '≈'), other memory units and methods. The converted "
                f"column puts the speeds under one formula; the hardware still differs.",
            )
        )
    if not ok.empty and (ok["source"] == "twin").any():
        notes.append(
            (
                "Note",
                "twins have random weights but the real architecture and tokenizer; with the "
                "lengths forced, their speed and memory stand for the real models' on the same "
                "hardware and dtype.",
            )
        )
    return notes


def _measured_vs_official(ok: pd.DataFrame) -> str:
    devices = ", ".join(sorted(str(d) for d in ok["device"].dropna().unique()))
    dtypes = ", ".join(sorted(str(d) for d in ok["dtype"].dropna().unique()))
    why = (
        f"the figures measured here against Qwen's or the note's: other hardware ({devices}) "
        f"and dtype ({dtypes}; Qwen's pages ran bf16 on GPUs)"
    )
    outputs = sorted({int(n) for n in ok["n_out"].dropna()})
    if any(n != 2048 for n in outputs):
        listed = ", ".join(f"{n:,}" for n in outputs)
        why += (
            f", and {listed} new tokens rather than Qwen's 2,048 (the quick protocol): prefill "
            "weighs more in each token's share of the time"
        )
    if ok["cuda_peak_alloc_bytes"].isna().all():
        why += "; on a CPU memory is the whole process's RSS peak, not a GPU allocator's peak"
    return why + "."
