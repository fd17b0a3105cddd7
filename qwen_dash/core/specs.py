"""Model specs: which models the dashboard compares, and what is known about them.

The built-in specs live in ``models.toml`` beside this file, model facts included (stop and think
tokens by text, figures others quote). A user adds models in a TOML file of
the same shape, found at ``$QWEN_DASH_MODELS`` or ``./models.toml``; its entries are merged over the
built-in ones by key.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent
BUILTIN_SPECS = PACKAGE_DIR / "models.toml"
DEFAULT_MODELS = ("qwen2.5-0.5b-instruct", "qwen3-0.6b")
MAX_SIDE_BY_SIDE = 4
BACKENDS = ("local", "openai")  # local: a worker process; openai: an OpenAI-compatible server


class SpecError(ValueError):
    """A model spec file is malformed. The message names the file and the field."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    min_p: float = 0.0
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class SpeedReference:
    """A model's official speed figures (HF transformers, batch 1), as its speed page lists them,
    per input length; and what the seed note quotes of them."""

    hardware: str
    software: str
    formula: str  # "generated" or "total": core.speed.FORMULAS
    memory_unit: str
    memory_method: str
    output_tokens: int
    input_tokens: tuple[int, ...]
    tokens_per_s: tuple[float, ...]
    memory: tuple[float, ...]
    note_input_tokens: int | None = None
    note_tokens_per_s: float | None = None
    note_memory: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    key: str
    label: str
    hf_id: str
    revision: str
    context_window: int
    max_new_tokens: int
    can_think: bool
    sampling: Sampling
    thinking_sampling: Sampling | None = None
    config_path: Path | None = None
    license: str | None = None
    local_path: Path | None = None
    # Tokens by text; their ids come from the model's own tokenizer.
    stop_tokens: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
    think_tokens: tuple[str, str] | None = None  # (start, end) for models that can think
    # Qwen's tokenizer family ("qwen2.5" or "qwen3"): what a twin or tiny model tokenizes with.
    tokenizer: str | None = None
    # Whether the published checkpoint stores the (tied) output head as a tensor of its own:
    # what a twin's storage, computed from its parameter count, must add.
    checkpoint_stores_tied_head: bool = False
    # Where the model runs: "local" (a worker process) or "openai" (an OpenAI-compatible server
    # at ``base_url``, which knows the model as ``served_model``; the API key, if any, is read
    # from the environment variable named by ``api_key_env``, never from a file).
    backend: str = "local"
    base_url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None

    @property
    def remote(self) -> bool:
        return self.backend == "openai"

    @property
    def tokenizer_family(self) -> str:
        if self.tokenizer is not None:
            return self.tokenizer
        return "qwen3" if self.can_think else "qwen2.5"

    # Figures others quote, by section ("seed", "official"): fact -> value, as transcribed.
    reference: dict[str, dict[str, str]] = field(default_factory=dict)
    # The official speed page's figures per input length, for the Models page's speed table.
    speed_reference: SpeedReference | None = None

    def architecture_config(self) -> dict[str, Any] | None:
        """The shipped config.json of this model's architecture, if the spec names one."""
        if self.config_path is None:
            return None
        return json.loads(self.config_path.read_text())

    def recommended_sampling(self, thinking: bool) -> Sampling:
        if thinking and self.thinking_sampling is not None:
            return self.thinking_sampling
        return self.sampling

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int | None:
        """K and V for every layer: 2 x layers x kv_heads x head_dim x bytes."""
        cfg = self.architecture_config()
        if cfg is None:
            return None
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        kv_heads = cfg.get("num_key_value_heads", cfg["num_attention_heads"])
        return 2 * cfg["num_hidden_layers"] * kv_heads * head_dim * bytes_per_value


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "label": (str,),
    "hf_id": (str,),
    "revision": (str,),
    "config": (str,),
    "local_path": (str,),
    "context_window": (int,),
    "max_new_tokens": (int,),
    "can_think": (bool,),
    "license": (str,),
    "stop_tokens": (list,),
    "think_tokens": (list,),
    "tokenizer": (str,),
    "checkpoint_stores_tied_head": (bool,),
    "backend": (str,),
    "base_url": (str,),
    "served_model": (str,),
    "api_key_env": (str,),
}
TOKENIZER_FAMILIES = ("qwen2.5", "qwen3")
_TABLES = ("sampling", "thinking_sampling", "reference", "speed_reference")
_SPEED_FIELDS: dict[str, tuple[type, ...]] = {
    "hardware": (str,),
    "software": (str,),
    "formula": (str,),
    "memory_unit": (str,),
    "memory_method": (str,),
    "output_tokens": (int,),
    "input_tokens": (list,),
    "tokens_per_s": (list,),
    "memory": (list,),
    "note_input_tokens": (int,),
    "note_tokens_per_s": (int, float),
    "note_memory": (str,),
}
_SPEED_FORMULAS = ("generated", "total")
_REQUIRED = ("hf_id", "context_window")
_SAMPLING_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "min_p": (int, float),
    "repetition_penalty": (int, float),
}


