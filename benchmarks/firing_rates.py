"""Firing-rate, synaptic-operation and energy reports of registered models, NeuroBench-compatible.

Usage:
    python -m benchmarks.firing_rates [--models 'spikgru*' ...] [--set hidden_size=256 ...] [--quick]
        [--checkpoint PATH [--data ROOT [--split test] [--recipe NAME] [--max-batches N]]]
        [--batch-size N] [--energy fp32|fp16|int8] [--raster-neurons K] [--device cpu|cuda] [--out DIR]

Input, stated in every report:
- ``--checkpoint PATH --data ROOT``: a ``zoo.train`` checkpoint (or a converted original checkpoint with ``--recipe``)
  evaluated on the recipe's dataset under ROOT (``--split``, at most ``--max-batches`` batches);
- otherwise a generated input: standard-normal draws of every required input at the paper's sizes (``--quick``: at
  most 2 samples, 16 steps, 32 pixels a side, one second of audio), seed 0, through the checkpoint's weights when
  one is given, else through the freshly initialised model. Rates of a generated input describe that network on
  noise, not on data.

For every model (in eval mode, `record_detail` on, `zoo.analysis.synops.SynapticOperationCounter` attached):
- per spiking layer (every `SpikeRecord`): mean |s| (or density), the + and - rates of signed spikes, the per-step
  profile, the per-neuron distribution (silent and saturated fractions, quantiles, histogram) and the neuron count;
- per connection (every Linear/Conv/recurrent module and every functional projection): effective ACs (input in
  {-1, 0, +1}), effective MACs (other inputs) and dense operations per sample, and whether NeuroBench sees it;
- an energy estimate (45 nm constants of `zoo.analysis.energy`, fp32/fp16/int8 presets), labelled as an estimate;
- a NeuroBench 2.3-compatible summary (`zoo.analysis.neurobench`) and by how much NeuroBench's harness undercounts;
- the seed papers' published numbers beside ours where they exist (with their sources);
- one PNG (rate per layer with the signed split, rate over time, a raster, operations per connection) and a Markdown
  page embedding it. Files: ``firing_rates_<device>_<date>[_quick]/<model>.{json,md,png}`` and ``index.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

import zoo
from benchmarks.measurement import environment, result_stem
from benchmarks.models import batch_of, make_inputs
from zoo.analysis.activity import ActivityAccumulator, LayerActivity
from zoo.analysis.energy import ENERGY_PRESETS, estimate_energy
from zoo.analysis.neurobench import (
    activation_sparsity,
    connection_sparsity,
    footprint_bytes,
    parameter_count,
    synaptic_operations,
    undercount,
)
from zoo.analysis.synops import ConnectionOps, SynapticOperationCounter
from zoo.layers.spike_record import record_detail, spike_details
from zoo.options import check_options
from zoo.registry import get_entry
from zoo.train.loop import run_model
from zoo.weights import Checkpoint, read_checkpoint

STEREOSPIKE_SOURCE = "Rançon et al. 2021, StereoSpike, arXiv 2109.13751 v2, Fig. 4 and Sec. 4"
SPIKGRU_SOURCE = "Dampfhoffer & Mesquida, CVPRW 2024, abstract"
SPARCH_SOURCE = "idiap/sparch code defaults of its rate regulariser, f_min / f_max (design note sparch.md 1.7)"
QUICK_LIMITS = {"B": 2, "T": 16, "N": 16000}
"""--quick caps of the generated input: longer than the timing benchmark's (inference only, and neurons with slow
membranes need several steps to fire); images as `benchmarks.models` (at most 32 pixels a side)."""
MAX_LABELLED_CONNECTIONS = 48
"""Above this many connections the operations plot drops its tick labels (the Markdown table names them)."""
PUBLISHED_MODELS = {"stereospike": "stereospike", "spikgru": "spikgru2plus"}
"""The model whose published numbers a family's paper reports (sparch's band applies to every spiking sparch model)."""


# ----------------------------------------------------------------------------------------------------------------------
# Inputs


def generated_batches(name: str, batch: int | None, quick: bool, device: torch.device) -> Iterator[dict[str, Any]]:
    """One batch of generated inputs (see the module docstring)."""
    yield make_inputs(name, batch, quick, device, limits=QUICK_LIMITS)


def dataset_batches(
    checkpoint: Checkpoint | None,
    recipe_name: str | None,
    root: Path,
    split: str,
    batch_size: int | None,
    max_batches: int,
    device: torch.device,
) -> Iterator[Any]:
    """Up to `max_batches` input batches of the recipe's dataset (the checkpoint's recipe, or `recipe_name`)."""
    from zoo.train.data import build_dataset
    from zoo.train.recipe import Recipe, get_recipe

    if recipe_name is not None:
        recipe = get_recipe(recipe_name)
    elif checkpoint is not None and checkpoint.recipe is not None:
        recipe = Recipe.from_dict(checkpoint.recipe)
    else:
        raise SystemExit("--data needs a recipe: the checkpoint records none, so give --recipe NAME")
    dataset = build_dataset(recipe, root, split)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size or recipe.eval_batch_size or recipe.batch_size,
        shuffle=False,
        collate_fn=getattr(dataset, "collate_fn", None),
    )
    for index, (inputs, _target) in enumerate(loader):
        if index >= max_batches:
            break
        yield _to(inputs, device)


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(item, device) for item in value)
    if isinstance(value, dict):
        return {key: _to(item, device) for key, item in value.items()}
    return value


def _samples(inputs: Any) -> int:
    if isinstance(inputs, dict):
        return batch_of(inputs)
    return inputs.shape[0] if isinstance(inputs, torch.Tensor) else _samples(inputs[0])


def _shapes(inputs: Any) -> str:
    if isinstance(inputs, dict):
        return ", ".join(f"{key} {'x'.join(map(str, value.shape))}" for key, value in inputs.items())
    if isinstance(inputs, torch.Tensor):
        return "x".join(map(str, inputs.shape))
    return ", ".join(_shapes(item) for item in inputs)


# ----------------------------------------------------------------------------------------------------------------------
# Measurement


def analyse(model: nn.Module, batches: Iterator[Any], raster_neurons: int) -> dict[str, Any]:
    """Run `batches` through `model` (eval, no grad) with detail recording and op counting; collect the results."""
    model.eval()
    activity = ActivityAccumulator(model)
    samples, shapes = 0, None
    with (
        torch.no_grad(),
        record_detail(model, raster_neurons=raster_neurons),
        SynapticOperationCounter(model) as counter,
    ):
        for inputs in batches:
            run_model(model, inputs)
            activity.add(spike_details(model))
            samples += _samples(inputs)
            shapes = shapes or _shapes(inputs)
    if not samples:
        raise ValueError("no input batch was run")
    return {
        "layers": activity.layers(),
        "connections": counter.connections(samples),
        "samples": samples,
        "shapes": shapes,
    }


def model_report(name: str, model: nn.Module, measured: dict[str, Any], energy_preset: str) -> dict[str, Any]:
    """The JSON report of one model from `analyse`'s results."""
    layers: list[LayerActivity] = measured["layers"]
    connections: list[ConnectionOps] = measured["connections"]
    everything = synaptic_operations(connections, "all")
    seen = synaptic_operations(connections, "neurobench")
    summary = {
        "ParameterCount": parameter_count(model),
        "Footprint": footprint_bytes(model),
        "ConnectionSparsity": connection_sparsity(model),
        "ActivationSparsity": activation_sparsity(layers) if layers else None,
        "SynapticOperations": seen,
    }
    energies = {
        preset: estimate_energy(everything["Effective_ACs"], everything["Effective_MACs"], everything["Dense"], preset)
        for preset in ENERGY_PRESETS
    }
    spiking = [layer for layer in layers if layer.spikes]
    return {
        "model": name,
        "family": get_entry(name).family,
        "samples": measured["samples"],
        "layers": [layer.to_dict() for layer in layers],
        "mean_rate_spiking_layers": statistics.fmean(layer.rate for layer in spiking) if spiking else None,
        "connections": [connection.to_dict() for connection in connections],
        "synaptic_operations_all": everything,
        "neurobench": summary,
        "neurobench_undercount": undercount(connections),
        "energy_estimate_pj": {
            preset: {
                "effective": estimate.effective_pj,
                "dense_as_macs": estimate.dense_pj,
                "acs": estimate.acs_pj,
                "macs": estimate.macs_pj,
                "constants_pj": {"mac": ENERGY_PRESETS[preset].mac_pj, "ac": ENERGY_PRESETS[preset].ac_pj},
            }
            for preset, estimate in energies.items()
        },
        "energy_preset": energy_preset,
        "published": published_comparison(name, get_entry(name).family, layers, everything),
    }


