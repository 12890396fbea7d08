"""ReSpike (Xiao et al. 2024) on HMDB-51, UCF-101 and Kinetics-400: recipes, the clip loss and clip/video metrics.

=========================  ==========================================================================================
recipe                     setting (README commands of GinnyXiao/ReSpike, ``train_fusion.py`` / ``train_kinetics.py``)
=========================  ==========================================================================================
``respike-hmdb51``         respike-resnet50, 51 classes, stride 4, ``--downsample``; HMDB-51 fold 1, 16-frame clips
``respike-ucf101``         the same on UCF-101 (101 classes)
``respike-kinetics400``    respike-resnet50, 400 classes, stride 2, ``--downsample``; Kinetics-400, TSN 16 frames,
                           batch 16
=========================  ==========================================================================================

Shared settings: SGD (momentum 0.9, weight decay 1e-4 on every parameter), lr 1e-4 with a per-epoch cosine to 0
over 100 epochs (``CosineAnnealingLR(T_max=epochs)``), batch 32, fp16 autocast with a GradScaler on CUDA (the
reference's default; ``amp=False`` turns it off), 224 x 224 frames. The engine also logs the LIF firing rates of the
SNN branch (``zoo.firing_rates``).

Metrics: ``clip_accuracy`` (top-1, one vote per clip: the reference's measure and the selection metric),
``clip_top5`` and ``video_accuracy`` (top-1 of the mean clip logits of each video, which the reference lacks).
Evaluation items are whole videos (``group_clips=True``: every clip of a video in one item, so a batch holds
complete videos and the video-level metric is exact; ``eval_batch_size`` counts videos); training items are single
clips as in the reference. Kinetics items are one TSN frame set per video, so its two accuracies agree.

Where the recipes differ from the reference, and why:

- Model selection uses a seeded, class-stratified share of the training videos (``data.validation=heldout``);
  the reference keeps the best *test* accuracy. Its protocol: ``data.validation=test`` (then "val" is the test
  part).
- The ANN branch starts from random weights unless ``model.ann_weights=<torchvision resnet50 state dict>`` is given
  (the reference downloads the ImageNet weights; nothing is downloaded here).
- Kinetics evaluation uses the TSN segment centres; the reference draws random offsets (``data.eval_sampling=random``)
  and normalises each frame with cycling channel statistics (``data.normalization=reference_cycling``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.train.recipe import Recipe, register_recipe
from zoo.train.registries import logits_of, register_loss, register_metric

__all__ = ["RESPIKE_TRAINING", "clip_accuracy", "clip_cross_entropy", "clip_top5", "video_accuracy"]


def _labels(target: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    return target["label"] if isinstance(target, dict) else target


@register_loss("clip_cross_entropy")
def clip_cross_entropy(output: Any, target: dict[str, torch.Tensor], model: nn.Module) -> torch.Tensor:
    """Mean cross-entropy of clip logits ``[N, C]`` against the clips' ``target["label"]`` ``[N]`` (a plain label
    tensor also works)."""
    return F.cross_entropy(logits_of(output).float(), _labels(target))


@register_metric("clip_accuracy", higher_is_better=True)
def clip_accuracy(output: Any, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 accuracy over clips (fraction in [0, 1]): (correct clips, clips)."""
    labels = _labels(target)
    correct = (logits_of(output).argmax(dim=-1) == labels).sum()
    return correct, torch.full((), labels.shape[0], device=labels.device)


@register_metric("clip_top5", higher_is_better=True)
def clip_top5(output: Any, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-5 accuracy over clips: (clips whose label is among the 5 highest logits, clips)."""
    labels = _labels(target)
    logits = logits_of(output)
    best = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
    return (best == labels[:, None]).any(dim=-1).sum(), torch.full((), labels.shape[0], device=labels.device)


@register_metric("video_accuracy", higher_is_better=True)
def video_accuracy(output: Any, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Video-level top-1: per video of the batch (``target["video"]``), the arg-max of the mean of its clip logits
    against its label: (correct videos, videos).

    Exact when batches hold whole videos (``group_clips=True``); with single-clip items a video split over two
    batches counts once in each.
    """
    logits = logits_of(output).float()
    videos, slot = torch.unique(target["video"], return_inverse=True)
    summed = logits.new_zeros(len(videos), logits.shape[-1]).index_add_(0, slot, logits)
    labels = torch.zeros(len(videos), dtype=torch.long, device=logits.device).scatter_(0, slot, target["label"])
    return (summed.argmax(dim=-1) == labels).sum(), torch.full((), len(videos), device=logits.device)


RESPIKE_TRAINING: dict[str, Any] = dict(
    optimizer="sgd",
    optimizer_options={"momentum": 0.9},
    lr=1e-4,
    weight_decay=1e-4,
    schedule="cosine",
    schedule_unit="epoch",
    min_lr=0.0,
    epochs=100,
    batch_size=32,
    amp=True,
    amp_dtype="float16",
    loss="clip_cross_entropy",
    metrics=("clip_accuracy", "clip_top5", "video_accuracy"),
    selection_metric="clip_accuracy",
    eval_batch_size=4,
)
"""Settings shared by the ReSpike recipes (see the module docstring)."""

_CLIPS = {"fold": 1, "frames_per_clip": 16, "size": 224, "group_clips": True}

register_recipe(
    Recipe(
        name="respike-hmdb51",
        model="respike-resnet50",
        model_overrides={"num_classes": 51, "key_frame_stride": 4, "downsample": True},
        dataset="hmdb51",
        dataset_options=_CLIPS,
        train_options={"group_clips": False},
        description="ReSpike R50 on HMDB-51 fold 1: SGD lr 1e-4 cosine, 100 epochs, batch 32, fp16 (Xiao et al. 2024)",
        **RESPIKE_TRAINING,
    )
)
register_recipe(
    Recipe(
        name="respike-ucf101",
        model="respike-resnet50",
        model_overrides={"num_classes": 101, "key_frame_stride": 4, "downsample": True},
        dataset="ucf101",
        dataset_options=_CLIPS,
        train_options={"group_clips": False},
        description="ReSpike R50 on UCF-101 split 1: SGD lr 1e-4 cosine, 100 epochs, batch 32, fp16 (Xiao et al. 2024)",
        **RESPIKE_TRAINING,
    )
)
register_recipe(
    Recipe(
        name="respike-kinetics400",
        model="respike-resnet50",
        model_overrides={"num_classes": 400, "key_frame_stride": 2, "downsample": True},
        dataset="kinetics400",
        dataset_options={"num_segments": 16, "size": 224, "resize": 256},
        description="ReSpike R50 on Kinetics-400, TSN 16 frames, stride 2: SGD lr 1e-4 cosine, 100 epochs, batch 16",
        **{**RESPIKE_TRAINING, "batch_size": 16, "eval_batch_size": 16},
    )
)
