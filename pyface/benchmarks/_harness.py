"""Timing and memory measurement shared by the benchmarks."""
from __future__ import annotations

import gc
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pyface.eval.runner import device_name  # noqa: F401  (one definition; benchmarks sit above eval)
from pyface.io import write_text_atomic


def _pin_malloc_mmap_threshold() -> None:
    """glibc raises its mmap threshold after large frees, so freed buffers stay
    resident and RSS stops tracking live memory. A fixed threshold keeps every
    large allocation on mmap/munmap, which makes peak RSS a fair CPU memory metric."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 17)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 17)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # non-Linux: psutil if present
        import psutil

        return psutil.Process().memory_info().rss


class _PeakRSS:
    """Samples the process RSS in a thread; peak above the starting RSS."""

    def __init__(self, interval: float = 0.0005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        gc.collect()
        self.base = _rss_bytes()
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self.peak = max(self.peak, _rss_bytes())
        self._stop.set()
        self._t.join()

    @property
    def extra(self) -> int:
        return self.peak - self.base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device | str, *, warmup: int = 1, iters: int = 5) -> dict:
    """Median wall time (ms) of fn() and the peak memory it adds beyond what exists
    before the call (CUDA: max allocated; CPU: peak RSS). An out-of-memory error is
    reported as {"oom": True}."""
    device = torch.device(device)
    if device.type == "cpu":
        _pin_malloc_mmap_threshold()  # idempotent; only benchmark processes change the allocator
    try:
        for _ in range(warmup):
            fn()
        _sync(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        times = []
        with _PeakRSS() as rss:
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
        peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else rss.extra
        return {"ms": statistics.median(times), "ms_min": min(times), "peak_extra_mb": peak / 2**20, "oom": False}
    except torch.OutOfMemoryError:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"ms": float("nan"), "ms_min": float("nan"), "peak_extra_mb": float("nan"), "oom": True}


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    """(q1, median, q3) of a sample; a single value gives that value three times."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, med, q3


def _peak_one_call(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory (MB) one call of fn() adds beyond what exists before it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    with _PeakRSS() as rss:
        fn()
    return rss.extra / 2**20


def compare(fns: dict[str, Callable[[], object]], device: torch.device | str, *, warmup: int = 1,
            repeats: int = 7, steps: int = 1) -> dict:
    """Times the callables ``fns`` ({label: fn}) side by side.

    After ``warmup`` rounds of each (``steps`` calls), ``repeats`` rounds each time ``steps`` calls of
    every fn, in an order that reverses from round to round (A B, B A, ...), so drifts
    and the neighbours' load fall on all sides alike. Per label: median ms per call
    with its quartiles and IQR over rounds, and the peak memory one call adds
    (measured alone, after the timing). Ratios: for the first label A and each other
    label X, time(X) / time(A) per round, as median and quartiles (> 1: A is faster).
    A side that runs out of memory is reported with ``oom`` and left out from then on.
    """
    device = torch.device(device)
    if device.type == "cpu":
        _pin_malloc_mmap_threshold()
    labels = list(fns)
    oom = {k: False for k in labels}

    def timed(k):
        try:
            t0 = time.perf_counter()
            for _ in range(steps):
                fns[k]()
            _sync(device)
            return (time.perf_counter() - t0) * 1e3 / steps
        except torch.OutOfMemoryError:
            oom[k] = True
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return float("nan")

    for k in labels:
        for _ in range(warmup):
            if not oom[k]:
                timed(k)
    times = {k: [] for k in labels}
    for r in range(repeats):
        for k in (labels if r % 2 == 0 else labels[::-1]):
            if not oom[k]:
                times[k].append(timed(k))
    sides = {}
    for k in labels:
        ts = [t for t in times[k] if t == t]
        if oom[k] or not ts:
            sides[k] = {"ms": float("nan"), "ms_q1": float("nan"), "ms_q3": float("nan"), "ms_iqr": float("nan"),
                        "peak_extra_mb": float("nan"), "oom": True, "rounds": len(ts)}
            continue
        q1, med, q3 = quartiles(ts)
        try:
            peak = _peak_one_call(fns[k], device)
        except torch.OutOfMemoryError:
            peak = float("nan")
        sides[k] = {"ms": med, "ms_q1": q1, "ms_q3": q3, "ms_iqr": q3 - q1, "peak_extra_mb": peak, "oom": False,
                    "rounds": len(ts)}
    ratios = {}
    a = labels[0]
    for k in labels[1:]:
        rs = [tk / ta for ta, tk in zip(times[a], times[k]) if ta == ta and tk == tk]
        if rs:
            q1, med, q3 = quartiles(rs)
            ratios[f"{k}/{a}"] = {"median": med, "q1": q1, "q3": q3, "iqr": q3 - q1, "rounds": len(rs)}
    return {"sides": sides, "ratios": ratios, "warmup": warmup, "repeats": repeats, "steps_per_round": steps}


def print_table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    widths = [max(len(h), *(len(_fmt(r.get(k))) for r in rows)) for k, h in columns]
    print("  ".join(h.rjust(w) for (_, h), w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(k)).rjust(w) for (k, _), w in zip(columns, widths)))


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "OOM/nan"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)


def write_json(out_dir: str | os.PathLike, name: str, payload: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = payload.get("device_type", "cpu")
    path = out / f"{name}-{dev}.json"
    payload = {"torch": torch.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **payload}
    write_text_atomic(path, json.dumps(payload, indent=2))
    return path


def default_device() -> str:
    from pyface.ops import cuda_available

    return "cuda" if cuda_available() else "cpu"
