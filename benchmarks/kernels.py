"""Time the fused kernels: forward and forward+backward, PyTorch reference vs the kernels (CuPy on CUDA, the
host build on CPU) and spikingjelly's LIF, plus one whole-model CPU training step of sparch-radlif.

Usage:
    python -m benchmarks.kernels [--device cuda|cpu] [--quick] [--threads 1] [--out benchmarks/results]

Sizes (the SpikGRU-DVSLip paper model, design note spikgru.md sections 5.2 and 5.3):
- `spike`, `signed_spike`: the layer-1 frontend membrane [T=90, B=32, 64, 44, 44];
- `lif_scan`: the layer-1 frontend LIF on the same tensor, also against spikingjelly 2.0's multi-step
  `LIFNode(tau=2.0, decay_input=False, v_reset=None)` (soft reset, scalar leak 1 - 1/tau: the closest
  equivalent of our per-channel leak);
- `spikgru_scan`: one layer-direction of SpikGRU2+ (gates=2, signed), proj [90, 32, 3072], H = 1024. The paper
  backend runs 3 layers x 2 directions of it, so the report also gives x6 for the whole backend;
- `sparch_scan`: one RadLIF layer of sparch on SHD (adaptive and recurrent), current [T=100, B=32, H=128];
- model `sparch-radlif` (CPU only): one training step (forward, backward, Adam step) of the SHD model (2 x 128,
  B = 32, T = 100) with the torch reference against the cpu kernels. The original sparch code is not available
  offline, so the model is compared with jellyzoo's own reference backend only.
`--quick` uses T = 8, B = 2 for the spike/LIF/SpikGRU shapes and B = 8 for sparch_scan (a few minutes on 2 CPU
cores). On CPU the torch, cpu (when the kernels build for the host) and spikingjelly paths run, with
`--threads` torch/OpenMP threads (default 1) and CPU time (`time.process_time`) instead of wall time, which is
what other jobs on a shared machine disturb least.

Method (the workplace's METHOD.md): warm-up runs first, then the median of many timed runs (CUDA events on
the GPU, process CPU time on the CPU), inputs rotated among several sets when they are small enough to sit in
cache. The copy bandwidth of the device (a large copy, bytes read + written) is the yard-stick: each kernel's
"achieved GB/s" is its minimal byte count over its median time. Byte model (4-byte float32 elements, N = number
of elements of the spike tensor):
- spike: forward reads v and writes s (2N); backward reads v and grad_s and writes grad_v (3N more).
- lif_scan: forward reads I and writes s (2N); backward reads grad_s and one saved state and writes grad_I (3N).
- spikgru_scan (per layer-direction, P = T*B*3H projections, S = T*B*H spikes, W = 3H*H weights): forward reads
  proj and U once and writes s (P + S + W); backward reads grad_s, proj (to recover the states) and U, and
  writes dproj and dU (S + 2P + 2W more).
- sparch_scan (N = T*B*H, W = H*H): forward reads I and V~ and writes s and u (3N + W); backward reads the two
  output gradients and u, w, s and writes grad_I (6N more).
Forward timings run under `torch.no_grad()`; forward+backward runs one `torch.autograd.grad` of all inputs.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import zoo
from benchmarks.measurement import environment, measure_ms, result_stem, write_report
from zoo.kernels import lif_scan, signed_spike, sparch_scan, spike, spikgru_scan
from zoo.kernels.backend import BACKEND_ENV, cpu_status, cupy_status

FLOAT_BYTES = 4
CACHE_BYTES = 256 * 2**20
"""Inputs smaller than this are rotated among several copies so repeated runs do not time the cache."""


@dataclass
class Timing:
    """One measured configuration."""

    op: str
    backend: str
    mode: str
    shape: list[int]
    median_ms: float
    spread_ms: float
    repeats: int
    min_bytes: int
    achieved_gbs: float


def copy_bandwidth_gbs(device: torch.device, megabytes: int, warmup: int, repeats: int) -> float:
    """Device copy bandwidth in GB/s (bytes read + bytes written over the median copy time)."""
    source = torch.rand(megabytes * 2**20 // FLOAT_BYTES, device=device)
    target = torch.empty_like(source)
    times = measure_ms(lambda k: target.copy_(source), device, warmup, repeats, cpu_time=True)
    return 2 * source.numel() * FLOAT_BYTES / (statistics.median(times) * 1e-3) / 1e9


def rotation_count(input_bytes: int) -> int:
    """How many input sets to cycle through: 3 when the inputs could stay in cache, else 1."""
    return 3 if input_bytes < CACHE_BYTES else 1


def time_op(
    op: str,
    backend: str,
    make_inputs: Callable[[], list[torch.Tensor]],
    call: Callable[..., torch.Tensor],
    bytes_forward: int,
    bytes_backward: int,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> list[Timing]:
    """Forward (no_grad) and forward+backward timings of `call(*inputs)` on rotated input sets."""
    first = make_inputs()
    sets = [first] + [make_inputs() for _ in range(rotation_count(sum(x.nbytes for x in first)) - 1)]
    grad_out = torch.randn_like(call(*first).detach())
    # a kernel backend first compiles (CuPy) or loads (host build) its kernels: keep that out of the warm-up count

    def forward(k: int) -> None:
        with torch.no_grad():
            call(*sets[k % len(sets)])

    def forward_backward(k: int) -> None:
        inputs = sets[k % len(sets)]
        torch.autograd.grad(call(*inputs), [x for x in inputs if x.requires_grad], grad_out)

    results = []
    for mode, run, nbytes in (
        ("forward", forward, bytes_forward),
        ("forward+backward", forward_backward, bytes_forward + bytes_backward),
    ):
        times = measure_ms(run, device, warmup, repeats, cpu_time=True)
        median = statistics.median(times)
        quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [median, median, median]
        results.append(
            Timing(
                op,
                backend,
                mode,
                list(first[0].shape),
                median,
                quartiles[2] - quartiles[0],
                repeats,
                nbytes,
                nbytes / (median * 1e-3) / 1e9,
            )
        )
    return results


def spikingjelly_lif(tau: float = 2.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """spikingjelly 2.0 multi-step LIF with soft reset, started from a fresh state on every call."""
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(tau=tau, decay_input=False, v_reset=None, step_mode="m")

    def run(current: torch.Tensor) -> torch.Tensor:
        node.reset()
        return node(current)

    return run


def benchmark(device: torch.device, quick: bool, warmup: int, repeats: int) -> list[Timing]:
    """All timings at the paper sizes (or the `quick` ones) for the backends this device supports."""
    steps, batch = (8, 2) if quick else (90, 32)
    frontend = (steps, batch, 64, 44, 44)
    hidden, gates = 1024, 2
    backends = ["torch"] + (["cupy"] if device.type == "cuda" and cupy_status()[0] else [])
    backends += ["cpu"] if device.type == "cpu" and cpu_status()[0] else []
    n = torch.Size(frontend).numel()
    proj_n, spikes_n, weight_n = steps * batch * 3 * hidden, steps * batch * hidden, 3 * hidden * hidden

    def frontend_inputs() -> list[torch.Tensor]:
        return [torch.randn(frontend, device=device, requires_grad=True)]

    def lif_inputs() -> list[torch.Tensor]:
        current = 0.8 * torch.randn(frontend, device=device) + 0.3
        return [current.requires_grad_(True), torch.empty(64, device=device).uniform_(0.5, 1.0).requires_grad_(True)]

    def spikgru_inputs() -> list[torch.Tensor]:
        bound = hidden**-0.5
        proj = 1.5 * torch.randn(steps, batch, gates * hidden + hidden, device=device)
        weight = torch.empty(3 * hidden, hidden, device=device).uniform_(-bound, bound)
        alpha = torch.rand(hidden, device=device)
        b_ui = torch.empty(hidden, device=device).uniform_(-bound, bound)
        return [x.requires_grad_(True) for x in (proj, weight, alpha, b_ui)]

    sparch_steps, sparch_batch, sparch_hidden = 100, 8 if quick else 32, 128
    sparch_n = sparch_steps * sparch_batch * sparch_hidden

    def sparch_inputs() -> list[torch.Tensor]:
        shape, vector = (sparch_steps, sparch_batch, sparch_hidden), (sparch_hidden,)
        state = (sparch_batch, sparch_hidden)
        current = torch.randn(shape, device=device)
        alpha = torch.empty(vector, device=device).uniform_(0.8187, 0.9608)
        beta = torch.empty(vector, device=device).uniform_(0.9672, 0.9917)
        a = torch.empty(vector, device=device).uniform_(0.0, 1.0)  # the stable half of sparch's [-1, 1]
        b = torch.empty(vector, device=device).uniform_(0.0, 2.0)
        recurrent = (torch.randn(sparch_hidden, sparch_hidden, device=device) / sparch_hidden**0.5).fill_diagonal_(0)
        u0, s0, w0 = (torch.rand(state, device=device) for _ in range(3))
        trained = [x.requires_grad_(True) for x in (current, alpha, beta, a, b, recurrent)]
        return [*trained, u0, s0, w0]

    def sparch_call(current, alpha, beta, a, b, recurrent, u0, s0, w0, backend="torch"):
        return sparch_scan(current, alpha, u0, s0, beta, a, b, w0, recurrent, backend=backend)[0]

    results = []
    settings = {"device": device, "warmup": warmup, "repeats": repeats}
    for backend in backends:
        results += time_op(
            "spike",
            backend,
            frontend_inputs,
            lambda v, b=backend: spike(v, backend=b),
            2 * n * FLOAT_BYTES,
            3 * n * FLOAT_BYTES,
            **settings,
        )
        results += time_op(
            "signed_spike",
            backend,
            frontend_inputs,
            lambda v, b=backend: signed_spike(v, backend=b),
            2 * n * FLOAT_BYTES,
            3 * n * FLOAT_BYTES,
            **settings,
        )
        results += time_op(
            "lif_scan",
            backend,
            lif_inputs,
            lambda i, a, b=backend: lif_scan(i, a, backend=b),
            2 * n * FLOAT_BYTES,
            3 * n * FLOAT_BYTES,
            **settings,
        )
        results += time_op(
            "spikgru_scan",
            backend,
            spikgru_inputs,
            lambda p, u, a, c, b=backend: spikgru_scan(p, u, a, c, gates, True, backend=b),
            (proj_n + spikes_n + weight_n) * FLOAT_BYTES,
            (spikes_n + 2 * proj_n + 2 * weight_n) * FLOAT_BYTES,
            **settings,
        )
        results += time_op(
            "sparch_scan",
            backend,
            sparch_inputs,
            lambda *x, b=backend: sparch_call(*x, backend=b),
            (3 * sparch_n + sparch_hidden**2) * FLOAT_BYTES,
            6 * sparch_n * FLOAT_BYTES,
            **settings,
        )
    jelly = spikingjelly_lif()
    results += time_op(
        "lif_scan",
        "spikingjelly",
        lambda: lif_inputs()[:1],
        jelly,
        2 * n * FLOAT_BYTES,
        3 * n * FLOAT_BYTES,
        **settings,
    )
    return results


def model_training_step(warmup: int, repeats: int) -> list[Timing]:
    """CPU time of one sparch-radlif training step (SHD, 2 x 128, B = 32, T = 100): torch reference vs cpu kernels.

    Forward, cross-entropy on the summed readout scores, backward and an Adam step, with the backend chosen
    through `JELLYZOO_KERNEL_BACKEND` (the model itself is unchanged). The original sparch code is not
    available offline, so this compares jellyzoo's two backends only.
    """
    device = torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    features = (torch.rand(32, 100, 700, generator=generator) < 0.02).float()
    labels = torch.randint(0, 20, (32,), generator=generator)
    results = []
    for backend in ["torch"] + (["cpu"] if cpu_status()[0] else []):
        torch.manual_seed(0)
        model = zoo.build("sparch-radlif").train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        previous = os.environ.get(BACKEND_ENV)
        os.environ[BACKEND_ENV] = backend

        def step(k: int, model=model, optimizer=optimizer) -> None:
            scores = model(features)
            scores = scores[0] if isinstance(scores, tuple) else scores
            loss = torch.nn.functional.cross_entropy(scores, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        try:
            times = measure_ms(step, device, warmup, repeats, cpu_time=True)
        finally:
            if previous is None:
                os.environ.pop(BACKEND_ENV)
            else:
                os.environ[BACKEND_ENV] = previous
        median = statistics.median(times)
        quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [median, median, median]
        results.append(
            Timing(
                "model sparch-radlif",
                backend,
                "training step",
                [32, 100, 700],
                median,
                quartiles[2] - quartiles[0],
                repeats,
                0,
                0.0,
            )
        )
    return results


def speedups(results: list[Timing]) -> list[dict[str, object]]:
    """Kernel-backend (cupy or cpu) speed-ups over torch and spikingjelly: time of the other over the kernels'."""
    table = {(r.op, r.mode, r.backend): r.median_ms for r in results}
    rows = []
    for (op, mode, backend), ms in table.items():
        if backend not in ("cupy", "cpu"):
            continue
        for other in ("torch", "spikingjelly"):
            if (op, mode, other) in table:
                rows.append(
                    {
                        "op": op,
                        "mode": mode,
                        "backend": backend,
                        "versus": other,
                        "speedup": table[(op, mode, other)] / ms,
                    }
                )
    return rows


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    env = report["environment"]
    lines = [
        f"# Kernel benchmark: {env['device_name']} ({env['device']}), {env['date']}",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}; CuPy: {env['cupy_status']}.",
        f"Sizes: {'quick (T=8, B=2; sparch_scan T=100, B=8)' if report['quick'] else 'paper (T=90, B=32)'}; "
        f"warm-up {report['warmup']}, median of {report['repeats']} runs (spread = inter-quartile range); "
        + ("CPU time of the process (time.process_time), not wall time." if env["device"] == "cpu" else "")
        + f" Command: `{env.get('command', '')}`.",
        f"Copy bandwidth (read + write): {report['copy_bandwidth_gbs']:.1f} GB/s; {env['cpu_threads']} CPU threads, "
        f"1-minute load average {env['load_average_1min']:.1f} at the start (other jobs widen the spread).",
        "",
        "| op | backend | mode | shape | median ms | spread ms | min bytes (MB) | GB/s | % of copy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        share = 100 * r["achieved_gbs"] / report["copy_bandwidth_gbs"]
        lines.append(
            f"| {r['op']} | {r['backend']} | {r['mode']} | {'x'.join(map(str, r['shape']))} | {r['median_ms']:.3f} "
            f"| {r['spread_ms']:.3f} | {r['min_bytes'] / 1e6:.1f} | {r['achieved_gbs']:.2f} | {share:.1f} |"
        )
    gru = [r for r in report["results"] if r["op"] == "spikgru_scan"]
    if gru:
        lines += ["", "Whole SpikGRU backend (3 layers x 2 directions run one after another = 6 x one scan):", ""]
        lines += [f"- {r['backend']} {r['mode']}: {6 * r['median_ms']:.2f} ms" for r in gru]
    lines += ["", "Speed-ups of the kernels (time of the other backend / time of the kernel backend):", ""]
    lines += [
        f"- {s['op']} {s['mode']}: {s['backend']} {s['speedup']:.2f}x vs {s['versus']}" for s in report["speedups"]
    ]
    if not report["speedups"]:
        lines.append("- none: no kernel backend ran on this device")
    return "\n".join(lines) + "\n"


