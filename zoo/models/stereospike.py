"""StereoSpike (Rançon et al. 2021, arXiv 2109.13751): depth from stereo DVS events with a spiking U-Net.

Layout (paper Fig. 2, reference code ``urancon/StereoSpike`` @ 6254fec):

- encoder: 5 convs 5x5 without bias (strides 1, 2, 2, 2, 2; 32-64-128-256-512 channels), each followed by a neuron;
- bottleneck: 2 SEW residual blocks (conv3x3 -> neuron -> conv3x3 -> neuron, then ADD the block input);
- decoder: 4 stages of nearest upsampling to (h + 4, w + 4) and a valid 5x5 conv (no bias) + neuron; each stage's
  spikes are *summed* with the encoder spikes of the same level (add4 .. add1) and the sum feeds the next stage;
- heads: add_k is nearest-upsampled straight to (H + 2, W + 2) and a valid 3x3 conv *with* bias gives P_k [B, 1, H, W];
- readout: one shared non-firing integrate-and-fire pool (threshold +inf) integrates P4, P3, P2, P1 in that order and is
  read after each: depth4 = P4, depth3 = P4 + P3, depth2 = P4 + P3 + P2, depth1 = P4 + P3 + P2 + P1 (metres).

The integrator is implemented as cumulative sums. That is exact, not an approximation: an IF neuron with threshold
+inf never fires (Θ(V - inf) = 0), so its hard reset V <- (1 - S) V + S V_reset is the identity, its charge
V <- V + X starts from V = 0 after the reset, and the surrogate gradient at -inf is 0, so the backward pass is the
identity too. With T > 1 windows every head is integrated over all T steps before it is read (the heads do not feed
back, so the order of integration is free): depth_k = sum_t sum_{j >= k} P_j(t).

All sizes are derived from the input: encoder maps are ceil(H / 2^i), each decoder stage upsamples to the size of its
skip, the heads to the input size. Any H, W >= 1 runs; 260 x 346 (the DAVIS346 sensor) is what the paper uses.

At T = 1 from a fresh state every IF layer computes S = Θ(W * x - 1) with Θ(0) = 1, which is what the paper (and
the reference fixture) describes; with T > 1 the neurons integrate over the windows like any multi-step SNN.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron, surrogate
from spikingjelly.activation_based.functional import seq_to_ann_forward
from torch import nn

from zoo.convert import register_converter
from zoo.layers.spike_record import SpikeRecord
from zoo.options import check_range
from zoo.registry import SmallConfig, TensorSpec, register_model

__all__ = [
    "convert_stereospike",
    "NearestUpsampleConv",
    "SEWBlock",
    "StereoSpike",
    "stereospike",
    "stereospike_ann",
    "stereospike_monocular",
]

NeuronKind = Literal["if", "lif", "plif"]
Activation = Literal["sigmoid", "tanh", "leaky_relu"]

ENCODER_KERNEL = 5
DECODER_KERNEL = 5
HEAD_KERNEL = 3


def _frame_conv(conv: nn.Module, size: tuple[int, int] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-frame map of a conv layer: `conv` itself, or an upsampling conv bound to its output `size`."""
    return conv if size is None else functools.partial(conv, size=size)


