"""One generation inside a worker: template, tokenise, ``generate`` with a per-token clock, and
every metric of the registry (``qwen_dash.core.metrics``) measured on the way. Runs in the worker
process (it imports torch).
"""

from __future__ import annotations

import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch
import transformers
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from qwen_dash.core.metrics import GenerationResult, split_thinking, timing_metrics
from qwen_dash.core.request import RequestError, Settings, check_context, check_prompt_tokens
from qwen_dash.core.specs import ModelSpec
from qwen_dash.worker.memory import MemorySampler, Nvml
from qwen_dash.worker.sources import LoadedModel
from qwen_dash.worker.tokenizer import encode_chat, encode_text

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TokenIds:
    """The ids of a model's stop and think tokens, looked up in its own tokenizer by the texts
    its spec names (model facts are data: ``core/models.toml``)."""

    stop: tuple[int, ...]
    pad: int
    think_start: int | None = None
    think_end: int | None = None

    @classmethod
    def of(cls, spec: ModelSpec, tokenizer: Any) -> TokenIds:
        def ids(texts: tuple[str, ...]) -> tuple[int, ...]:
            found = tuple(tokenizer.convert_tokens_to_ids(t) for t in texts)
            unknown = [t for t, i in zip(texts, found, strict=True) if i == tokenizer.unk_token_id]
            if unknown or any(i is None for i in found):
                raise ValueError(f"{spec.label}: the tokenizer has no token {unknown or texts}")
            return found

        stop = ids(spec.stop_tokens)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[-1]
        if spec.think_tokens is None:
            return cls(stop, pad)
        start, end = ids(spec.think_tokens)
        return cls(stop, pad, start, end)


def prompt_ids(
    tokenizer: Any, spec: ModelSpec, messages: list[dict[str, str]], settings: Settings
) -> list[int]:
    """A conversation's prompt ids, by the model's own chat template (thinking switch included
    for models that can think), user text kept out of the control tokens. ``n_in`` is their
    count."""
    thinking = settings.thinking if spec.can_think else None
    return encode_chat(tokenizer, messages, thinking)


def job_prompt_ids(tokenizer: Any, spec: ModelSpec, job: Job) -> list[int]:
    """A job's prompt ids: its conversation by the chat template, or (``template`` false) its one
    message's text as it is; checked against the exact length the job asks for, if any."""
    if job.template:
        ids = prompt_ids(tokenizer, spec, job.messages, job.settings)
    else:
        ids = encode_text(tokenizer, job.messages[-1]["content"])
    check_prompt_tokens(len(ids), job.prompt_tokens, spec)
    return ids


@dataclass
class Job:
    """One generation asked of a worker."""

    id: str
    messages: list[dict[str, str]]
    settings: Settings
    mode: str = "concurrent"
    threads: int | None = None
    received_ns: int | None = None  # perf_counter_ns when the pool received the request
    template: bool = True  # False: the last message's text is the prompt, no chat template
    prompt_tokens: int | None = None  # the exact prompt length asked for, if any

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            id=data["id"],
            messages=data["messages"],
            settings=Settings.from_dict(data["settings"]),
            mode=data.get("mode", "concurrent"),
            threads=data.get("threads"),
            received_ns=data.get("received_ns"),
            template=data.get("template", True),
            prompt_tokens=data.get("prompt_tokens"),
        )


