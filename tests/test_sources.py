"""Where weights come from: twin and tiny built offline, local folders, auto's fallback."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModelForCausalLM

from qwen_dash.core.request import Settings
from qwen_dash.core.specs import DEFAULT_MODELS, ModelSpec, load_specs
from qwen_dash.worker.generation import Generator, Job, prompt_ids
from qwen_dash.worker.qwen_tokenizer import (
    build_qwen_tokenizer,
    chat_template,
    fingerprint,
)
from qwen_dash.worker.sources import (
    SourceError,
    _config_for,
    build_random,
    ensure_twin,
    load_model,
    load_tokenizer,
    resolve_source,
    save_twin_tokenizer,
    twin_dir,
)

SPECS = load_specs()
QWEN25, QWEN3 = DEFAULT_MODELS


@pytest.mark.parametrize(
    ("key", "params", "cls"),
    [
        ("qwen2.5-0.5b-instruct", 494_032_768, "Qwen2ForCausalLM"),
        ("qwen3-0.6b", 596_049_920, "Qwen3ForCausalLM"),
    ],
)
def test_twin_architecture_has_the_real_parameter_count(key: str, params: int, cls: str) -> None:
    # Built on the meta device: the exact architecture, without allocating 2 GB of weights.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(_config_for(SPECS[key]))
    assert type(model).__name__ == cls
    assert sum(p.numel() for p in model.parameters()) == params


def test_auto_falls_back_to_twin_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    assert resolve_source(SPECS["qwen3-0.6b"], "auto") == "twin"
    assert resolve_source(SPECS["qwen3-0.6b"], "tiny") == "tiny"
    with pytest.raises(SourceError, match="Unknown source 'moon'"):
        resolve_source(SPECS["qwen3-0.6b"], "moon")


def test_auto_uses_the_hub_cache_when_weights_are_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A snapshot laid out as huggingface_hub lays it out is found without any network."""
    spec = SPECS["qwen2.5-0.5b-instruct"]
    hub = tmp_path / "hub"
    repo = hub / "models--Qwen--Qwen2.5-0.5B-Instruct"
    commit = "a" * 40
    snap = repo / "snapshots" / commit
    model, tokenizer = build_random(spec, tiny=True)
    model.save_pretrained(snap)
    tokenizer.save_pretrained(snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    assert resolve_source(spec, "auto") == "hub"
    loaded = load_model(spec, "hub")
    assert loaded.source == "hub" and loaded.revision == commit
    assert loaded.storage_bytes and loaded.storage_bytes > 0


def test_twin_is_cached_and_read_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The twin build path, on a small config so the test stays fast."""
    monkeypatch.setenv("QWEN_DASH_CACHE", str(tmp_path))
    base = SPECS["qwen3-0.6b"]
    cfg = tmp_path / "small.json"
    import json

    small = {
        **base.architecture_config(),
        "num_hidden_layers": 1,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
    }
    cfg.write_text(json.dumps(small))
    spec = ModelSpec(**{**base.__dict__, "key": "small", "config_path": cfg})
    messages: list[str] = []
    folder = ensure_twin(spec, lambda m, f: messages.append(m))
    assert folder == twin_dir(spec) and (folder / "model.safetensors").is_file()
    assert any("first time only" in m for m in messages)
    messages.clear()
    loaded = load_model(spec, "twin", progress=lambda m, f: messages.append(m))
    assert loaded.source == "twin" and not any("first time" in m for m in messages)
    built, _ = build_random(spec, tiny=False)
    for (name, a), (_, b) in zip(
        loaded.model.state_dict().items(), built.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name  # the same seeded weights, read back from disk
    # The worker's n_in on the cached twin is the official template's count.
    generator = Generator(spec, loaded, "cpu")
    job = Job("j", CONVERSATION, Settings(greedy=True, max_new_tokens=2, thinking=False))
    result = generator.run(job, lambda event: None, threading.Event())
    official = build_qwen_tokenizer("qwen3").apply_chat_template(
        CONVERSATION, tokenize=True, add_generation_prompt=True, enable_thinking=False
    )["input_ids"]
    assert result.status == "ok", result.error
    assert result.n_in == len(official) and result.n_out == 2


def test_local_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = SPECS["qwen2.5-0.5b-instruct"]
    with pytest.raises(SourceError, match="needs a folder"):
        load_model(spec, "local")
    model, tokenizer = build_random(spec, tiny=True)
    model.save_pretrained(tmp_path / spec.key)
    tokenizer.save_pretrained(tmp_path / spec.key)
    monkeypatch.setenv("QWEN_DASH_LOCAL_DIR", str(tmp_path))
    loaded = load_model(spec, "local")
    assert loaded.source == "local" and loaded.path == str(tmp_path / spec.key)


def test_model_without_architecture_config_cannot_be_a_twin() -> None:
    spec = ModelSpec(**{**SPECS["qwen3-0.6b"].__dict__, "key": "nocfg", "config_path": None})
    with pytest.raises(SourceError, match="needs the architecture config"):
        load_model(spec, "twin")


def test_twins_and_tiny_models_tokenize_with_qwens_real_tokenizer() -> None:
    _, tok = build_random(SPECS[QWEN3], tiny=True)
    assert tok.encode("Hello, world!") == [9707, 11, 1879, 0]  # Qwen's published ids
    assert tok.convert_tokens_to_ids("</think>") == 151668
    assert tok.chat_template == chat_template("qwen3")  # the official template


def test_twin_folder_names_its_tokenizer_build() -> None:
    """A twin cached with another tokenizer (earlier versions' byte tokenizer) is not reused."""
    spec = SPECS[QWEN25]
    assert twin_dir(spec).name.endswith("-tok" + fingerprint("qwen2.5")[:8])


@pytest.fixture(scope="module")
def official_tokenizers() -> dict[str, Any]:
    """The converted tokenizers built directly, not through any cache: the reference."""
    return {family: build_qwen_tokenizer(family) for family in ("qwen2.5", "qwen3")}


# Qwen2.5 gets the template's default system prompt when none is given; a control token typed by
# the user would be counted differently, so the conversation has none.
CONVERSATION = [
    {"role": "user", "content": "Translate 'good morning' into French, please."},
    {"role": "assistant", "content": "Bonjour."},
    {"role": "user", "content": "And into Chinese? 早上好 or 你好? Ça va? 👍🏽\nx = [i**2 for i]"},
]


@pytest.mark.parametrize(
    ("key", "thinking", "system"),
    [
        (QWEN25, False, None),
        (QWEN25, False, "You are terse."),
        (QWEN3, True, None),
        (QWEN3, False, None),
        (QWEN3, True, "You are terse."),
        (QWEN3, False, "You are terse."),
    ],
)
def test_twin_n_in_equals_the_official_templates_count(
    tmp_path: Path,
    official_tokenizers: dict[str, Any],
    key: str,
    thinking: bool,
    system: str | None,
) -> None:
    """The twin's tokenizer, saved and read back as ensure_twin and load_model do, gives the
    worker the same prompt ids (so n_in) as the official template applied with the converted
    tokenizer: default system prompt (Qwen2.5) and the thinking switch (Qwen3) included."""
    spec = SPECS[key]
    save_twin_tokenizer(spec, tmp_path)
    twin_tok = load_tokenizer(tmp_path)
    messages = ([{"role": "system", "content": system}] if system else []) + CONVERSATION
    settings = Settings(thinking=thinking)
    ours = prompt_ids(twin_tok, spec, messages, settings)
    kwargs = {"enable_thinking": thinking} if spec.can_think else {}
    official = official_tokenizers[spec.tokenizer_family].apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, **kwargs
    )["input_ids"]
    assert len(ours) == len(official)
    assert ours == official
    if key == QWEN25 and system is None:
        assert twin_tok.decode(ours).startswith("<|im_start|>system\nYou are Qwen, created by")
    if key == QWEN3 and not thinking:
        assert ours[-4:] == [151667, 271, 151668, 271]  # <think>\n\n</think>\n\n