def _density(layer: LayerActivity) -> float:
    return layer.nonzero / (layer.neurons * layer.steps)


def published_comparison(
    name: str, family: str, layers: list[LayerActivity], ops: dict[str, float]
) -> list[dict[str, Any]]:
    """The seed papers' published numbers for model `name` beside ours (empty where a paper publishes none)."""
    rows = []
    if PUBLISHED_MODELS.get(family, name) != name:
        return rows
    effective = ops["Effective_ACs"] + ops["Effective_MACs"]
    if family == "stereospike" and layers:
        encoder = [_density(layer) for layer in layers if "encoder" in layer.name]
        decoder = [_density(layer) for layer in layers if "decoder" in layer.name]
        rows.append(
            {
                "quantity": f"mean tensor density over the activation tensors (ours: all {len(layers)} records)",
                "published": "17.8 % (no spike penalty) ... 5.4 % (penalty weight 10); < 10 % claimed with penalty",
                "ours": 100 * statistics.fmean(_density(layer) for layer in layers),
                "unit": "%",
                "source": STEREOSPIKE_SOURCE + "; Fig. 4 values are readings of the plot",
            }
        )
        if encoder and decoder:
            rows.append(
                {
                    "quantity": "encoder / decoder conv layers, mean density (unconstrained model)",
                    "published": "8.1 % / 23.5 %",
                    "ours": f"{100 * statistics.fmean(encoder):.1f} % / {100 * statistics.fmean(decoder):.1f} %",
                    "unit": "",
                    "source": STEREOSPIKE_SOURCE,
                }
            )
    elif family == "spikgru" and effective:
        rows.append(
            {
                "quantity": "operations of the ANN over those of the SNN (dense / effective synaptic operations)",
                "published": "up to 22x with spike-loss (sparsity) fine-tuning, accuracy kept high",
                "ours": ops["Dense"] / effective,
                "unit": "x",
                "source": SPIKGRU_SOURCE + " (per-layer rates are not published)",
            }
        )
    elif family == "sparch" and any(layer.spikes for layer in layers):
        hidden = [layer for layer in layers if layer.spikes]
        rates = torch.cat([layer.neuron_rates for layer in hidden])
        inside = float(((rates >= 0.01) & (rates <= 0.5)).double().mean())
        rows.append(
            {
                "quantity": "hidden neurons within sparch's regulariser band [0.01, 0.5] spikes per step",
                "published": "band of the optional rate regulariser (no firing rates are published)",
                "ours": 100 * inside,
                "unit": "%",
                "source": SPARCH_SOURCE,
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------------------------------
# Output


def plot(report: dict[str, Any], layers: list[LayerActivity], raster_layer: str | None, path: Path) -> None:
    """Four panels: rate per layer (signed split), rate over time, raster of one layer, operations per connection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 8))
    if not layers:
        for ax in (axes[0][0], axes[0][1], axes[1][0]):
            ax.text(0.5, 0.5, "no spiking layer (SpikeRecord) in this model", ha="center", va="center")
            ax.set_axis_off()
    names = [layer.name for layer in layers]
    ticks = range(len(layers))
    ax = axes[0][0]
    ax.bar(ticks, [layer.positive_rate for layer in layers], color="tab:blue", label="+ spikes / activity")
    ax.bar(
        ticks,
        [layer.negative_rate for layer in layers],
        bottom=[layer.positive_rate for layer in layers],
        color="tab:red",
        label="- spikes",
    )
    ax.set_xticks(list(ticks))
    ax.set_xticklabels(names, rotation=75, ha="right", fontsize=6)
    ax.set_ylabel("rate (mean |s| or density)")
    ax.set_title("rate per layer")
    ax.legend(fontsize=7)

    ax = axes[0][1]
    for layer in layers:
        ax.plot(range(len(layer.step_rates)), layer.step_rates, linewidth=0.8, alpha=0.7)
    ax.set_xlabel("time step")
    ax.set_ylabel("rate")
    ax.set_title(f"rate over time ({len(layers)} layers)")

    ax = axes[1][0]
    chosen = next((layer for layer in layers if layer.name == raster_layer), None) if raster_layer else None
    chosen = chosen or next((layer for layer in layers if layer.spikes), layers[0] if layers else None)
    if chosen is not None:
        raster = chosen.raster
        for k in range(raster.shape[1]):
            for sign, color in ((1, "tab:blue"), (-1, "tab:red")):
                steps = (torch.sign(raster[:, k]) == sign).nonzero().flatten().tolist()
                ax.scatter(steps, [k] * len(steps), s=6, color=color, marker="|")
        ax.set_xlim(-0.5, raster.shape[0] - 0.5)
        ax.set_ylim(-0.5, raster.shape[1] - 0.5)
        ax.set_title(f"raster: {chosen.name}, sample 0, {raster.shape[1]} neurons (red: -1)", fontsize=8)
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")

    ax = axes[1][1]
    connections = report["connections"]
    xs = range(len(connections))
    ax.bar(xs, [max(c["dense"], 1e-9) for c in connections], color="lightgray", label="dense")
    ax.bar(xs, [max(c["effective_acs"], 1e-9) for c in connections], color="tab:green", label="effective ACs")
    ax.bar(
        xs,
        [max(c["effective_macs"], 1e-9) for c in connections],
        bottom=[c["effective_acs"] for c in connections],
        color="tab:orange",
        label="effective MACs",
    )
    ax.set_yscale("log")
    ax.set_ylim(bottom=1)
    if len(connections) <= MAX_LABELLED_CONNECTIONS:
        ax.set_xticks(list(xs))
        labels = [c["name"] + ("" if c["neurobench_visible"] else " *") for c in connections]
        ax.set_xticklabels(labels, rotation=75, ha="right", fontsize=6)
    else:
        ax.set_xlabel(f"{len(connections)} connections in forward order (names in the Markdown table)")
    ax.set_ylabel("operations per sample")
    ax.set_title("synaptic operations per connection (* = not seen by NeuroBench)")
    ax.legend(fontsize=7)
    figure.suptitle(f"{report['model']}: {report['input']['kind']} input ({report['input']['shapes']})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=64)
    plt.close(figure)


def _number(value: float) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def markdown(report: dict[str, Any], png_name: str) -> str:
    """One model's report as a Markdown page embedding its plot."""
    nb, ops, under = report["neurobench"], report["synaptic_operations_all"], report["neurobench_undercount"]
    seen = nb["SynapticOperations"]
    energy = report["energy_estimate_pj"][report["energy_preset"]]
    lines = [
        f"# Firing rates and synaptic operations: {report['model']}",
        "",
        f"Input: **{report['input']['kind']}**: {report['input']['description']} ({report['input']['shapes']}; "
        f"{report['samples']} samples). Weights: {report['input']['weights']}.",
        f"Command: `{report['environment']['command']}`; {report['environment']['device_name']} "
        f"({report['environment']['device']}), {report['environment']['date']}, jellyzoo "
        f"{report['environment']['jellyzoo_commit']}.",
        "",
        f"![{report['model']}]({png_name})",
        "",
        "## NeuroBench-compatible summary (NeuroBench 2.3 definitions)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| ParameterCount | {nb['ParameterCount']:,} |",
        f"| Footprint (bytes) | {nb['Footprint']:,} |",
        f"| ConnectionSparsity | {nb['ConnectionSparsity']} |",
        f"| ActivationSparsity | {_number(nb['ActivationSparsity'])} |",
        f"| SynapticOperations (what NeuroBench counts) | Effective_MACs {_number(seen['Effective_MACs'])}, "
        f"Effective_ACs {_number(seen['Effective_ACs'])}, Dense {_number(seen['Dense'])} |",
        f"| SynapticOperations (every connection) | Effective_MACs {_number(ops['Effective_MACs'])}, "
        f"Effective_ACs {_number(ops['Effective_ACs'])}, Dense {_number(ops['Dense'])} |",
        f"| NeuroBench undercount | {100 * under['effective']:.1f} % of effective, {100 * under['dense']:.1f} % of "
        f"dense operations ({', '.join(under['unseen_connections']) or 'none unseen'}) |",
        "",
        f"Energy **estimate** ({report['energy_preset']}, 45 nm, Horowitz 2014: E_MAC "
        f"{energy['constants_pj']['mac']} pJ, E_AC {energy['constants_pj']['ac']} pJ; synaptic operations only, no "
        f"memory or neuron updates): {energy['effective'] / 1e6:.4g} uJ per sample effective "
        f"(ACs {energy['acs'] / 1e6:.4g} + MACs {energy['macs'] / 1e6:.4g}), {energy['dense_as_macs'] / 1e6:.4g} uJ if "
        "every dense operation were a MAC. Other presets:",
        "",
    ]
    for preset, values in report["energy_estimate_pj"].items():
        lines.append(
            f"- {preset}: {values['effective'] / 1e6:.4g} uJ effective, {values['dense_as_macs'] / 1e6:.4g} uJ dense"
        )
    if report["published"]:
        lines += [
            "",
            "## Published numbers beside ours",
            "",
            "| quantity | published | ours | source |",
            "|---|---|---|---|",
        ]
        for row in report["published"]:
            ours = row["ours"] if isinstance(row["ours"], str) else f"{row['ours']:.3g} {row['unit']}"
            lines.append(f"| {row['quantity']} | {row['published']} | {ours} | {row['source']} |")
        lines.append("")
        lines.append(f"(Ours: {report['input']['kind']} input; published numbers are for trained networks on data.)")
    lines += [
        "",
        "## Spiking layers",
        "",
        "| layer | measure | neurons | rate | + | - | silent | saturated | p10 / p50 / p90 neuron rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in report["layers"]:
        q = layer["neuron_rate_quantiles"]
        saturated = "-" if layer["saturated_fraction"] is None else f"{layer['saturated_fraction']:.3f}"
        lines.append(
            f"| {layer['name']} | {layer['measure']}{'' if layer['spikes'] else ' (real)'} | {layer['neurons']:,} "
            f"| {layer['rate']:.4f} | {layer['positive_rate']:.4f} | {layer['negative_rate']:.4f} "
            f"| {layer['silent_fraction']:.3f} | {saturated} | {q.get('p10', 0):.3f} / {q.get('p50', 0):.3f} / "
            f"{q.get('p90', 0):.3f} |"
        )
    lines += [
        "",
        "## Connections (per sample)",
        "",
        "| connection | kind | input | calls | effective ACs | effective MACs | dense | NeuroBench sees it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in report["connections"]:
        lines.append(
            f"| {c['name']} | {c['kind']} | {c['input_kind']} | {c['calls']} | {_number(c['effective_acs'])} "
            f"| {_number(c['effective_macs'])} | {_number(c['dense'])} | {'yes' if c['neurobench_visible'] else 'no'} |"
        )
    lines += [
        "",
        "How to read it: a rate is the mean |s| per neuron and step (a -1 spike counts as one event; `density` layers "
        "count non-zero sites of integer spike sums). Effective operations count (input, weight) pairs that are both "
        "non-zero: ACs when the input holds only -1/0/+1, MACs otherwise; dense counts every pair. NeuroBench hooks "
        "modules only, so products made inside a module's own code (functional projections, fused recurrences) or by "
        "`nn.GRU`/`nn.LSTM` (its harness raises on them) are missing from its totals; the undercount row says how "
        "much.",
    ]
    return "\n".join(lines) + "\n"


def index_markdown(reports: list[dict[str, Any]], failures: dict[str, str], env: dict[str, Any]) -> str:
    """Summary of every model of the run, linking each page."""
    lines = [
        f"# Firing-rate reports: {env['device_name']} ({env['device']}), {env['date']}",
        "",
        f"Command: `{env['command']}` (jellyzoo {env['jellyzoo_commit']}).",
        "",
        "| model | input | mean rate (spiking layers) | activation sparsity | eff. ACs | eff. MACs | dense "
        "| NeuroBench undercount (effective) | energy estimate fp32 (uJ) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        ops = report["synaptic_operations_all"]
        rate = report["mean_rate_spiking_layers"]
        sparsity = report["neurobench"]["ActivationSparsity"]
        lines.append(
            f"| [{report['model']}]({report['model']}.md) | {report['input']['kind']} | "
            f"{'-' if rate is None else f'{rate:.4f}'} | {'-' if sparsity is None else f'{sparsity:.4f}'} "
            f"| {_number(ops['Effective_ACs'])} | {_number(ops['Effective_MACs'])} | {_number(ops['Dense'])} "
            f"| {100 * report['neurobench_undercount']['effective']:.1f} % "
            f"| {report['energy_estimate_pj']['fp32']['effective'] / 1e6:.4g} |"
        )
    for name, error in failures.items():
        lines.append(f"| {name} | failed: {error[:200]} ||||||||")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def _overrides(name: str, words: list[str]) -> dict[str, Any]:
    pairs = {}
    for word in words:
        key, separator, value = word.partition("=")
        if not separator:
            raise SystemExit(f"--set expects key=value, got {word!r}")
        pairs[key] = value
    return check_options(pairs, get_entry(name).config_types, owner=name, parse=True)


def report_model(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Build, measure and describe one model."""
    checkpoint = read_checkpoint(args.checkpoint) if args.checkpoint else None
    overrides = {**(checkpoint.model_config if checkpoint else {}), **_overrides(name, args.set)}
    torch.manual_seed(args.seed)
    model = zoo.build(name, checkpoint=checkpoint, **overrides).to(device)
    if args.data:
        batches = dataset_batches(
            checkpoint, args.recipe, args.data, args.split, args.batch_size, args.max_batches, device
        )
        kind, description = "dataset", f"split {args.split!r} under {args.data} (first {args.max_batches} batches)"
    else:
        batches = generated_batches(name, args.batch_size, args.quick, device)
        kind = "generated"
        sizes = "small (--quick) sizes" if args.quick else "the paper's sizes"
        description = f"standard-normal draws of every required input at {sizes}, seed 0"
    measured = analyse(model, batches, args.raster_neurons)
    report = model_report(name, model, measured, args.energy)
    report["input"] = {
        "kind": kind,
        "description": description,
        "shapes": measured["shapes"],
        "weights": f"checkpoint {args.checkpoint}"
        if args.checkpoint
        else f"freshly initialised (seed {args.seed}; untrained)",
    }
    report["config_overrides"] = {key: repr(value) for key, value in overrides.items()}
    report["_layers"] = measured["layers"]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=None, help="registry patterns (default: all, or the checkpoint's)"
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="builder options")
    parser.add_argument("--checkpoint", type=Path, default=None, help="zoo.train checkpoint or export folder")
    parser.add_argument("--data", type=Path, default=None, help="dataset root (with --checkpoint or --recipe)")
    parser.add_argument("--recipe", default=None, help="recipe naming the dataset when the checkpoint records none")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the recipe's, or the generated input's")
    parser.add_argument("--quick", action="store_true", help="small generated inputs (as benchmarks.models --quick)")
    parser.add_argument("--energy", choices=sorted(ENERGY_PRESETS), default="fp32")
    parser.add_argument("--raster-neurons", type=int, default=16)
    parser.add_argument("--raster-layer", default=None, help="record name for the raster (default: first spiking)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch sees no CUDA device")
    if args.data is not None and args.checkpoint is None and args.recipe is None:
        parser.error("--data needs --checkpoint (and --recipe when the checkpoint records no recipe) or --recipe")
    device = torch.device(args.device)
    if args.checkpoint is not None:
        saved = read_checkpoint(args.checkpoint)
        if saved.model is None and not args.models:
            parser.error("the checkpoint records no model name: give --models NAME")
        names = [saved.model] if saved.model else sorted({n for p in args.models for n in zoo.list_models(p)})
        if len(names) != 1:
            parser.error(f"--checkpoint takes exactly one model, got {names}")
    else:
        names = sorted({n for p in (args.models or ["*"]) for n in zoo.list_models(p)})
    if not names:
        parser.error(f"no registered model matches {args.models}")
    if args.set and len(names) != 1:
        parser.error("--set applies to one model: select exactly one with --models")

    env = environment(device)
    stem = result_stem("firing_rates", device, args.quick)
    folder = args.out / stem
    folder.mkdir(parents=True, exist_ok=True)
    reports, failures = [], {}
    progress = tqdm(names, desc="firing rates", unit="model", file=sys.stderr)
    for name in progress:
        progress.set_postfix_str(name)
        try:
            report = report_model(name, args, device)
        except Exception as error:  # a report records the failure and the run continues with the next model
            failures[name] = f"{type(error).__name__}: {error}"
            print(f"{name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            continue
        layers = report.pop("_layers")
        report["environment"] = env
        (folder / f"{name}.json").write_text(json.dumps(_finite(report), indent=1) + "\n")
        plot(report, layers, args.raster_layer, folder / f"{name}.png")
        (folder / f"{name}.md").write_text(markdown(report, f"{name}.png"))
        reports.append(report)
    (folder / "index.md").write_text(index_markdown(reports, failures, env))
    print(index_markdown(reports, failures, env))
    print(f"wrote {folder}/", file=sys.stderr)
    return 1 if failures else 0


def _finite(value: Any) -> Any:
    """`value` with non-finite floats replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


if __name__ == "__main__":
    raise SystemExit(main())
