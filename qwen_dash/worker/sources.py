"""Where a model's weights come from (docs/architecture.md, "Weights sources").

- ``hub``: the Hugging Face id; the local HF cache first, else a download with progress.
- ``local``: a folder with config, tokenizer and safetensors.
- ``twin``: the exact architecture with random weights, built offline from the shipped config and
  cached on disk, so that later starts only read it back; it tokenizes with Qwen's real tokenizer
  (built offline from ``qwen.tiktoken``, official chat template), saved with it.
- ``tiny``: a two-layer random model of the same classes, for tests; same real tokenizer.
- ``auto``: hub when the weights are cached or the hub answers quickly; else twin.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers import PreTrainedTokenizerBase as Tokenizer

from qwen_dash.core.defaults import SOURCES, cache_root
from qwen_dash.core.specs import ModelSpec
from qwen_dash.worker.qwen_tokenizer import fingerprint, load_qwen_tokenizer

HUB_PROBE_TIMEOUT_S = 3.0
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_window_layers": 2,
}
SEED = 0

Progress = Callable[[str, float | None], None]


class SourceError(RuntimeError):
    """A model cannot be had from the asked source; the message says why and what to do."""


@dataclass
class LoadedModel:
    model: Any  # a PreTrainedModel; transformers types its methods too loosely to help
    tokenizer: Tokenizer
    source: str  # resolved: hub | local | twin | tiny
    revision: str | None
    path: str | None
    load_ms: float
    storage_bytes: int | None  # size on disk of the weights files, where there are files


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """``auto``: bf16 on CUDA, fp32 on CPU (bf16 decoding is slower than fp32 on CPUs here)."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            dtype
        ]
    except KeyError:
        raise SourceError(
            f"Unknown dtype '{dtype}': use auto, float32, bfloat16 or float16."
        ) from None


def _quiet(_: str, __: float | None) -> None:
    pass


def _files_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


# -- hub ---------------------------------------------------------------------------------------


def hub_cached_path(spec: ModelSpec) -> Path | None:
    """The snapshot folder when the weights are already in the local HF cache."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                spec.hf_id,
                revision=spec.revision,
                allow_patterns=WEIGHT_PATTERNS,
                local_files_only=True,
            )
        )
    except Exception:
        return None
    return path if any(path.glob("*.safetensors")) else None


def hub_reachable(spec: ModelSpec, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(spec.hf_id, revision=spec.revision, timeout=timeout_s)
    except Exception:
        return False
    return True


def _progress_tqdm(progress: Progress, label: str) -> type:
    """A tqdm class for huggingface_hub that reports download progress as events."""
    from tqdm.auto import tqdm

    class ProgressTqdm(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            if self.total:
                progress(f"Downloading {label}", min(1.0, self.n / self.total))
            return out

    return ProgressTqdm


def hub_download(spec: ModelSpec, progress: Progress) -> Path:
    from huggingface_hub import snapshot_download

    progress(f"Downloading {spec.hf_id}", 0.0)
    return Path(
        snapshot_download(
            spec.hf_id,
            revision=spec.revision,
            allow_patterns=WEIGHT_PATTERNS,
            tqdm_class=_progress_tqdm(progress, spec.hf_id),
        )
    )


# -- twin and tiny -----------------------------------------------------------------------------


def _config_for(spec: ModelSpec, overrides: dict[str, Any] | None = None) -> Any:
    cfg = spec.architecture_config()
    if cfg is None:
        raise SourceError(
            f"{spec.label}: a twin or tiny model needs the architecture config; add "
            f'`config = "path/to/config.json"` to its spec.'
        )
    cfg = {**cfg, **(overrides or {})}
    cfg.pop("torch_dtype", None)
    model_type = cfg.pop("model_type")
    return AutoConfig.for_model(model_type, **cfg)


def tokenizer_cache() -> Path:
    """Where Qwen's converted tokenizers are kept, one folder per family and build."""
    return cache_root() / "tokenizers"


def random_model_tokenizer(spec: ModelSpec) -> Tokenizer:
    """The tokenizer of a twin or tiny model: Qwen's real one for the spec's family, with the
    official chat template (converted once, then read from ``tokenizer_cache()``)."""
    return load_qwen_tokenizer(spec.tokenizer_family, tokenizer_cache())


