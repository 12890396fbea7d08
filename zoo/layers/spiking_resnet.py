"""Spiking ResNet-18 frontend of SpikGRU (Dampfhoffer & Mesquida, CVPRW 2024) and its ReLU twin.

Design note spikgru.md, sections 1.3-1.4. All tensors inside are time first, [T, B, C, H, W]; convolutions and
BatchNorm run on all T frames at once (T folded into the batch), and the neurons run as one `lif_scan` per layer:

- LIF (stem and both neurons of every block): u_t = alpha_c u_{t-1} + I_t - th s_{t-1}, learnable alpha per channel;
- IF after the two poolings: the same with alpha = 1 (u_t = (u_{t-1} + P_t) - th s_{t-1}, as the original orders it);
- residual blocks add the shortcut (input spikes, or BN(1x1 stride-2 conv)) to the *current* of their second LIF.

``spiking=False`` gives the ANN twin of the original ``-a`` mode: ReLU instead of LIF, plain pooling, and
(with ``batch_norm=False``) biased convolutions. Every neuron is followed by a `SpikeRecord`.

Stage sizes for the 88x88 input: stem 64x44x44, pool 64x22x22, layer2 64x22x22, layer3 128x11x11,
layer4 256x6x6, layer5 512x3x3, global pool 512.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.kernels import lif_scan
from zoo.layers.spike_record import SpikeRecord

__all__ = [
    "CurrentResidualBlock",
    "LIFNeuron",
    "NeuronSettings",
    "PoolingNeuron",
    "ReLUNeuron",
    "SpikingResNet18Frontend",
    "SpikingStem3d",
]

LEAK_INIT = 0.9
"""Initial value of every learnable leak (the original draws U(0.9, 0.9))."""


@dataclasses.dataclass(frozen=True)
class NeuronSettings:
    """What kind of neurons a frontend uses.

    Attributes:
        spiking: LIF/IF neurons (False: ReLU activations and plain pooling, the ANN twin).
        signed: {-1, 0, +1} spikes instead of {0, 1}.
        threshold: firing threshold th (also the soft-reset amount).
        gamma: surrogate-gradient sharpness.
    """

    spiking: bool = True
    signed: bool = False
    threshold: float = 1.0
    gamma: float = 10.0


class LIFNeuron(nn.Module):
    """Soft-reset LIF (or IF) neurons over time-first currents [T, B, C, *spatial] -> spikes of the same shape.

    Args:
        channels: C; one learnable leak `alpha` per channel (initialised to 0.9), or none with ``learnable_leak=False``
            (IF neuron: leak fixed to 1).
        settings: spike kind, threshold and surrogate sharpness.
        penalty_terms: 1 if the spikes enter the spike loss (LIF layers), 0 if only their rate is reported.
    """

    def __init__(self, channels: int, settings: NeuronSettings, learnable_leak: bool = True, penalty_terms: int = 1):
        super().__init__()
        self.settings = settings
        if learnable_leak:
            self.alpha = nn.Parameter(torch.full((channels,), LEAK_INIT))
        else:
            self.register_buffer("alpha", torch.ones(channels), persistent=False)
        self.activity = SpikeRecord(penalty_terms=penalty_terms, spikes=True)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        settings = self.settings
        spikes = lif_scan(current, self.alpha, settings.threshold, settings.signed, settings.gamma)
        return self.activity(spikes)

    def clamp_parameters(self) -> None:
        """Clamp a learnable leak to [0, 1] (the original's ``clamp()`` after every optimiser step)."""
        if isinstance(self.alpha, nn.Parameter):
            with torch.no_grad():
                self.alpha.clamp_(0.0, 1.0)


class ReLUNeuron(nn.Module):
    """ReLU on any tensor, with its mean activation recorded (the ANN twin of `LIFNeuron`)."""

    def __init__(self, penalty_terms: int = 1) -> None:
        super().__init__()
        self.activity = SpikeRecord(penalty_terms=penalty_terms, spikes=False)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.activity(torch.relu(current))


def make_neuron(channels: int, settings: NeuronSettings) -> nn.Module:
    """A learnable-leak LIF neuron, or a ReLU for the ANN twin."""
    return LIFNeuron(channels, settings) if settings.spiking else ReLUNeuron()


def _conv_init(conv: nn.Conv2d | nn.Conv3d, spiking: bool) -> None:
    """The original's initialisation: SNN U(+-sqrt(6 / fan_in)); ANN N(0, 2 / fan_out) with zero bias."""
    kernel = math.prod(conv.kernel_size)
    if spiking:
        bound = math.sqrt(6.0 / (conv.in_channels * kernel))
        nn.init.uniform_(conv.weight, -bound, bound)
    else:
        nn.init.normal_(conv.weight, std=math.sqrt(2.0 / (conv.out_channels * kernel)))
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


def _output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class SpikingStem3d(nn.Module):
    """Conv3d over (time, y, x) + BatchNorm3d + neuron: [B, T, C_in, H, W] batch first -> [T, B, C, H', W'].

    Kernel (5, 7, 7), stride (1, 2, 2), padding (2, 3, 3): frame t sees frames t-2..t+2 (not causal).
    """

    def __init__(self, in_channels: int, out_channels: int, settings: NeuronSettings, batch_norm: bool = True):
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=not batch_norm
        )
        self.bn = nn.BatchNorm3d(out_channels) if batch_norm else nn.Identity()
        self.neuron = make_neuron(out_channels, settings)
        _conv_init(self.conv, settings.spiking)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        current = self.bn(self.conv(frames.transpose(1, 2)))  # [B, C, T, H, W]
        return self.neuron(current.permute(2, 0, 1, 3, 4).contiguous())