class IncrementalDecoder:
    """Text deltas from a growing list of ids, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        now = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return now[len(before) :]


@dataclass
class TokenClock(BaseStreamer):
    """Receives the prompt, then one ``put`` per new token: stamps it and streams its text."""

    tokenizer: Any
    job_id: str
    emit: Emit
    token_ids: TokenIds
    call_ns: int = 0
    ids: list[int] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    _prompt_seen: bool = False
    _part: str = "answer"

    def __post_init__(self) -> None:
        self._decoders = {
            "answer": IncrementalDecoder(self.tokenizer),
            "reasoning": IncrementalDecoder(self.tokenizer),
        }

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        token_id = int(value.reshape(-1)[0])  # .item() syncs CUDA: the stamp is real
        now = time.perf_counter_ns()
        self.ids.append(token_id)
        self.stamps.append(now)
        text = self._route(token_id)
        self.emit(
            {
                "event": "delta",
                "id": self.job_id,
                "part": self._part,
                "text": text,
                "n": len(self.ids),
                "t_ms": (now - self.call_ns) / 1e6,
            }
        )

    def _route(self, token_id: int) -> str:
        think = self.token_ids
        if think.think_start is not None and len(self.ids) == 1 and token_id == think.think_start:
            self._part = "reasoning"
            return ""
        if think.think_end is not None and token_id == think.think_end:
            self._part = "answer"
            return ""
        return self._decoders[self._part].push(token_id)

    def end(self) -> None:
        pass


class Cancelled(StoppingCriteria):
    """The stop flag, checked between tokens."""

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> Any:
        return torch.full((input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool)


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def weights_bytes(model: torch.nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def parameter_counts(model: Any) -> tuple[int, int]:
    """All parameters, and those outside the (tied) token embedding."""
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    return total, total - embed


class Generator:
    """A loaded model that answers jobs, one at a time."""

    def __init__(self, spec: ModelSpec, loaded: LoadedModel, device: str) -> None:
        self.spec = spec
        self.loaded = loaded
        self.model: Any = loaded.model  # transformers' types do not cover generate()
        self.tokenizer = loaded.tokenizer
        self.device = device
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        self.nvml = Nvml() if device.startswith("cuda") else None
        self.weights_bytes = weights_bytes(self.model)
        self.token_ids = TokenIds.of(spec, self.tokenizer)
        self.environment = self._environment()

    def _environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "device": self.device,
            "device_name": _device_name(self.device),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cuda": torch.version.cuda if self.device.startswith("cuda") else None,
            "dtype": self.dtype,
            "attn_implementation": self.model.config._attn_implementation,
            "source": self.loaded.source,
            "revision": self.loaded.revision,
            "path": self.loaded.path,
            "load_ms": round(self.loaded.load_ms, 1),
        }
        if self.nvml is not None:
            env.update(self.nvml.device_info())
        return env

    def info(self) -> dict[str, Any]:
        """What the Models page shows about this loaded model."""
        n_params, n_non_embed = parameter_counts(self.model)
        cfg = self.model.config
        return {
            **self.environment,
            "model_key": self.spec.key,
            "hf_id": self.spec.hf_id,
            "weights_bytes": self.weights_bytes,
            "n_params": n_params,
            "n_params_non_embedding": n_non_embed,
            "storage_bytes": self.loaded.storage_bytes,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "hidden_size": cfg.hidden_size,
        }

    def warm_up(self) -> float:
        """One short untimed generate, as optimum-benchmark does, so the first user's figures are
        not a cold start. Returns its duration in ms."""
        start = time.perf_counter()
        ids = torch.tensor([encode_chat(self.tokenizer, [{"role": "user", "content": "Hi"}])])
        with torch.inference_mode():
            self.model.generate(
                ids.to(self.device),
                attention_mask=torch.ones_like(ids).to(self.device),
                max_new_tokens=2,
                do_sample=False,
                pad_token_id=self.token_ids.pad,
            )
        return (time.perf_counter() - start) * 1000

    def generation_kwargs(self, settings: Settings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "eos_token_id": list(self.token_ids.stop),
            "pad_token_id": self.token_ids.pad,
            "repetition_penalty": settings.repetition_penalty,
        }
        if settings.min_new_tokens:
            kwargs["min_new_tokens"] = settings.min_new_tokens
        if settings.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None, min_p=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=settings.top_k or None,
                min_p=settings.min_p or None,
            )
        return kwargs

    def _base_result(self, job: Job) -> GenerationResult:
        return GenerationResult(
            model_key=self.spec.key,
            hf_id=self.spec.hf_id,
            source=self.loaded.source,
            mode=job.mode,
            revision=self.loaded.revision,
            device=self.environment["device_name"],
            dtype=self.dtype,
            started_at=datetime.now(UTC).isoformat(),
            weights_bytes=self.weights_bytes,
            settings=job.settings.to_dict(),
        )

    def run(self, job: Job, emit: Emit, cancel: threading.Event) -> GenerationResult:
        """Answer one job. Failures become an error result; they never escape."""
        start_ns = time.perf_counter_ns()
        result = self._base_result(job)
        if job.received_ns is not None:
            result.queue_ms = (start_ns - job.received_ns) / 1e6
        threads = job.threads or torch.get_num_threads()
        result.environment = {**self.environment, "threads": threads, "seed": job.settings.seed}
        try:
            self._generate(job, emit, cancel, result, threads)
        except RequestError as exc:
            result.status, result.error, result.finish_reason = "error", str(exc), "error"
        except torch.OutOfMemoryError as exc:
            result.status, result.finish_reason = "error", "error"
            result.error = f"{self.spec.label} ran out of memory: {exc}".strip()
        except Exception as exc:
            result.status, result.finish_reason = "error", "error"
            result.error = f"{self.spec.label} failed: {type(exc).__name__}: {exc}"
        return result

    def _generate(
        self,
        job: Job,
        emit: Emit,
        cancel: threading.Event,
        result: GenerationResult,
        threads: int,
    ) -> None:
        settings = job.settings
        t0 = time.perf_counter_ns()
        prompt = job_prompt_ids(self.tokenizer, self.spec, job)
        result.tokenize_ms = (time.perf_counter_ns() - t0) / 1e6
        check_context(len(prompt), settings.max_new_tokens, self.spec)
        torch.set_num_threads(threads)
        input_ids = torch.tensor([prompt], device=self.device)
        clock = TokenClock(self.tokenizer, job.id, emit, self.token_ids)
        kwargs = self.generation_kwargs(settings)
        cuda = self.device.startswith("cuda")
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        sampler = MemorySampler(self.nvml)
        with sampler, torch.inference_mode():
            if cuda:
                torch.cuda.synchronize()
            clock.call_ns = time.perf_counter_ns()
            self.model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                streamer=clock,
                stopping_criteria=StoppingCriteriaList([Cancelled(cancel)]),
                **kwargs,
            )
            if cuda:
                torch.cuda.synchronize()
        self._finish(result, clock, prompt, settings, cancel, sampler)

    def _finish(
        self,
        result: GenerationResult,
        clock: TokenClock,
        prompt: list[int],
        settings: Settings,
        cancel: threading.Event,
        sampler: MemorySampler,
    ) -> None:
        ids = clock.ids
        think_end = self.token_ids.think_end
        n_think = split_thinking(ids, think_end) if think_end is not None else None
        result.__dict__.update(timing_metrics(clock.call_ns, clock.stamps, len(prompt), n_think))
        result.token_times_ms = [round((s - clock.call_ns) / 1e6, 3) for s in clock.stamps]
        result.output_ids = list(ids)

        def decode(part: list[int]) -> str:
            return str(self.tokenizer.decode(part, skip_special_tokens=True))

        if n_think is None:
            result.text = decode(ids).strip("\n")
        else:
            thought = decode(ids[:n_think])
            result.reasoning = thought.replace("<think>", "").replace("</think>", "").strip("\n")
            result.text = decode(ids[n_think:]).strip("\n")
        if cancel.is_set():
            result.status, result.finish_reason = "cancelled", "cancelled"
        elif ids and ids[-1] in self.token_ids.stop:
            result.finish_reason = "stop"
        else:
            result.finish_reason = "length"
        peaks = sampler.peaks
        result.rss_peak_bytes = peaks.rss_bytes
        result.nvml_process_bytes = peaks.nvml_process_bytes
        result.nvml_device_used_bytes = peaks.nvml_device_used_bytes
        if self.device.startswith("cuda"):
            result.cuda_peak_alloc_bytes = torch.cuda.max_memory_allocated()
            result.cuda_peak_reserved_bytes = torch.cuda.max_memory_reserved()
