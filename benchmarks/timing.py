"""Wall-clock timing shared by the benchmark scripts: warm-up, device synchronisation, best-of-n."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Best of `repeats` wall-clock seconds of fn() after `warmup` untimed calls, synchronising the device."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def round_robin(
    work: dict[str, Callable[[], object]], device: torch.device, rounds: int, warmup: int = 2
) -> dict[str, float]:
    """Best seconds of each fn over `rounds` rounds after `warmup` rounds, every round calling each fn once in turn,
    so slow phases of a shared machine hit all of them alike."""
    best = dict.fromkeys(work, float("inf"))
    for round_ in range(warmup + rounds):
        for name, fn in work.items():
            t = best_time(fn, device, repeats=1, warmup=0)
            if round_ >= warmup:
                best[name] = min(best[name], t)
    return best


def median_time(fn: Callable[[], object], device: torch.device, repeats: int = 10, warmup: int = 3) -> float:
    """Median seconds of fn() over `repeats` calls after `warmup` untimed ones. On CUDA each call is bracketed by
    CUDA events and the calls are queued back to back (one synchronisation at the end); elsewhere, wall clock."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    events = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    synchronize(device)
    return statistics.median(start.elapsed_time(end) / 1e3 for start, end in events)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    import os
    import platform

    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores (torch {torch.__version__})"
