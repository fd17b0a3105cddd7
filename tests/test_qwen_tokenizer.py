# ruff: noqa: RUF001  (multilingual test text: its look-alike letters are the point)
"""Qwen's real tokenizer, built offline from qwen.tiktoken (qwen_dash.worker.qwen_tokenizer).

Known ids come from Qwen's published tokenizer; agreement with tiktoken is checked on a generated
corpus. The Qwen tokenizer has an NFC normaliser, so text round-trips as its NFC form.
"""

from __future__ import annotations

import json
import random
import time
import unicodedata

import pytest
import tiktoken

from qwen_dash.worker.qwen_tokenizer import (
    FAMILIES,
    QWEN_PATTERN,
    load_qwen_tokenizer,
    load_ranks,
    qwen_data,
    qwen_tokenizer_dir,
)
from qwen_dash.worker.tokenizer import encode_chat, encode_text

FIRST_ADDED_ID = 151643
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@pytest.fixture(scope="session")
def qwen_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("qwen-tokenizers")


@pytest.fixture(scope="session")
def qwen_toks(qwen_cache):
    """Each family built once into the session's cache, then loaded from it."""
    toks, timings = {}, {}
    for family in FAMILIES:
        t0 = time.perf_counter()
        qwen_tokenizer_dir(family, qwen_cache)
        t1 = time.perf_counter()
        toks[family] = load_qwen_tokenizer(family, qwen_cache)
        timings[family] = (t1 - t0, time.perf_counter() - t1)
    print("\nqwen tokenizer build / cached load (s):", timings)
    return toks


@pytest.fixture(scope="session")
def tiktoken_qwen():
    specials = {e["content"]: e["id"] for e in qwen_data()["families"]["qwen3"]["added_tokens"]}
    return tiktoken.Encoding(
        name="qwen", pat_str=QWEN_PATTERN, mergeable_ranks=load_ranks(), special_tokens=specials
    )


@pytest.fixture(params=FAMILIES)
def tok(request, qwen_toks):
    return qwen_toks[request.param]


def test_known_ids(tok):
    assert tok.encode("Hello, world!", add_special_tokens=False) == [9707, 11, 1879, 0]
    assert tok.encode(" the", add_special_tokens=False) == [279]
    assert tok.encode("\n", add_special_tokens=False) == [198]
    # The start of Qwen2.5's default system turn, as the real tokenizer encodes it.
    assert tok.encode("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.") == [
        *[151644, 8948, 198, 2610, 525, 1207, 16948, 11, 3465, 553, 54364, 14817, 13]
    ]


@pytest.mark.parametrize("family, size", [("qwen2.5", 151665), ("qwen3", 151669)])
def test_added_tokens_at_real_ids(qwen_toks, family, size):
    tok = qwen_toks[family]
    assert len(tok) == size
    assert size < qwen_data()["model_vocab_size"] == 151936  # the embedding has room to spare
    decoder = tok.added_tokens_decoder
    assert sorted(decoder) == list(range(FIRST_ADDED_ID, size))
    for entry in qwen_data()["families"][family]["added_tokens"]:
        assert decoder[entry["id"]].content == entry["content"]
        assert decoder[entry["id"]].special is (entry["id"] <= 151656)
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 151645
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == 151643
    assert tok.bos_token is None


def test_qwen3_think_tokens(qwen_toks):
    tok = qwen_toks["qwen3"]
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [151667, 151668]
    ids = tok.encode("<think>\nhm\n</think>\n\nok<|im_end|>")
    # Not special: the think block survives skip_special_tokens; <|im_end|> does not.
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nhm\n</think>\n\nok"