class NearestUpsampleConv(nn.Module):
    """Nearest upsampling to (h + k - 1, w + k - 1), then a valid k x k conv: output exactly (h, w).

    The paper's alternative to transposed convs: no checkerboard artefacts and integer spike counts stay integer.
    Upsampling uses PyTorch's legacy ``mode="nearest"`` (floor index), as the reference does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=bias)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """x: [N, C_in, h_in, w_in] -> [N, C_out, *size]."""
        grown = (size[0] + self.kernel_size - 1, size[1] + self.kernel_size - 1)
        return self.conv(F.interpolate(x, size=grown, mode="nearest"))


class ScaledNeuron(nn.Module):
    """Multiply the input current by a constant gain, then a multi-step neuron, then record its firing rate (`rate`).

    `gain` is the reference's ``MultiplyBy`` (1 for StereoSpike, 10 for its PLIF variants).
    """

    def __init__(self, node: nn.Module, gain: float) -> None:
        super().__init__()
        self.gain = gain
        self.node = node
        self.rate = SpikeRecord()

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """current: [T, B, C, H, W] -> spikes of the same shape."""
        if self.gain != 1.0:
            current = current * self.gain
        return self.rate(self.node(current))


def _surrogate(name: Literal["atan", "sigmoid"]) -> nn.Module:
    """spikingjelly surrogates at the alphas of the reference environment (spikingjelly 0.0.0.0.12)."""
    return surrogate.ATan(alpha=2.0) if name == "atan" else surrogate.Sigmoid(alpha=4.0)


def _neuron(kind: NeuronKind, tau: float, surrogate_name: Literal["atan", "sigmoid"]) -> nn.Module:
    """A multi-step spikingjelly neuron with threshold 1, hard reset to 0 and a detached reset, as in the reference."""
    common = {"v_threshold": 1.0, "v_reset": 0.0, "detach_reset": True, "step_mode": "m"}
    if kind == "if":
        return neuron.IFNode(surrogate_function=_surrogate(surrogate_name), **common)
    if kind == "lif":
        return neuron.LIFNode(tau=tau, decay_input=True, surrogate_function=_surrogate(surrogate_name), **common)
    return neuron.ParametricLIFNode(init_tau=tau, decay_input=True, surrogate_function=_surrogate("sigmoid"), **common)


class SpikingConv(nn.Module):
    """Conv (no bias) -> gain -> neuron, on [T, B, C, H, W]."""

    def __init__(self, conv: nn.Module, spiking: ScaledNeuron) -> None:
        super().__init__()
        self.conv = conv
        self.neuron = spiking

    def forward(self, x_seq: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """x_seq: [T, B, C_in, h, w] -> spikes [T, B, C_out, h', w'] (`size` only for upsampling convs)."""
        return self.neuron(seq_to_ann_forward(x_seq, _frame_conv(self.conv, size)))


class AnalogConv(nn.Module):
    """The equivalent ANN's layer: conv -> activation -> BatchNorm (BN after the activation, as the reference)."""

    def __init__(self, conv: nn.Module, activation: nn.Module, channels: int) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x_seq: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """x_seq: [T, B, C_in, h, w] -> [T, B, C_out, h', w'] (time folded into the batch)."""
        return seq_to_ann_forward(x_seq, [_frame_conv(self.conv, size), self.activation, self.norm])


class SEWBlock(nn.Module):
    """Spike-element-wise residual block with ADD (Fang et al. 2021): out = layer2(layer1(x)) + x.

    `layer1`/`layer2` are `SpikingConv` (SNN) or `AnalogConv` (the equivalent ANN's ResBlock).
    """

    def __init__(self, layer1: nn.Module, layer2: nn.Module) -> None:
        super().__init__()
        self.layer1 = layer1
        self.layer2 = layer2

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """x_seq: [T, B, C, h, w] -> same shape (integer-valued for spiking inputs)."""
        return self.layer2(self.layer1(x_seq)) + x_seq


