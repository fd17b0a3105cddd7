"""Where weights come from: twin and tiny built offline, local folders, auto's fallback."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModelForCausalLM

from qwen_dash.core.specs import ModelSpec, load_specs
from qwen_dash.worker.sources import (
    SourceError,
    _config_for,
    build_random,
    ensure_twin,
    load_model,
    resolve_source,
    twin_dir,
)
from qwen_dash.worker.tokenizer import build_tokenizer, encode_chat

SPECS = load_specs()


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


def test_qwen3_template_thinking_switch_matches_the_real_one() -> None:
    tok = build_tokenizer("qwen3")
    msgs = [{"role": "user", "content": "Hi"}]
    on = tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=True
    )
    off = tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    default = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert on == default == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"
    ids = encode_chat(tok, msgs, enable_thinking=False)
    assert ids[-4:] != [] and 151667 in ids and 151668 in ids  # template's own think block


def test_qwen25_template_adds_the_default_system_prompt() -> None:
    tok = build_tokenizer("qwen2.5")
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    with_system = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert "Alibaba" not in with_system


def test_every_generated_id_decodes_to_visible_text() -> None:
    tok = build_tokenizer("qwen3")
    assert tok.decode([300, 70_000, 151_000]).count(" ") == 3
    assert tok.decode([151645], skip_special_tokens=True) == ""
    assert tok.decode([151668], skip_special_tokens=True) == "</think>"  # not special, as in Qwen3


def test_hub_download_reports_progress_as_fractions() -> None:
    from qwen_dash.worker.sources import _progress_tqdm

    seen: list[tuple[str, float | None]] = []
    bar = _progress_tqdm(lambda m, f: seen.append((m, f)), "Qwen/Qwen3-0.6B")(
        total=200, disable=False
    )
    bar.update(50)
    bar.update(150)
    bar.close()
    assert seen == [("Downloading Qwen/Qwen3-0.6B", 0.25), ("Downloading Qwen/Qwen3-0.6B", 1.0)]
