"""The pool's side of a remote model: an OpenAI-compatible server (vLLM, SGLang, transformers
serve, Ollama) instead of a worker process.

It has the interface a ``Comparison`` uses of a ``WorkerHandle`` (``send`` generate/cancel with a
callback receiving ``started``, ``delta`` and ``result`` events; ``status``; ``abandon``), so
comparisons, pages and the store do not know the difference. Unlike a worker, it does not queue:
each generation streams on a thread of its own and the server batches them.

HTTP is httpx (the ``httpx2`` distribution that the pinned ``openai`` client itself is built on):
one pooled client per handle, a chunk's arrival stamped as its line is read (no SDK parsing in
between), and Stop or a timeout closes the response, which closes the connection, and servers
stop generating for a client that left.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx

from qwen_dash.core.metrics import GenerationResult, chunk_timing_metrics
from qwen_dash.core.request import Settings
from qwen_dash.core.specs import ModelSpec
from qwen_dash.engine.openai_stream import (
    StreamState,
    ThinkSplitter,
    chunk_pieces,
    error_detail,
    http_error_message,
    parse_error_body,
    reasoning_tokens,
    refused_fields,
    request_body,
    sse_data,
)
from qwen_dash.engine.protocol import WorkerStatus
from qwen_dash.engine.token_count import count_tokens

SOURCE = "remote"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0  # longest silence between two chunks; the comparison's timeout caps a job
PROBE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64

Callback = Callable[[dict[str, Any]], None]


class RemoteError(Exception):
    """A failure of one remote generation, with the message its result shows."""


@dataclass
class _Job:
    id: str
    messages: list[dict[str, str]]
    settings: Settings
    mode: str
    received_ns: int | None
    callback: Callback
    stop_reason: str | None = None  # set by cancel or a timeout
    stop_status: str = "cancelled"
    call_ns: int = 0  # when the accepted request was sent: the clock's zero
    response: httpx.Response | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self, reason: str, status: str) -> None:
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason, self.stop_status = reason, status
            response = self.response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()  # unblocks the reading thread; the server sees the client leave


def _root(base_url: str) -> str:
    return base_url.removesuffix("/v1")


class RemoteHandle:
    """A model served by an OpenAI-compatible server, seen as the pool sees a worker."""

    def __init__(self, spec: ModelSpec) -> None:
        if spec.base_url is None:
            raise ValueError(f"{spec.label}: a remote model needs base_url")
        self.spec = spec
        self.base_url: str = spec.base_url
        self.source = SOURCE
        self.status = WorkerStatus(spec.key, "stopped", info=self._base_info())
        self.ready = threading.Event()
        self.on_start: Callable[[str, int], None] = lambda job_id, start_ns: None
        self.refused: set[str] = set()  # optional fields this server refused: not sent again
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.RLock()
        self._client: httpx.Client | None = None
        self._probing = False

    # -- what the pool calls, as on a WorkerHandle -------------------------------------------

    @property
    def alive(self) -> bool:
        return self._client is not None

    @property
    def proc(self) -> None:
        return None

    def _base_info(self) -> dict[str, Any]:
        return {
            "source": SOURCE,
            "backend": "openai",
            "base_url": self.spec.base_url,
            "served_model": self.spec.served_model or self.spec.hf_id,
        }

    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                    limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
                    headers=self._headers(),
                    trust_env=False,  # no proxy between the dashboard and its own servers
                )
            return self._client

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def start(self) -> None:
        with self._lock:
            self.client()
            if self._probing or self.status.state == "ready":
                return
            self._probing = True
            self.ready.clear()
            self.status = WorkerStatus(
                self.spec.key, "starting", f"Asking {self.base_url}", info=self._base_info()
            )
        threading.Thread(target=self._probe, name=f"probe-{self.spec.key}", daemon=True).start()

    def ensure_started(self) -> None:
        if self._client is None or self.status.state in ("stopped", "failed", "dead"):
            self.start()

    def wait_ready(self, timeout: float = PROBE_TIMEOUT_S * 3) -> WorkerStatus:
        self.ensure_started()
        self.ready.wait(timeout)
        return self.status

    def kill(self, reason: str) -> None:
        """Stop every generation in flight (with ``reason`` as their error)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop(reason, "error")

    def abandon(self, job_id: str, reason: str) -> None:
        """Give up one generation (a timeout): its stream is closed, the rest go on."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.stop(reason, "error")

    def shutdown(self, timeout: float = 5.0) -> None:
        self.kill("the pool was shut down")
        deadline = time.monotonic() + timeout
        while self._jobs and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._lock:
            client, self._client = self._client, None
            self.status = WorkerStatus(self.spec.key, "stopped", info=self._base_info())
        if client is not None:
            client.close()

    def send(self, command: dict[str, Any], callback: Callback | None = None) -> None:
        op = command.get("op")
        if op == "cancel":
            with self._lock:
                job = self._jobs.get(command["id"])
            if job is not None:
                job.stop("cancelled", "cancelled")
        elif op == "generate" and callback is not None:
            self.ensure_started()
            job = _Job(
                id=command["id"],
                messages=command["messages"],
                settings=Settings.from_dict(command["settings"]),
                mode=command.get("mode", "concurrent"),
                received_ns=command.get("received_ns"),
                callback=callback,
            )
            with self._lock:
                self._jobs[job.id] = job
            threading.Thread(
                target=self._run, args=(job,), name=f"remote-{self.spec.key}", daemon=True
            ).start()

    # -- what the server says about itself ---------------------------------------------------

    def _probe(self) -> None:
        """``/v1/models`` (which models, does the server answer) and ``/version`` where offered."""
        info = self._base_info()
        try:
            models = self.client().get(f"{self.base_url}/models", timeout=PROBE_TIMEOUT_S)
            if models.status_code >= 400:
                detail = parse_error_body(models.text)
                raise RemoteError(http_error_message(self.spec, models.status_code, detail))
            listed = [m.get("id") for m in models.json().get("data", []) if isinstance(m, dict)]
            info["server_models"] = listed
            info.update(self._version())
            state, error = "ready", None
        except (httpx.HTTPError, ValueError, RemoteError) as exc:
            state, error = "failed", self._transport_message(exc)
        with self._lock:
            message = "Ready" if state == "ready" else "Unreachable: retried on the next request"
            self.status = WorkerStatus(self.spec.key, state, message, 1.0, error, info)
            self._probing = False
            self.ready.set()

    def _version(self) -> dict[str, Any]:
        try:
            got = self.client().get(f"{_root(self.base_url)}/version", timeout=PROBE_TIMEOUT_S)
            if got.status_code == 200 and isinstance(got.json(), dict):
                version = got.json().get("version")
                if version:
                    return {"server_version": str(version)}
        except (httpx.HTTPError, ValueError):
            pass
        return {}

    def _transport_message(self, exc: BaseException) -> str:
        where = self.base_url
        if isinstance(exc, RemoteError):
            return str(exc)
        if isinstance(exc, httpx.ConnectTimeout):
            return f"cannot reach {where}: no answer within {CONNECT_TIMEOUT_S:g} s"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot reach {where}: {exc} (is the server running, is the URL right?)"
        if isinstance(exc, httpx.ReadTimeout):
            return f"{where} sent nothing for {READ_TIMEOUT_S:g} s"
        if isinstance(exc, httpx.HTTPError):
            return f"the connection to {where} failed: {type(exc).__name__}: {exc}"
        return f"{where} sent something unreadable: {type(exc).__name__}: {exc}"

    # -- one generation ----------------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        start_ns = time.perf_counter_ns()
        self.on_start(job.id, start_ns)
        job.callback({"event": "started", "id": job.id, "start_ns": start_ns})
        result = self._base_result(job, start_ns)
        state = StreamState()
        call_ns = start_ns
        try:
            call_ns = self._generate(job, state, result)
        except Exception as exc:  # a failure is this answer's result, never a lost thread
            if job.stop_reason is None:
                result.status, result.finish_reason = "error", "error"
                result.error = f"{self.spec.label}: {self._transport_message(exc)}"
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
        self._finish(job, state, result, call_ns)
        job.callback(
            {
                "event": "result",
                "id": job.id,
                "start_ns": start_ns,
                "end_ns": time.perf_counter_ns(),
                "result": result.to_dict(),
            }
        )

    def _base_result(self, job: _Job, start_ns: int) -> GenerationResult:
        result = GenerationResult(
            model_key=self.spec.key,
            hf_id=self.spec.hf_id,
            source=SOURCE,
            mode=job.mode,
            device=f"remote: {self.base_url}",
            started_at=datetime.now(UTC).isoformat(),
            settings=job.settings.to_dict(),
        )
        if job.received_ns is not None:
            result.queue_ms = (start_ns - job.received_ns) / 1e6
        result.environment = {
            "backend": "openai",
            "source": SOURCE,
            "base_url": self.base_url,  # never the key: it stays in the environment variable
            "served_model": self.spec.served_model or self.spec.hf_id,
            "seed": job.settings.seed,
        }
        info = self.status.info
        for name in ("server_version", "server_models"):
            if name in info:
                result.environment[name] = info[name]
        return result

    def _generate(self, job: _Job, state: StreamState, result: GenerationResult) -> int:
        """Send the request (again without the optional fields the server refuses) and read its
        stream into ``state``. Returns the time the accepted request was sent."""
        refused_now: list[str] = []
        while True:
            body = request_body(self.spec, job.messages, job.settings, frozenset(self.refused))
            call_ns = job.call_ns = time.perf_counter_ns()
            with self.client().stream("POST", f"{self.base_url}/chat/completions", json=body) as r:
                with job.lock:
                    job.response = r
                if job.stop_reason is not None:
                    return call_ns
                if r.status_code < 400:
                    result.environment["sent"] = {k: v for k, v in body.items() if k != "messages"}
                    if refused_now or self.refused:
                        result.environment["refused_by_server"] = sorted(self.refused)
                    self._read(job, r, state)
                    return call_ns
                detail = parse_error_body(r.read().decode("utf-8", "replace"))
                again = refused_fields(detail, body) if r.status_code in (400, 422) else []
                if not again:
                    raise RemoteError(self._refusal(r.status_code, detail))
                self.refused.update(again)
                refused_now += again

    def _refusal(self, status: int, detail: str) -> str:
        """The error message, with a hint when the server does not list the model asked for."""
        message = http_error_message(self.spec, status, detail)
        if status in (401, 403, 429):
            return message
        wanted = self.spec.served_model or self.spec.hf_id
        listed = self._listed_models()
        if listed is not None and wanted not in listed:
            message += (
                f"; the server does not list model '{wanted}' (it lists: "
                f"{', '.join(listed) or 'none'}): check served_model in the spec"
            )
        return message

    def _listed_models(self) -> list[str] | None:
        """The models ``/v1/models`` lists; None if it cannot say. Asked twice: a server that
        just failed may have reset the pooled connection this request reuses."""
        data: Any = None
        for _ in range(2):
            try:
                got = self.client().get(f"{self.base_url}/models", timeout=PROBE_TIMEOUT_S)
                data = got.json().get("data", []) if got.status_code == 200 else None
                break
            except httpx.TransportError:
                continue
            except (httpx.HTTPError, ValueError):
                return None
        if not isinstance(data, list):
            return None
        return [str(m.get("id")) for m in data if isinstance(m, dict)]

    def _read(self, job: _Job, response: httpx.Response, state: StreamState) -> None:
        splitter = ThinkSplitter(*(self.spec.think_tokens or ("<think>", "</think>")))
        for line in _lines(response):
            if job.stop_reason is not None:
                return
            data = sse_data(line)
            if data is None:
                continue
            now = time.perf_counter_ns()
            if "error" in data and not data.get("choices"):
                raise RemoteError(f"{self.base_url} failed mid-answer: {error_detail(data)}")
            self._chunk(job, data, splitter, state, now)
            if state.finish_reason is not None and state.usage is not None:
                return
        for part, text in splitter.flush():
            self._emit(job, state, part, text, time.perf_counter_ns())
        if state.finish_reason is None and job.stop_reason is None:
            raise RemoteError(f"{self.base_url} ended the stream mid-answer")

    def _chunk(
        self,
        job: _Job,
        data: dict[str, Any],
        splitter: ThinkSplitter,
        state: StreamState,
        now: int,
    ) -> None:
        state.server_model = data.get("model") or state.server_model
        state.system_fingerprint = data.get("system_fingerprint") or state.system_fingerprint
        if isinstance(data.get("usage"), dict):
            state.usage = data["usage"]
        for choice in data.get("choices") or []:
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
        pieces = chunk_pieces(data, splitter)
        if pieces:
            state.chunk_ns.append(now)
        for part, text in pieces:
            self._emit(job, state, part, text, now)

    def _emit(self, job: _Job, state: StreamState, part: str, text: str, now: int) -> None:
        state.add(part, text, now)
        job.callback(
            {
                "event": "delta",
                "id": job.id,
                "part": part,
                "text": text,
                "n": len(state.chunk_ns),
                "t_ms": (now - job.call_ns) / 1e6,
            }
        )

    # -- the result --------------------------------------------------------------------------

    def _finish(
        self, job: _Job, state: StreamState, result: GenerationResult, call_ns: int
    ) -> None:
        result.text = state.answer.strip("\n")
        result.reasoning = state.reasoning.strip("\n") or None
        env = result.environment
        if state.chunk_ns or state.usage:  # nothing streamed: every figure stays null
            n_in, n_out, n_think, counted_by = self._counts(state)
            first_answer = state.first_answer_ns
            result.__dict__.update(
                chunk_timing_metrics(call_ns, state.chunk_ns, n_in, n_out, n_think, first_answer)
            )
            result.token_times_ms = [round((t - call_ns) / 1e6, 3) for t in state.chunk_ns]
            env["token_counts"] = counted_by
            env["timing"] = "client: one stamp per streamed chunk"
            env["chunks"] = len(state.chunk_ns)
        if state.server_model:
            env["server_model"] = state.server_model
        if state.system_fingerprint:
            env["system_fingerprint"] = state.system_fingerprint
        if job.stop_reason is not None:
            result.status, result.finish_reason = job.stop_status, job.stop_status
            if job.stop_status == "error":
                result.error = f"{self.spec.label}: {job.stop_reason}"
        elif result.status == "ok":
            result.finish_reason = "length" if state.finish_reason == "length" else "stop"
        if result.status == "error" and state.chunk_ns:
            result.error = (
                f"{result.error}. The answer is cut off after {len(state.chunk_ns)} chunks: "
                "what came before is kept."
            )

    def _counts(self, state: StreamState) -> tuple[int | None, int | None, int | None, str]:
        """(n_in, n_out, n_think, how they were counted): the server's usage where it gave one,
        else Qwen's tokenizer on the text received (n_in then stays null: the prompt as the
        server's template renders it is not known here)."""
        usage = state.usage or {}
        family = self.spec.tokenizer_family
        thought = bool(state.reasoning)
        tags = 2 if thought else 0  # <think> and </think>: tokens of the reasoning part
        n_in = usage.get("prompt_tokens")
        n_out = usage.get("completion_tokens")
        n_think = reasoning_tokens(state.usage)
        how = "server usage"
        if not isinstance(n_out, int):
            n_in = None
            n_out = (
                count_tokens(family, state.reasoning) + tags + count_tokens(family, state.answer)
            )
            how = "counted (Qwen tokenizer): the server sent no usage"
        if thought and n_think is None:
            n_think = min(n_out, count_tokens(family, state.reasoning) + tags)
            if how == "server usage":
                how = "server usage; reasoning/answer split counted (Qwen tokenizer)"
        elif not thought and self.spec.can_think and state.usage is not None:
            n_think = None
        return (n_in if isinstance(n_in, int) else None), n_out, n_think, how


def _lines(response: httpx.Response) -> Iterator[str]:
    """The response's lines as they arrive."""
    yield from response.iter_lines()
