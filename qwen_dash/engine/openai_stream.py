"""What an OpenAI-compatible server streams, read without any network: request bodies, SSE
lines, reasoning versus answer text, usage, and error messages a person can act on.

Used by ``remote_handle`` (which owns the HTTP). Servers differ in small ways, all handled here:

- the reasoning arrives as ``reasoning_content`` deltas (transformers serve, SGLang, older vLLM),
  ``reasoning`` deltas (vLLM since PR #27752), or as ``<think>...</think>`` inside ``content``
  (any server run without a reasoning parser);
- ``usage`` comes in the last chunk when asked with ``stream_options`` (vLLM, SGLang), or always
  (transformers serve); ``completion_tokens_details.reasoning_tokens`` where offered;
- an error inside a stream is a chunk ``{"error": "..."}`` or ``{"error": {"message": ...}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from qwen_dash.core.request import Settings
from qwen_dash.core.specs import ModelSpec

# Sampling fields outside OpenAI's API that vLLM and SGLang accept; other servers may refuse them.
EXTRA_SAMPLING = ("top_k", "min_p", "repetition_penalty")
# Fields a server may refuse that the request can do without (each refusal is recorded).
OPTIONAL_FIELDS = (*EXTRA_SAMPLING, "stream_options", "seed", "chat_template_kwargs")
ERROR_TEXT_CHARS = 300


def request_body(
    spec: ModelSpec,
    messages: list[dict[str, str]],
    settings: Settings,
    leave_out: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The chat-completions body for one generation; ``leave_out`` names optional fields a
    server refused before."""
    body: dict[str, Any] = {
        "model": spec.served_model or spec.hf_id,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": settings.max_new_tokens,
    }
    if settings.greedy:
        body["temperature"] = 0.0
    else:
        body.update(
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k if settings.top_k > 0 else -1,
            min_p=settings.min_p,
        )
    body["repetition_penalty"] = settings.repetition_penalty
    if settings.seed is not None:
        body["seed"] = settings.seed
    if spec.can_think:
        body["chat_template_kwargs"] = {"enable_thinking": settings.thinking}
    return {k: v for k, v in body.items() if k not in leave_out}


def refused_fields(detail: str, body: dict[str, Any]) -> list[str]:
    """The optional fields of ``body`` that a 400/422 error message names, in body order."""
    return [f for f in OPTIONAL_FIELDS if f in body and re.search(rf"\b{f}\b", detail)]


def sse_data(line: str) -> dict[str, Any] | None:
    """The JSON of one ``data:`` line; None for comments, blank lines, ``[DONE]``, junk."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def error_detail(data: Any, fallback: str = "") -> str:
    """The message inside an error body or chunk, in the shapes servers use."""
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                return error_detail(value, fallback)
            if isinstance(value, list):  # FastAPI validation errors
                return "; ".join(
                    str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value
                )
            if value:
                return str(value)
    text = fallback.strip()
    return text[:ERROR_TEXT_CHARS] + ("..." if len(text) > ERROR_TEXT_CHARS else "")


def parse_error_body(text: str) -> str:
    try:
        return error_detail(json.loads(text), text)
    except json.JSONDecodeError:
        return error_detail(None, text)


def http_error_message(spec: ModelSpec, status: int, detail: str) -> str:
    """What a person reads when the server answers ``status``."""
    where = spec.base_url
    model = spec.served_model or spec.hf_id
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        key = (
            f"check the key in ${spec.api_key_env}"
            if spec.api_key_env
            else "set api_key_env in its spec to the variable holding the key"
        )
        return f"{where} refused the request ({status}, not authorised): {key}{said}"
    if status == 404:
        return f"{where} has no model '{model}' or no chat endpoint (404){said}"
    if status == 429:
        return f"{where} is rate limiting (429): too many requests; try again shortly{said}"
    if status >= 500:
        return f"{where} failed with a server error ({status}){said}"
    return f"{where} refused the request ({status}){said}"


class ThinkSplitter:
    """Routes ``content`` text to reasoning or answer by ``<think>``/``</think>`` tags, which may
    arrive split across chunks (a partial tag is held back until the next piece decides it)."""

    def __init__(self, start: str = "<think>", end: str = "</think>") -> None:
        self.start, self.end = start, end
        self.part = "answer"
        self.held = ""
        self.seen_text = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        """(part, text) pieces of ``text``, tags removed. Only an answer that opens with
        ``<think>`` (leading whitespace aside) has a reasoning part."""
        out: list[tuple[str, str]] = []
        buf, self.held = self.held + text, ""
        while buf:
            if self.part == "reasoning":
                tag = self.end
            elif not self.seen_text:
                tag = self.start
            else:
                out.append(("answer", buf))
                break
            at = buf.find(tag)
            if at >= 0 and (tag == self.end or not buf[:at].strip()):
                if tag == self.end and buf[:at]:
                    out.append(("reasoning", buf[:at]))
                buf = buf[at + len(tag) :]
                self.part = "answer" if tag == self.end else "reasoning"
                self.seen_text = True
                continue
            keep = _partial_suffix(buf, tag)
            head, self.held = buf[: len(buf) - keep], buf[len(buf) - keep :]
            if head:
                out.append((self.part, head))
                self.seen_text = self.seen_text or bool(head.strip())
            break
        return out

    def flush(self) -> list[tuple[str, str]]:
        held, self.held = self.held, ""
        return [(self.part, held)] if held else []


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


@dataclass
class StreamState:
    """What one streamed answer has produced so far."""

    answer: str = ""
    reasoning: str = ""
    chunk_ns: list[int] = field(default_factory=list)  # arrival of each chunk carrying text
    first_answer_ns: int | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    server_model: str | None = None
    system_fingerprint: str | None = None
    tags_in_content: bool = False

    def add(self, part: str, text: str, now_ns: int) -> None:
        if part == "reasoning":
            self.reasoning += text
        else:
            self.answer += text
            if self.first_answer_ns is None and text.strip():
                self.first_answer_ns = now_ns


def chunk_pieces(data: dict[str, Any], splitter: ThinkSplitter) -> list[tuple[str, str]]:
    """(part, text) pieces one chunk carries: reasoning fields first, then its content."""
    pieces: list[tuple[str, str]] = []
    for choice in data.get("choices") or []:
        delta = choice.get("delta") or {}
        for name in ("reasoning_content", "reasoning"):
            if isinstance(delta.get(name), str) and delta[name]:
                pieces.append(("reasoning", delta[name]))
        if isinstance(delta.get("content"), str) and delta["content"]:
            pieces += splitter.feed(delta["content"])
    return pieces


def reasoning_tokens(usage: dict[str, Any] | None) -> int | None:
    details = (usage or {}).get("completion_tokens_details") or {}
    value = details.get("reasoning_tokens")
    return value if isinstance(value, int) and value > 0 else None
