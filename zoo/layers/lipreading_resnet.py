"""The lip-reading front-end: a Conv3d stem and a ResNet-18 trunk, with injectable activations and pooling.

Both lip-reading families use it (Martinez et al.'s visual front-end): SpikGRU with LIF neurons (IF after the
poolings) and its ReLU twin, RAVEn with Swish and max pooling. Tensors inside are time first, [T, B, C, H, W];
convolutions, BatchNorm and pooling run on all T frames at once (time folded into the batch by spikingjelly's
`seq_to_ann_forward`), and every activation receives the time-first tensor, so a stateful spiking neuron
integrates over time while an element-wise activation (ReLU, Swish) acts per entry. A channel-wise stateless
activation must expect the channel on axis 2.

    frames [B, T, C_in, 88, 88] -> stem: Conv3d (5,7,7)/(1,2,2)/(2,3,3) + BN3d + act   -> [T, B, 64, 44, 44]
                                -> pool (e.g. 3x3/2 average + IF, or 3x3/2 max)       -> [T, B, 64, 22, 22]
                                -> layer2 .. layer5: 2 `BasicBlock`s each, 64/128/256/512 channels, strides 1/2/2/2
                                                                                      -> [T, B, 512, 3, 3]
                                -> global pool (average, optionally + IF) and flatten -> [T, B, 512]

The stages are named layer2 .. layer5 as in SpikGRU's original (whose layer1 is the stem); torchvision and RAVEn
call them layer1 .. layer4. The Conv3d stem sees frames t-2 .. t+2 (not causal).

Injection points:
- ``activation(channels) -> nn.Module``: after the stem and inside every block (both places of each block);
- ``stem_pool(channels)`` and ``global_pool(channels)``: modules on [T, B, C, H, W] (`FramePool`, or a
  `PooledActivation` pairing one with a neuron);
- ``conv_init(conv)``: called on every convolution after it is built (e.g. a family's original initialisation);
- ``batch_norm``: BatchNorm after every convolution, or none and biased convolutions.
`resnet_stages` builds the four stages alone, 2-D or 1-D (e.g. for an audio front-end run with T = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from spikingjelly.activation_based.functional import seq_to_ann_forward
from torch import nn

from zoo.layers.spike_record import SpikeRecord

__all__ = [
    "ActivationFactory",
    "BasicBlock",
    "ConvInit",
    "FramePool",
    "LipReadingResNet18",
    "PooledActivation",
    "Stem3d",
    "resnet_stages",
]

ActivationFactory = Callable[[int], nn.Module]
"""channels -> activation module on time-first [T, B, C, *spatial] (a neuron, `nn.SiLU()`, ...)."""
ConvInit = Callable[[nn.Module], None]
"""Called on each convolution once it is built (weights are initialised in place)."""

RESNET18_WIDTHS = (64, 128, 256, 512)


def _output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class FramePool(nn.Module):
    """2-D pooling of every frame of [T, B, C, H, W] -> [T, B, C, H', W'] (no parameters).

    Args:
        kind: "avg" (padding counted in the mean, as `F.avg_pool2d` by default) or "max".
        kernel_size: window side; None pools globally (adaptive average to 1 x 1).
        stride, padding: window stride and zero padding.
    """

    def __init__(
        self, kind: Literal["avg", "max"] = "avg", kernel_size: int | None = 3, stride: int = 2, padding: int = 1
    ) -> None:
        super().__init__()
        if kind not in ("avg", "max"):
            raise ValueError(f"FramePool: kind must be 'avg' or 'max', got {kind!r}")
        if kernel_size is None and kind != "avg":
            raise ValueError("FramePool: global pooling (kernel_size=None) is an average")
        self.kind, self.kernel_size, self.stride, self.padding = kind, kernel_size, stride, padding

    def _pool(self, frames: torch.Tensor) -> torch.Tensor:
        if self.kernel_size is None:
            return F.adaptive_avg_pool2d(frames, 1)
        if self.kind == "avg":
            return F.avg_pool2d(frames, self.kernel_size, self.stride, self.padding)
        return F.max_pool2d(frames, self.kernel_size, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return seq_to_ann_forward(x, self._pool)

    def output_size(self, size: int) -> int:
        """Side of the pooled map for an input side `size`."""
        return 1 if self.kernel_size is None else _output_size(size, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        if self.kernel_size is None:
            return "global average"
        return f"{self.kind}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class PooledActivation(nn.Module):
    """A `FramePool` followed by an activation (e.g. SpikGRU's IF neurons after average pooling)."""

    def __init__(self, pool: FramePool, neuron: nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.neuron = neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.pool(x))


def _frame_pool(module: nn.Module) -> FramePool:
    pools = [layer for layer in module.modules() if isinstance(layer, FramePool)]
    if len(pools) != 1:
        raise TypeError(f"expected a pooling module holding one FramePool, got {type(module).__name__}")
    return pools[0]


def _record(module: nn.Module) -> SpikeRecord | None:
    return next((layer for layer in module.modules() if isinstance(layer, SpikeRecord)), None)


class Stem3d(nn.Module):
    """Conv3d over (time, y, x) + BatchNorm3d + activation: frames [B, T, C_in, H, W] -> [T, B, C, H', W'].

    Kernel (5, 7, 7), stride (1, 2, 2), padding (2, 3, 3); bias only without BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        activation: ActivationFactory,
        batch_norm: bool = True,
        conv_init: ConvInit | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=not batch_norm
        )
        self.bn = nn.BatchNorm3d(out_channels) if batch_norm else nn.Identity()
        self.neuron = activation(out_channels)
        if conv_init is not None:
            conv_init(self.conv)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        current = self.bn(self.conv(frames.transpose(1, 2)))  # [B, C, T, H, W]
        return self.neuron(current.permute(2, 0, 1, 3, 4).contiguous())


class BasicBlock(nn.Module):
    """ResNet basic block whose shortcut joins before the second activation: [T, B, C_in, *S] -> [T, B, C, *S'].

        y1 = act1(BN1(conv3x3_stride(x)))
        y  = act2(BN2(conv3x3(y1)) + shortcut(x)),  shortcut = x, or BN3(conv1x1_stride(x)) when the stride or
                                                    the width changes

    With spiking neurons as act, the shortcut is added to the *current* of the second neuron (SpikGRU). ``dims``
    = 2 (frames, S = (H, W)) or 1 (sequences, S = (L,)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        activation: ActivationFactory,
        dims: Literal[1, 2] = 2,
        batch_norm: bool = True,
        conv_init: ConvInit | None = None,
    ) -> None:
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
        norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]

        def make_norm() -> nn.Module:
            return norm(out_channels) if batch_norm else nn.Identity()

        bias = not batch_norm
        self.conv1 = conv(in_channels, out_channels, 3, stride, padding=1, bias=bias)
        self.bn1 = make_norm()
        self.neuron1 = activation(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, 1, padding=1, bias=bias)
        self.bn2 = make_norm()
        self.shortcut_conv = None
        self.shortcut_bn = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut_conv = conv(in_channels, out_channels, 1, stride, padding=0, bias=bias)
            self.shortcut_bn = make_norm()
            if conv_init is not None:
                conv_init(self.shortcut_conv)
        self.neuron2 = activation(out_channels)
        if conv_init is not None:
            conv_init(self.conv1)
            conv_init(self.conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.neuron1(seq_to_ann_forward(x, [self.conv1, self.bn1]))
        current = seq_to_ann_forward(mid, [self.conv2, self.bn2])
        shortcut = x if self.shortcut_conv is None else seq_to_ann_forward(x, [self.shortcut_conv, self.shortcut_bn])
        return self.neuron2(current + shortcut)


def resnet_stages(
    activation: ActivationFactory,
    in_channels: int = RESNET18_WIDTHS[0],
    widths: tuple[int, ...] = RESNET18_WIDTHS,
    blocks_per_stage: int = 2,
    dims: Literal[1, 2] = 2,
    batch_norm: bool = True,
    conv_init: ConvInit | None = None,
) -> list[nn.Sequential]:
    """The stages of a ResNet-18 (defaults): `blocks_per_stage` `BasicBlock`s each, stride 2 at the start of every
    stage but the first. Returns the stages in forward order, [T, B, C_in, *S] -> [T, B, widths[-1], *S / 2^(n-1)].
    """
    stages = []
    for index, width in enumerate(widths):
        blocks = [
            BasicBlock(
                in_channels if block == 0 else width,
                width,
                1 if index == 0 or block > 0 else 2,
                activation,
                dims,
                batch_norm,
                conv_init,
            )
            for block in range(blocks_per_stage)
        ]
        stages.append(nn.Sequential(*blocks))
        in_channels = width
    return stages


class LipReadingResNet18(nn.Module):
    """3-D stem + ResNet-18 over video frames: [B, T, C_in, H, W] batch first -> features [T, B, 512] time first.

    Args:
        activation: factory of the activation after the stem and in every block.
        stem_pool: factory of the pooling after the stem (a `FramePool` or a module holding one).
        global_pool: factory of the global pooling after the last stage (same).
        batch_norm: BatchNorm after every convolution (False: biased convolutions).
        in_channels: input channels (2 DVS polarities, 1 grayscale).
        input_size: side of the square input; fixes the spatial sizes used for the synapse counts.
        conv_init: initialisation applied to every convolution (None: PyTorch's default).
    """

    def __init__(
        self,
        activation: ActivationFactory,
        stem_pool: Callable[[int], nn.Module],
        global_pool: Callable[[int], nn.Module],
        batch_norm: bool = True,
        in_channels: int = 2,
        input_size: int = 88,
        conv_init: ConvInit | None = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.in_channels = in_channels
        widths = RESNET18_WIDTHS
        self.out_features = widths[-1]
        self.stem = Stem3d(in_channels, widths[0], activation, batch_norm, conv_init)
        self.pool = stem_pool(widths[0])
        stages = resnet_stages(activation, widths[0], widths, batch_norm=batch_norm, conv_init=conv_init)
        self.layer2, self.layer3, self.layer4, self.layer5 = stages
        self.global_pool = global_pool(widths[-1])
        self.set_synapse_counts()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(frames))
        x = self.layer5(self.layer4(self.layer3(self.layer2(x))))
        return self.global_pool(x).flatten(2)

    def blocks(self) -> list[BasicBlock]:
        """The 8 residual blocks in forward order."""
        return [block for stage in (self.layer2, self.layer3, self.layer4, self.layer5) for block in stage]

    def set_synapse_counts(self) -> None:
        """Write into the `SpikeRecord` of each penalised activation the connections its neurons drive per time
        step and sample (the dense work of their consumers), for ``spike_penalty(weighting="synapses")``.
        Activations without a record are skipped.
        """
        conv = self.stem.conv
        size = _output_size(self.input_size, conv.kernel_size[1], conv.stride[1], conv.padding[1])
        pool = _frame_pool(self.pool)
        pooled = pool.output_size(size)
        _set_synapses(self.stem.neuron, conv.out_channels * pooled * pooled * pool.kernel_size**2)
        blocks = self.blocks()
        size = pooled
        for index, block in enumerate(blocks):
            size = _output_size(size, 3, block.conv1.stride[0], 1)
            width = block.conv2.out_channels
            _set_synapses(block.neuron1, width * size * size * width * 9)
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
            _set_synapses(block.neuron2, fan)


def _set_synapses(activation: nn.Module, count: int) -> None:
    record = _record(activation)
    if record is not None:
        record.synapses = float(count)