class DepthHead(nn.Module):
    """Prediction layer: nearest upsampling straight to the input size + valid 3x3 conv with bias, times `gain`."""

    def __init__(self, in_channels: int, gain: float) -> None:
        super().__init__()
        self.gain = gain
        self.up = NearestUpsampleConv(in_channels, 1, HEAD_KERNEL, bias=True)

    def forward(self, x_seq: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """x_seq: [T, B, C, h, w] -> current into the output integrator, summed over T: [B, 1, *size]."""
        current = seq_to_ann_forward(x_seq, _frame_conv(self.up, size))
        if self.gain != 1.0:
            current = current * self.gain
        return current.sum(0)


def _density_record() -> SpikeRecord:
    """Recorder of an integer-valued spike sum: density, and mean(s^2) for the spike penalty."""
    return SpikeRecord(measure="density", penalty_terms=1, spikes=False)


class StereoSpike(nn.Module):
    """The StereoSpike U-Net with skip sums, four heads and the shared integrating readout.

    The blocks are passed in (spiking or analog), so the SNN and its equivalent ANN share this forward.

    Args:
        encoder: 5 blocks, [T, B, C, H, W] -> [T, B, C_i, ceil(H / 2^i), ceil(W / 2^i)].
        bottleneck: residual blocks on the deepest map.
        decoder: 4 upsampling blocks (deconv4 .. deconv1), called with the size of their skip.
        heads: 4 `DepthHead` (predict_depth4 .. predict_depth1).
        spiking: whether to reset neuron state per forward and record densities of the integer tensors.

    Recording (spiking only): every neuron ends in a `SpikeRecord` (``<block>.neuron.rate``, mean spikes per site);
    the integer-valued bottleneck output and skip sums add4 .. add1 are recorded as densities (fraction of non-zero
    sites, as the paper measures them: ``bottleneck_density``, ``skip_densities.<k>``) and carry the paper's spike
    penalty (eq. 5): `zoo.spike_penalty(model)` = sum over those five tensors of mean(s^2) / 2.
    """

    def __init__(
        self,
        encoder: nn.ModuleList,
        bottleneck: nn.Sequential,
        decoder: nn.ModuleList,
        heads: nn.ModuleList,
        spiking: bool,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottleneck = bottleneck
        self.decoder = decoder
        self.heads = heads
        self.spiking = spiking
        if spiking:
            self.bottleneck_density = _density_record()
            self.skip_densities = nn.ModuleList(_density_record() for _ in decoder)
        self.in_channels = encoder[0].conv.in_channels

    def forward(
        self, events: torch.Tensor, return_spikes: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """events: [B, T, C, H, W] event counts -> depths [B, 4, H, W] in metres.

        Channel k of the output is the integrator read after head k: (depth4, depth3, depth2, depth1), the last
        one being the final prediction. With `return_spikes`, also returns the bottleneck output and the skip sums
        add4 .. add1, each [B, T, C, h, w] (integer-valued for the SNN).
        """
        if events.dim() != 5 or events.shape[2] != self.in_channels:
            raise ValueError(
                f"StereoSpike expects [B, T, {self.in_channels}, H, W] event counts (T = 1 for the paper; add the "
                f"axis with events.unsqueeze(1)), got shape {tuple(events.shape)}"
            )
        if self.spiking:
            functional.reset_net(self)
        size = (events.shape[-2], events.shape[-1])
        h = events.transpose(0, 1)
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)
        h = self.bottleneck(h)
        if self.spiking:
            h = self.bottleneck_density(h)
        spikes = [h]
        depth = None
        depths = []
        for stage, (deconv, head) in enumerate(zip(self.decoder, self.heads, strict=True)):
            skip = skips[-2 - stage]
            h = deconv(h, (skip.shape[-2], skip.shape[-1])) + skip
            if self.spiking:
                h = self.skip_densities[stage](h)
            spikes.append(h)
            current = head(h, size)
            depth = current if depth is None else depth + current
            depths.append(depth)
        out = torch.cat(depths, dim=1)
        if return_spikes:
            return out, [s.transpose(0, 1) for s in spikes]
        return out


LEVELS = 5
"""Encoder levels of the U-Net: 4 decoder stages and 4 heads, so the output has 4 depth maps."""


def _check_config(in_channels: int, widths: tuple[int, ...], blocks_key: str, blocks: int) -> None:
    """Reject what cannot be built, naming the option, what it expects and what it got."""
    if len(widths) != LEVELS:
        raise ValueError(
            f"StereoSpike: option 'widths' expects {LEVELS} channel counts (one per encoder level; the 4 decoder "
            f"stages and heads give the 4 depth maps), got {tuple(widths)!r}"
        )
    check_range("in_channels", in_channels, low=1, owner="StereoSpike")
    for index, width in enumerate(widths):
        check_range(f"widths[{index}]", width, low=1, owner="StereoSpike")
    check_range(blocks_key, blocks, low=0, owner="StereoSpike")


def _spiking_stereospike(
    in_channels: int,
    widths: tuple[int, ...],
    num_sew_blocks: int,
    neuron_kind: NeuronKind,
    sew_neuron: Literal["if", "plif"],
    sew_surrogate: Literal["atan", "sigmoid"],
    tau: float,
    gain: float,
) -> StereoSpike:
    _check_config(in_channels, widths, "num_sew_blocks", num_sew_blocks)
    if "lif" in neuron_kind or sew_neuron == "plif":
        check_range("tau", tau, low=1.0, low_open=True, owner="StereoSpike")

    def scaled(kind: NeuronKind, surrogate_name: Literal["atan", "sigmoid"]) -> ScaledNeuron:
        return ScaledNeuron(_neuron(kind, tau, surrogate_name), gain)

    channels = (in_channels, *widths)
    encoder = nn.ModuleList(
        SpikingConv(
            nn.Conv2d(
                channels[i], channels[i + 1], ENCODER_KERNEL, 1 if i == 0 else 2, ENCODER_KERNEL // 2, bias=False
            ),
            scaled(neuron_kind, "atan"),
        )
        for i in range(len(widths))
    )
    deepest = widths[-1]
    bottleneck = nn.Sequential(
        *(
            SEWBlock(
                SpikingConv(nn.Conv2d(deepest, deepest, 3, 1, 1, bias=False), scaled(sew_neuron, sew_surrogate)),
                SpikingConv(nn.Conv2d(deepest, deepest, 3, 1, 1, bias=False), scaled(sew_neuron, sew_surrogate)),
            )
            for _ in range(num_sew_blocks)
        )
    )
    levels = list(reversed(range(len(widths) - 1)))
    decoder = nn.ModuleList(
        SpikingConv(
            NearestUpsampleConv(widths[i + 1], widths[i], DECODER_KERNEL, bias=False), scaled(neuron_kind, "atan")
        )
        for i in levels
    )
    heads = nn.ModuleList(DepthHead(widths[i], gain) for i in levels)
    return StereoSpike(encoder, bottleneck, decoder, heads, spiking=True)


def _analog_stereospike(
    in_channels: int, widths: tuple[int, ...], num_res_blocks: int, activation: Activation
) -> StereoSpike:
    _check_config(in_channels, widths, "num_res_blocks", num_res_blocks)
    shared = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.1)}[activation]()
    channels = (in_channels, *widths)
    encoder = nn.ModuleList(
        AnalogConv(
            nn.Conv2d(channels[i], channels[i + 1], ENCODER_KERNEL, 1 if i == 0 else 2, ENCODER_KERNEL // 2, bias=True),
            shared,
            channels[i + 1],
        )
        for i in range(len(widths))
    )
    deepest = widths[-1]
    bottleneck = nn.Sequential(
        *(
            SEWBlock(
                AnalogConv(nn.Conv2d(deepest, deepest, 3, 1, 1, bias=True), shared, deepest),
                AnalogConv(nn.Conv2d(deepest, deepest, 3, 1, 1, bias=True), shared, deepest),
            )
            for _ in range(num_res_blocks)
        )
    )
    levels = list(reversed(range(len(widths) - 1)))
    decoder = nn.ModuleList(
        AnalogConv(NearestUpsampleConv(widths[i + 1], widths[i], DECODER_KERNEL, bias=False), shared, widths[i])
        for i in levels
    )
    heads = nn.ModuleList(DepthHead(widths[i], 1.0) for i in levels)
    return StereoSpike(encoder, bottleneck, decoder, heads, spiking=False)


_PAPER = "StereoSpike: Depth Learning with a Spiking Neural Network (Rançon et al., 2021)"
_CITATION = (
    "@article{rancon2021stereospike, title={StereoSpike: Depth Learning with a Spiking Neural Network}, "
    "author={Ran{\\c{c}}on, Ulysse and Cuadrado-Anibarro, Javier and Cottereau, Benoit R. and Masquelier, "
    "Timoth{\\'e}e}, journal={arXiv preprint arXiv:2109.13751}, year={2021}}"
)
_AXES = {
    "B": "batch",
    "T": "sub-windows of the 50 ms window before a depth timestamp (1 in the paper)",
    "H": "sensor rows (260 for MVSEC's DAVIS346)",
    "W": "sensor columns (346)",
}
_IMAGE_AXES = {axis: meaning for axis, meaning in _AXES.items() if axis != "T"}
_OUTPUTS = {
    "depths": TensorSpec(
        shape=("B", 4, "H", "W"),
        axes=_IMAGE_AXES,
        description=(
            "depth in metres: the shared integrating output neurons read after each head (integrated over T), "
            "channels (depth4, depth3, depth2, depth1) = cumulative sums P4, P4+P3, P4+P3+P2, P4+P3+P2+P1; the last "
            "channel is the prediction. forward(events, return_spikes=True) also returns [bottleneck, add4, add3, "
            "add2, add1] as [B, T, C, h, w]"
        ),
    )
}
SMALL = SmallConfig(sizes={"T": 2, "H": 32, "W": 32})
"""Registry-wide tests: two sub-windows of 32 x 32 pixels (the encoder halves the size four times)."""


def _inputs(channels: int, meaning: str) -> dict[str, TensorSpec]:
    return {
        "events": TensorSpec(
            shape=("B", "T", channels, "H", "W"),
            axes=_AXES,
            description=f"raw event counts per pixel and polarity (not normalised); channels: {meaning}",
            sizes={"B": 1, "T": 1, "H": 260, "W": 346},
        )
    }


@register_model(
    "stereospike",
    family="stereospike",
    paper=_PAPER,
    citation=_CITATION,
    inputs=_inputs(4, "left-ON, left-OFF, right-ON, right-OFF"),
    outputs=_OUTPUTS,
    small=SMALL,
)
def stereospike(
    in_channels: int = 4,
    widths: tuple[int, ...] = (32, 64, 128, 256, 512),
    num_sew_blocks: int = 2,
    neuron_kind: NeuronKind = "if",
    sew_neuron: Literal["if", "plif"] = "if",
    sew_surrogate: Literal["atan", "sigmoid"] = "sigmoid",
    tau: float = 3.0,
    gain: float = 1.0,
) -> StereoSpike:
    """Binocular StereoSpike as in paper v2 (18,148,708 parameters).

    IF neurons with the ATan surrogate (alpha 2) everywhere except in the SEW blocks, which keep spikingjelly's default
    Sigmoid surrogate (alpha 4) as the reference does (`sew_surrogate="atan"` switches that quirk off; the forward pass
    is the same either way). `neuron_kind="plif", sew_neuron="plif", gain=10.0` (tau 3) is the reference's PLIF "Matt"
    class (18,148,721 parameters); `tau` only matters for LIF/PLIF (init tau of PLIF).
    """
    return _spiking_stereospike(in_channels, widths, num_sew_blocks, neuron_kind, sew_neuron, sew_surrogate, tau, gain)


@register_model(
    "stereospike-monocular",
    family="stereospike",
    paper=_PAPER,
    citation=_CITATION,
    inputs=_inputs(2, "ON, OFF of the left camera"),
    outputs=_OUTPUTS,
    small=SMALL,
)
def stereospike_monocular(
    in_channels: int = 2,
    widths: tuple[int, ...] = (32, 64, 128, 256, 512),
    num_sew_blocks: int = 2,
    neuron_kind: NeuronKind = "plif",
    sew_neuron: Literal["if", "plif"] = "plif",
    sew_surrogate: Literal["atan", "sigmoid"] = "sigmoid",
    tau: float = 3.0,
    gain: float = 10.0,
) -> StereoSpike:
    """Monocular StereoSpike: the reference's monocular class with the arguments of its "Matt" line (18,147,121 params).

    PLIF neurons (init tau 3, Sigmoid surrogate) with a x10 input gain everywhere, SEW blocks included (the reference
    class always uses PLIF there). `neuron_kind="lif", tau=10.0, gain=1.0` gives the class's constructor defaults
    (LIF tau 10 with ATan, PLIF SEW blocks; 18,147,112 parameters); `neuron_kind="if", sew_neuron="if", gain=1.0`
    gives the IF network the paper describes.
    """
    return _spiking_stereospike(in_channels, widths, num_sew_blocks, neuron_kind, sew_neuron, sew_surrogate, tau, gain)


@register_model(
    "stereospike-ann",
    family="stereospike",
    paper=_PAPER,
    citation=_CITATION,
    inputs=_inputs(4, "left-ON, left-OFF, right-ON, right-OFF"),
    outputs={
        "depths": TensorSpec(
            shape=("B", 4, "H", "W"),
            axes=_IMAGE_AXES,
            description="depth in metres: cumulative head sums (depth4, depth3, depth2, depth1), last = prediction",
        )
    },
    small=SMALL,
)
def stereospike_ann(
    in_channels: int = 4,
    widths: tuple[int, ...] = (32, 64, 128, 256, 512),
    num_res_blocks: int = 2,
    activation: Activation = "sigmoid",
) -> StereoSpike:
    """The paper's "equivalent ANN" (Table 4; 18,158,788 parameters).

    Same topology, conv biases in the encoder and residual blocks, conv -> activation -> BatchNorm in every layer, and
    one activation module shared by all layers (Sigmoid by default as in the reference's train.py; the paper also
    reports Tanh and LeakyReLU(0.1)). Same integrating readout. With T > 1 the frames are processed independently and
    the heads integrated over T.
    """
    return _analog_stereospike(in_channels, widths, num_res_blocks, activation)


# Conversion from the original checkpoints ---------------------------------------------------------------------

# urancon/StereoSpike checkpoints -> `zoo.models.stereospike`.
#
# Reference names (``network/SNN_models.py``, ``network/ANN_models.py`` @ 6254fec) and ours:
#
# | reference | ours |
# |---|---|
# | ``bottom.0.*``, ``conv{i}.0.*`` (conv) | ``encoder.{0, i}.conv.*`` |
# | ``bottom.2.w``, ``conv{i}.2.w`` (PLIF) | ``encoder.{0, i}.neuron.node.w`` |
# | ``bottom.2.*``, ``conv{i}.2.*`` (ANN BatchNorm) | ``encoder.{0, i}.norm.*`` |
# | ``bottleneck.{b}.conv{j}.0.*`` | ``bottleneck.{b}.layer{j}.conv.*`` |
# | ``bottleneck.{b}.sn{j}.w`` | ``bottleneck.{b}.layer{j}.neuron.node.w`` |
# | ``bottleneck.{b}.conv{j}.2.*`` (ANN BatchNorm) | ``bottleneck.{b}.layer{j}.norm.*`` |
# | ``deconv{k}.0.up.1.weight`` | ``decoder.{K - k}.conv.conv.weight`` (K = 4: deconv4 is our stage 0) |
# | ``deconv{k}.2.w`` / ``deconv{k}.2.*`` | ``decoder.{K - k}.neuron.node.w`` / ``.norm.*`` |
# | ``predict_depth{k}.0.up.1.*`` | ``heads.{K - k}.up.conv.*`` |
#
# Tensors are copied unchanged (same layouts). A key that matches no rule is an error, so nothing is dropped silently.

_ENCODER = re.compile(r"^(bottom|conv(\d+))\.(0|2)\.(.+)$")
_BOTTLENECK_CONV = re.compile(r"^bottleneck\.(\d+)\.conv(\d)\.(0|2)\.(.+)$")
_BOTTLENECK_NEURON = re.compile(r"^bottleneck\.(\d+)\.sn(\d)\.w$")
_DECODER = re.compile(r"^deconv(\d+)\.(0\.up\.1|2)\.(.+)$")
_HEAD = re.compile(r"^predict_depth(\d+)\.0\.up\.1\.(weight|bias)$")


def _layer_suffix(position: str, name: str, spiking: bool) -> str:
    """Position 0 is the conv; position 2 is the neuron (SNN, parameter ``w``) or the BatchNorm (ANN)."""
    if position == "0":
        return f"conv.{name}"
    if position == "0.up.1":
        return f"conv.conv.{name}"
    return f"neuron.node.{name}" if spiking else f"norm.{name}"


def _rename(key: str, stages: int, spiking: bool) -> str:
    if match := _ENCODER.match(key):
        index = 0 if match.group(1) == "bottom" else int(match.group(2))
        return f"encoder.{index}.{_layer_suffix(match.group(3), match.group(4), spiking)}"
    if match := _BOTTLENECK_CONV.match(key):
        block, layer = match.group(1), match.group(2)
        return f"bottleneck.{block}.layer{layer}.{_layer_suffix(match.group(3), match.group(4), spiking)}"
    if match := _BOTTLENECK_NEURON.match(key):
        return f"bottleneck.{match.group(1)}.layer{match.group(2)}.neuron.node.w"
    if match := _DECODER.match(key):
        stage = stages - int(match.group(1))
        return f"decoder.{stage}.{_layer_suffix(match.group(2), match.group(3), spiking)}"
    if match := _HEAD.match(key):
        return f"heads.{stages - int(match.group(1))}.up.conv.{match.group(2)}"
    raise KeyError(f"StereoSpike converter: unexpected reference key {key!r}")


@register_converter("stereospike", "stereospike-monocular", "stereospike-ann")
def convert_stereospike(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename a StereoSpike / monocular / equivalent-ANN reference state dict to our keys."""
    stages = len(config["widths"]) - 1
    spiking = "activation" not in config
    return {_rename(key, stages, spiking): value for key, value in state_dict.items()}
