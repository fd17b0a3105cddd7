"""The speed protocol of Qwen's official speed pages, as ``bench speed`` runs it and the Models
page reads its results.

Qwen's script (the Qwen2.5 and Qwen3 speed pages): batch 1; a prompt of exactly N tokens made of
one token repeated (``'我' * N``, asserted to tokenize to N tokens); exactly M new tokens (the
length forced, no early stop); inputs 1, 6,144, 14,336 and 30,720 tokens; 2,048 new tokens.
Speed is reported by two formulas, one per page: generated tokens / time (Qwen2.5) and
(prompt + generated tokens) / time (Qwen3).
"""

from __future__ import annotations

from dataclasses import dataclass

REPEAT_UNIT = "我"  # one token in Qwen's vocabulary, and no merge of two of them exists
SPEED_TAG = "bench-speed"  # the tag of every run that ``bench speed`` logs (kind "benchmark")


@dataclass(frozen=True)
class SpeedProtocol:
    name: str
    inputs: tuple[int, ...]
    output: int
    about: str


PROTOCOLS = {
    "qwen": SpeedProtocol(
        "qwen",
        (1, 6144, 14336, 30720),
        2048,
        "Qwen's speed pages' inputs 1 / 6,144 / 14,336 / 30,720 tokens, 2,048 new tokens",
    ),
    "quick": SpeedProtocol(
        "quick",
        (1, 512, 2048),
        128,
        "inputs 1 / 512 / 2,048 tokens, 128 new tokens",
    ),
}
CPU_DEFAULT_WHY = (
    "the default on CPU: Qwen's protocol (30,720-token prompts, 2,048 new tokens per case) would "
    "take hours on a CPU; pass --protocol qwen to run it anyway"
)


def default_protocol(device: str) -> str:
    """Qwen's protocol on a GPU, the quick one on a CPU."""
    return "qwen" if device.startswith("cuda") else "quick"


def speed_prompt(n_tokens: int) -> str:
    """Qwen's prompt of ``n_tokens`` tokens: one token repeated."""
    return REPEAT_UNIT * n_tokens


FORMULAS = {
    "generated": "generated tokens / time (Qwen2.5 page)",
    "total": "(prompt + generated tokens) / time (Qwen3 page)",
}


def convert_tps(tps: float, formula: str, to: str, n_in: int, n_out: int) -> float:
    """A tokens/s figure under one formula, restated under the other (same run, same time):
    the two differ by the factor (n_in + n_out) / n_out. The metric registry
    (``core.metrics``: gen_tps, total_tps) is where measured figures get both."""
    if formula not in FORMULAS or to not in FORMULAS:
        raise ValueError(f"formula must be one of {', '.join(FORMULAS)}")
    if formula == to:
        return tps
    factor = (n_in + n_out) / n_out
    return tps * factor if to == "total" else tps / factor
