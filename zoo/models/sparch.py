"""sparch speech models (idiap/sparch; Bittar & Garner 2022): spiking LIF/RLIF/adLIF/RadLIF and ANN baselines.

Design note: sparch.md. Every model is ``[hidden layer] * num_hidden_layers + readout``; sparch's
``--nb_layers`` counts the readout, so its default ``--nb_layers 3`` is ``num_hidden_layers=2`` here.
Inputs are batch-first (B, T, F) as the datasets yield them; inside, everything is time-first [T, B, ...].

Padding. ``model(features)`` counts every frame, as sparch does (its HD/SC batches are zero-padded to the longest
item and the padding enters the BatchNorm statistics, the readout's time sum and the firing rates).
``model(features, lengths)`` with ``lengths (B,) int`` (the HD/SC datasets' ``collate_fn`` returns the pair with
``lengths=True``) marks frames ``t >= lengths[b]`` as padding, and padding then changes nothing:
- BatchNorm in training takes its mean and (biased) variance over the valid (b, t) rows only and updates the
  running statistics from them (unbiased variance, momentum 0.05) exactly as BatchNorm1d would on those rows alone;
- bidirectional layers reverse each sequence within its own length (the padding stays at the end);
- the SNN readout's sum of softmax and the ANN readout's sum of softmax run over valid steps only;
- firing rates (`zoo.firing_rates(model)` and the per-neuron rates output) are means over valid steps.
Padded steps still run through the recurrences (after the valid ones, so they cannot reach them). Checking the
lengths (1 <= lengths <= T) reads one flag from the device per forward.

A hidden layer (spiking or not):
1. bidirectional: x and its time-flipped copy are stacked on the batch axis (B' = 2B) and share every weight;
2. I = W x for all steps at once (no bias by default);
3. normalisation of I before the dynamics: BatchNorm1d(momentum=0.05) over the B'*T rows, LayerNorm over
   the features, or none;
4. the neuron recurrence over time (`zoo.kernels.sparch_scan`, or the ANN cells);
5. bidirectional: the second half is flipped back in time and concatenated on the features (2H wide);
6. dropout on the outputs.

Spiking layers draw their initial states u, [w], s ~ U[0, 1) with `torch.rand` in every forward, in the
original's order (per layer u, [w], s, then the readout's u) and shapes, on the input's device: with
``torch.manual_seed(2)`` right before a CPU forward the draws are bit-identical to sparch's (which draws on
the CPU and copies to the GPU; on CUDA ours come from the CUDA generator, with the same distribution).
``initial_state="zeros"`` starts from zero states instead (deterministic evaluation).

The SNN readout is a non-spiking leaky integrator u_t = alpha u_{t-1} + (1 - alpha) I_t whose output is
sum_t softmax_classes(u_t) (probabilities summed over time, not logits; sparch trains it with
CrossEntropyLoss, i.e. a second softmax on top). The ANN readout is sum_t softmax over the hidden features,
then a Linear map to the classes and normalisation of the class scores.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from zoo.analysis.synops import Projection
from zoo.convert import StateDict, register_converter
from zoo.kernels import sparch_scan
from zoo.layers.spike_record import SpikeRecord
from zoo.layers.valid_steps import valid_mask, valid_mean, valid_sum
from zoo.options import check_range
from zoo.registry import SmallConfig, TensorSpec, register_model

__all__ = [
    "convert_sparch",
    "DATASET_PRESETS",
    "SparchANN",
    "SparchANNLayer",
    "SparchANNReadout",
    "SparchReadout",
    "SparchSNN",
    "SparchSpikingLayer",
]

Neuron = Literal["lif", "rlif", "adlif", "radlif"]
Cell = Literal["mlp", "rnn", "ligru", "gru"]
Normalization = Literal["batchnorm", "layernorm", "none"]
DatasetPreset = Literal["shd", "ssc", "hd", "sc"]
InitialState = Literal["random", "zeros"]

DATASET_PRESETS: dict[str, tuple[int, int]] = {"shd": (700, 20), "ssc": (700, 35), "hd": (40, 20), "sc": (40, 35)}
"""(input features, classes): SHD/SSC 700 spike-count channels, HD/SC 40 log-mel filterbank features."""

ALPHA_RANGE = (math.exp(-1 / 5), math.exp(-1 / 25))
"""Membrane leak range (tau_u in [5, 25] steps): initialisation and forward clamp."""
BETA_RANGE = (math.exp(-1 / 30), math.exp(-1 / 120))
"""Adaptation leak range (tau_w in [30, 120] steps)."""
A_RANGE = (-1.0, 1.0)
"""Subthreshold coupling a."""
B_RANGE = (0.0, 2.0)
"""Spike-triggered adaptation b."""

BATCHNORM_MOMENTUM = 0.05


class SequenceBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the last axis of x [T, B, H], with statistics over time and batch.

    `valid` ([T, B] bool) restricts the training statistics and the running-statistics
    update to the True rows; in eval mode every row is normalised with the running statistics either way.
    """

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if valid is None or not self.training:
            return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)
        count = valid.sum()
        mean = valid_mean(x, valid)
        variance = valid_mean((x - mean).square(), valid)
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            unbiased = variance * count / (count - 1)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        y = (x - mean) * torch.rsqrt(variance + self.eps)
        return y * self.weight + self.bias if self.affine else y


