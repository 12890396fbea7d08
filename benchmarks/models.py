"""Throughput, latency and memory of registered models: inference and a training step, against the PyTorch reference.

Usage:
    python -m benchmarks.models [--models 'spikgru*' 'sparch-*'] [--device cpu|cuda] [--precision fp32|bf16]
        [--backend auto|torch|cupy|cpu] [--batch-sizes 1 32] [--quick] [--warmup N] [--repeats N] [--out DIR]

What runs, for every selected model and batch size:
- inputs: every required input of the model's registry spec (`model_info(name).inputs`), standard-normal draws at the
  paper's sizes (`TensorSpec.sizes`; axes without one take the registry's small size). ``--quick`` shrinks the
  batch to 2, time to at most 2 steps, images to at most 32 pixels a side (aspect kept) and audio to a quarter of a
  second (a size the model's `SmallConfig` gives explicitly wins: one its architecture needs), so that every model
  runs on a CPU in seconds; the model itself is the default configuration.
- inference: ``model.eval()`` under ``torch.no_grad()``: samples/s from the median time, latency p50/p90 of one batch.
- training step: ``model.train()``, forward, loss (mean square of the first output: the cost of the models' own
  losses is negligible next to the network), backward and one Adam step: samples/s from the median.
- peak memory of each phase: the CUDA allocator's peak on a GPU; on the CPU the process's peak resident set size
  (VmHWM, reset before each phase through /proc/self/clear_refs), and its rise above the RSS before the phase.
- recording overhead: the training step with the default spike recording (every `SpikeRecord` computing its rate)
  against the same step with the records made identities, interleaved run by run; the target is < 3 %.
- ratios: the same measurements with the pure-PyTorch kernel backend (``JELLYZOO_KERNEL_BACKEND=torch``; skipped
  when the selected backend already runs the reference on this device, or when the model runs no jellyzoo kernel
  (``kernel_ops`` column, seen by a dispatch mode): the ratio is 1 by definition there) and, for
  models with an option that takes the value ``"reference"`` (e.g. ReSpike's ``execution``), with that option: each
  figure gets ``reference time / this time`` beside it.

Method: warm-up runs, then the median (and p10/p50/p90) of the timed runs, CUDA events on the GPU and
`time.perf_counter` on the CPU (`benchmarks.measurement`). The first inference is always untimed (it lists the
kernels). ``--quick`` (one warm-up, three timed runs at small sizes) shows that every model runs and roughly what it
costs, not numbers to quote.

Writes ``models_<device>_<date>[_quick].{json,md,png}`` with the environment (device, driver, CUDA, versions,
commit, date, command line).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import traceback
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from tqdm import tqdm

import zoo
from benchmarks.measurement import (
    environment,
    measure_ms,
    precision_autocast,
    result_stem,
    summary_ms,
    write_report,
)
from zoo.kernels.backend import BACKEND_ENV, Backend, resolve_backend
from zoo.layers.spike_record import SpikeRecord
from zoo.registry import SmallConfig, TensorSpec, get_entry

QUICK_LIMITS = {"B": 2, "T": 2, "N": 4000}
"""--quick: batch, time steps and audio samples (16 kHz: a quarter of a second) are capped at these."""
QUICK_IMAGE_SIDE = 32
"""--quick: H and W are scaled together so that the longer side is at most this many pixels."""
RECORDING_TARGET = 0.03
"""The issue's target for the training-step overhead of default spike recording."""


