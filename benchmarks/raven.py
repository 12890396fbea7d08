"""RAVEn speed: relative-position attention through SDPA against the original structure run eagerly, and batched
beam search against the original's per-utterance loop (issue 14, "Performance").

Usage:
    python -m benchmarks.raven [--device cuda|cpu] [--precision bf16|fp32] [--quick]
        [--parts encoder backend attention decoding] [--modes training inference] [--batch B] [--frames T]
        [--utterances U] [--decode-frames MIN MAX] [--beam 40] [--ctc-weight 0.1] [--warmup N] [--repeats N]
        [--decode-repeats N] [--threads 1] [--out benchmarks/results]

Attention (``encoder``, ``backend``, ``attention`` parts). Each part runs in two structures on the same input in the
same process, with the same weights: ``attention="sdpa"`` (jellyzoo: `F.scaled_dot_product_attention`, positional
term as an additive bias read from the [T, 2T-1] product through a strided view) and ``attention="reference"`` (the
original ESPnet structure run eagerly: both score matrices, zero-pad + reshape shift, masked softmax, weighted sum).
Runs alternate between the two (one of each per repeat), so drift on a shared machine hits both alike. Parts:
- ``encoder``: the whole Base video encoder (`zoo.build("raven-video-base")`: 3-D stem + ResNet-18 front-end and
  12 Transformer blocks, d 512, 8 heads) on video [B, T, 88, 88];
- ``backend``: its 12 blocks alone (`RAVEnEncoder` with an identity front-end, the same weights) on front-end
  features [B, T, 512];
- ``attention``: the first block's relative-position attention layer alone on [B, T, 512].
The batch is padded as a length-bucketed LRS3 batch: lengths evenly spaced from T down to 0.8 T. Modes:
``training``: forward + backward in ``train()`` mode (the fine-tuning dropouts, 0.1), loss = mean square of the
output; ``inference``: forward in ``eval()`` mode under ``torch.no_grad()``. ``--precision bf16``: bf16 autocast.

Decoding (``decoding``): hybrid CTC/attention beam search (`zoo.decoding.beam_search`, beam 40, CTC weight 0.1,
pre-beam 60, as RAVEn) with the decoder of `raven-vsr-base` (6 layers, d 512, random weights) on its encoder's output
for U utterances of lengths evenly spaced between MIN and MAX frames (computed once, not timed). ``batched``: one
call for all U utterances; ``per-utterance loop``: the original's structure, ESPnet's batch beam search called once
per utterance, here `beam_search` on each utterance alone (B = 1, its own length, no padding), in a Python loop.
With random weights <eos> is seldom the best choice, so hypotheses tend to run to the utterance's length (the search
stops after T steps at the latest, as ESPnet at maxlenratio 0); the report lists the decoder steps and hypothesis
lengths of both, and how many best hypotheses the two runs agree on. Warm-up: one untimed run of each search, which
also counts the decoder steps, FLOPs and peak memory; then ``--decode-repeats`` timed runs.

Sizes: defaults are the issue's (B = 8, T = 150 for the attention parts; U = 32 utterances of 100..150 frames, LRS3
lengths at 25 fps). ``--quick`` (CPU): the encoder at B = 2, T = 25, the back-end and the attention layer at B = 2,
T = 150, decoding U = 4 utterances of 12..20 frames; ``--batch`` / ``--frames`` override the attention parts' sizes.

Method (`benchmarks.measurement`): warm-up runs, then the median of the timed runs, CUDA events on the GPU; on the
CPU ``--threads`` threads (default 1) and process CPU time, what other jobs on a shared machine disturb least. Each
row has its speed-up over the original's structure beside it: ``reference time / its time`` (decoding: ``loop time /
its time``). ``--compile`` adds a third structure, the sdpa module through `torch.compile` (its first, compiling call
is a warm-up). Floors: the FLOPs of one run
(`torch.utils.flop_counter`: matrix products, convolutions and attention, forward and backward) over the rate of a
large matrix product measured on the same device at the same precision (the GEMM rate): no implementation of the
same products can be faster (the counter's attention formula, QK^T and PV, also for the CPU fused kernel, which
PyTorch's counter leaves out). Operations: the ATen operations one run dispatches, views and bare allocations left
out (`OpCounter`): about the kernels an eager run launches on a GPU, which bound it where the products are small
(not counted for the compiled structure). Peak memory (CUDA allocator) on a GPU.

Writes ``raven_<device>_<date>[_quick].{json,md,png}`` with the environment (device, driver, CUDA, versions, commit,
date, command line).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

import zoo
from benchmarks.measurement import (
    environment,
    measure_ms,
    precision_autocast,
    result_stem,
    summary_ms,
    write_report,
)
from zoo.decoding import beam_search
from zoo.layers.attention import relative_sinusoids
from zoo.models.raven import BLANK_ID, RAVEnEncoder
from zoo.registry import get_entry

ENCODER = "raven-video-base"
RECOGNIZER = "raven-vsr-base"
STRUCTURES = ("sdpa", "reference")
COMPILED = "sdpa+compile"
"""--compile: the sdpa module through `torch.compile` (default settings), a third structure."""
ENCODER_PARTS = ("encoder", "backend", "attention")
PARTS = (*ENCODER_PARTS, "decoding")
MODES = ("training", "inference")
SIZES = {"encoder": (8, 150), "backend": (8, 150), "attention": (8, 150)}
"""(B, T) of each attention part: the issue's B = 8, T = 150."""
QUICK_SIZES = {"encoder": (2, 25), "backend": (2, 150), "attention": (2, 150)}
"""--quick: the front-end dominates the encoder's CPU time, so the encoder runs 25 frames; the rest LRS3 lengths."""
DECODING = {"utterances": 32, "frames": (100, 150)}
"""Utterances decoded and their shortest and longest frame counts: LRS3 lengths (4-6 s at 25 fps)."""
QUICK_DECODING = {"utterances": 4, "frames": (12, 20)}
"""--quick: few and short utterances (a CPU decodes them in seconds)."""
SHORTEST_FRACTION = 0.8
"""The padded batch of the attention parts: lengths evenly spaced from T down to this fraction of T."""