def _check_sizes(
    owner: str, input_size: int, num_classes: int, hidden_size: int, num_hidden_layers: int, dropout: float
) -> None:
    """The sizes every sparch network needs: at least one input, class, hidden neuron and hidden layer."""
    for key, value in (
        ("input_size", input_size),
        ("num_classes", num_classes),
        ("hidden_size", hidden_size),
        ("num_hidden_layers", num_hidden_layers),
    ):
        check_range(key, value, low=1, owner=owner)
    check_range("dropout", dropout, low=0.0, high=1.0, high_open=True, owner=owner)


def _normalize(norm: nn.Module, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """`norm` of x [T, B, H]; only BatchNorm needs the valid-step mask (LayerNorm and identity act per row)."""
    return norm(x, valid) if isinstance(norm, SequenceBatchNorm) else norm(x)


def make_norm(normalization: Normalization, features: int) -> nn.Module:
    """The normalisation sparch applies to W x: BatchNorm1d(momentum 0.05), LayerNorm, or none."""
    if normalization == "batchnorm":
        return SequenceBatchNorm(features, momentum=BATCHNORM_MOMENTUM)
    if normalization == "layernorm":
        return nn.LayerNorm(features)
    if normalization == "none":
        return nn.Identity()
    raise ValueError(f"normalization must be 'batchnorm', 'layernorm' or 'none', got {normalization!r}")


def _uniform_parameter(size: int, bounds: tuple[float, float]) -> nn.Parameter:
    return nn.Parameter(torch.empty(size).uniform_(*bounds))


def _reverse(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """x [T, B, ...] reversed in time: the whole axis, or with a [T, B] mask each sequence within its length."""
    if valid is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    index = torch.where(valid, valid.sum(0, keepdim=True) - 1 - steps, steps)
    return x.gather(0, index.view(*index.shape, *[1] * (x.dim() - 2)).expand_as(x))


def _stack_directions(x: torch.Tensor, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[T, B, F] -> [T, 2B, F]: the sequence and its time-reversed copy on the batch axis, with their mask [T, 2B]."""
    stacked_valid = None if valid is None else valid.repeat(1, 2)
    return torch.cat([x, _reverse(x, valid)], dim=1), stacked_valid


def _merge_directions(y: torch.Tensor, batch: int, valid: torch.Tensor | None) -> torch.Tensor:
    """[T, 2B, H] -> [T, B, 2H]: the reversed half is reversed back in time and put beside the forward half."""
    forward, backward = y.split(batch, dim=1)
    return torch.cat([forward, _reverse(backward, valid)], dim=2)


def _check_sequence(x: torch.Tensor, features: int, model: str) -> torch.Tensor:
    """(B, T, F) or (B, T, F1, F2) with F = F1*F2 -> (B, T, F); anything else is an error naming the shape."""
    if x.dim() == 4:
        x = x.flatten(2)
    if x.dim() != 3 or x.shape[2] != features:
        raise ValueError(f"{model}: expected input (B, T, {features}) (batch, time, features), got {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{model}: input has T = 0 time steps")
    return x


def _unpack(
    x: torch.Tensor, lengths: torch.Tensor | None, features: int, model: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x (B, T, F) and optional lengths (B,) -> (x [T, B, F] time-first, valid-step mask [T, B] bool or None)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{model}: expected features as a tensor (B, T, {features}), got {type(x).__name__}; pass the lengths as "
            "the second argument: model(features, lengths)"
        )
    x = _check_sequence(x, features, model)
    if lengths is None:
        return x.transpose(0, 1), None
    batch, steps = x.shape[:2]
    if lengths.shape != (batch,) or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        got = f"{lengths.dtype} {tuple(lengths.shape)}"
        raise ValueError(f"{model}: lengths must be an integer tensor of shape ({batch},), got {got}")
    lengths = lengths.to(x.device)
    if bool(((lengths < 1) | (lengths > steps)).any()):
        raise ValueError(f"{model}: lengths must lie in [1, T={steps}], got {lengths.tolist()}")
    return x.transpose(0, 1), valid_mask(lengths, steps)


class SparchSpikingLayer(nn.Module):
    """One sparch hidden layer of LIF, RLIF, adLIF or RadLIF neurons: [T, B, F] -> spikes [T, B, H (2H bidir)].

    Parameters (sparch names): ``alpha`` [H], for adaptive neurons ``beta``, ``a``, ``b`` [H] (each drawn
    uniformly over its clamp range and clamped in every forward), ``input`` = W (Linear F -> H), for
    recurrent neurons ``recurrent`` = V (H x H, orthogonal init, used as s @ V with its diagonal zeroed),
    ``norm``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        neuron: Neuron,
        normalization: Normalization = "batchnorm",
        dropout: float = 0.0,
        bidirectional: bool = False,
        bias: bool = False,
        threshold: float = 1.0,
        initial_state: InitialState = "random",
    ) -> None:
        super().__init__()
        if neuron not in ("lif", "rlif", "adlif", "radlif"):
            raise ValueError(f"neuron must be 'lif', 'rlif', 'adlif' or 'radlif', got {neuron!r}")
        if initial_state not in ("random", "zeros"):
            raise ValueError(f"initial_state must be 'random' or 'zeros', got {initial_state!r}")
        self.neuron = neuron
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.threshold = threshold
        self.initial_state = initial_state
        self.adaptive = neuron in ("adlif", "radlif")
        self.input = nn.Linear(input_size, hidden_size, bias=bias)
        self.recurrent = None
        if neuron in ("rlif", "radlif"):
            self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
            nn.init.orthogonal_(self.recurrent.weight)
        self.alpha = _uniform_parameter(hidden_size, ALPHA_RANGE)
        if self.adaptive:
            self.beta = _uniform_parameter(hidden_size, BETA_RANGE)
            self.a = _uniform_parameter(hidden_size, A_RANGE)
            self.b = _uniform_parameter(hidden_size, B_RANGE)
        self.norm = make_norm(normalization, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.firing = SpikeRecord()

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def _initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        shape = (batch, self.hidden_size)
        if self.initial_state == "zeros":
            return torch.zeros(shape, device=like.device)
        return torch.rand(shape, device=like.device)

    def recurrent_matrix(self) -> torch.Tensor:
        """V~ = V with its diagonal zeroed (no self-connections), [H, H]; the recurrent term is s @ V~."""
        weight = self.recurrent.weight
        diagonal = torch.eye(self.hidden_size, dtype=torch.bool, device=weight.device)
        return weight.masked_fill(diagonal, 0.0)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: [T, B, F] input (spike counts or features) -> spikes [T, B, H] (or [T, B, 2H] bidirectional).

        valid: optional [T, B] bool mask of the real (non-padding) steps, see the module docstring.
        """
        batch = x.shape[1]
        x, stacked_valid = _stack_directions(x, valid) if self.bidirectional else (x, valid)
        current = _normalize(self.norm, self.input(x), stacked_valid)
        u0 = self._initial_state(current.shape[1], current)
        adaptation = {}
        if self.adaptive:
            w0 = self._initial_state(current.shape[1], current)
            adaptation = {
                "beta": self.beta.clamp(*BETA_RANGE),
                "a": self.a.clamp(*A_RANGE),
                "b": self.b.clamp(*B_RANGE),
                "w0": w0,
            }
        s0 = self._initial_state(current.shape[1], current)
        recurrent = None if self.recurrent is None else self.recurrent_matrix()
        spikes, _ = sparch_scan(
            current, self.alpha.clamp(*ALPHA_RANGE), u0, s0, **adaptation, recurrent=recurrent, threshold=self.threshold
        )
        if self.bidirectional:
            spikes = _merge_directions(spikes, batch, valid)
        return self.firing(self.dropout(spikes), valid)

    def functional_projections(self, args: tuple, kwargs: dict, output: torch.Tensor) -> list[Projection]:
        """The recurrent product s_{t-1} @ V~ made inside `sparch_scan`, for `zoo.analysis.synops` (eval mode).

        `output` is the layer's spikes (dropout is the identity in eval mode), put back in the order each direction
        ran. Steps t >= 1 read the spikes of step t - 1 (``recurrent``); step 0 reads the initial spike state
        (``recurrent_initial_state``): zeros, or U[0, 1) draws, real values that are non-zero (a draw of exactly 0
        has probability 2^-24), stood for by 0.5. The input product W x is the ``input`` Linear module.
        """
        if self.recurrent is None:
            return []
        valid = args[1] if len(args) > 1 else kwargs.get("valid")
        spikes = output
        if self.bidirectional:
            forward, backward = output.split(self.hidden_size, dim=2)
            spikes = torch.cat([forward, _reverse(backward, valid)], dim=1)
        initial = torch.zeros_like(spikes[0]) if self.initial_state == "zeros" else torch.full_like(spikes[0], 0.5)
        weight = self.recurrent_matrix().T  # s @ V~ = (V~^T s): weight [out, in]
        return [Projection("recurrent", spikes[:-1], weight), Projection("recurrent_initial_state", initial, weight)]


class SparchReadout(nn.Module):
    """sparch's SNN readout: leaky integrator of norm(W x), output sum_t softmax_classes(u_t), [T, B, F] -> [B, C].

    Parameters: ``alpha`` [C] (clamped like the hidden layers), ``input`` = W, ``norm``. No dropout (sparch
    builds one here but never applies it).
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        normalization: Normalization = "batchnorm",
        bias: bool = False,
        initial_state: InitialState = "random",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.initial_state = initial_state
        self.input = nn.Linear(input_size, num_classes, bias=bias)
        self.alpha = _uniform_parameter(num_classes, ALPHA_RANGE)
        self.norm = make_norm(normalization, num_classes)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: [T, B, F] hidden spikes -> [B, C] class probabilities summed over the (valid) steps, in [0, T]."""
        current = _normalize(self.norm, self.input(x), valid)
        shape = (current.shape[1], self.num_classes)
        zeros = torch.zeros(shape, device=current.device)
        u0 = zeros if self.initial_state == "zeros" else torch.rand(shape, device=current.device)
        _, membrane = sparch_scan(current, self.alpha.clamp(*ALPHA_RANGE), u0, zeros, spiking=False)
        return valid_sum(membrane.softmax(dim=-1), valid)


class SparchSNN(nn.Module):
    """sparch spiking network: `num_hidden_layers` LIF/RLIF/adLIF/RadLIF layers and the leaky readout.

    Forward: features (B, T, F) [, lengths (B,)] -> (scores (B, C), neuron_rates (sum_l H_l,)) as the original returns
    them: scores = sum over time of per-step class probabilities; neuron_rates = every hidden neuron's mean spike
    count over batch and time, after dropout (what sparch's optional firing-rate regulariser uses). With lengths,
    padded steps are left out (module docstring). Each hidden layer ends in a `SpikeRecord` (``layers.<i>.firing``),
    so `zoo.firing_rates(model)` gives the per-layer means of the last forward as 0-d device tensors.
    """

    def __init__(
        self,
        neuron: Neuron,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        bidirectional: bool = False,
        normalization: Normalization = "batchnorm",
        dropout: float = 0.1,
        bias: bool = False,
        threshold: float = 1.0,
        initial_state: InitialState = "random",
    ) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size, num_classes, hidden_size, num_hidden_layers, dropout)
        check_range("threshold", threshold, low=0.0, low_open=True, owner=type(self).__name__)
        self.input_size = input_size
        layers = []
        features = input_size
        for _ in range(num_hidden_layers):
            layer = SparchSpikingLayer(
                features, hidden_size, neuron, normalization, dropout, bidirectional, bias, threshold, initial_state
            )
            layers.append(layer)
            features = layer.output_size
        self.layers = nn.ModuleList(layers)
        self.readout = SparchReadout(features, num_classes, normalization, bias, initial_state)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, T, F), optional lengths (B,) -> (scores (B, C), neuron_rates (sum_l H_l,))."""
        h, valid = _unpack(features, lengths, self.input_size, type(self).__name__)
        rates = []
        for layer in self.layers:
            h = layer(h, valid)
            rates.append(valid_mean(h, valid))
        return self.readout(h, valid), torch.cat(rates)


class SparchANNLayer(nn.Module):
    """One sparch ANN hidden layer, [T, B, F] -> [T, B, H (2H bidir)], zero initial state.

    - mlp:   y_t = sigmoid(n(W x)_t)
    - rnn:   y_t = sigmoid(n(W x)_t + V y_{t-1})
    - ligru: z_t = sigmoid(n_z(W_z x)_t + V_z y_{t-1}); c_t = relu(n(W x)_t + V y_{t-1});
             y_t = z_t y_{t-1} + (1 - z_t) c_t
    - gru:   z_t, r_t = sigmoid(n_z/r(W_z/r x)_t + V_z/r y_{t-1}); c_t = tanh(n(W x)_t + V (r_t y_{t-1}));
             y_t = z_t y_{t-1} + (1 - z_t) c_t
    with n = normalisation and V y = y @ V^T (`nn.Linear`, orthogonal init). Names: ``input`` = W,
    ``recurrent`` = V, ``input_z``/``recurrent_z``/``norm_z`` and ``input_r``/``recurrent_r``/``norm_r``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        cell: Cell,
        normalization: Normalization = "batchnorm",
        dropout: float = 0.0,
        bidirectional: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if cell not in ("mlp", "rnn", "ligru", "gru"):
            raise ValueError(f"cell must be 'mlp', 'rnn', 'ligru' or 'gru', got {cell!r}")
        if cell == "mlp" and bidirectional:
            raise ValueError("the sparch MLP has no recurrence, so it cannot be bidirectional")
        self.cell = cell
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        gates = {"mlp": (), "rnn": (), "ligru": ("z",), "gru": ("z", "r")}[cell]
        self.input = nn.Linear(input_size, hidden_size, bias=bias)
        self.recurrent = None if cell == "mlp" else self._recurrent_linear(hidden_size)
        self.norm = make_norm(normalization, hidden_size)
        for gate in gates:
            setattr(self, f"input_{gate}", nn.Linear(input_size, hidden_size, bias=bias))
            setattr(self, f"recurrent_{gate}", self._recurrent_linear(hidden_size))
            setattr(self, f"norm_{gate}", make_norm(normalization, hidden_size))
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def _recurrent_linear(hidden_size: int) -> nn.Linear:
        linear = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.orthogonal_(linear.weight)
        return linear

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: [T, B, F] -> activations [T, B, H] (or [T, B, 2H] bidirectional); valid: optional [T, B] mask."""
        batch = x.shape[1]
        x, stacked_valid = _stack_directions(x, valid) if self.bidirectional else (x, valid)
        candidate = _normalize(self.norm, self.input(x), stacked_valid)
        if self.cell == "mlp":
            y = torch.sigmoid(candidate)
        else:
            y = self._recur(x, candidate, stacked_valid)
        if self.bidirectional:
            y = _merge_directions(y, batch, valid)
        return self.dropout(y)

    def _recur(self, x: torch.Tensor, candidate: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        update = _normalize(self.norm_z, self.input_z(x), valid) if self.cell in ("ligru", "gru") else None
        reset = _normalize(self.norm_r, self.input_r(x), valid) if self.cell == "gru" else None
        y = candidate.new_zeros(candidate.shape[1:])
        outputs = []
        for t in range(candidate.shape[0]):
            if self.cell == "rnn":
                y = torch.sigmoid(candidate[t] + self.recurrent(y))
            elif self.cell == "ligru":
                z = torch.sigmoid(update[t] + self.recurrent_z(y))
                c = torch.relu(candidate[t] + self.recurrent(y))
                y = z * y + (1 - z) * c
            else:
                z = torch.sigmoid(update[t] + self.recurrent_z(y))
                r = torch.sigmoid(reset[t] + self.recurrent_r(y))
                c = torch.tanh(candidate[t] + self.recurrent(r * y))
                y = z * y + (1 - z) * c
            outputs.append(y)
        return torch.stack(outputs)


class SparchANNReadout(nn.Module):
    """sparch's ANN readout: norm(W sum_t softmax_features(h_t)), [T, B, F] -> [B, C] (``input`` = W, ``norm``)."""

    def __init__(
        self, input_size: int, num_classes: int, normalization: Normalization = "batchnorm", bias: bool = False
    ) -> None:
        super().__init__()
        self.input = nn.Linear(input_size, num_classes, bias=bias)
        self.norm = make_norm(normalization, num_classes)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x: [T, B, F] -> [B, C]; the time sum runs over the valid steps of an optional [T, B] mask."""
        return self.norm(self.input(valid_sum(x.softmax(dim=-1), valid)))


class SparchANN(nn.Module):
    """sparch ANN baseline (MLP, RNN, LiGRU or GRU hidden layers and the ANN readout): (B, T, F) -> scores (B, C).

    forward(features, lengths) leaves the padded steps out (module docstring).

    The original returns (scores, None); the None carries nothing, so this returns the scores alone.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        num_classes: int,
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        bidirectional: bool = False,
        normalization: Normalization = "batchnorm",
        dropout: float = 0.1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size, num_classes, hidden_size, num_hidden_layers, dropout)
        self.input_size = input_size
        layers = []
        features = input_size
        for _ in range(num_hidden_layers):
            layer = SparchANNLayer(features, hidden_size, cell, normalization, dropout, bidirectional, bias)
            layers.append(layer)
            features = layer.output_size
        self.layers = nn.ModuleList(layers)
        self.readout = SparchANNReadout(features, num_classes, normalization, bias)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, T, F), optional lengths (B,) -> scores (B, C)."""
        h, valid = _unpack(features, lengths, self.input_size, type(self).__name__)
        for layer in self.layers:
            h = layer(h, valid)
        return self.readout(h, valid)


PAPER = "Bittar & Garner 2022, A surrogate gradient spiking baseline for speech command recognition"
CITATION = (
    "@article{bittar2022surrogate, title={A surrogate gradient spiking baseline for speech command recognition}, "
    "author={Bittar, Alexandre and Garner, Philip N.}, journal={Frontiers in Neuroscience}, volume={16}, "
    "pages={865897}, year={2022}, doi={10.3389/fnins.2022.865897}}"
)
INPUTS = {
    "features": TensorSpec(
        shape=("B", "T", "F"),
        axes={
            "B": "batch",
            "T": "time steps (SHD/SSC: 100 bins of 14.1 ms; HD/SC: 10 ms filterbank frames)",
            "F": "input features: 700 spike-count channels (SHD/SSC) or 40 log-mel filterbank features (HD/SC)",
        },
        description="spike counts per bin (SHD/SSC) or log-mel filterbank energies (HD/SC)",
        sizes={"B": 128, "T": 100, "F": 700},
    ),
    "lengths": TensorSpec(
        shape=("B",),
        axes={"B": "batch"},
        dtype="int64",
        description="valid frames per sample, in [1, T]: frames t >= lengths[b] are padding and do not count "
        "(left out: every frame counts)",
        optional=True,
    ),
}
_CLASSES = {"B": "batch", "C": "classes (SHD/HD 20, SSC/SC 35)"}
SNN_OUTPUTS = {
    "scores": TensorSpec(
        shape=("B", "C"),
        axes=_CLASSES,
        description="sum over time of per-step class probabilities of the leaky readout (in [0, T]; sparch applies "
        "CrossEntropyLoss on top)",
    ),
    "neuron_rates": TensorSpec(
        shape=("N",),
        axes={"N": "hidden neurons of all layers (num_hidden_layers x hidden_size, x 2 when bidirectional)"},
        description="mean spikes per step of each hidden neuron over the batch's valid frames",
    ),
}
ANN_OUTPUTS = {
    "scores": TensorSpec(
        shape=("B", "C"),
        axes=_CLASSES,
        description="norm(W sum_t softmax_features(h_t)) (sparch applies CrossEntropyLoss on top)",
    )
}
SMALL = SmallConfig(sizes={"F": 700})
"""Registry-wide tests: the default (SHD) configuration, 700 input features."""


def _preset(dataset: DatasetPreset, input_size: int | None, num_classes: int | None) -> tuple[int, int]:
    if dataset not in DATASET_PRESETS:
        raise ValueError(f"dataset must be one of {sorted(DATASET_PRESETS)}, got {dataset!r}")
    preset_inputs, preset_classes = DATASET_PRESETS[dataset]
    return (preset_inputs if input_size is None else input_size, preset_classes if num_classes is None else num_classes)


def _snn_builder(neuron: Neuron, label: str):
    def builder(
        dataset: DatasetPreset = "shd",
        input_size: int | None = None,
        num_classes: int | None = None,
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        bidirectional: bool = False,
        normalization: Normalization = "batchnorm",
        dropout: float = 0.1,
        bias: bool = False,
        threshold: float = 1.0,
        initial_state: InitialState = "random",
    ) -> SparchSNN:
        inputs, classes = _preset(dataset, input_size, num_classes)
        return SparchSNN(
            neuron,
            inputs,
            classes,
            hidden_size,
            num_hidden_layers,
            bidirectional,
            normalization,
            dropout,
            bias,
            threshold,
            initial_state,
        )

    builder.__name__ = builder.__qualname__ = f"sparch_{neuron}"
    builder.__doc__ = (
        f"sparch {label} network (sparch defaults: 2 hidden layers of 128, batchnorm, dropout 0.1, no bias).\n\n"
        "`dataset` presets the input size and classes (shd/ssc: 700 inputs, hd/sc: 40; shd/hd: 20 classes, "
        "ssc/sc: 35); `input_size` / `num_classes` override them. `initial_state`: 'random' (U[0,1) in every "
        "forward, as the original) or 'zeros'."
    )
    return builder


def _ann_builder(cell: Cell, label: str):
    def builder(
        dataset: DatasetPreset = "shd",
        input_size: int | None = None,
        num_classes: int | None = None,
        hidden_size: int = 128,
        num_hidden_layers: int = 2,
        bidirectional: bool = False,
        normalization: Normalization = "batchnorm",
        dropout: float = 0.1,
        bias: bool = False,
    ) -> SparchANN:
        inputs, classes = _preset(dataset, input_size, num_classes)
        return SparchANN(
            cell, inputs, classes, hidden_size, num_hidden_layers, bidirectional, normalization, dropout, bias
        )

    builder.__name__ = builder.__qualname__ = f"sparch_{cell}"
    builder.__doc__ = (
        f"sparch {label} baseline (sparch defaults: 2 hidden layers of 128, batchnorm, dropout 0.1, no bias).\n\n"
        "`dataset` presets the input size and classes as for the spiking models."
    )
    return builder


SNN_VARIANTS: dict[Neuron, str] = {
    "lif": "LIF",
    "rlif": "recurrent LIF (RLIF)",
    "adlif": "adaptive LIF (adLIF)",
    "radlif": "recurrent adaptive LIF (RadLIF)",
}
ANN_VARIANTS: dict[Cell, str] = {"mlp": "MLP", "rnn": "sigmoid RNN", "ligru": "light GRU (LiGRU)", "gru": "GRU"}

for _neuron, _label in SNN_VARIANTS.items():
    register_model(
        f"sparch-{_neuron}",
        family="sparch",
        paper=PAPER,
        citation=CITATION,
        inputs=INPUTS,
        outputs=SNN_OUTPUTS,
        small=SMALL,
    )(_snn_builder(_neuron, _label))
for _cell, _label in ANN_VARIANTS.items():
    register_model(
        f"sparch-{_cell}",
        family="sparch",
        paper=PAPER,
        citation=CITATION,
        inputs=INPUTS,
        outputs=ANN_OUTPUTS,
        small=SMALL,
    )(_ann_builder(_cell, _label))


# Conversion from the original checkpoints ---------------------------------------------------------------------

# Converters from idiap/sparch checkpoints (`SNN` / `ANN` state dicts, keys ``snn.<i>.*`` / ``ann.<i>.*``).
#
# sparch numbers its layers 0..L with the readout last. Hidden layer i becomes ``layers.<i>``, the last one
# ``readout``; inside a layer W/V become ``input``/``recurrent`` (and Wz/Vz/normz, Wr/Vr/normr of the ANN
# gates become ``input_z``/``recurrent_z``/``norm_z``, ``input_r``/...); alpha, beta, a, b and ``norm`` keep
# their names. Tensors are copied unchanged: V keeps its (H, H) layout (the model uses it the same way).

MODULE_NAMES = {
    "W": "input",
    "V": "recurrent",
    "Wz": "input_z",
    "Vz": "recurrent_z",
    "Wr": "input_r",
    "Vr": "recurrent_r",
    "norm": "norm",
    "normz": "norm_z",
    "normr": "norm_r",
}
PARAMETER_NAMES = {"alpha", "beta", "a", "b"}


SPARCH_MODELS = tuple(f"sparch-{kind}" for kind in ("lif", "rlif", "adlif", "radlif", "mlp", "rnn", "ligru", "gru"))


@register_converter(*SPARCH_MODELS)
def convert_sparch(state_dict: StateDict, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map sparch keys (``snn.<i>.W.weight``, ``ann.<i>.normz.running_mean``, ...) to ours.

    Raises:
        KeyError: a key that is not of a sparch SNN/ANN layer, or a layer index beyond the readout.
    """
    readout = config["num_hidden_layers"]
    converted = {}
    for key, value in state_dict.items():
        prefix, index, *rest = key.split(".")
        if prefix not in ("snn", "ann") or not index.isdigit() or not rest:
            raise KeyError(f"sparch converter: unexpected key {key!r} (expected snn.<layer>.* or ann.<layer>.*)")
        layer = int(index)
        if layer > readout:
            raise KeyError(
                f"sparch converter: key {key!r} is of layer {layer}, but num_hidden_layers={readout} puts the "
                f"readout at {readout}; pass num_hidden_layers to match the checkpoint"
            )
        target = "readout" if layer == readout else f"layers.{layer}"
        name, *tail = rest
        if name in PARAMETER_NAMES and not tail:
            converted[f"{target}.{name}"] = value
        elif name in MODULE_NAMES and tail:
            converted[".".join([target, MODULE_NAMES[name], *tail])] = value
        else:
            raise KeyError(f"sparch converter: unexpected key {key!r}")
    return converted
