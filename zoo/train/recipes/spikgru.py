"""SpikGRU on DVS-Lip (Dampfhoffer & Mesquida, CVPRW 2024): the paper's two-stage recipe, its dataset and loss.

==================================  =====================================================================
recipe                              setting (``main.py`` of manondampfhoffer/SpikGRU-DVSLip, design note 3)
==================================  =====================================================================
``spikgru2plus-dvslip``             stage 1: Adam, lr 3e-4 constant after a 1-epoch linear warm-up, weight
                                    decay 1e-4 except BatchNorm, batch 32, T = 90, augS + augT, 100 epochs
``spikgru2plus-dvslip-finetune``    stage 2: from stage 1's weights (``init_checkpoint=...``), 100 epochs,
                                    lr 1e-4 cosine to 5e-6 (per epoch, after the warm-up epoch), spike
                                    loss ``loss.actreg=5``
``lipreading-ann-dvslip``           the ANN baseline (``-a``): lr 3e-4 cosine to 5e-6 in one 100-epoch run
==================================  =====================================================================

Every SpikGRU model trains with these recipes via ``--model`` (spikgru2, spikgru, spikgruplus,
spikgru2plus-ternary, spikgru-fc, spikgru-hybridann). The engine calls the model's ``clamp_parameters()`` after
every optimiser step (leaks clamped to [0, 1], as the original) and logs ``zoo.firing_rates(model)``.

Where the recipes differ from the original, and why:

- Model selection uses a seeded 10 % of ``train/`` held out as validation (``DVSLip(validation="heldout")``);
  the original selects on the test set. The paper's protocol: ``val_split=test data.validation=test``.
- The original steps ``CosineAnnealingLR(T_max=100)`` once per epoch after the warm-up epoch; the engine's
  per-epoch cosine spans epochs 1..100 instead, so the two learning rates differ by under 1 % of the range.
- Float32 as the original (``amp=False``): spikes sit on exact thresholds (IF pooling), bf16 would move them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.spike_record import PenaltyWeighting, spike_penalty
from zoo.train.recipe import Recipe, register_recipe
from zoo.train.registries import logits_of, register_loss

__all__ = ["SPIKGRU_DVSLIP", "spikgru_loss"]


@register_loss("spikgru")
def spikgru_loss(
    output: Any,
    target: torch.Tensor,
    model: nn.Module,
    actreg: float = 0.0,
    weighting: PenaltyWeighting = "uniform",
) -> torch.Tensor:
    """Cross-entropy of the time-mean logits ``[B, C]`` plus ``actreg`` times the model's spike loss.

    The spike loss (`zoo.spike_penalty`) is the original's ``loss_act`` (``weighting="uniform"``: 0.5 * sum over the
    20 regularised layers of mean s^2) or the synaptic-operation weighting the paper describes
    (``weighting="synapses"``).
    """
    loss = F.cross_entropy(logits_of(output).float(), target)
    if actreg:
        loss = loss + actreg * spike_penalty(model, weighting)
    return loss


SPIKGRU_DVSLIP: dict[str, Any] = dict(
    dataset="dvslip",
    dataset_options={"num_bins": 90},
    train_options={"augment_spatial": True, "augment_temporal": True},
    optimizer="adam",
    weight_decay=1e-4,
    no_weight_decay=("bn",),
    warmup_epochs=1.0,
    schedule_unit="epoch",
    epochs=100,
    batch_size=32,
    amp=False,
    loss="spikgru",
    metrics=("accuracy",),
    selection_metric="accuracy",
)
"""Settings shared by the DVS-Lip recipes (see the module docstring)."""

register_recipe(
    Recipe(
        name="spikgru2plus-dvslip",
        model="spikgru2plus",
        lr=3e-4,
        schedule="constant",
        description="SpikGRU2+ on DVS-Lip, stage 1: 100 epochs at lr 3e-4 (Dampfhoffer & Mesquida 2024)",
        **SPIKGRU_DVSLIP,
    )
)
register_recipe(
    Recipe(
        name="spikgru2plus-dvslip-finetune",
        model="spikgru2plus",
        lr=1e-4,
        schedule="cosine",
        min_lr=5e-6,
        loss_options={"actreg": 5.0},
        description="SpikGRU2+ on DVS-Lip, stage 2: fine-tune with spike loss 5, cosine 1e-4 -> 5e-6; "
        "pass init_checkpoint=<stage-1 best.pt>",
        **SPIKGRU_DVSLIP,
    )
)
register_recipe(
    Recipe(
        name="lipreading-ann-dvslip",
        model="lipreading-ann",
        lr=3e-4,
        schedule="cosine",
        min_lr=5e-6,
        description="ANN baseline (ReLU ResNet-18 + GRU) on DVS-Lip: 100 epochs, cosine 3e-4 -> 5e-6",
        **SPIKGRU_DVSLIP,
    )
)