def input_sizes(
    spec: TensorSpec, small: SmallConfig, batch: int | None, quick: bool, limits: dict[str, int] = QUICK_LIMITS
) -> dict[str, int]:
    """Size of every named axis of `spec`: the paper's (`spec.sizes`, else the small size), or the --quick one.

    --quick caps B, T and N (`limits`, default `QUICK_LIMITS`), scales H and W together to at most
    `QUICK_IMAGE_SIDE`, and takes the size a model's `SmallConfig` gives explicitly (a size its architecture needs,
    e.g. a multiple of 32).
    """
    sizes = {axis: spec.sizes.get(axis, small.axis_size(axis)) for axis in spec.shape if isinstance(axis, str)}
    if quick:
        for axis, limit in limits.items():
            if axis in sizes:
                sizes[axis] = min(sizes[axis], limit)
        spatial = [sizes[axis] for axis in ("H", "W") if axis in sizes]
        if spatial and max(spatial) > QUICK_IMAGE_SIDE:
            scale = QUICK_IMAGE_SIDE / max(spatial)
            for axis in ("H", "W"):
                if axis in sizes:
                    sizes[axis] = max(1, round(sizes[axis] * scale))
        sizes.update({axis: size for axis, size in small.sizes.items() if axis in sizes and axis != "B"})
    if batch is not None and "B" in sizes:
        sizes["B"] = batch
    return sizes


def make_inputs(
    name: str,
    batch: int | None,
    quick: bool,
    device: torch.device,
    seed: int = 0,
    limits: dict[str, int] = QUICK_LIMITS,
) -> dict[str, Any]:
    """Inputs for the required inputs of `name` (optional ones are left out), keyed by argument: standard normal
    floats, integers drawn uniformly from the spec's `TensorSpec.value_range`.

    Sizes as `input_sizes` (`limits`: the --quick caps).
    """
    entry = get_entry(name)
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for key, spec in entry.inputs.items():
        if spec.optional:
            continue
        dtype = getattr(torch, spec.dtype)
        if not dtype.is_floating_point and spec.value_range is None:
            raise ValueError(f"{name}: required integer input {key!r} has no value_range; benchmark it by hand")
        sizes = input_sizes(spec, entry.small, batch, quick, limits)
        shape = tuple(axis if isinstance(axis, int) else sizes[axis] for axis in spec.shape)
        if dtype.is_floating_point:
            values = torch.randn(shape, generator=generator)
        else:
            low, high = spec.value_range
            values = torch.randint(low, high + 1, shape, generator=generator)
        inputs[key] = values.to(device=device, dtype=dtype)
    return inputs


def batch_of(inputs: dict[str, torch.Tensor]) -> int:
    """Samples in a batch: the first axis of the first input."""
    return next(iter(inputs.values())).shape[0]


def reference_options(name: str) -> list[str]:
    """Config options of `name` that take the value "reference" (a structure reproducing the original code)."""
    entry = get_entry(name)
    options = []
    for key, hint in entry.config_types.items():
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()
        if "reference" in choices and entry.default_config[key] != "reference":
            options.append(key)
    return options


def first_tensor(output: Any) -> torch.Tensor:
    """The first tensor of a model output (a tensor, or a tuple/list/dict holding tensors)."""
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"model output {type(output).__name__} holds no tensor")


@contextlib.contextmanager
def kernel_backend(backend: str) -> Iterator[None]:
    """Set ``JELLYZOO_KERNEL_BACKEND`` (what ``backend="auto"`` resolves to) for the block."""
    previous = os.environ.get(BACKEND_ENV)
    os.environ[BACKEND_ENV] = backend
    try:
        yield
    finally:
        if previous is None:
            del os.environ[BACKEND_ENV]
        else:
            os.environ[BACKEND_ENV] = previous


@contextlib.contextmanager
def recording_off(model: nn.Module) -> Iterator[None]:
    """Make every `SpikeRecord` of `model` an identity for the block."""
    records = [module for module in model.modules() if isinstance(module, SpikeRecord)]
    for record in records:
        record.forward = _identity
    try:
        yield
    finally:
        for record in records:
            del record.forward


