"""Tokenizers: the project's own offline tokenizer for twins and tiny models, and prompt encoding.

Twins and tiny models have random weights, so any tokenizer of the right vocabulary size serves;
what matters is that the chat template and the control tokens sit where Qwen's do. The tokenizer
made here is byte-level (every byte one token, ids 0-255), fills the rest of the regular vocabulary
with pseudo-words so that any generated id decodes to visible text, and puts the control tokens at
Qwen's ids. Its chat templates follow Qwen2.5's (a default system prompt) and Qwen3's
(``enable_thinking=False`` puts an empty think block into the prompt).
"""

from __future__ import annotations

import re
import string
from typing import Any

from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from qwen_dash.worker.qwen_tokenizer import added_ids, added_tokens

QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + QWEN25_DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def _pseudo_word(n: int) -> str:
    letters = string.ascii_lowercase
    word = ""
    n += 26  # at least two letters, so no pseudo-word collides with a single byte
    while n:
        n, r = divmod(n, 26)
        word = letters[r] + word
    return "\u0120" + word  # byte-level "space" prefix: decodes to " word"


def _vocab(added: dict[str, int]) -> dict[str, int]:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_tokens = sorted(alphabet, key=lambda ch: _byte_of(ch))
    vocab = {tok: i for i, tok in enumerate(byte_tokens)}
    for i in range(len(vocab), min(added.values())):
        vocab[_pseudo_word(i - 256)] = i
    vocab.update(added)
    return vocab


def _byte_of(ch: str) -> int:
    """GPT-2's byte-to-unicode map, inverted for one character."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    code = ord(ch)
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def build_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """The offline byte tokenizer of a family ("qwen2.5" or "qwen3"): its added tokens at Qwen's
    ids (from ``core/tokenizers/qwen_added_tokens.json``) and a chat template in its style."""
    tokens = added_tokens(family)
    special = [t["content"] for t in tokens if t["special"]]
    plain = [t["content"] for t in tokens if not t["special"]]
    thinking = "</think>" in plain
    tok = Tokenizer(BPE(vocab=_vocab(added_ids(family)), merges=[], ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN3_TEMPLATE if thinking else QWEN25_TEMPLATE,
        model_max_length=131072,
    )
    fast.add_special_tokens({"additional_special_tokens": special})
    # Qwen marks tool and think tokens as added but not special: they survive decoding.
    fast.add_tokens(plain, special_tokens=False)
    return fast


def control_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Every added token's text: strings that, typed by a user, would act as control tokens."""
    return sorted(tokenizer.get_added_vocab(), key=len, reverse=True)


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Encode user text so that nothing in it becomes a control token.

    Each occurrence of a control token's text is encoded as two pieces (its first character,
    then the rest), neither of which matches an added token: the text is kept exactly, the
    control meaning is not.
    """
    controls = control_strings(tokenizer)
    if not controls:
        return tokenizer.encode(text, add_special_tokens=False)
    pattern = re.compile("(" + "|".join(re.escape(c) for c in controls) + ")")
    ids: list[int] = []
    for i, piece in enumerate(pattern.split(text)):
        if not piece:
            continue
        if i % 2 == 1:  # a control token's text
            ids += tokenizer.encode(piece[0], add_special_tokens=False)
            ids += tokenizer.encode(piece[1:], add_special_tokens=False)
        else:
            ids += tokenizer.encode(piece, add_special_tokens=False)
    return ids


_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


def encode_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    enable_thinking: bool | None = None,
) -> list[int]:
    """Prompt ids for a conversation, by the model's own chat template.

    The template is rendered with placeholders for the message texts; the template's own pieces
    are encoded with their control tokens, the users' texts with ``encode_text``.
    """
    placeholders = [{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(messages)]
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    rendered = str(tokenizer.apply_chat_template(placeholders, **kwargs))
    ids: list[int] = []
    for i, piece in enumerate(_SENTINEL_RE.split(rendered)):
        if i % 2 == 1:
            ids += encode_text(tokenizer, messages[int(piece)]["content"])
        elif piece:
            ids += tokenizer.encode(piece, add_special_tokens=False)
    return ids