def bar_chart(report: dict, path: Path) -> None:
    """Median times per op/mode and backend as a log-scale bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    groups = list(dict.fromkeys((r["op"], r["mode"]) for r in results))
    backends = list(dict.fromkeys(r["backend"] for r in results))
    width = 0.8 / len(backends)
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 4))
    for b, backend in enumerate(backends):
        times = {(r["op"], r["mode"]): r["median_ms"] for r in results if r["backend"] == backend}
        xs = [g + b * width for g, key in enumerate(groups) if key in times]
        axes.bar(xs, [times[key] for key in groups if key in times], width, label=backend)
    axes.set_xticks([g + width * (len(backends) - 1) / 2 for g in range(len(groups))])
    axes.set_xticklabels([f"{op}\n{mode}" for op, mode in groups], fontsize=7)
    axes.set_yscale("log")
    axes.set_ylabel("median time (ms)")
    axes.set_title(f"{report['environment']['device_name']}, {'quick' if report['quick'] else 'paper'} sizes")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="T=8, B=2 instead of the paper's T=90, B=32")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 30 on CUDA, 10 on CPU)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and the cpu kernels")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch sees no CUDA device")
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    repeats = args.repeats or (30 if device.type == "cuda" else 10)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    report = {
        "environment": environment(device),
        "quick": args.quick,
        "warmup": args.warmup,
        "repeats": repeats,
        "copy_bandwidth_gbs": copy_bandwidth_gbs(device, 1024 if device.type == "cuda" else 256, args.warmup, repeats),
    }
    results = benchmark(device, args.quick, args.warmup, repeats)
    if device.type == "cpu":
        results += model_training_step(args.warmup, repeats)
    report["results"] = [asdict(r) for r in results]
    report["speedups"] = speedups(results)

    write_report(report, args.out, result_stem("kernels", device, args.quick), markdown, bar_chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