def padded_lengths(batch: int, frames: int, shortest: int) -> torch.Tensor:
    """Lengths [batch] evenly spaced from `frames` down to `shortest` (rounded): a length-bucketed batch."""
    return torch.linspace(frames, shortest, batch).round().long()


def gemm_rate(device: torch.device, precision: str, warmup: int, repeats: int) -> dict[str, float]:
    """FLOP/s of a square matrix product (n = 4096 on a GPU, 1024 on the CPU) at the precision."""
    n = 4096 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    times = measure_ms(lambda _: a @ b, device, warmup, repeats, cpu_time=True)
    return {"n": n, "flops_per_s": 2 * n**3 / (statistics.median(times) * 1e-3)}


class EncoderPart:
    """One encoder part (the encoder, its back-end or one attention layer) in both structures: modules, inputs, and a
    training step or an inference per structure (`run`).

    `encoders`: the Base video encoder in each structure, with the same weights (`build_encoders`); the back-end and
    attention parts copy their weights from them. `compile_sdpa` adds the sdpa module through `torch.compile`.
    """

    def __init__(
        self,
        part: str,
        encoders: dict[str, RAVEnEncoder],
        batch: int,
        frames: int,
        device: torch.device,
        precision: str,
        compile_sdpa: bool = False,
    ) -> None:
        self.part, self.batch, self.frames, self.device, self.precision = part, batch, frames, device, precision
        lengths = padded_lengths(batch, frames, round(SHORTEST_FRACTION * frames)).to(device)
        self.lengths = lengths
        if part == "encoder":
            self.modules = encoders
            self.inputs: tuple[Any, ...] = (torch.randn(batch, frames, 88, 88, device=device), lengths)
        else:
            config = {key: value for key, value in get_entry(ENCODER).default_config.items() if key != "attention"}
            self.modules = {}
            for structure, encoder in encoders.items():
                backend = RAVEnEncoder("video", **config, attention=structure, frontend=nn.Identity())
                weights = {k: v for k, v in encoder.state_dict().items() if not k.startswith("frontend.")}
                backend.load_state_dict(weights)
                self.modules[structure] = backend if part == "backend" else backend.blocks[0].attn
            features = torch.randn(batch, frames, config["dim"], device=device, requires_grad=True)
            if part == "backend":
                self.inputs = (features, lengths)
            else:
                key_valid = torch.arange(frames, device=device)[None, :] < lengths[:, None]
                self.inputs = (features, relative_sinusoids(frames, config["dim"], device), key_valid)
        self.modules = {structure: module.to(device) for structure, module in self.modules.items()}
        if compile_sdpa:
            self.modules[COMPILED] = torch.compile(self.modules["sdpa"])

    def run(self, structure: str, mode: str) -> Callable[[int], None]:
        """`training`: forward + backward of `structure` in train mode on the part's input (gradients reset first);
        `inference`: forward in eval mode under `torch.no_grad()`."""
        module = self.modules[structure]

        def infer(_: int) -> None:
            module.eval()
            with torch.no_grad(), precision_autocast(self.device, self.precision):
                module(*self.inputs)

        def train(_: int) -> None:
            module.train()
            module.zero_grad(set_to_none=True)
            for tensor in self.inputs:
                if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                    tensor.grad = None
            with precision_autocast(self.device, self.precision):
                output = module(*self.inputs)
            output.float().square().mean().backward()

        return train if mode == "training" else infer

    def input_shapes(self) -> dict[str, list[int]]:
        names = ("x", "pos_emb", "key_valid") if self.part == "attention" else ("x", "lengths")
        return {name: list(tensor.shape) for name, tensor in zip(names, self.inputs, strict=True)}


