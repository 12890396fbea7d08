"""ReSpike (Xiao et al. 2024, arXiv 2409.01564): residual-frame hybrid ANN/SNN for action recognition.

Design note respike_raven.md section A; reference code ``GinnyXiao/ReSpike`` @ e05ce61 (``CrossAttenFusion``).

A clip ``[B, T, 3, H, W]`` (ImageNet-normalised) is cut into G = T / s groups of s frames (s = `key_frame_stride`).
Frame 0 of a group is its key frame K_g; frames 1..s-1 give the residuals R_{g,j} = x_{g s + j} - x_{g s} (differences
from the key frame, not consecutive differences, taken after normalisation). Groups fold into the batch (batch outer,
group inner):

- ANN branch: torchvision ResNet-18/50 stem + layer1..4 on the B G key frames (maps H/4 .. H/32), fine-tuned;
- SNN branch on the s - 1 residual steps, time first ``[S, B G, ...]``: stem conv3x3/2 + BN (analog input, no neuron),
  then 4 stages x 2 pre-activation blocks ``BN2(Conv2(LIF2(BN1(Conv1(LIF1(h)))))) + shortcut(h)``, every stage
  starting with stride 2 (maps H/4 .. H/32, 64-128-256-512 channels), shortcut AvgPool2d(2) -> conv1x1 -> BN;
- LIF (spikingjelly ``LIFNode``): H_t = V_{t-1} + (X_t - V_{t-1}) / tau with tau = 4/3, S_t = Θ(H_t - 1),
  V_t = H_t (1 - S_t) (hard reset to 0, reset detached), ATan surrogate (alpha 2); state starts at 0 every forward;
- cross-attention fusion after each stage (Stable-Diffusion ``SpatialTransformer``, queries from the SNN map, keys
  and values from the ANN map of the same stage, the same key-frame context for every step of its group): with
  `downsample` stages 1-2 and their contexts are average-pooled to H/16 first and the fused map is bilinearly
  upsampled back (replacing the stage output); without it fusion 1 is built but not applied (as the reference);
- head: per group concat(ANN s4, time mean of the SNN output) on channels (ANN first), global average pool, one shared
  Linear -> ``[B, G, classes]``, mean over the groups (``group_logits=True`` keeps the groups).

Execution: by default the SNN branch runs multi-step: convolutions and pooling see all steps at once (time folded into
the batch with spikingjelly's `seq_to_ann_forward`), each LIF layer is one spikingjelly multi-step ``LIFNode`` call,
BatchNorm takes its training statistics per step (as the reference, which calls it once per step), and the fusion's
cross-attention attends all steps' queries to their shared context in one call. ``execution="reference"`` runs the
reference's way instead (a Python loop over single steps through the whole branch, the fusion transformer blocks
under gradient checkpointing), for benchmarks; both give the same values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
import torchvision
from spikingjelly.activation_based import functional, neuron, surrogate
from torch import nn
from torch.utils.checkpoint import checkpoint

from zoo.convert import register_converter
from zoo.layers.spike_record import SpikeRecord, averaged_over_calls
from zoo.registry import SmallConfig, TensorSpec, register_model
from zoo.weights import load_weights

__all__ = [
    "CrossAttentionFusion",
    "ReSpike",
    "ResNetStages",
    "SpikingPreActBlock",
    "SpikingResidualBranch",
    "StepwiseBatchNorm2d",
    "convert_respike",
    "respike_resnet18",
    "respike_resnet50",
]

Execution = Literal["multistep", "reference"]
Backbone = Literal["resnet18", "resnet50"]

LIF_TAU = 1.0 / (1.0 - 0.25)
"""The reference's tau = 1 / (1 - 0.25) = 4/3: the membrane keeps 25 % per step and the input is scaled by 0.75."""
SNN_BASE_WIDTHS = (16, 32, 64, 128)
"""SNN stage widths at width_mult = 1; the reference builds width_mult = 4 (64-128-256-512)."""
HEAD_DIM = 32
GROUPNORM_GROUPS = 32
SIZE_MULTIPLE = 32
DOWNSAMPLE_POOL = (4, 2, 1, 1)
"""Pool (and upsampling) factor of each stage's fusion with ``downsample=True``: fusions 1-3 all see H/16."""


class StepwiseBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d on time-first maps ``[S, N, C, H, W]`` whose training statistics are taken per step.

    In training each step is normalised with its own batch mean and variance and the running statistics are updated
    once per step, in step order, exactly as S calls of a ``BatchNorm2d`` would; in eval mode all steps share the
    running statistics, so time is folded into the batch for one call.
    """

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        normalise = super().forward
        if self.training:
            return torch.stack([normalise(x) for x in x_seq])
        return functional.seq_to_ann_forward(x_seq, normalise)


class LIFSpikes(nn.Module):
    """The reference's LIF layer (tau 4/3, decay_input, threshold 1, hard reset to 0, detached reset, ATan(2)) as one
    spikingjelly multi-step ``LIFNode``, followed by a `SpikeRecord`: currents ``[S, N, ...]`` -> spikes, same shape."""

    def __init__(self) -> None:
        super().__init__()
        self.node = neuron.LIFNode(
            tau=LIF_TAU,
            decay_input=True,
            v_threshold=1.0,
            v_reset=0.0,
            surrogate_function=surrogate.ATan(alpha=2.0),
            detach_reset=True,
            step_mode="m",
        )
        self.record = SpikeRecord(measure="rate", penalty_terms=1, spikes=True)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """Under fp16/bf16 autocast the membrane is kept in float32 (spikingjelly's fused multi-step op needs a float32
        state; reduced-precision states fall back to its per-step Python loop) and the spikes, exactly 0 or 1, are
        returned in the input's dtype."""
        if current.dtype in (torch.float16, torch.bfloat16):
            return self.record(self.node(current.float()).to(current.dtype))
        return self.record(self.node(current))


class SpikingPreActBlock(nn.Module):
    """``BN2(Conv2(LIF2(BN1(Conv1(LIF1(h)))))) + shortcut(h)`` on ``[S, N, C_in, H, W]`` -> ``[S, N, C_out, H', W']``.

    The residual stream h stays real-valued; the convolutions see spikes. The shortcut is the identity, or (stride 2 or
    a channel change) AvgPool2d(2) -> conv1x1 -> BN on the real-valued h.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.lif1 = LIFSpikes()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = StepwiseBatchNorm2d(out_channels)
        self.lif2 = LIFSpikes()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = StepwiseBatchNorm2d(out_channels)
        self.projects = stride != 1 or in_channels != out_channels
        if self.projects:
            self.shortcut_pool = nn.AvgPool2d(stride) if stride != 1 else nn.Identity()
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
            self.shortcut_bn = StepwiseBatchNorm2d(out_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.bn1(functional.seq_to_ann_forward(self.lif1(h), self.conv1))
        out = self.bn2(functional.seq_to_ann_forward(self.lif2(out), self.conv2))
        if self.projects:
            h = self.shortcut_bn(functional.seq_to_ann_forward(h, (self.shortcut_pool, self.shortcut_conv)))
        return out + h


class Attention(nn.Module):
    """Multi-head attention with d_head = 32 (heads = C / 32), no q/k/v bias, biased output projection.

    Heads split the channels ``(head, d)`` with the head index outer; scale d^-1/2 (``F.scaled_dot_product_attention``).
    """

    def __init__(self, channels: int, context_channels: int) -> None:
        super().__init__()
        self.heads = channels // HEAD_DIM
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(context_channels, channels, bias=False)
        self.to_v = nn.Linear(context_channels, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)

    def _split(self, tokens: torch.Tensor) -> torch.Tensor:
        """[..., L, C] -> [..., heads, L, d]."""
        return tokens.unflatten(-1, (self.heads, HEAD_DIM)).transpose(-2, -3)

    def _merge(self, heads: torch.Tensor) -> torch.Tensor:
        """[..., heads, L, d] -> [..., L, C]."""
        return heads.transpose(-2, -3).flatten(-2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention of x ``[..., L, C]`` (context None) or cross-attention to context ``[..., L_c, C_c]``."""
        source = x if context is None else context
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(source)), self._split(self.to_v(source))
        return self.to_out(self._merge(F.scaled_dot_product_attention(q, k, v)))


