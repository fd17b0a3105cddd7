"""GPU memory through NVML. No machine here has an NVIDIA driver, so the attribution logic is
checked against a fake ``pynvml`` module: the one hardware boundary the project fakes. The real
module is also called, to check that without a driver every GPU figure is None."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from types import SimpleNamespace

from qwen_dash.worker.memory import MemorySampler, Nvml


class FakeNVMLError(Exception):
    pass


@dataclass
class Proc:
    pid: int
    usedGpuMemory: int | None  # NVML's own field name


def fake_pynvml(procs: list[Proc], used: int = 7_000, fail_init: bool = False) -> SimpleNamespace:
    def init() -> None:
        if fail_init:
            raise FakeNVMLError("Driver Not Loaded")

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        nvmlInit=init,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetComputeRunningProcesses=lambda h: procs,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=used, total=80_000),
        nvmlSystemGetDriverVersion=lambda: b"550.54",
        nvmlDeviceGetName=lambda h: "NVIDIA H200",
    )


def test_process_memory_is_attributed_by_pid() -> None:
    nvml = Nvml(pynvml=fake_pynvml([Proc(10, 1_000), Proc(11, 2_500), Proc(99, 4_000)]))
    assert nvml.available
    assert nvml.process_bytes({11}) == 2_500
    assert nvml.process_bytes({10, 11}) == 3_500
    assert nvml.device_used_bytes() == 7_000
    assert nvml.device_info() == {"driver": "550.54", "nvml_device": "NVIDIA H200"}


def test_process_not_listed_is_none_not_zero() -> None:
    # Inside a container NVML lists host PIDs: our own PID is not there.
    nvml = Nvml(pynvml=fake_pynvml([Proc(12345, 1_000)]))
    assert nvml.process_bytes({os.getpid()}) is None


def test_memory_the_driver_does_not_report_is_none() -> None:
    nvml = Nvml(pynvml=fake_pynvml([Proc(10, None)]))
    assert nvml.process_bytes({10}) is None


def test_without_a_driver_every_figure_is_none() -> None:
    nvml = Nvml(pynvml=fake_pynvml([Proc(10, 1)], fail_init=True))
    assert not nvml.available
    assert nvml.process_bytes({10}) is None and nvml.device_used_bytes() is None
    assert "Driver Not Loaded" in (nvml.reason or "")


def test_sampler_keeps_the_peak_seen_during_generation() -> None:
    procs = [Proc(os.getpid(), 100)]
    fake = fake_pynvml(procs)
    sampler = MemorySampler(Nvml(pynvml=fake), interval_s=0.001)
    with sampler:
        procs[0] = Proc(os.getpid(), 900)  # peak mid-generation
        time.sleep(0.05)
        procs[0] = Proc(os.getpid(), 300)
    assert sampler.peaks.nvml_process_bytes == 900
    assert sampler.peaks.nvml_device_used_bytes == 7_000
    assert sampler.peaks.rss_bytes and sampler.peaks.rss_bytes > 0


def test_real_nvml_reports_what_it_can_and_nothing_it_cannot() -> None:
    import pynvml  # nvidia-ml-py, the maintained binding

    nvml = Nvml(pynvml=pynvml)
    if nvml.available:  # a machine with an NVIDIA driver
        assert nvml.device_used_bytes() > 0
        assert "driver" in nvml.device_info()
        return
    assert nvml.process_bytes({os.getpid()}) is None
    assert nvml.device_used_bytes() is None
    assert nvml.reason
