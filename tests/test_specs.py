"""Model specs: the two built-in models, and models a user adds in a TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_dash.core.specs import SpecError, load_specs, parse_spec_file


def test_builtin_specs_hold_the_two_qwen_models() -> None:
    specs = load_specs()
    q25, q3 = specs["qwen2.5-0.5b-instruct"], specs["qwen3-0.6b"]
    assert q25.hf_id == "Qwen/Qwen2.5-0.5B-Instruct" and q3.hf_id == "Qwen/Qwen3-0.6B"
    assert q25.context_window == q3.context_window == 32768
    assert not q25.can_think and q3.can_think
    assert (q25.sampling.temperature, q25.sampling.top_p, q25.sampling.top_k) == (0.7, 0.8, 20)
    assert q25.sampling.repetition_penalty == 1.1
    assert q3.recommended_sampling(thinking=True).temperature == 0.6
    assert q3.recommended_sampling(thinking=True).top_p == 0.95
    assert q3.recommended_sampling(thinking=False).temperature == 0.7
    assert q25.architecture_config()["num_key_value_heads"] == 2
    assert q3.architecture_config()["head_dim"] == 128
    # KV cache per token in bf16 (reference/qwen-models.md): 12,288 B and 114,688 B.
    assert q25.kv_bytes_per_token() == 12_288
    assert q3.kv_bytes_per_token() == 114_688


def test_user_file_adds_a_model_without_code(tmp_path: Path) -> None:
    user = tmp_path / "models.toml"
    user.write_text(
        """
[models."qwen2.5-1.5b-instruct"]
label = "Qwen2.5-1.5B-Instruct"
hf_id = "Qwen/Qwen2.5-1.5B-Instruct"
context_window = 32768
[models."qwen2.5-1.5b-instruct".sampling]
temperature = 0.7
top_p = 0.8
"""
    )
    specs = load_specs(user)
    added = specs["qwen2.5-1.5b-instruct"]
    assert added.hf_id == "Qwen/Qwen2.5-1.5B-Instruct"
    assert added.sampling.top_p == 0.8 and not added.can_think
    assert "qwen3-0.6b" in specs  # built-ins stay


def test_user_file_is_found_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "mine.toml"
    user.write_text('[models.extra]\nhf_id = "Org/Extra"\ncontext_window = 4096\n')
    monkeypatch.setenv("QWEN_DASH_MODELS", str(user))
    assert load_specs()["extra"].max_new_tokens == 4096


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('[models.x]\nhf_id = "a/b"\ncontext_window = "big"\n', "models.x.context_window"),
        ("[models.x]\ncontext_window = 10\n", "models.x.hf_id"),
        ('[models.x]\nhf_id = "a/b"\ncontext_window = 10\ncolour = 1\n', "models.x.colour"),
        (
            '[models.x]\nhf_id = "a/b"\ncontext_window = 10\n[models.x.sampling]\ntop_k = 1.5\n',
            "models.x.sampling.top_k",
        ),
        ('[models.x]\nhf_id = "a/b"\ncontext_window = -1\n', "models.x.context_window"),
        ('[models.x]\nhf_id = "a/b"\ncontext_window = 9\nconfig = "no.json"\n', "models.x.config"),
        ("[other]\n", "models"),
    ],
)
def test_malformed_file_names_the_file_and_the_field(tmp_path: Path, body: str, field: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(body)
    with pytest.raises(SpecError) as err:
        parse_spec_file(bad)
    assert str(bad) in str(err.value)
    assert f"'{field}" in str(err.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text("[models.x\n")
    with pytest.raises(SpecError, match=r"broken\.toml: not valid TOML"):
        parse_spec_file(bad)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('backend = "openai"', "field 'models.r.base_url' is required when backend is openai"),
        ('backend = "grpc"', "field 'models.r.backend' must be one of local, openai"),
        ('base_url = "http://h:1/v1"', "field 'models.r.base_url' needs backend = \"openai\""),
        (
            'backend = "openai"\nbase_url = "http://user:pw@h:1/v1"',
            "field 'models.r.base_url' must be an http(s) URL without credentials",
        ),
        (
            'backend = "openai"\nbase_url = "http://h:1/v1"\napi_key_env = "sk-abc def"',
            "field 'models.r.api_key_env' must name an environment variable",
        ),
    ],
)
def test_malformed_remote_specs_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[models."r"]\nhf_id = "Qwen/Qwen3-0.6B"\ncontext_window = 32768\n{body}\n')
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_spec_file(path)
    assert str(path) in str(err.value)