class GEGLUFeedForward(nn.Module):
    """Linear(C -> 8C) split into (value, gate) in that order, value * GELU(gate) (exact erf GELU), Linear(4C -> C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, 8 * channels)
        self.out = nn.Linear(4 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(value * F.gelu(gate))


class TransformerBlock(nn.Module):
    """x += SelfAttn(LN1 x); x += CrossAttn(LN2 x, context); x += FF(LN3 x) on SNN tokens of all steps.

    Args (forward):
        x: ``[S, N, L, C]`` tokens of every step (row-major over the map).
        context: ``[N, L_c, C_c]`` ANN tokens, one per sample, shared by all S steps (not normalised).

    Self-attention mixes tokens within one step; for the cross-attention the S steps' queries of a sample are
    concatenated into one sequence (each query row has its own softmax, so this equals S separate calls).
    """

    def __init__(self, channels: int, context_channels: int) -> None:
        super().__init__()
        self.self_attn = Attention(channels, channels)
        self.cross_attn = Attention(channels, context_channels)
        self.ff = GEGLUFeedForward(channels)
        self.self_attn_norm = nn.LayerNorm(channels)
        self.cross_attn_norm = nn.LayerNorm(channels)
        self.ff_norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_norm(x))
        steps, batch, tokens, channels = x.shape
        queries = self.cross_attn_norm(x).transpose(0, 1).reshape(batch, steps * tokens, channels)
        attended = self.cross_attn(queries, context).reshape(batch, steps, tokens, channels).transpose(0, 1)
        x = x + attended
        return x + self.ff(self.ff_norm(x))


class CrossAttentionFusion(nn.Module):
    """SNN map ``[S, N, C, h, w]`` += ProjOut(Transformer(ProjIn(GroupNorm(map)), ANN context)) (SpatialTransformer).

    GroupNorm(32 groups, eps 1e-6) per step, 1x1 proj_in (bias), one `TransformerBlock`, 1x1 proj_out initialised to
    zero (the fusion starts as the identity). `checkpoint_block` recomputes the transformer block in backward instead
    of keeping its activations (gradient checkpointing, as the reference always does).
    """

    def __init__(self, channels: int, context_channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(GROUPNORM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.block = TransformerBlock(channels, context_channels)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, h: torch.Tensor, context: torch.Tensor, checkpoint_block: bool = False) -> torch.Tensor:
        """h: ``[S, N, C, h, w]``, context: ``[N, C_c, h, w]`` -> ``[S, N, C, h, w]``."""
        height, width = h.shape[-2:]
        tokens = functional.seq_to_ann_forward(h, (self.norm, self.proj_in)).flatten(-2).transpose(-1, -2)
        context_tokens = context.flatten(-2).transpose(-1, -2)
        if checkpoint_block and torch.is_grad_enabled():
            tokens = checkpoint(self.block, tokens, context_tokens, use_reentrant=False)
        else:
            tokens = self.block(tokens, context_tokens)
        fused = tokens.transpose(-1, -2).unflatten(-1, (height, width))
        return h + functional.seq_to_ann_forward(fused, self.proj_out)


class SpikingResidualBranch(nn.Module):
    """The SNN branch with its four fusions: residual steps ``[S, N, 3, H, W]`` + ANN stage maps -> ``[S, N, C_4, H/32,
    W/32]`` (per step, before the time mean; C_4 = 512 at the reference's width_mult 4).

    Args:
        widths: channels of the four SNN stages (64-128-256-512 in the reference; multiples of 32).
        context_channels: channels of the four ANN stage maps (64-128-256-512 for ResNet-18, 256-..-2048 for ResNet-50).
        downsample: pool stages 1-2 (and their contexts) to H/16 for the fusion and upsample back; else skip fusion 1.
        execution: ``"multistep"`` (all steps per layer) or ``"reference"`` (loop over single steps, as the original).
        checkpoint_fusion: gradient checkpointing of the fusion transformer blocks (always on for ``"reference"``).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        context_channels: tuple[int, ...],
        downsample: bool,
        execution: Execution,
        checkpoint_fusion: bool,
    ) -> None:
        super().__init__()
        if any(width % HEAD_DIM for width in widths):
            raise ValueError(f"ReSpike SNN widths {widths} must be multiples of {HEAD_DIM} (heads of 32 channels)")
        self.downsample = downsample
        self.out_channels = widths[-1]
        self.execution = execution
        self.checkpoint_fusion = checkpoint_fusion
        self.stem_conv = nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
        self.stem_bn = StepwiseBatchNorm2d(widths[0])
        channels = (widths[0], *widths)
        self.layers = nn.ModuleList(
            nn.Sequential(
                SpikingPreActBlock(channels[i], channels[i + 1], 2),
                SpikingPreActBlock(channels[i + 1], channels[i + 1], 1),
            )
            for i in range(len(widths))
        )
        self.fusions = nn.ModuleList(
            CrossAttentionFusion(width, context) for width, context in zip(widths, context_channels, strict=True)
        )
        factors = DOWNSAMPLE_POOL if downsample else (1,) * len(widths)
        self.fusion_pools = nn.ModuleList(nn.AvgPool2d(f) if f > 1 else nn.Identity() for f in factors)
        self.fusion_upsamples = nn.ModuleList(
            nn.Upsample(scale_factor=float(f), mode="bilinear", align_corners=False) if f > 1 else nn.Identity()
            for f in factors
        )

    def forward(self, residuals: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        """residuals ``[S, N, 3, H, W]``, stages: the 4 ANN maps ``[N, C_i, H / 2^(i+2), W / 2^(i+2)]``."""
        contexts = [pool(stage) for pool, stage in zip(self.fusion_pools, stages, strict=True)]
        if self.execution == "reference":
            return self._single_steps(residuals, contexts)
        return self._steps(residuals, contexts, self.checkpoint_fusion)

    def _single_steps(self, residuals: torch.Tensor, contexts: list[torch.Tensor]) -> torch.Tensor:
        """The reference's loop: one step at a time through the whole branch, fusion blocks checkpointed.

        Each `SpikeRecord` sees one step per call; `averaged_over_calls` makes its rate and penalty those of the
        whole sequence, as the multi-step execution records them. Details recorded with ``record_detail`` describe
        the last step only in this mode.
        """
        with averaged_over_calls(self):
            outputs = [
                self._steps(residuals[t : t + 1], contexts, checkpoint_block=True) for t in range(len(residuals))
            ]
        return torch.cat(outputs)

    def _steps(self, residuals: torch.Tensor, contexts: list[torch.Tensor], checkpoint_block: bool) -> torch.Tensor:
        """Run `residuals` ``[S', N, 3, H, W]`` through the branch; neuron state carries over between calls."""
        h = self.stem_bn(functional.seq_to_ann_forward(residuals, self.stem_conv))
        for stage, (layer, fusion, context) in enumerate(zip(self.layers, self.fusions, contexts, strict=True)):
            h = layer(h)
            if stage == 0 and not self.downsample:
                continue
            small = functional.seq_to_ann_forward(h, self.fusion_pools[stage])
            fused = fusion(small, context, checkpoint_block)
            h = functional.seq_to_ann_forward(fused, self.fusion_upsamples[stage])
        return h


class ResNetStages(nn.Module):
    """The ANN branch: a torchvision ResNet's stem (conv1, bn1, relu, maxpool) and layer1..4, without avgpool and fc.

    Keys keep torchvision's names under ``ann.``, so a torchvision ImageNet state dict (minus ``fc.*``) fits as is.
    """

    def __init__(self, resnet: torchvision.models.ResNet) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """frames ``[N, 3, H, W]`` -> the four stage maps ``[N, C_i, H / 2^(i+2), W / 2^(i+2)]``, i = 0..3."""
        h = self.maxpool(self.relu(self.bn1(self.conv1(frames))))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = layer(h)
            stages.append(h)
        return stages


class ReSpike(nn.Module):
    """ReSpike: clip ``[B, T, 3, H, W]`` -> logits ``[B, classes]`` (``[B, T / s, classes]`` with `group_logits`).

    Args:
        ann: `ResNetStages` of a torchvision ResNet (the key-frame branch).
        snn: `SpikingResidualBranch` (the residual-frame branch with its fusions).
        num_classes: classifier outputs.
        key_frame_stride: s, frames per group (one key frame + s - 1 residual steps); T must be a multiple of s.
        group_logits: return the per-group logits ``[B, G, classes]`` instead of their mean (the reference's
            ``as_pretrained``).
    """

    def __init__(
        self,
        ann: ResNetStages,
        snn: SpikingResidualBranch,
        num_classes: int,
        key_frame_stride: int,
        group_logits: bool,
    ) -> None:
        super().__init__()
        if key_frame_stride < 2:
            raise ValueError(
                f"ReSpike key_frame_stride must be >= 2 (one key frame + residuals), got {key_frame_stride}"
            )
        self.ann = ann
        self.snn = snn
        self.key_frame_stride = key_frame_stride
        self.group_logits = group_logits
        self.fc = nn.Linear(_stage_channels(ann)[-1] + snn.out_channels, num_classes)

    def split_clip(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """clip ``[B, T, 3, H, W]`` -> key frames ``[B G, 3, H, W]``, residuals ``[s - 1, B G, 3, H, W]`` (time first).

        Raises ValueError naming the expected layout when the shape does not fit.
        """
        stride = self.key_frame_stride
        if clip.dim() != 5 or clip.shape[2] != 3:
            raise ValueError(
                f"ReSpike expects a clip [B, T, 3, H, W] (ImageNet-normalised RGB), got {tuple(clip.shape)}"
            )
        batch, frames, _, height, width = clip.shape
        if frames % stride or frames == 0:
            raise ValueError(
                f"ReSpike: clip length T={frames} is not a positive multiple of key_frame_stride={stride} "
                f"(use T = {max(stride, frames - frames % stride)} or another multiple of {stride})"
            )
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(
                f"ReSpike: frame size {height}x{width} must be a multiple of {SIZE_MULTIPLE} in both directions "
                "(the two branches' stage maps must match; 224x224 in the paper)"
            )
        groups = clip.reshape(batch * (frames // stride), stride, *clip.shape[2:])
        keys = groups[:, 0]
        residuals = (groups[:, 1:] - groups[:, :1]).transpose(0, 1)
        return keys, residuals

    def head(self, ann_final: torch.Tensor, snn_out: torch.Tensor) -> torch.Tensor:
        """ANN s4 ``[B G, C_a, h, w]`` and SNN output ``[S, B G, 512, h, w]`` -> per-group logits ``[B G, classes]``."""
        pooled = torch.cat([ann_final.mean((-2, -1)), snn_out.mean(0).mean((-2, -1))], dim=1)
        return self.fc(pooled)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        keys, residuals = self.split_clip(clip)
        functional.reset_net(self)
        stages = self.ann(keys)
        logits = self.head(stages[-1], self.snn(residuals, stages)).unflatten(0, (clip.shape[0], -1))
        return logits if self.group_logits else logits.mean(1)


def _stage_channels(ann: ResNetStages) -> tuple[int, ...]:
    """Output channels of the four ANN stages (BasicBlock: conv2, Bottleneck: conv3)."""
    channels = []
    for layer in (ann.layer1, ann.layer2, ann.layer3, ann.layer4):
        last = layer[-1]
        channels.append((last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels)
    return tuple(channels)


def _torchvision_resnet(backbone: Backbone, ann_weights: str | None) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet, or one loaded strictly from a local torchvision state dict."""
    resnet = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}[backbone](weights=None)
    if ann_weights is None:
        return resnet
    path = Path(ann_weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"ReSpike ann_weights: {path} does not exist (a local torchvision {backbone} state dict)"
        )
    try:
        load_weights(resnet, path)
    except ValueError as error:
        raise ValueError(f"ReSpike ann_weights: {path} is not a torchvision {backbone} state dict: {error}") from None
    return resnet


def _respike(
    backbone: Backbone,
    num_classes: int,
    key_frame_stride: int,
    downsample: bool,
    group_logits: bool,
    ann_weights: str | None,
    checkpoint_fusion: bool,
    execution: Execution,
    width_mult: int,
) -> ReSpike:
    ann = ResNetStages(_torchvision_resnet(backbone, ann_weights))
    widths = tuple(width * width_mult for width in SNN_BASE_WIDTHS)
    snn = SpikingResidualBranch(widths, _stage_channels(ann), downsample, execution, checkpoint_fusion)
    return ReSpike(ann, snn, num_classes, key_frame_stride, group_logits)


_PAPER = "ReSpike: Residual Frames-based Hybrid Spiking Neural Networks for Efficient Action Recognition (Xiao et al.)"
_CITATION = (
    "@article{xiao2024respike, title={ReSpike: Residual Frames-based Hybrid Spiking Neural Networks for Efficient "
    "Action Recognition}, author={Xiao, Shiting and Li, Yuhang and Kim, Youngeun and Lee, Donghyun and Panda, "
    "Priyadarshini}, journal={arXiv preprint arXiv:2409.01564}, year={2024}}"
)
_AXES = {
    "B": "batch",
    "T": "clip frames at the native frame rate (16 in the paper; a multiple of key_frame_stride)",
    "H": "frame rows (224 in the paper; a multiple of 32)",
    "W": "frame columns (224; a multiple of 32)",
}
_INPUTS = {
    "clip": TensorSpec(
        shape=("B", "T", 3, "H", "W"),
        axes=_AXES,
        description="RGB frames scaled to [0, 1], then normalised with the ImageNet mean and std per channel",
        sizes={"B": 32, "T": 16, "H": 224, "W": 224},
    )
}
_OUTPUTS = {
    "logits": TensorSpec(
        shape=("B", "classes"),
        axes={"B": "batch", "classes": "action classes (51 HMDB-51, 101 UCF-101, 400 Kinetics-400)"},
        description=(
            "class scores: mean over the T / key_frame_stride groups of the per-group logits "
            "(group_logits=True returns them all, [B, T / key_frame_stride, classes])"
        ),
    )
}
_OPTIONS_DOC = """
    Options:
        num_classes: 51 (HMDB-51), 101 (UCF-101) or 400 (Kinetics-400).
        key_frame_stride: frames per group, s (4 for HMDB/UCF, 2 for Kinetics); the SNN runs s - 1 steps.
        downsample: fuse stages 1-2 at H/16 (the README commands); False: fusion after stages 2-4 only.
        group_logits: return per-group logits [B, T / s, classes] (the reference's ``as_pretrained``).
        ann_weights: path of a local torchvision ImageNet state dict for the ANN branch (loaded strictly; nothing is
            downloaded); None: random init.
        checkpoint_fusion: gradient checkpointing of the fusion transformer blocks (less memory, more compute).
        execution: "multistep" (default) or "reference" (the original's single-step loop with checkpointing).
        width_mult: SNN widths 16 x width_mult per stage (4 in every published configuration; an even number, as
            the fusions' heads have 32 channels; 2 is the small test configuration).
"""
SMALL = SmallConfig(overrides={"width_mult": 2}, sizes={"T": 4, "H": 32, "W": 32})
"""Registry-wide tests: half-width SNN branch (about 16 M parameters with ResNet-18), 32 x 32 frames, T = 4."""


@register_model(
    "respike-resnet50",
    family="respike",
    paper=_PAPER,
    citation=_CITATION,
    inputs=_INPUTS,
    outputs=_OUTPUTS,
    small=SMALL,
)
def respike_resnet50(
    num_classes: int = 51,
    key_frame_stride: int = 4,
    downsample: bool = True,
    group_logits: bool = False,
    ann_weights: str | None = None,
    checkpoint_fusion: bool = False,
    execution: Execution = "multistep",
    width_mult: int = 4,
) -> ReSpike:
    """ReSpike with a ResNet-50 ANN branch, the README's configuration (44,580,339 parameters at 51 classes)."""
    return _respike(
        "resnet50",
        num_classes,
        key_frame_stride,
        downsample,
        group_logits,
        ann_weights,
        checkpoint_fusion,
        execution,
        width_mult,
    )


@register_model(
    "respike-resnet18",
    family="respike",
    paper=_PAPER,
    citation=_CITATION,
    inputs=_INPUTS,
    outputs=_OUTPUTS,
    small=SMALL,
)
def respike_resnet18(
    num_classes: int = 51,
    key_frame_stride: int = 4,
    downsample: bool = True,
    group_logits: bool = False,
    ann_weights: str | None = None,
    checkpoint_fusion: bool = False,
    execution: Execution = "multistep",
    width_mult: int = 4,
) -> ReSpike:
    """ReSpike with a ResNet-18 ANN branch (the reference's argparse default; 30,081,523 parameters at 51 classes)."""
    return _respike(
        "resnet18",
        num_classes,
        key_frame_stride,
        downsample,
        group_logits,
        ann_weights,
        checkpoint_fusion,
        execution,
        width_mult,
    )


respike_resnet50.__doc__ += _OPTIONS_DOC
respike_resnet18.__doc__ += _OPTIONS_DOC


# Conversion from the original checkpoints ------------------------------------------------------------------------
#
# ``CrossAttenFusion`` state dicts (model/attention_snn.py @ e05ce61) -> ours. Tensors keep their layouts.
#
# | reference                                               | ours                                        |
# |---------------------------------------------------------|---------------------------------------------|
# | ann_layer0.0.* / ann_layer0.1.*                          | ann.conv1.* / ann.bn1.*                      |
# | ann_layer{i}.*                                           | ann.layer{i}.*                               |
# | snn_backbone.conv1.* / snn_backbone.bn1.*                | snn.stem_conv.* / snn.stem_bn.*              |
# | snn_backbone.layer{i}.{j}.{conv,bn}{1,2}.*               | snn.layers.{i-1}.{j}.{conv,bn}{1,2}.*        |
# | snn_backbone.layer{i}.{j}.shortcut.1.* / .shortcut.2.*   | snn.layers.{i-1}.{j}.shortcut_conv.* / _bn.* |
# | snn_backbone.fusion{i}.{norm,proj_in,proj_out}.*         | snn.fusions.{i-1}.{norm,proj_in,proj_out}.*  |
# | snn_backbone.fusion{i}.transformer_blocks.0.attn1.*      | snn.fusions.{i-1}.block.self_attn.*          |
# | ... .attn2.*  (to_out.0 -> to_out)                        | ... .block.cross_attn.*                      |
# | ... .ff.net.0.proj.* / .ff.net.2.*                        | ... .block.ff.proj.* / .block.ff.out.*       |
# | ... .norm1 / .norm2 / .norm3                              | ... .self_attn_norm / cross_attn_norm / ff_norm |
# | fc.*                                                     | fc.*                                         |

_BLOCK_NAMES = {
    "attn1.to_out.0": "self_attn.to_out",
    "attn2.to_out.0": "cross_attn.to_out",
    "attn1": "self_attn",
    "attn2": "cross_attn",
    "ff.net.0.proj": "ff.proj",
    "ff.net.2": "ff.out",
    "norm1": "self_attn_norm",
    "norm2": "cross_attn_norm",
    "norm3": "ff_norm",
}
_REFERENCE_KEY = re.compile(
    r"^(?:ann_layer0\.(?P<stem>[01])|snn_backbone\.(?P<snn_stem>conv1|bn1)"
    r"|snn_backbone\.layer(?P<layer>[1-4])\.(?P<block>\d+)\.(?P<part>conv[12]|bn[12]|shortcut\.[12])"
    r"|snn_backbone\.fusion(?P<fusion>[1-4])\.(?P<fpart>norm|proj_in|proj_out|transformer_blocks\.0\.(?P<inner>"
    + "|".join(re.escape(name) for name in _BLOCK_NAMES)
    + r")(?:\.to_[qkv])?)|(?P<fc>fc))\.(?P<leaf>[^.]+)$"
)


_ANN_STAGE_KEY = re.compile(r"^ann_layer(?P<stage>[1-4])\.(?P<rest>.+)$")


def _rename(key: str) -> str:
    if match := _ANN_STAGE_KEY.match(key):
        return f"ann.layer{match['stage']}.{match['rest']}"
    match = _REFERENCE_KEY.match(key)
    if match is None:
        raise KeyError(f"ReSpike converter: unexpected reference key {key!r}")
    groups, leaf = match.groupdict(), match["leaf"]
    if groups["stem"] is not None:
        return f"ann.{('conv1', 'bn1')[int(groups['stem'])]}.{leaf}"
    if groups["snn_stem"] is not None:
        return f"snn.stem_{'conv' if groups['snn_stem'] == 'conv1' else 'bn'}.{leaf}"
    if groups["layer"] is not None:
        part = {"shortcut.1": "shortcut_conv", "shortcut.2": "shortcut_bn"}.get(groups["part"], groups["part"])
        return f"snn.layers.{int(groups['layer']) - 1}.{groups['block']}.{part}.{leaf}"
    if groups["fusion"] is not None:
        prefix = f"snn.fusions.{int(groups['fusion']) - 1}"
        if groups["inner"] is None:
            return f"{prefix}.{groups['fpart']}.{leaf}"
        inner = _BLOCK_NAMES[groups["inner"]]
        projection = groups["fpart"].removeprefix(f"transformer_blocks.0.{groups['inner']}")
        return f"{prefix}.block.{inner}{projection}.{leaf}"
    return f"fc.{leaf}"


@register_converter("respike-resnet50", "respike-resnet18")
def convert_respike(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename a ``CrossAttenFusion`` state dict (either backbone, any head) to our keys; unknown keys are errors."""
    return {_rename(key): value for key, value in state_dict.items()}