def _identity(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    return x


class PeakMemory:
    """Peak memory of a phase: CUDA allocator peak on a GPU, process peak RSS (VmHWM) on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            Path("/proc/self/clear_refs").write_text("5")
            self.baseline = _proc_status("VmRSS")

    def stop(self) -> dict[str, int]:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _proc_status("VmHWM")
        return {"peak_bytes": peak, "above_start_bytes": peak - self.baseline}


def _proc_status(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field} line: CPU memory needs Linux")
    return int(match.group(1)) * 1024


def measure_model(
    model: nn.Module, inputs: dict[str, Any], device: torch.device, precision: str, warmup: int, repeats: int
) -> dict[str, Any]:
    """Inference and training-step timings, peak memory and recording overhead of one model on one batch.

    The first inference (untimed) also lists the jellyzoo kernels the model runs (``kernel_ops``).
    """
    samples = batch_of(inputs)
    memory = PeakMemory(device)
    model.eval()

    def infer(_: int) -> None:
        with torch.no_grad(), precision_autocast(device, precision):
            model(**inputs)

    memory.start()
    with KernelOps() as spy:
        infer(0)
    inference = summary_ms(measure_ms(infer, device, max(0, warmup - 1), repeats))
    inference_memory = memory.stop()

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)

    def train(_: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision_autocast(device, precision):
            loss = first_tensor(model(**inputs)).float().square().mean()
        loss.backward()
        optimizer.step()

    memory.start()
    for k in range(warmup):
        train(k)
    with_recording, without_recording = [], []
    records = sum(isinstance(module, SpikeRecord) for module in model.modules())
    for _ in range(repeats):
        with_recording += measure_ms(train, device, 0, 1)
        if records:  # a model without records has no recording to switch off
            with recording_off(model):
                without_recording += measure_ms(train, device, 0, 1)
    training_memory = memory.stop()
    training = summary_ms(with_recording)
    result = {
        "kernel_ops": sorted(spy.seen),
        "samples": samples,
        "inference": {**inference, "samples_per_s": samples / (inference["median_ms"] * 1e-3), **inference_memory},
        "training": {**training, "samples_per_s": samples / (training["median_ms"] * 1e-3), **training_memory},
        "spike_records": records,
    }
    if records:
        on, off = statistics.median(with_recording), statistics.median(without_recording)
        fastest_on, fastest_off = min(with_recording), min(without_recording)
        result["recording_overhead"] = {
            "with_ms": on,
            "without_ms": off,
            "fraction": (on - off) / off,
            "fraction_of_fastest": (fastest_on - fastest_off) / fastest_off,
        }
    return result


class KernelOps(TorchDispatchMode):
    """Records which jellyzoo fused-kernel operators (``jellyzoo::*``, see `zoo.kernels`) run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "jellyzoo":
            self.seen.add(func.name())
        return func(*args, **(kwargs or {}))


def variants(name: str, backend: str, device: torch.device) -> list[dict[str, Any]]:
    """The runs of one model: as selected, with the PyTorch reference backend, with each "reference" structure.

    The reference-backend run is dropped later if the selected run uses no jellyzoo kernel (its ``kernel_ops``):
    the computation is then the same PyTorch code either way.
    """
    runs = [{"label": "selected", "backend": backend, "overrides": {}}]
    probe = torch.empty(0, device=device)
    with kernel_backend(backend):
        selected = resolve_backend("auto", probe)
    if selected != "torch":
        runs.append({"label": "torch backend", "backend": "torch", "overrides": {}})
    for option in reference_options(name):
        runs.append({"label": f"{option}=reference", "backend": backend, "overrides": {option: "reference"}})
    return runs


def benchmark(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Every (model, batch size, variant) row, in order; a model that fails records its error and the run goes on."""
    names = sorted({name for pattern in args.models for name in zoo.list_models(pattern)})
    if not names:
        raise SystemExit(f"no registered model matches {args.models}; registered: {', '.join(zoo.list_models())}")
    batches = args.batch_sizes or [None]
    tasks = [(name, batch, run) for name in names for batch in batches for run in variants(name, args.backend, device)]
    rows = []
    kernels: dict[tuple[str, int | None], list[str]] = {}
    progress = tqdm(tasks, desc="models", unit="run", file=sys.stderr)
    for name, batch, run in progress:
        progress.set_postfix_str(f"{name} {run['label']}")
        if run["label"] == "torch backend" and not kernels.get((name, batch)):
            continue  # no jellyzoo kernel in this model: the reference backend runs the same code
        row = {"model": name, "variant": run["label"], "backend": run["backend"], "overrides": run["overrides"]}
        try:
            torch.manual_seed(0)
            with kernel_backend(run["backend"]):
                model = zoo.build(name, **run["overrides"]).to(device)
                inputs = make_inputs(name, batch, args.quick, device)
                row["input_shapes"] = {key: list(value.shape) for key, value in inputs.items()}
                row["parameters"] = sum(parameter.numel() for parameter in model.parameters())
                row.update(measure_model(model, inputs, device, args.precision, args.warmup, args.repeats))
                if run["label"] == "selected":
                    kernels[(name, batch)] = row["kernel_ops"]
        except Exception as error:  # a benchmark row records the failure and the run continues with the next model
            row["error"] = f"{type(error).__name__}: {error}"
            print(f"{name} ({run['label']}) failed:\n{traceback.format_exc()}", file=sys.stderr)
        rows.append(row)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Put `reference time / selected time` (and memory ratios) on every reference row, per model and batch."""
    selected = {(r["model"], r.get("samples")): r for r in rows if r["variant"] == "selected" and "error" not in r}
    for row in rows:
        base = selected.get((row["model"], row.get("samples")))
        if row["variant"] == "selected" or "error" in row or base is None:
            continue
        row["ratio"] = {
            phase: {
                "time": row[phase]["median_ms"] / base[phase]["median_ms"],
                "memory": row[phase]["peak_bytes"] / base[phase]["peak_bytes"],
            }
            for phase in ("inference", "training")
        }


def _fmt_ratio(row: dict[str, Any], phase: str, key: str) -> str:
    ratio = row.get("ratio", {}).get(phase)
    return f" ({ratio[key]:.2f}x)" if ratio else ""


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    env, settings = report["environment"], report["settings"]
    lines = [
        f"# Model benchmark: {env['device_name']} ({env['device']}), {env['date']}",
        "",
        f"Command: `{env['command']}` (jellyzoo {env['jellyzoo_commit']}).",
        f"Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}; CUDA {env['torch_cuda']}, "
        f"driver {env['driver'] or '-'}; CuPy: {env['cupy_status']}.",
        f"Settings: precision {settings['precision']}, kernel backend {settings['backend']}, "
        f"{'quick sizes' if settings['quick'] else 'paper sizes'}; warm-up {settings['warmup']}, median of "
        f"{settings['repeats']} timed runs; {env['cpu_threads']} CPU threads, 1-minute load average "
        f"{env['load_average_1min']:.1f} at the start (other jobs on the machine widen the spread).",
        "",
        "Reference rows give `time / time of the selected run` in brackets (above 1: the selected run is faster).",
        "Memory: "
        + (
            "CUDA allocator peak."
            if env["device"].startswith("cuda")
            else "process peak RSS (whole process, libraries included) and its rise during the phase."
        ),
        "",
        "| model | run (jellyzoo kernels) | inputs | params | infer samples/s | p50 ms | p90 ms | infer peak MB (rise) "
        "| train samples/s | train ms | train peak MB (rise) | recording overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['variant']} | - | - | failed: {row['error'][:150]} |||||||")
            continue
        inference, training = row["inference"], row["training"]
        shapes = "; ".join(f"{k} {'x'.join(map(str, v))}" for k, v in row["input_shapes"].items())
        overhead = row.get("recording_overhead")
        overhead_text = (
            f"{100 * overhead['fraction']:+.1f} % ({100 * overhead['fraction_of_fastest']:+.1f} %)"
            if overhead
            else "no records"
        )
        ops = [op.split("::")[-1] for op in row.get("kernel_ops", [])]
        names = [op.removesuffix("_forward") for op in ops if op.endswith("_forward")]
        kernels = f" ({', '.join(names) or 'none'})" if row["variant"] == "selected" else ""
        lines.append(
            f"| {row['model']} | {row['variant']}{kernels} | {shapes} | {row['parameters'] / 1e6:.2f} M "
            f"| {inference['samples_per_s']:.2f}{_fmt_ratio(row, 'inference', 'time')} "
            f"| {inference['p50_ms']:.1f} | {inference['p90_ms']:.1f} "
            f"| {inference['peak_bytes'] / 1e6:.0f} ({inference['above_start_bytes'] / 1e6:.0f})"
            f"{_fmt_ratio(row, 'inference', 'memory')} "
            f"| {training['samples_per_s']:.2f}{_fmt_ratio(row, 'training', 'time')} | {training['median_ms']:.1f} "
            f"| {training['peak_bytes'] / 1e6:.0f} ({training['above_start_bytes'] / 1e6:.0f})"
            f"{_fmt_ratio(row, 'training', 'memory')} | {overhead_text} |"
        )
    overheads = [r["recording_overhead"]["fraction"] for r in report["results"] if "recording_overhead" in r]
    if overheads:
        within = sum(value < RECORDING_TARGET for value in overheads)
        lines += [
            "",
            f"Recording overhead (training step with default spike recording vs records made identities, "
            f"interleaved; in brackets: from the fastest run of each, less sensitive to other jobs): median "
            f"{100 * statistics.median(overheads):+.1f} % over {len(overheads)} runs, "
            f"{within} of them under the {100 * RECORDING_TARGET:.0f} % target. With few repeats on a shared CPU the "
            "run-to-run spread is of the same order, so single values are noisy; negative values are noise.",
        ]
    if not any(r["variant"] != "selected" for r in report["results"]):
        lines += ["", "No reference rows: the selected backend runs the PyTorch reference on this device (ratio 1)."]
    return "\n".join(lines) + "\n"


def bar_chart(report: dict[str, Any], path: Path) -> None:
    """Inference and training samples/s per model (selected run and reference runs) as log-scale bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if "error" not in r]
    labels = list(dict.fromkeys(f"{r['model']}\nB={r['samples']}" for r in rows))
    variants_seen = list(dict.fromkeys(r["variant"] for r in rows))
    figure, axes = plt.subplots(2, 1, figsize=(max(8, 0.55 * len(labels) + 2), 8), sharex=True)
    width = 0.8 / max(1, len(variants_seen))
    for phase, axis in zip(("inference", "training"), axes, strict=True):
        for v, variant in enumerate(variants_seen):
            values = {
                f"{r['model']}\nB={r['samples']}": r[phase]["samples_per_s"] for r in rows if r["variant"] == variant
            }
            xs = [i + v * width for i, label in enumerate(labels) if label in values]
            axis.bar(xs, [values[label] for label in labels if label in values], width, label=variant)
        axis.set_yscale("log")
        axis.set_ylabel(f"{phase} samples/s")
        axis.grid(axis="y", alpha=0.3)
    if rows:
        axes[0].legend(fontsize=8)
    axes[1].set_xticks([i + width * (len(variants_seen) - 1) / 2 for i in range(len(labels))])
    axes[1].set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    env, settings = report["environment"], report["settings"]
    sizes = "quick sizes" if settings["quick"] else "paper sizes"
    axes[0].set_title(f"{env['device_name']} ({env['device']}), {settings['precision']}, {sizes}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["*"], help="registry patterns (fnmatch), default: all")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 = bfloat16 autocast")
    parser.add_argument("--backend", choices=typing.get_args(Backend), default="auto", help="fused-kernel backend")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=None, help="default: the paper's (2 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="small inputs (B<=2, T<=2, H/W<=32) for CPU and CI")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2; 1 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 10 on CPU, 30 on CUDA; 3 quick)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch sees no CUDA device")
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.repeats = args.repeats or (3 if args.quick else 30 if device.type == "cuda" else 10)
    if args.warmup < 0 or args.repeats < 1:
        parser.error("--warmup must be >= 0 and --repeats >= 1")

    report = {
        "environment": environment(device),
        "settings": {
            "models": args.models,
            "precision": args.precision,
            "backend": args.backend,
            "batch_sizes": args.batch_sizes,
            "quick": args.quick,
            "warmup": args.warmup,
            "repeats": args.repeats,
        },
    }
    report["results"] = benchmark(args, device)
    write_report(report, args.out, result_stem("models", device, args.quick), markdown, bar_chart)
    failed = [r["model"] for r in report["results"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