def _check_type(path: Path, where: str, value: Any, types: tuple[type, ...]) -> None:
    # bool is an int in Python; a spec that says `top_k = true` is still wrong.
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise SpecError(f"{path}: field '{where}' must be {wanted}, got {value!r}")


def _parse_sampling(path: Path, key: str, name: str, raw: Any) -> Sampling:
    where = f"models.{key}.{name}"
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: field '{where}' must be a table")
    for k, v in raw.items():
        if k not in _SAMPLING_TYPES:
            raise SpecError(f"{path}: unknown field '{where}.{k}'")
        _check_type(path, f"{where}.{k}", v, _SAMPLING_TYPES[k])
    values: dict[str, Any] = {k: (float(v) if k != "top_k" else v) for k, v in raw.items()}
    return Sampling(**values)


def _parse_spec(path: Path, key: str, raw: Any) -> ModelSpec:
    where = f"models.{key}"
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: field '{where}' must be a table")
    for name in _REQUIRED:
        if name not in raw:
            raise SpecError(f"{path}: field '{where}.{name}' is required")
    for name, value in raw.items():
        if name in _TABLES:
            continue
        if name not in _FIELD_TYPES:
            raise SpecError(f"{path}: unknown field '{where}.{name}'")
        _check_type(path, f"{where}.{name}", value, _FIELD_TYPES[name])
    for name in ("context_window", "max_new_tokens"):
        if name in raw and raw[name] <= 0:
            raise SpecError(f"{path}: field '{where}.{name}' must be positive")
    config_path = None
    if "config" in raw:
        config_path = (path.parent / raw["config"]).resolve()
        if not config_path.is_file():
            raise SpecError(f"{path}: field '{where}.config': no such file {config_path}")
    thinking = raw.get("thinking_sampling")
    stop = _token_list(path, f"{where}.stop_tokens", raw.get("stop_tokens"), min_len=1)
    think = _token_list(path, f"{where}.think_tokens", raw.get("think_tokens"), exact=2)
    if raw.get("tokenizer", TOKENIZER_FAMILIES[0]) not in TOKENIZER_FAMILIES:
        wanted = " or ".join(TOKENIZER_FAMILIES)
        raise SpecError(f"{path}: field '{where}.tokenizer' must be {wanted}")
    _check_backend(path, where, raw)
    if raw.get("can_think") and think is None and raw.get("backend") == "openai":
        think = ("<think>", "</think>")  # Qwen3's tags, as a server without a parser sends them
    if raw.get("can_think") and think is None:
        raise SpecError(f"{path}: field '{where}.think_tokens' is required when can_think is true")
    return ModelSpec(
        key=key,
        label=raw.get("label", key),
        hf_id=raw["hf_id"],
        revision=raw.get("revision", "main"),
        context_window=raw["context_window"],
        max_new_tokens=raw.get("max_new_tokens", min(8192, raw["context_window"])),
        can_think=raw.get("can_think", False),
        sampling=_parse_sampling(path, key, "sampling", raw.get("sampling", {})),
        thinking_sampling=(
            _parse_sampling(path, key, "thinking_sampling", thinking) if thinking else None
        ),
        config_path=config_path,
        license=raw.get("license"),
        local_path=Path(raw["local_path"]).expanduser() if "local_path" in raw else None,
        stop_tokens=stop or ModelSpec.stop_tokens,
        think_tokens=(think[0], think[1]) if think else None,
        tokenizer=raw.get("tokenizer"),
        checkpoint_stores_tied_head=raw.get("checkpoint_stores_tied_head", False),
        backend=raw.get("backend", "local"),
        base_url=raw["base_url"].rstrip("/") if "base_url" in raw else None,
        served_model=raw.get("served_model"),
        api_key_env=raw.get("api_key_env"),
        reference=_parse_reference(path, f"{where}.reference", raw.get("reference", {})),
        speed_reference=_parse_speed(path, f"{where}.speed_reference", raw.get("speed_reference")),
    )


