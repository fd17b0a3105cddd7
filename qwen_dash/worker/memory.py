"""Memory measured during a generation: process RSS always, GPU memory through NVML where there
is an NVIDIA driver. Nothing here invents a number: what cannot be read is None.

NVML is reached through nvidia-ml-py (module ``pynvml``). Inside containers NVML reports host
PIDs, so this process may not be found in the device's process list: then the per-process figure
is None, not 0.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import psutil

SAMPLE_INTERVAL_S = 0.01


def _load_pynvml() -> ModuleType | None:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class Nvml:
    """One NVIDIA device, read through NVML. ``available`` is False without a driver."""

    def __init__(self, device_index: int = 0, pynvml: ModuleType | None = None) -> None:
        # nvidia-ml-py has no type information: the module is Any once loaded.
        self.nvml: Any = pynvml if pynvml is not None else _load_pynvml()
        self.handle: Any = None
        self.reason: str | None = None
        if self.nvml is None:
            self.reason = "nvidia-ml-py is not installed"
            return
        try:
            self.nvml.nvmlInit()
            self.handle = self.nvml.nvmlDeviceGetHandleByIndex(device_index)
        except self.nvml.NVMLError as exc:
            self.reason = f"NVML unavailable: {exc}"
            self.handle = None

    @property
    def available(self) -> bool:
        return self.handle is not None

    def process_bytes(self, pids: set[int]) -> int | None:
        """GPU memory used by these processes; None when none of them is listed or NVML can't
        say (usedGpuMemory is None where the driver does not report it)."""
        if not self.available:
            return None
        try:
            procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.nvml.NVMLError:
            return None
        used = [p.usedGpuMemory for p in procs if p.pid in pids]
        if not used or any(u is None for u in used):
            return None
        return int(sum(used))

    def device_used_bytes(self) -> int | None:
        if not self.available:
            return None
        try:
            return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        except self.nvml.NVMLError:
            return None

    def device_info(self) -> dict[str, str | None]:
        if not self.available:
            return {"nvml": self.reason}
        try:
            driver = self.nvml.nvmlSystemGetDriverVersion()
            name = self.nvml.nvmlDeviceGetName(self.handle)
        except self.nvml.NVMLError as exc:
            return {"nvml": str(exc)}
        as_text = [v.decode() if isinstance(v, bytes) else str(v) for v in (driver, name)]
        return {"driver": as_text[0], "nvml_device": as_text[1]}


@dataclass
class Peaks:
    rss_bytes: int | None = None
    nvml_process_bytes: int | None = None
    nvml_device_used_bytes: int | None = None


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


class MemorySampler:
    """Samples RSS (and NVML, when given) on a thread while a generation runs."""

    def __init__(self, nvml: Nvml | None, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.nvml = nvml
        self.interval_s = interval_s
        self.proc = psutil.Process()
        self.pids = {os.getpid()}
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        p = self.peaks
        p.rss_bytes = _max(p.rss_bytes, self.proc.memory_info().rss)
        if self.nvml is not None:
            p.nvml_process_bytes = _max(p.nvml_process_bytes, self.nvml.process_bytes(self.pids))
            p.nvml_device_used_bytes = _max(p.nvml_device_used_bytes, self.nvml.device_used_bytes())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.peaks = Peaks()
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
