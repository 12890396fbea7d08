"""Timing, environment capture and result files shared by the benchmark scripts (`benchmarks.kernels`,
`benchmarks.models`, `benchmarks.raven`, `benchmarks.firing_rates`).

Method (the workplace's METHOD.md): warm-up runs first, then many timed runs whose median is reported (CUDA events
on the GPU, `time.perf_counter` on the CPU). Every report carries `environment(device)`: device and driver, CUDA,
library versions, jellyzoo commit, date and the exact command line, so a number can be traced to how it was made.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zoo.kernels.backend import cupy_status

__all__ = [
    "command_line",
    "cpu_name",
    "environment",
    "measure_ms",
    "peak_rss_bytes",
    "percentile",
    "precision_autocast",
    "result_stem",
    "summary_ms",
    "write_report",
]

PACKAGES = ("torch", "torchvision", "torchaudio", "spikingjelly", "numpy", "cupy-cuda13x", "cupy-cuda12x", "cupy")
"""Libraries whose versions every report lists (those installed)."""


def measure_ms(
    run: Callable[[int], object], device: torch.device, warmup: int, repeats: int, cpu_time: bool = False
) -> list[float]:
    """Milliseconds of `run(k)` for k = 0..repeats-1 after `warmup` untimed calls (CUDA events on a GPU).

    On the CPU, `cpu_time` times the process's CPU time (`time.process_time`, all its threads) instead of the
    wall clock: with one thread it is what a shared, loaded machine disturbs least.
    """
    for k in range(warmup):
        run(k)
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for k in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(k)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        clock = time.process_time if cpu_time else time.perf_counter
        for k in range(repeats):
            start = clock()
            run(k)
            times.append(1e3 * (clock() - start))
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of an empty list")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(times: list[float]) -> dict[str, float]:
    """Median, p10, p50, p90 and inter-quartile spread of a list of times in ms."""
    return {
        "median_ms": statistics.median(times),
        "p10_ms": percentile(times, 10),
        "p50_ms": percentile(times, 50),
        "p90_ms": percentile(times, 90),
        "spread_ms": percentile(times, 75) - percentile(times, 25),
        "repeats": len(times),
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (`ru_maxrss` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def command_line() -> str:
    """How this process was started, as a shell line (``python -m benchmarks.models --quick``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    program = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", sys.argv[0]]
    return shlex.join(program + sys.argv[1:])


def _git_commit() -> str:
    """The jellyzoo commit (with ``-dirty`` when the work tree has changes), or "unknown" outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _driver_version() -> str | None:
    """The NVIDIA driver version from nvidia-smi, None without one."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def environment(device: torch.device) -> dict[str, object]:
    """Device, driver, CUDA, library versions, commit, date and command line for a report."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    on_gpu = device.type == "cuda"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if on_gpu else cpu_name(),
        "driver": _driver_version() if on_gpu else None,
        "cpu_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "host_memory_bytes": memory,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if on_gpu else None,
        "cupy_status": cupy_status()[1],
        "python": platform.python_version(),
        "versions": versions,
        "jellyzoo_commit": _git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(),
    }


def result_stem(kind: str, device: torch.device, quick: bool) -> str:
    """File-name stem of a benchmark's results: ``<kind>_<device type>_<UTC date>[_quick]``."""
    date = dt.datetime.now(dt.UTC).date().isoformat()
    return f"{kind}_{device.type}_{date}{'_quick' if quick else ''}"


def write_report(
    report: dict[str, Any],
    out: Path,
    stem: str,
    markdown: Callable[[dict[str, Any]], str],
    chart: Callable[[dict[str, Any], Path], None],
) -> None:
    """Write `report` as ``<out>/<stem>.json`` (strict JSON: a NaN or infinity is an error), ``.md`` (`markdown`)
    and ``.png`` (`chart`), print the Markdown, and say on stderr where the files went."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (out / f"{stem}.md").write_text(text)
    chart(report, out / f"{stem}.png")
    print(text)
    print(f"wrote {out / stem}.{{json,md,png}}", file=sys.stderr)


def precision_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on `device` for ``"bf16"``; nothing for ``"fp32"`` (the benchmarks' ``--precision``)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