def _check_backend(path: Path, where: str, raw: dict[str, Any]) -> None:
    """``backend = "openai"`` needs an http(s) ``base_url``; remote fields need that backend."""
    backend = raw.get("backend", "local")
    if backend not in BACKENDS:
        raise SpecError(f"{path}: field '{where}.backend' must be one of {', '.join(BACKENDS)}")
    remote_fields = [f for f in ("base_url", "served_model", "api_key_env") if f in raw]
    if backend != "openai":
        if remote_fields:
            raise SpecError(
                f"{path}: field '{where}.{remote_fields[0]}' needs backend = \"openai\""
            )
        return
    url = raw.get("base_url")
    if url is None:
        raise SpecError(f"{path}: field '{where}.base_url' is required when backend is openai")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise SpecError(
            f"{path}: field '{where}.base_url' must be an http(s) URL without credentials "
            "(put the key in the variable named by api_key_env)"
        )
    env = raw.get("api_key_env")
    if env is not None and not env.replace("_", "").isalnum():
        raise SpecError(
            f"{path}: field '{where}.api_key_env' must name an environment variable, "
            "not hold the key"
        )


def _token_list(
    path: Path, where: str, raw: Any, *, min_len: int = 0, exact: int | None = None
) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
        raise SpecError(f"{path}: field '{where}' must be a list of token texts")
    if (exact is not None and len(raw) != exact) or len(raw) < min_len:
        wanted = f"exactly {exact}" if exact is not None else f"at least {min_len}"
        raise SpecError(f"{path}: field '{where}' must list {wanted} tokens, got {len(raw)}")
    return tuple(raw)


def _parse_reference(path: Path, where: str, raw: Any) -> dict[str, dict[str, str]]:
    """``[models.<key>.reference.<section>]`` tables of fact = "value" strings."""
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: field '{where}' must be a table")
    out: dict[str, dict[str, str]] = {}
    for section, facts in raw.items():
        if not isinstance(facts, dict) or not all(isinstance(v, str) for v in facts.values()):
            raise SpecError(f"{path}: field '{where}.{section}' must be a table of strings")
        out[section] = dict(facts)
    return out


def _numbers(path: Path, where: str, raw: list[Any], types: tuple[type, ...]) -> tuple[Any, ...]:
    for i, value in enumerate(raw):
        _check_type(path, f"{where}[{i}]", value, types)
    return tuple(raw)


def _parse_speed(path: Path, where: str, raw: Any) -> SpeedReference | None:
    """``[models.<key>.speed_reference]``: one list entry per input length."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: field '{where}' must be a table")
    for name, value in raw.items():
        if name not in _SPEED_FIELDS:
            raise SpecError(f"{path}: unknown field '{where}.{name}'")
        _check_type(path, f"{where}.{name}", value, _SPEED_FIELDS[name])
    required = [n for n in _SPEED_FIELDS if not n.startswith("note_") and n not in raw]
    if required:
        raise SpecError(f"{path}: field '{where}.{required[0]}' is required")
    if raw["formula"] not in _SPEED_FORMULAS:
        raise SpecError(f"{path}: field '{where}.formula' must be generated or total")
    inputs = _numbers(path, f"{where}.input_tokens", raw["input_tokens"], (int,))
    tps = _numbers(path, f"{where}.tokens_per_s", raw["tokens_per_s"], (int, float))
    memory = _numbers(path, f"{where}.memory", raw["memory"], (int, float))
    if not len(inputs) == len(tps) == len(memory):
        raise SpecError(f"{path}: '{where}': input_tokens, tokens_per_s, memory differ in length")
    fields = {k: v for k, v in raw.items() if k not in ("input_tokens", "tokens_per_s", "memory")}
    return SpeedReference(
        **fields,
        input_tokens=inputs,
        tokens_per_s=tuple(float(x) for x in tps),
        memory=tuple(float(x) for x in memory),
    )


def parse_spec_file(path: Path) -> dict[str, ModelSpec]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise SpecError(f"{path}: field 'models' must be a table of [models.\"<key>\"] entries")
    return {key: _parse_spec(path, key, raw) for key, raw in models.items()}


def user_spec_file() -> Path | None:
    env = os.environ.get("QWEN_DASH_MODELS")
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / "models.toml"
    return local if local.is_file() else None


def load_specs(user_file: Path | None = None) -> dict[str, ModelSpec]:
    """Built-in specs, then the user's file over them (same key replaces)."""
    specs = parse_spec_file(BUILTIN_SPECS)
    extra = user_file if user_file is not None else user_spec_file()
    if extra is not None:
        specs.update(parse_spec_file(extra))
    return specs


def default_model_keys() -> list[str]:
    env = os.environ.get("QWEN_DASH_COMPARE")
    if env:
        return [k.strip() for k in env.split(",") if k.strip()][:MAX_SIDE_BY_SIDE]
    return list(DEFAULT_MODELS)
