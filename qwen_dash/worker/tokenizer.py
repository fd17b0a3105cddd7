"""Prompt encoding that keeps users' text out of the control tokens.

Every model here tokenizes with a real tokenizer: its own (hub, local) or Qwen's BPE built offline
from ``qwen.tiktoken`` (twins and tiny models, ``qwen_dash.worker.qwen_tokenizer``). What this
module adds is safety: text a user types is encoded so that ``<|im_end|>``, ``<think>`` and every
other added token's text stay text, and a conversation is encoded by the model's own chat template
with the users' texts encoded that way.
"""

from __future__ import annotations

import re
from typing import Any

from transformers import PreTrainedTokenizerBase


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
