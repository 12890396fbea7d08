"""StereoSpike (urancon/StereoSpike; Rançon et al. 2021) on MVSEC indoor_flying: loss and recipes.

==============================  ===================================  ==============================================
recipe                          model                                data
==============================  ===================================  ==============================================
``stereospike-mvsec``           stereospike (binocular, 4 channels)  ``mvsec``, split 1, both cameras
``stereospike-monocular-mvsec`` stereospike-monocular (2 channels)   ``mvsec``, split 1, left camera
``stereospike-mvsec-depth-      stereospike                          as ``stereospike-mvsec``, windows ending at the
aligned`` (variant)                                                  depth stamps (``data.window_alignment=depth``)
==============================  ===================================  ==============================================

Input pipeline of the reference: each camera's events cut into the original's fixed 50 ms grid from its first event
of the slice (``data.window_alignment=grid``, see `zoo.datasets.mvsec`), raw counts, hole-filled depth labels. The
variant ``stereospike-mvsec-depth-aligned`` takes the 50 ms before each depth stamp instead (both cameras alike; 3-5 %
of a window's events differ); its numbers are not the paper's.

Settings of the reference ``train.py``: Adam (lr 2e-4, default betas, no weight decay), batch 1 (drop_last), fp32,
70 epochs with the lr halved after epochs 8, 42 and 60, loss = scale-invariant + 0.5 x gradient matching on all
four outputs (no spike penalty), metrics MDE and 1PA (`zoo.train.metrics`), best **validation** MDE kept (the 200
fixed validation samples of the held-out sequence), test MDE reported by ``python -m zoo.evaluate``. Paper v2
instead says 30 epochs with the lr divided by 10 at epochs 10, 25 and 40 (``epochs=30 step_milestones=(10,25,40)
step_gamma=0.1``). Other splits: ``data.split_index=2``; the equivalent ANN: ``--model stereospike-ann``; the
paper's spike penalty: ``loss.spike_penalty=0.5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.spike_record import spike_penalty as recorded_spike_penalty
from zoo.train.recipe import Recipe, register_recipe
from zoo.train.registries import register_loss

__all__ = ["depth_loss", "gradient_matching_loss", "scale_invariant_loss"]

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _residual(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, valid): R = prediction - target where the target is valid, 0 elsewhere; [B, 1, H, W] each."""
    valid = ~torch.isnan(target)
    return torch.where(valid, prediction - torch.nan_to_num(target), torch.zeros_like(prediction)), valid


def scale_invariant_loss(residual: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Paper eq. 2: (1/n) sum R^2 - (1/n^2) (sum R)^2 over the n valid pixels of the whole batch.

    On metric depth this is the variance of the residual (invariant to a constant shift, not to a scale).
    """
    count = valid.sum().clamp(min=1)
    return residual.square().sum() / count - residual.sum().square() / count.square()


def gradient_matching_loss(residual: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Paper eq. 3: (1/n) sum over valid pixels of |Sobel_x R| + |Sobel_y R| (3x3 Sobel, zero padding)."""
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.t()]).unsqueeze(1).to(residual)
    gradients = F.conv2d(residual, kernels, padding=1).abs().sum(1, keepdim=True)
    return (gradients * valid).sum() / valid.sum().clamp(min=1)


@register_loss("stereospike")
def depth_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    model: nn.Module,
    gradient_weight: float = 0.5,
    output_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0),
    spike_penalty: float = 0.0,
) -> torch.Tensor:
    """Paper eq. 4 (+ eq. 5): sum_k w_k (L_si + gradient_weight L_grad) over the 4 cumulative depth maps.

    Args:
        output: [B, 4, H, W] depths (depth4, depth3, depth2, depth1) in metres.
        target: [B, 1, H, W] metres, NaN = invalid.
        output_weights: w_k in the output's channel order.
        spike_penalty: beta x `zoo.spike_penalty(model)` (mean s^2 / 2 of the bottleneck output and add4..add1).
    """
    if output.shape[1] != len(output_weights):
        raise ValueError(f"stereospike loss: {len(output_weights)} output_weights for {output.shape[1]} depth maps")
    total = output.new_zeros(())
    for channel, weight in enumerate(output_weights):
        residual, valid = _residual(output[:, channel : channel + 1], target)
        total = total + weight * (
            scale_invariant_loss(residual, valid) + gradient_weight * gradient_matching_loss(residual, valid)
        )
    if spike_penalty:
        total = total + spike_penalty * recorded_spike_penalty(model)
    return total


_PAPER_TRAINING = {
    "optimizer": "adam",
    "lr": 2e-4,
    "weight_decay": 0.0,
    "batch_size": 1,
    "drop_last": True,
    "epochs": 70,
    "schedule": "step",
    "schedule_unit": "epoch",
    "step_milestones": (8.0, 42.0, 60.0),
    "step_gamma": 0.5,
    "amp": False,
    "loss": "stereospike",
    "metrics": ("mde", "1pa"),
    "selection_metric": "mde",
    "val_split": "val",
}

register_recipe(
    Recipe(
        name="stereospike-mvsec",
        model="stereospike",
        dataset="mvsec",
        dataset_options={"split_index": 1, "cameras": "stereo", "window_alignment": "grid"},
        description="StereoSpike binocular on MVSEC indoor_flying split 1 (Rançon et al. 2021; 18.5 cm test MDE)",
        **_PAPER_TRAINING,
    )
)
register_recipe(
    Recipe(
        name="stereospike-mvsec-depth-aligned",
        model="stereospike",
        dataset="mvsec",
        dataset_options={"split_index": 1, "cameras": "stereo", "window_alignment": "depth"},
        description="StereoSpike binocular, event windows ending at each depth stamp (variant, not the paper's input)",
        **_PAPER_TRAINING,
    )
)
register_recipe(
    Recipe(
        name="stereospike-monocular-mvsec",
        model="stereospike-monocular",
        dataset="mvsec",
        dataset_options={"split_index": 1, "cameras": "left", "window_alignment": "grid"},
        description="StereoSpike monocular (left camera) on MVSEC indoor_flying split 1 (21.7 cm test MDE)",
        **_PAPER_TRAINING,
    )
)
