"""Test-only registrations for the engine tests: a tiny model, a tiny on-disk dataset and a recipe using them.

Loaded with ``zoo.train.load_plugin(<this file>)`` in-process and with ``--plugin <this file>`` by the CLI and
torchrun child processes, so both see the same registrations. Nothing here depends on a model family.

Data format (written by `write_blobs`): ``<root>/<split>.pt`` holding ``{"inputs": [N, 8] float32,
"targets": [N] int64}``: three Gaussian blobs, one per class.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

import zoo
from zoo.datasets import register_dataset
from zoo.layers.spike_record import SpikeRecord
from zoo.train import Recipe, register_recipe, register_step_hook

MODEL = "test-engine-mlp"
OTHER_MODEL = "test-engine-linear"
DATASET = "test-engine-blobs"
RECIPE = "test-engine-tiny"
FEATURES = 8
CLASSES = 3


class TinyMLP(nn.Module):
    """Linear -> (BatchNorm) -> ReLU * leak -> (dropout) -> Linear, with a clamped `leak` and one firing-rate
    recorder."""

    def __init__(self, hidden: int, dropout: float, norm: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(FEATURES, hidden)
        self.norm = nn.BatchNorm1d(hidden) if norm else nn.Identity()
        self.leak = nn.Parameter(torch.full((hidden,), 0.9))
        self.dropout = nn.Dropout(dropout)
        self.rate = SpikeRecord(spikes=False)
        self.head = nn.Linear(hidden, CLASSES)
        self.clamp_calls = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.norm(self.encoder(inputs))) * self.leak
        return self.head(self.dropout(self.rate(hidden)))

    def clamp_parameters(self) -> None:
        self.leak.clamp_(0.0, 1.0)
        self.clamp_calls += 1


@zoo.register_model(
    MODEL,
    family="test",
    paper="(engine tests)",
    citation="@misc{jellyzoo-engine-tests, note = {test-only model}}",
    inputs={"inputs": zoo.TensorSpec(("B", FEATURES), {"B": "batch"})},
    outputs={"logits": zoo.TensorSpec(("B", CLASSES), {"B": "batch"})},
)
def tiny_mlp(hidden: int = 16, dropout: float = 0.0, norm: bool = False) -> nn.Module:
    """`norm`: a BatchNorm1d after the first layer (a model with an integer buffer, ``num_batches_tracked``)."""
    return TinyMLP(hidden, dropout, norm)


@zoo.register_model(
    OTHER_MODEL,
    family="test",
    paper="(engine tests)",
    citation="@misc{jellyzoo-engine-tests, note = {test-only model}}",
    inputs={"input": zoo.TensorSpec(("B", FEATURES), {"B": "batch"})},
    outputs={"logits": zoo.TensorSpec(("B", CLASSES), {"B": "batch"})},
)
def linear(bias: bool = True) -> nn.Module:
    """A model without `clamp_parameters` or a `SpikeRecord` (the engine's hooks are optional)."""
    return nn.Linear(FEATURES, CLASSES, bias=bias)


def write_blobs(root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """Write ``<root>/<split>.pt`` for each split with the given number of samples; returns `root`."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, FEATURES, generator=generator) * 2.0
    root.mkdir(parents=True, exist_ok=True)
    for split, size in sizes.items():
        targets = torch.arange(size) % CLASSES
        inputs = centres[targets] + torch.randn(size, FEATURES, generator=generator)
        torch.save({"inputs": inputs, "targets": targets}, root / f"{split}.pt")
    return root


class _Blobs(torch.utils.data.TensorDataset):
    """`TensorDataset` whose item `broken_index` fails to load, as a corrupt file would."""

    def __init__(
        self, inputs: torch.Tensor, targets: torch.Tensor, path: Path, broken_index: int | None, delay_s: float
    ) -> None:
        super().__init__(inputs, targets)
        self.path, self.broken_index, self.delay_s = path, broken_index, delay_s

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index == self.broken_index:
            raise ValueError(f"{self.path}: sample {index} is corrupt")
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().__getitem__(index)


@register_dataset(DATASET)
def blobs(
    root: str | Path,
    split: str = "train",
    *,
    scale: float = 1.0,
    broken_index: int | None = None,
    delay_s: float = 0.0,
) -> torch.utils.data.Dataset:
    """The `write_blobs` file of `split`.

    Args:
        scale: factor on the inputs.
        broken_index: index of a sample that raises ValueError when read (tests of mid-epoch data errors).
        delay_s: seconds every item takes to load (a slow data pipeline).
    """
    path = Path(root) / f"{split}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}")
    tensors = torch.load(path, weights_only=True)
    return _Blobs(tensors["inputs"] * scale, tensors["targets"], path, broken_index, delay_s)


@register_step_hook("test-record")
def record_steps(model: nn.Module, step: int, total_steps: int) -> None:
    """Append ``(step, total_steps)`` to ``model.hook_calls``."""
    model.hook_calls = [*getattr(model, "hook_calls", []), (step, total_steps)]


@register_step_hook("test-pause")
def pause(model: nn.Module, step: int, total_steps: int) -> None:
    """At step ``$TINY_PAUSE_AT_STEP``: create the file ``$TINY_PAUSE_MARKER`` and wait (up to 60 s) until someone
    deletes it, so that a test can send a signal at a known step. Without the variables, nothing."""
    marker = os.environ.get("TINY_PAUSE_MARKER")
    if marker is None or step != int(os.environ["TINY_PAUSE_AT_STEP"]):
        return
    path = Path(marker)
    path.touch()
    deadline = time.monotonic() + 60.0
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


register_recipe(
    Recipe(
        name=RECIPE,
        model=MODEL,
        dataset=DATASET,
        optimizer="adamw",
        lr=0.02,
        weight_decay=0.01,
        no_weight_decay=("bias", "leak"),
        schedule="cosine",
        warmup_epochs=0.5,
        min_lr=0.001,
        epochs=3,
        batch_size=16,
        grad_clip=1.0,
        amp=False,
        metrics=("accuracy",),
        selection_metric="accuracy",
        description="engine test: tiny MLP on Gaussian blobs",
    )
)
