"""Counting tokens on the client, for a remote server that reports no usage.

Qwen's own BPE (``core/qwen_bpe``: the ``tokenizers`` library only, never transformers or torch),
built once and cached as ``tokenizer.json`` under the qwen-dash cache, then loaded in a blink.
The count is the real Qwen tokenizer's for text the server sent; a result records that its counts
were counted here, not reported by the server.
"""

from __future__ import annotations

import os
import tempfile
import threading
from functools import cache
from pathlib import Path

from tokenizers import Tokenizer

from qwen_dash.core.defaults import cache_root
from qwen_dash.core.qwen_bpe import FAMILIES, backend, fingerprint

_lock = threading.Lock()


def tokenizer_file(family: str) -> Path:
    return cache_root() / "qwen-bpe" / f"{family}-{fingerprint(family)}.json"


@cache
def _tokenizer(family: str) -> Tokenizer:
    path = tokenizer_file(family)
    with _lock:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{family}-", suffix=".json")
            os.close(fd)
            backend(family).save(tmp)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
    return Tokenizer.from_file(str(path))


def count_tokens(family: str, text: str) -> int:
    """Tokens of ``text`` by Qwen's tokenizer of ``family``; added tokens in it count as one."""
    if family not in FAMILIES:
        raise ValueError(f"unknown tokenizer family {family!r}")
    if not text:
        return 0
    return len(_tokenizer(family).encode(text, add_special_tokens=False).ids)