ROUND_TRIP = [
    "Hello, world!",
    "日本語のテキストと中文文本，还有한국어.",
    "Ça va? Àéîõü ß Ærøskøbing, naïve café, Ελληνικά, русский текст",
    "e\u0301 vs \u00e9; a\u0308\u0304; \u1e9b\u0323; Hangul jamo \u1100\u1161\u11a8",
    "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🧑🏿‍💻 ❤️‍🔥 🇯🇵",
    "RTL: \u202bשלום\u202c \u200fمرحبا\u200e mixed עברית and English",
    "nul\x00byte \x01\x7f and \ufeffBOM \u200b zero-width",
    " " * 37 + "\t\t\t" + "\n" * 9 + "\r\n\r\n  \u3000\u00a0end   ",
    'def f(x):\n    return {"a": [1, 2, 3]}  # comment\n\n\tif x != 0x1F: pass\n',
    'fn main() { let v: Vec<u8> = vec![0; 1024]; println!("{:?}", &v[..]); }',
    "12345678901234567890 3.14159 -0.5e-10 1,000,000",
    "<|im_end|> <think> typed as text",
    "",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_exact_for_nfc_text(tok, text):
    # Qwen's tokenizer normalises to NFC (as the real one does): "e" + U+0301 comes back as "é".
    # Control-token text is taken apart by encode_text, so it round-trips as text too.
    ids = encode_text(tok, text)
    assert tok.decode(ids) == unicodedata.normalize("NFC", text)
    if "<" not in text:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == (
            unicodedata.normalize("NFC", text)
        )


def test_nfc_changes_combining_marks(tok):
    assert tok.encode("e\u0301", add_special_tokens=False) == tok.encode("\u00e9")
    assert tok.decode(tok.encode("e\u0301")) == "\u00e9"


@pytest.mark.parametrize("control", ["<|im_end|>", "<|im_start|>", "<|endoftext|>", "<think>"])
def test_control_text_typed_by_a_user_stays_text(tok, control):
    if control not in tok.get_added_vocab():
        pytest.skip(f"{control} is not a token of this family")
    ids = encode_text(tok, control)
    assert all(i < FIRST_ADDED_ID for i in ids)
    assert tok.decode(ids) == control
    assert tok.encode(control) == [tok.convert_tokens_to_ids(control)]  # unlike plain encode


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3+3, in words?"},
]
TURNS = (
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n4.<|im_end|>\n"
    "<|im_start|>user\nAnd 3+3, in words?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def _render(tok, messages, **kwargs):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)


def test_qwen25_template(qwen_toks):
    tok = qwen_toks["qwen2.5"]
    system = "<|im_start|>system\nYou are terse.<|im_end|>\n"
    assert _render(tok, CONVERSATION) == system + TURNS
    default = f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
    assert _render(tok, CONVERSATION[1:]) == default + TURNS


def test_qwen3_template(qwen_toks):
    tok = qwen_toks["qwen3"]
    system = "<|im_start|>system\nYou are terse.<|im_end|>\n"
    assert _render(tok, CONVERSATION, enable_thinking=True) == system + TURNS
    assert _render(tok, CONVERSATION) == system + TURNS  # thinking is the default
    no_think = system + TURNS + "<think>\n\n</think>\n\n"
    assert _render(tok, CONVERSATION, enable_thinking=False) == no_think
    assert _render(tok, CONVERSATION[1:]) == TURNS  # no default system prompt in Qwen3
    # An earlier assistant turn's reasoning is dropped from the history.
    thought = [*CONVERSATION[:2], {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4."}]
    assert _render(tok, [*thought, CONVERSATION[3]]) == system + TURNS


@pytest.mark.parametrize("family, thinking", [("qwen2.5", None), ("qwen3", True), ("qwen3", False)])
@pytest.mark.parametrize("system", [True, False])
def test_encode_chat_matches_the_template(qwen_toks, family, thinking, system):
    tok = qwen_toks[family]
    messages = CONVERSATION if system else CONVERSATION[1:]
    kwargs = {} if thinking is None else {"enable_thinking": thinking}
    templated = tok.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, **kwargs
    )["input_ids"]
    ours = encode_chat(tok, messages, thinking)
    assert len(ours) == len(templated)
    assert ours == templated


def _corpus(n: int = 600) -> list[str]:
    """Varied strings: words, numbers, punctuation, code, whitespace, scripts, emoji."""
    rng = random.Random(1234)
    words = [
        *["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenization", "Qwen"],
        *["model's", "we'll", "they're", "I'd", "HELLO", "World", "naïve", "café", "résumé"],
        *["straße", "Übung", "smörgåsbord"],
    ]
    scripts = [
        "你好世界，今天天气很好。",
        "こんにちは、世界！カタカナとひらがな",
        "안녕하세요 세계",
        "Привет, мир! Ёлка",
        "مرحبا بالعالم",
        "שלום עולם",
        "नमस्ते दुनिया",
        "สวัสดีชาวโลก",
        "Γειά σου Κόσμε",
        "Xin chào thế giới",
    ]
    code = [
        "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
        '<div class="x">&nbsp;</div>',
        "x = [i**2 for i in range(10) if i % 2 == 0]",
        '#!/bin/bash\nset -euo pipefail\necho "$HOME" | tr a-z A-Z',
        '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
        "fn add(a: i32, b: i32) -> i32 { a + b }",
        "    \tindented\n\n\n",
    ]
    emoji = ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🤖", "✨", "🧪"]
    punct = [*".,;:!?-—…'\"()[]{}<>/\\|@#$%^&*_+=~`", "...", "?!", "--", "''"]
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "   \n", "\u00a0", "\u3000"]

    def piece() -> str:
        kind = rng.randrange(7)
        if kind == 0:
            return rng.choice(words)
        if kind == 1:
            return str(rng.choice([rng.randrange(10**6), rng.random() * 1e4, -rng.randrange(999)]))
        if kind == 2:
            return rng.choice(punct)
        if kind == 3:
            return rng.choice(code)
        if kind == 4:
            return rng.choice(scripts)
        if kind == 5:
            return rng.choice(emoji)
        return "e\u0301" if rng.random() < 0.3 else rng.choice(words).upper()

    out = []
    for _ in range(n):
        parts = [piece() for _ in range(rng.randint(1, 12))]
        out.append("".join(p + rng.choice(["", " ", *spaces]) for p in parts))
    return out


def test_agrees_with_tiktoken_on_a_corpus(tok, tiktoken_qwen):
    corpus = _corpus()
    assert len(set(corpus)) > 500
    assert sum(unicodedata.normalize("NFC", s) != s for s in corpus) > 50  # NFC is exercised
    diffs = [
        s
        for s in corpus
        if tok.encode(s, add_special_tokens=False)
        != tiktoken_qwen.encode_ordinary(unicodedata.normalize("NFC", s))
    ]
    assert diffs == []


def test_cached_build_is_reused(qwen_cache, qwen_toks):
    for family in FAMILIES:
        folder = qwen_tokenizer_dir(family, qwen_cache)
        t0 = time.perf_counter()
        assert qwen_tokenizer_dir(family, qwen_cache) == folder  # no rebuild
        assert time.perf_counter() - t0 < 0.5
        assert (folder / "tokenizer.json").is_file()
    assert not [p for p in qwen_cache.iterdir() if p.name.startswith(".")]  # no tmp left


def test_one_merge_per_token_as_in_qwens_tokenizer_json(qwen_cache, qwen_toks):
    model = json.loads((qwen_tokenizer_dir("qwen3", qwen_cache) / "tokenizer.json").read_text())
    assert len(model["model"]["vocab"]) == 151643
    assert len(model["model"]["merges"]) == 151643 - 256
    assert model["normalizer"] == {"type": "NFC"}


def test_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer family"):
        qwen_tokenizer_dir("qwen4", tmp_path)
