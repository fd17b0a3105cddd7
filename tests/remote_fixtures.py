"""A real OpenAI-compatible server on loopback: ``transformers serve`` with the project's tiny
models saved to local folders, and a spec file naming them as remote models.

The server is not pinned to one model: a request names the folder it wants, so one server serves
both tiny models (the first request for each loads it). Two folders:

- ``qwen2.5-tiny``: the tiny random Qwen2.5 of the engine tests (``build_random(tiny=True)``);
  random text, long answers: what cancel and crash tests need.
- ``qwen3-thinker``: the tiny Qwen3 with its weights set so that greedy decoding follows a fixed
  chain from the end of the prompt: ``<think>`` "hm" ``</think>`` "OK" ``<|im_end|>``. Both layers
  are silenced (zero output projections), so each next token depends only on the last one: a
  bigram table written into the embedding and the untied output head. It thinks, whatever the
  switch says (it is not the real model); the switch's effect on the prompt is what is checked.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from qwen_dash.core.specs import load_specs

SERVER_START_TIMEOUT_S = 120.0
REMOTE25, REMOTE3, LOCAL25 = "qwen2.5-remote", "qwen3-remote", "qwen2.5-0.5b-instruct"
THINK_CHAIN = ["\n", "<think>", "h", "m", "</think>", "O", "K", "<|im_end|>"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _save_tiny(key: str, folder: Path, chain: list[str | int] | None = None) -> None:
    from qwen_dash.worker.sources import build_random

    spec = load_specs()[key]
    model, tokenizer = build_random(spec, tiny=True)
    if chain is not None:
        # The chain starts from the prompt's last token, the "\n" after "assistant".
        newline = tokenizer.encode("\n", add_special_tokens=False)[-1]
        ids = [t if isinstance(t, int) else tokenizer.convert_tokens_to_ids(t) for t in chain[1:]]
        model = _bigram(model, [newline, *ids])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# A tiny Qwen2.5 that never stops: after the prompt, 40 pseudo-words in a loop, one token and one
# streamed chunk each (the benchmark's model: the random tiny model mostly repeats newlines, which
# a server sends as one chunk).
LOOP_CHAIN: list[str | int] = ["\n", *range(1000, 1040), 1000]


def save_looper(folder: Path) -> Path:
    _save_tiny(LOCAL25, folder, LOOP_CHAIN)
    return folder


def _bigram(model: object, ids: list[int]) -> object:
    """Silence every layer and write ``chain`` as a bigram table into the embedding and an
    untied output head: after chain[i] the greedy next token is chain[i + 1]."""
    import torch

    m: object = model
    config = m.config  # type: ignore[attr-defined]
    config.tie_word_embeddings = False
    hidden = config.hidden_size
    embed = m.get_input_embeddings().weight  # type: ignore[attr-defined]
    head = torch.nn.Linear(hidden, embed.shape[0], bias=False)
    with torch.no_grad():
        head.weight.copy_(embed)
        for layer in m.model.layers:  # type: ignore[attr-defined]
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        for i, (prev, nxt) in enumerate(itertools.pairwise(ids)):
            basis = torch.zeros(hidden)
            basis[i % hidden] = 1.0
            embed[prev] = basis
            head.weight[nxt] += 10.0 * basis
    m.set_output_embeddings(head)  # type: ignore[attr-defined]
    return m


@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen[bytes]
    folders: dict[str, Path]
    spec_file: Path
    log: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def write_spec_file(path: Path, base_url: str, folders: dict[str, Path]) -> Path:
    path.write_text(
        f"""
[models."{REMOTE25}"]
label = "Qwen2.5 tiny (remote)"
hf_id = "Qwen/Qwen2.5-0.5B-Instruct"
backend = "openai"
base_url = "{base_url}"
served_model = "{folders["qwen2.5"]}"
context_window = 32768
max_new_tokens = 8192
tokenizer = "qwen2.5"

[models."{REMOTE3}"]
label = "Qwen3 tiny thinker (remote)"
hf_id = "Qwen/Qwen3-0.6B"
backend = "openai"
base_url = "{base_url}"
served_model = "{folders["qwen3"]}"
api_key_env = "QWEN_DASH_TEST_KEY"
can_think = true
context_window = 32768
tokenizer = "qwen3"
"""
    )
    return path


def start_server(folder_root: Path, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("transformers")
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "NO_PROXY": "*"}
    log = open(folder_root / "server.log", "ab")  # noqa: SIM115 (the server keeps it)
    return subprocess.Popen(
        cmd, stdout=log, stderr=log, env=env, cwd=folder_root, start_new_session=True
    )


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "transformers serve exited while starting"
        try:
            if httpx.get(f"{base}/health", timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"transformers serve did not answer {base}/health in {timeout:g} s")


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served-models")
    folders = {"qwen2.5": root / "qwen2.5-tiny", "qwen3": root / "qwen3-thinker"}
    _save_tiny(LOCAL25, folders["qwen2.5"])
    _save_tiny("qwen3-0.6b", folders["qwen3"], THINK_CHAIN)
    return folders


def _launch(root: Path, folders: dict[str, Path]) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(root, port)
    try:
        wait_healthy(base, proc, SERVER_START_TIMEOUT_S)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    spec_file = write_spec_file(root / "models.toml", f"{base}/v1", folders)
    return Server(f"{base}/v1", proc, folders, spec_file, root / "server.log")


@pytest.fixture(scope="session")
def openai_server(
    tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One ``transformers serve`` for the session, on a free loopback port."""
    server = _launch(tmp_path_factory.mktemp("server"), tiny_model_dirs)
    yield server
    server.kill()


@pytest.fixture
def doomed_server(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for a test that kills it."""
    server = _launch(tmp_path, tiny_model_dirs)
    yield server
    server.kill()