def build_encoders() -> dict[str, RAVEnEncoder]:
    """`raven-video-base` with ``attention="sdpa"`` and ``"reference"``, the same (seed 0) weights in both."""
    torch.manual_seed(0)
    encoders = {structure: zoo.build(ENCODER, attention=structure) for structure in STRUCTURES}
    encoders["reference"].load_state_dict(encoders["sdpa"].state_dict())
    return encoders


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flops,
}
"""PyTorch's FLOP counter knows the CUDA attention kernels only: the CPU fused kernel counted the same way."""


ALLOCATIONS = {"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "_unsafe_view", "lift_fresh"}
"""Operations that only allocate or alias (besides those PyTorch marks as views): not counted as computing."""


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations that compute (views and bare allocations left out): about the number of kernels
    an eager run launches on a GPU, what bounds it when the products are small."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.__name__.split(".")[0] not in ALLOCATIONS:
            self.count += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Within the block, count FLOPs (`FlopCounterMode`, plus the CPU fused attention kernel) and computing ATen
    operations (`OpCounter`); the yielded dict gets ``flops`` and ``ops`` at the end."""
    counts: dict[str, int] = {}
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as flops, OpCounter() as ops:
        yield counts
    counts.update(flops=flops.get_total_flops(), ops=ops.count)


def counts_of(run: Callable[[int], object]) -> dict[str, int]:
    """FLOPs (matrix products, convolutions, attention; forward and backward) and computing ATen operations of one
    call of `run` (`counting`)."""
    with counting() as counts:
        run(0)
    return counts


class CudaPeak:
    """Context manager: `bytes` = the CUDA allocator's peak during the block above what was allocated at its start
    (None on the CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.bytes = device, None

    def __enter__(self) -> CudaPeak:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exception: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self.start


def peak_memory_bytes(run: Callable[[int], object], device: torch.device) -> int | None:
    """`CudaPeak` of one extra call of `run` on a GPU; None (and no call) on the CPU."""
    if device.type != "cuda":
        return None
    with CudaPeak(device) as peak:
        run(0)
    return peak.bytes


def alternate(
    runs: dict[str, Callable[[int], object]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Milliseconds of each run, one of each per repeat in turn, after `warmup` rounds of all (CPU time on CPU)."""
    for k in range(warmup):
        for run in runs.values():
            run(k)
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            times[label] += measure_ms(run, device, 0, 1, cpu_time=True)
    return times


def encoder_rows(args: argparse.Namespace, device: torch.device, rate: float) -> list[dict[str, Any]]:
    """Both structures of every selected attention part in every selected mode (`encoder_row`)."""
    rows = []
    encoders = build_encoders()
    for part in (p for p in ENCODER_PARTS if p in args.parts):
        batch, frames = (QUICK_SIZES if args.quick else SIZES)[part]
        batch, frames = args.batch or batch, args.frames or frames
        print(f"{part}: B={batch}, T={frames}", file=sys.stderr)
        bench = EncoderPart(part, encoders, batch, frames, device, args.precision, args.compile)
        for mode in args.modes:
            runs = {structure: bench.run(structure, mode) for structure in bench.modules}
            times = alternate(runs, device, args.warmup, args.repeats)
            counts = {structure: counts_of(runs[structure]) for structure in STRUCTURES}
            # the same products; the operations inside compiled code are not ATen calls, so no operation count
            counts[COMPILED] = {"flops": counts["sdpa"]["flops"], "ops": None}
            for structure, run in runs.items():
                rows.append(encoder_row(part, mode, structure, bench, times, counts[structure], run, device, rate))
    return rows


def encoder_row(
    part: str,
    mode: str,
    structure: str,
    bench: EncoderPart,
    times: dict[str, list[float]],
    counts: dict[str, int | None],
    run: Callable[[int], None],
    device: torch.device,
    rate: float,
) -> dict[str, Any]:
    """One report row of an encoder part: sizes, time summary, speed-up over the reference (original structure),
    FLOPs, floor, ATen operations, CUDA peak memory."""
    return {
        "part": part,
        "mode": mode,
        "structure": structure,
        "batch": bench.batch,
        "frames": bench.frames,
        "lengths": bench.lengths.tolist(),
        "input_shapes": bench.input_shapes(),
        **summary_ms(times[structure]),
        "ratio": statistics.median(times["reference"]) / statistics.median(times[structure]),
        "flops": counts["flops"],
        "floor_ms": 1e3 * counts["flops"] / rate,
        "ops": counts["ops"],
        "peak_memory_bytes": peak_memory_bytes(run, device),
    }


class CountingDecoder:
    """An `IncrementalDecoder` that counts its steps (decoder calls, one per search step)."""

    def __init__(self, decoder: Any) -> None:
        self.decoder, self.steps = decoder, 0

    def init_state(self, memory: torch.Tensor, memory_valid: torch.Tensor) -> Any:
        return self.decoder.init_state(memory, memory_valid)

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        self.steps += 1
        return self.decoder.step(tokens, state)


def decoding_rows(args: argparse.Namespace, device: torch.device, rate: float) -> list[dict[str, Any]]:
    """Batched beam search vs the per-utterance loop on one set of encoder outputs."""
    utterances = args.utterances or (QUICK_DECODING if args.quick else DECODING)["utterances"]
    shortest, longest = args.decode_frames or (QUICK_DECODING if args.quick else DECODING)["frames"]
    print(f"decoding: {utterances} utterances of {shortest}..{longest} frames, beam {args.beam}", file=sys.stderr)
    torch.manual_seed(0)
    recognizer = zoo.build(RECOGNIZER).to(device).eval()
    lengths = padded_lengths(utterances, longest, shortest).to(device)
    with torch.no_grad(), precision_autocast(device, args.precision):
        memory, valid = recognizer.encode(torch.randn(utterances, longest, 88, 88, device=device), lengths)
        log_probs = torch.log_softmax(recognizer.ctc_head(memory).float(), dim=-1)
    settings = dict(eos=recognizer.eos_id, blank=BLANK_ID, beam_size=args.beam, ctc_weight=args.ctc_weight)

    def batched(decoder: Any) -> list[list[int]]:
        with precision_autocast(device, args.precision):
            return beam_search(decoder, memory, valid, log_probs, **settings)

    frame_counts = lengths.tolist()

    def loop(decoder: Any) -> list[list[int]]:
        hypotheses = []
        with precision_autocast(device, args.precision):
            for index, length in enumerate(frame_counts):
                one = slice(index, index + 1)
                hypotheses += beam_search(
                    decoder, memory[one, :length], valid[one, :length], log_probs[one, :length], **settings
                )
        return hypotheses

    searches = {"batched": batched, "per-utterance loop": loop}
    # the first call of each (untimed, the warm-up: a loop run can take minutes) counts decoder steps, FLOPs, memory
    counted = {}
    for label, search in searches.items():
        counter = CountingDecoder(recognizer.decoder)
        with CudaPeak(device) as peak, counting() as counts:
            hypotheses = search(counter)
        counted[label] = {"steps": counter.steps, "hypotheses": hypotheses, **counts, "peak_memory_bytes": peak.bytes}
    runs = {label: (lambda _, search=search: search(recognizer.decoder)) for label, search in searches.items()}
    times = alternate(runs, device, 0, args.decode_repeats)
    batched_best, loop_best = counted["batched"]["hypotheses"], counted["per-utterance loop"]["hypotheses"]
    agree = sum(a == b for a, b in zip(batched_best, loop_best, strict=True))
    rows = []
    for label in searches:
        flops = counted[label]["flops"]
        rows.append(
            {
                "part": "decoding",
                "structure": label,
                "utterances": utterances,
                "lengths": lengths.tolist(),
                "beam": args.beam,
                "ctc_weight": args.ctc_weight,
                "decoder_steps": counted[label]["steps"],
                "hypothesis_lengths": [len(h) for h in counted[label]["hypotheses"]],
                "hypotheses_agreeing": agree,
                **summary_ms(times[label]),
                "ratio": statistics.median(times["per-utterance loop"]) / statistics.median(times[label]),
                "flops": flops,
                "floor_ms": 1e3 * flops / rate,
                "ops": counted[label]["ops"],
                "peak_memory_bytes": counted[label]["peak_memory_bytes"],
            }
        )
    return rows


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.0f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    env, settings = report["environment"], report["settings"]
    gemm = report["gemm"]
    lines = [
        f"# RAVEn benchmark: {env['device_name']} ({env['device']}), {env['date']}",
        "",
        f"Command: `{env['command']}` (jellyzoo {env['jellyzoo_commit']}).",
        f"Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}; CUDA {env['torch_cuda']}, "
        f"driver {env['driver'] or '-'}.",
        f"Settings: precision {settings['precision']}, {'quick sizes' if settings['quick'] else 'issue sizes'}; "
        f"warm-up {settings['warmup']}, median of {settings['repeats']} timed runs "
        f"({settings['decode_repeats']} for decoding), the two structures alternating; {env['cpu_threads']} CPU "
        f"threads, 1-minute load average {env['load_average_1min']:.1f} at the start"
        + ("; times are process CPU time." if env["device"] == "cpu" else "; times from CUDA events."),
        f"GEMM rate (n = {gemm['n']} matrix product, {settings['precision']}): "
        f"{gemm['flops_per_s'] / 1e9:.1f} GFLOP/s; floor = FLOPs of the run / GEMM rate. ops = ATen operations "
        "that compute (views and allocations left out): about the kernels an eager run launches on a GPU.",
        "",
        "## Relative-position attention: SDPA vs the original structure run eagerly",
        "",
        "training = forward + backward in train mode; inference = forward in eval mode without gradients. "
        "`ratio` = time of `reference` (the original structure) / time of the row, same part and mode: the speed-up "
        "over the original (above 1: faster than it).",
        "",
        "| part | mode | B x T (lengths) | structure | median ms | p10 - p90 ms | ratio | GFLOP | floor ms | ops "
        "| peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in report["results"] if r["part"] != "decoding"):
        lengths = row["lengths"]
        lines.append(
            f"| {row['part']} | {row['mode']} | {row['batch']} x {row['frames']} ({min(lengths)}..{max(lengths)}) "
            f"| {row['structure']} | {row['median_ms']:.1f} | {row['p10_ms']:.1f} - {row['p90_ms']:.1f} "
            f"| {row['ratio']:.2f}x | {row['flops'] / 1e9:.1f} | {row['floor_ms']:.1f} | {row['ops'] or '-'} "
            f"| {_megabytes(row['peak_memory_bytes'])} |"
        )
    decoding = [r for r in report["results"] if r["part"] == "decoding"]
    if decoding:
        first = decoding[0]
        lines += [
            "",
            f"## Beam search (beam {first['beam']}, CTC weight {first['ctc_weight']}, {first['utterances']} "
            f"utterances of {min(first['lengths'])}..{max(first['lengths'])} frames)",
            "",
            "`ratio` = time of the per-utterance loop (the original's structure) / time of the row: the speed-up over "
            "it. Decoder steps: calls of the decoder (one per search step; the loop sums its utterances' steps).",
            "",
            "| structure | median ms | p10 - p90 ms | ratio | decoder steps | hypothesis lengths | GFLOP | floor ms "
            "| ops | peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in decoding:
            lines.append(
                f"| {row['structure']} | {row['median_ms']:.1f} | {row['p10_ms']:.1f} - {row['p90_ms']:.1f} "
                f"| {row['ratio']:.2f}x | {row['decoder_steps']} | {', '.join(map(str, row['hypothesis_lengths']))} "
                f"| {row['flops'] / 1e9:.1f} | {row['floor_ms']:.1f} | {row['ops']} "
                f"| {_megabytes(row['peak_memory_bytes'])} |"
            )
        lines += [
            "",
            f"The two searches return the same best hypothesis for {first['hypotheses_agreeing']} of "
            f"{first['utterances']} utterances. Random weights: <eos> is seldom chosen, so hypotheses tend to run to "
            "the utterance's length (the search's limit).",
        ]
    return "\n".join(lines) + "\n"


def bar_chart(report: dict[str, Any], path: Path) -> None:
    """Median time of each part (and mode) in each structure, log scale, the speed-ups over the original above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    groups = list(dict.fromkeys((r["part"], r.get("mode", "")) for r in rows))
    figure, axis = plt.subplots(figsize=(max(5, 1.4 * len(groups)), 4))
    centres = []
    for g, group in enumerate(groups):
        pair = [r for r in rows if (r["part"], r.get("mode", "")) == group]
        width = 0.8 / len(pair)
        centres.append(g + 0.4 - width / 2)
        for s, row in enumerate(pair):
            axis.bar(g + width * s, row["median_ms"], width, color=f"C{s}")
            axis.text(g + width * s, row["median_ms"], row["structure"], rotation=90, ha="center", va="bottom", size=7)
        ratios = ", ".join(
            f"{r['ratio']:.2f}x" for r in pair if r["structure"] not in ("reference", "per-utterance loop")
        )
        axis.text(centres[-1], max(r["median_ms"] for r in pair) * 3, ratios, ha="center", size=8)
    axis.set_xticks(centres)
    axis.set_xticklabels([f"{part}\n{mode}" for part, mode in groups], fontsize=8)
    axis.set_yscale("log")
    axis.set_ylim(top=max(r["median_ms"] for r in rows) * 20)
    axis.set_ylabel("median time (ms)")
    env, settings = report["environment"], report["settings"]
    sizes = "quick sizes" if settings["quick"] else "issue sizes"
    axis.set_title(
        f"{env['device_name']} ({env['device']}), {settings['precision']}, {sizes}; above the bars: speed-up over "
        "the original structure",
        size=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None, help="default: bf16 on cuda, else fp32")
    parser.add_argument("--quick", action="store_true", help="small CPU sizes (module docstring)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="of the attention parts")
    parser.add_argument("--batch", type=int, default=None, help="B of the attention parts")
    parser.add_argument("--frames", type=int, default=None, help="T of the attention parts")
    parser.add_argument("--utterances", type=int, default=None, help="utterances decoded (default 32; 4 quick)")
    parser.add_argument(
        "--decode-frames",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="utterance lengths (default 100 150; 12 20 quick)",
    )
    parser.add_argument("--compile", action="store_true", help=f"add the {COMPILED} structure (torch.compile)")
    parser.add_argument("--beam", type=int, default=40)
    parser.add_argument("--ctc-weight", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 2; 1 with --quick)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs of the attention parts (default 20 cuda, 5 cpu)"
    )
    parser.add_argument("--decode-repeats", type=int, default=3, help="timed decoding runs")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch sees no CUDA device")
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.repeats = args.repeats or (20 if device.type == "cuda" else 5)
    if args.warmup < 0 or args.repeats < 1 or args.decode_repeats < 1:
        parser.error("--warmup must be >= 0, --repeats and --decode-repeats >= 1")
    if args.compile and args.warmup < 1:
        parser.error("--compile needs --warmup >= 1 (the first call compiles)")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)

    report: dict[str, Any] = {
        "environment": environment(device),
        "settings": {
            "parts": args.parts,
            "modes": args.modes,
            "compile": args.compile,
            "precision": args.precision,
            "quick": args.quick,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "decode_repeats": args.decode_repeats,
        },
    }
    report["gemm"] = gemm_rate(device, args.precision, max(1, args.warmup), max(3, args.repeats))
    rate = report["gemm"]["flops_per_s"]
    report["results"] = encoder_rows(args, device, rate)
    if "decoding" in args.parts:
        report["results"] += decoding_rows(args, device, rate)
    write_report(report, args.out, result_stem("raven", device, args.quick), markdown, bar_chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