def build_random(spec: ModelSpec, tiny: bool) -> tuple[Any, Tokenizer]:
    """The spec's architecture (or its tiny version) with seeded random weights, in fp32."""
    config = _config_for(spec, TINY_SHAPE if tiny else None)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.do_sample = False
    return model.eval(), random_model_tokenizer(spec)


def twin_dir(spec: ModelSpec) -> Path:
    """The twin's folder: named by its architecture config and its tokenizer build, so a twin
    cached with another tokenizer (the byte tokenizer of earlier versions) is built anew."""
    digest = hashlib.sha256(spec.config_path.read_bytes() if spec.config_path else b"").hexdigest()
    tok = fingerprint(spec.tokenizer_family)[:8]
    return cache_root() / "twins" / f"{spec.key}-{digest[:12]}-tok{tok}"


def save_twin_tokenizer(spec: ModelSpec, folder: Path) -> None:
    """Write the twin's tokenizer into ``folder``, where ``load_tokenizer`` reads it back."""
    random_model_tokenizer(spec).save_pretrained(str(folder))


def ensure_twin(spec: ModelSpec, progress: Progress) -> Path:
    """Build the twin once and keep it on disk; later loads only read it back."""
    folder = twin_dir(spec)
    if (folder / "model.safetensors").is_file():
        return folder
    progress(f"Building {spec.label} twin (random weights, first time only)", None)
    model, _ = build_random(spec, tiny=False)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    save_twin_tokenizer(spec, tmp)
    meta = {
        "key": spec.key,
        "seed": SEED,
        "tokenizer": spec.tokenizer_family,
        "tokenizer_fingerprint": fingerprint(spec.tokenizer_family),
    }
    (tmp / "qwen_dash_twin.json").write_text(json.dumps(meta))
    tmp.rename(folder)  # atomic: a crash mid-save leaves no half twin
    return folder


# -- loading -----------------------------------------------------------------------------------


def resolve_source(spec: ModelSpec, source: str) -> str:
    if source not in SOURCES:
        raise SourceError(f"Unknown source '{source}': use one of {', '.join(SOURCES)}.")
    if source != "auto":
        return source
    if hub_cached_path(spec) is not None or hub_reachable(spec):
        return "hub"
    return "twin"


def local_folder(spec: ModelSpec) -> Path:
    folder = spec.local_path
    if folder is None and os.environ.get("QWEN_DASH_LOCAL_DIR"):
        folder = Path(os.environ["QWEN_DASH_LOCAL_DIR"]).expanduser() / spec.key
    if folder is None:
        raise SourceError(
            f"{spec.label}: source 'local' needs a folder: set `local_path` in its spec or "
            f"QWEN_DASH_LOCAL_DIR to a folder holding {spec.key}/."
        )
    if not (folder / "config.json").is_file():
        raise SourceError(f"{spec.label}: {folder} has no config.json.")
    return folder


def load_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer saved in a model folder (hub snapshot, local folder or twin)."""
    tokenizer: Tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer


def _from_folder(folder: Path, dtype: torch.dtype, device: str) -> tuple[Any, Tokenizer]:
    tokenizer = load_tokenizer(folder)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model.to(device).eval(), tokenizer


def load_model(
    spec: ModelSpec,
    source: str = "auto",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Progress = _quiet,
) -> LoadedModel:
    start = time.perf_counter()
    resolved = resolve_source(spec, source)
    revision: str | None = None
    folder: Path | None = None
    if resolved == "tiny":
        progress(f"Building tiny {spec.label}", None)
        model, tokenizer = build_random(spec, tiny=True)
        model = model.to(device=device, dtype=dtype)
    else:
        if resolved == "hub":
            folder = hub_cached_path(spec) or hub_download(spec, progress)
            revision = folder.name  # the snapshot folder is named by the commit hash
        elif resolved == "local":
            folder = local_folder(spec)
        else:
            folder = ensure_twin(spec, progress)
            revision = f"twin-seed{SEED}"
        progress(f"Loading {spec.label} weights ({resolved})", None)
        model, tokenizer = _from_folder(folder, dtype, device)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=resolved,
        revision=revision or spec.revision,
        path=str(folder) if folder else None,
        load_ms=(time.perf_counter() - start) * 1000,
        storage_bytes=_files_size(folder) if folder else None,
    )