class PoolingNeuron(nn.Module):
    """Average pooling followed by IF neurons (leak 1): [T, B, C, H, W] -> [T, B, C, H', W'].

    ``kernel_size=None`` pools globally (adaptive average to 1x1). The pool is torch's average (window sum / 9 in
    float32, padding counted), which the IF membrane integrates exactly as the original does; in the ANN twin the
    pooled values pass through unchanged. The pooled spikes are reported as a rate but are not in the spike loss.
    """

    def __init__(self, channels: int, settings: NeuronSettings, kernel_size: int | None, stride: int = 1):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        if settings.spiking:
            self.neuron = LIFNeuron(channels, settings, learnable_leak=False, penalty_terms=0)
        else:
            self.neuron = SpikeRecord(penalty_terms=0, spikes=False)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        folded = spikes.flatten(0, 1)
        if self.kernel_size is None:
            pooled = F.adaptive_avg_pool2d(folded, 1)
        else:
            pooled = F.avg_pool2d(folded, self.kernel_size, self.stride, self.kernel_size // 2)
        return self.neuron(pooled.unflatten(0, spikes.shape[:2]))


class CurrentResidualBlock(nn.Module):
    """Spiking ResNet basic block adding its shortcut to the second neuron's current: [T,B,C_in,H,W] -> [T,B,C,H',W'].

        s1 = LIF1(BN1(conv3x3_stride(x)))
        s  = LIF2(BN2(conv3x3(s1)) + shortcut(x)),  shortcut = x, or BN3(conv1x1_stride(x)) when the stride is 2

    The intermediate spikes s1 are recorded (rate and spike loss) by ``neuron1.activity``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, settings: NeuronSettings, batch_norm: bool = True
    ):
        super().__init__()
        bias = not batch_norm
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.neuron1 = make_neuron(out_channels, settings)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        if stride != 1:
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1, stride, padding=0, bias=bias)
            self.shortcut_bn = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
            _conv_init(self.shortcut_conv, settings.spiking)
        else:
            self.shortcut_conv = None
            self.shortcut_bn = None
        self.neuron2 = make_neuron(out_channels, settings)
        _conv_init(self.conv1, settings.spiking)
        _conv_init(self.conv2, settings.spiking)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        time_batch = spikes.shape[:2]
        folded = spikes.flatten(0, 1)
        mid = self.neuron1(self.bn1(self.conv1(folded)).unflatten(0, time_batch))
        current = self.bn2(self.conv2(mid.flatten(0, 1)))
        shortcut = folded if self.shortcut_conv is None else self.shortcut_bn(self.shortcut_conv(folded))
        return self.neuron2((current + shortcut).unflatten(0, time_batch))


class SpikingResNet18Frontend(nn.Module):
    """Spiking ResNet-18 over event frames: [B, T, 2, 88, 88] batch first -> features [T, B, 512] time first.

    stem (Conv3d + LIF) -> 3x3/2 avg pool + IF -> 4 stages of 2 `CurrentResidualBlock`s (64, 128, 256, 512
    channels; stride 2 at the start of stages 3-5) -> global avg pool + IF -> flatten.

    Args:
        settings: neuron kind (LIF or ReLU twin), spike sign, threshold, surrogate sharpness.
        batch_norm: BatchNorm after every convolution (False: biased convolutions, the original's ANN setting).
        in_channels: polarity channels of the input.
        input_size: side of the square input; fixes the spatial sizes used for the synapse counts.
    """

    def __init__(
        self, settings: NeuronSettings, batch_norm: bool = True, in_channels: int = 2, input_size: int = 88
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.in_channels = in_channels
        widths = (64, 128, 256, 512)
        self.out_features = widths[-1]
        self.stem = SpikingStem3d(in_channels, widths[0], settings, batch_norm)
        self.pool = PoolingNeuron(widths[0], settings, kernel_size=3, stride=2)
        stages = []
        in_width = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    CurrentResidualBlock(in_width, width, stride, settings, batch_norm),
                    CurrentResidualBlock(width, width, 1, settings, batch_norm),
                )
            )
            in_width = width
        self.layer2, self.layer3, self.layer4, self.layer5 = stages
        self.global_pool = PoolingNeuron(widths[-1], settings, kernel_size=None)
        self._set_synapse_counts()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        spikes = self.pool(self.stem(frames))
        spikes = self.layer5(self.layer4(self.layer3(self.layer2(spikes))))
        return self.global_pool(spikes).flatten(2)

    def blocks(self) -> list[CurrentResidualBlock]:
        """The 8 residual blocks in forward order."""
        return [block for stage in (self.layer2, self.layer3, self.layer4, self.layer5) for block in stage]

    def activity_records(self) -> list[SpikeRecord]:
        """The records of every spiking layer in forward order: stem, pool, (mid, out) per block, global pool."""
        records = [self.stem.neuron.activity, _record(self.pool.neuron)]
        for block in self.blocks():
            records += [block.neuron1.activity, block.neuron2.activity]
        return [*records, _record(self.global_pool.neuron)]

    def _set_synapse_counts(self) -> None:
        """Connections each layer's neurons drive per time step (the dense work of their consumers)."""
        size = _output_size(self.input_size, 7, 2, 3)
        pooled = _output_size(size, 3, 2, 1)
        self.stem.neuron.activity.synapses = float(self.stem.conv.out_channels * pooled * pooled * 9)
        blocks = self.blocks()
        size = pooled
        for index, block in enumerate(blocks):
            size = _output_size(size, 3, block.conv1.stride[0], 1)
            width = block.conv2.out_channels
            block.neuron1.activity.synapses = float(width * size * size * width * 9)
            if index + 1 < len(blocks):
                consumer = blocks[index + 1]
                next_size = _output_size(size, 3, consumer.conv1.stride[0], 1)
                fan = consumer.conv1.out_channels * next_size * next_size * width * 9
                if consumer.shortcut_conv is None:
                    fan += width * size * size
                else:
                    fan += consumer.shortcut_conv.out_channels * next_size * next_size * width
            else:
                fan = width * size * size
            block.neuron2.activity.synapses = float(fan)


def _record(neuron: nn.Module) -> SpikeRecord:
    return neuron if isinstance(neuron, SpikeRecord) else neuron.activity
