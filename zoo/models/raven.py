"""RAVEn (Haliassos et al., ICLR 2023): audio-visual speech encoders and the VSR/ASR recognisers built on them.

Design note respike_raven.md, section B; reference README, RAVEn part. Inputs are batch first:

- video: grayscale mouth crops [B, T, 88, 88] at 25 fps, normalised as the original (pixels / 255, then
  (x - 0.421) / 0.165, `normalise_video`); padded frames are 0.0;
- audio: 16 kHz waveform [B, N] (torchaudio ``normalize=True`` scale); N is trimmed to a multiple of 640 samples
  (one 40 ms video frame), so the audio features run at 25 Hz like the video.

Encoder (`RAVEnEncoder`): front-end -> Linear(512 -> d) * sqrt(d) -> pre-norm Transformer blocks with
relative-position self-attention (`zoo.layers.attention.RelativePositionSelfAttention`) -> LayerNorm:

- video front-end: Conv3d(1 -> 64, (5,7,7), stride (1,2,2)) + BN + Swish + max-pool (1,3,3)/(1,2,2), then a
  2-D ResNet-18 (Swish) run on every frame (time folded into the batch) and a global average pool: 512 per frame;
- audio front-end: Conv1d(1 -> 64, 80, stride 4) + BN + Swish, a 1-D ResNet-18 (kernel 3) and AvgPool1d(20):
  4 * 8 * 20 = 640 samples per 512-d frame;
- block: x += gamma_attn * MHA(LayerNorm(x)); x += gamma_ff * W2 ReLU(W1 BatchNorm1d(x)) (LayerScale init 0.1,
  dropout after the scaled branch, drop-path per branch; LayerNorm eps 1e-12).

Recogniser (`RAVEnRecognizer`): encoder + CTC head Linear(d -> 1049) + pre-norm Transformer decoder (absolute
sinusoids, self- and source attention, ReLU FFN; a Linear(d -> d_dec) on the memory when the widths differ).
Units: 0 = <blank>, 1..1047 = SentencePiece unigram units, 1048 = <eos> = <sos>.

Reproduced quirks (the reference README's list): the front-end is not masked (padded frames are seen by the
temporal kernel), only attention keys are masked (padded queries are computed), the FFN BatchNorm's training
statistics include padded frames, the positional encodings (of x and of the relative positions) are dropped out
in training. Parameter names follow ours; the original checkpoints load through `zoo.convert.from_reference`
(last section of this module).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from zoo.convert import register_converter
from zoo.decoding import IncrementalLanguageModel, beam_search, ctc_greedy
from zoo.errors import ConfigError
from zoo.layers.attention import (
    AttentionImplementation,
    MultiHeadAttention,
    RelativePositionSelfAttention,
    absolute_sinusoids,
    relative_sinusoids,
)
from zoo.layers.lif import LIFNeuron, NeuronSettings
from zoo.layers.lipreading_resnet import FramePool, LipReadingResNet18, resnet_stages
from zoo.layers.valid_steps import valid_mask
from zoo.models import spikgru
from zoo.options import check_range
from zoo.registry import SmallConfig, TensorSpec, register_model

__all__ = [
    "AUDIO_SAMPLES_PER_FRAME",
    "BLANK_ID",
    "EOS_ID",
    "VIDEO_MEAN",
    "VIDEO_STD",
    "VOCAB_SIZE",
    "AudioFrontend",
    "EncoderBlock",
    "OnlineProbe",
    "PROBE_VOCAB_SIZE",
    "Predictor",
    "RAVEnDecoder",
    "RAVEnEncoder",
    "RAVEnPretrainer",
    "RAVEnRecognizer",
    "SpikingLipFrontend",
    "SpikingRAVEnClassifier",
    "VideoFrontend",
    "check_unit_ids",
    "convert_raven",
    "load_pretrained_encoder",
    "normalise_video",
    "span_mask",
    "teacher_forcing_input",
]

Modality = Literal["video", "audio"]

VIDEO_MEAN, VIDEO_STD = 0.421, 0.165
"""Grayscale normalisation of the original (applied to pixels / 255)."""
AUDIO_SAMPLES_PER_FRAME = 640
"""16 kHz samples per 40 ms video frame: the audio front-end's total stride."""
VOCAB_SIZE, BLANK_ID, EOS_ID = 1049, 0, 1048
"""Output units of the released recognisers: <blank>, 1047 unigram units, <eos> (also used as <sos>)."""
FRONTEND_FEATURES = 512
LAYER_NORM_EPS = 1e-12


def normalise_video(frames: torch.Tensor) -> torch.Tensor:
    """Grayscale pixels 0..255 (any shape, any dtype) -> float32 ((x / 255) - 0.421) / 0.165, as the original."""
    return (frames.to(torch.float32) / 255.0 - VIDEO_MEAN) / VIDEO_STD


# ----------------------------------------------------------------------------------------------------------------
# Front-ends


def _he_normal(conv: nn.Module) -> None:
    """He-normal convolution weights, std sqrt(2 / (k * C_out)) (the original's front-end initialisation)."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")


def _swish(channels: int) -> nn.Module:
    return nn.SiLU()


class VideoFrontend(LipReadingResNet18):
    """The shared lip-reading trunk (`zoo.layers.lipreading_resnet`) with RAVEn's choices: video [B, T, H, W]
    (normalised) -> features [B, T, 512].

    Stem Conv3d(1 -> 64, (5,7,7), stride (1,2,2), pad (2,3,3), no bias) + BN3d + Swish, 3x3/2 max pool per frame
    (88x88 -> 22x22; frame t sees frames t-2..t+2), ResNet-18 stages with Swish (22 -> 22/11/6/3), global average
    pool. Time stride 1 (T out = T in).
    """

    def __init__(self) -> None:
        super().__init__(
            activation=_swish,
            stem_pool=lambda channels: FramePool("max", 3, 2, 1),
            global_pool=lambda channels: FramePool("avg", None),
            in_channels=1,
            conv_init=_he_normal,
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() != 4:
            raise ValueError(f"video input must be [B, T, H, W] grayscale frames, got shape {tuple(video.shape)}")
        return super().forward(video.unsqueeze(2)).transpose(0, 1)


class AudioFrontend(nn.Module):
    """1-D stem + ResNet-18-1D + AvgPool1d(20): waveform [B, N] -> features [B, N // 640, 512].

    Stem Conv1d(1 -> 64, 80, stride 4, pad 38, no bias) + BN + Swish; the shared ResNet-18 stages in 1-D (kernel 3,
    strides 1/2/2/2, Swish; `zoo.layers.lipreading_resnet.resnet_stages`, run as one time step) and the pool of 20
    make 640 samples per frame. Trailing N mod 640 samples are dropped first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            OrderedDict(
                conv=nn.Conv1d(1, 64, 80, stride=4, padding=38, bias=False), bn=nn.BatchNorm1d(64), act=nn.SiLU()
            )
        )
        _he_normal(self.stem.conv)
        self.layer2, self.layer3, self.layer4, self.layer5 = resnet_stages(_swish, dims=1, conv_init=_he_normal)
        self.pool = nn.AvgPool1d(20)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 2:
            raise ValueError(f"audio input must be a [B, N] waveform, got shape {tuple(audio.shape)}")
        frames = audio.shape[1] // AUDIO_SAMPLES_PER_FRAME
        if frames == 0:
            raise ValueError(f"audio input has {audio.shape[1]} samples, fewer than one 640-sample frame")
        x = self.stem(audio[:, None, : frames * AUDIO_SAMPLES_PER_FRAME])[None]  # one time step: [1, B, 64, L]
        x = self.layer5(self.layer4(self.layer3(self.layer2(x))))[0]
        return self.pool(x).transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------------
# Transformer encoder


def drop_path(x: torch.Tensor, probability: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a whole residual branch per sample with `probability`, rescale the kept ones."""
    if probability == 0.0 or not training:
        return x
    keep = 1.0 - probability
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class FeedForward(nn.Module):
    """Position-wise feed-forward: W2 dropout(ReLU(W1 x)): [..., d] -> [..., d]."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(torch.relu(self.w_1(x))))


class EncoderBlock(nn.Module):
    """Pre-norm relative-position Transformer block with LayerScale: x [B, T, d] -> [B, T, d].

    x = x + droppath(dropout(gamma_attn * RelMHA(LayerNorm(x))))
    x = x + droppath(dropout(gamma_ff * FFN(BatchNorm1d(x))))      (BatchNorm over the d channels)
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn: int,
        dropout: float,
        attention_dropout: float,
        drop_path: float,
        layer_scale: float,
        attention: AttentionImplementation,
    ) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = RelativePositionSelfAttention(dim, heads, attention_dropout, attention)
        self.gamma_attn = nn.Parameter(torch.full((dim,), layer_scale))
        self.norm_ff = nn.BatchNorm1d(dim)
        self.ff = FeedForward(dim, ffn, dropout)
        self.gamma_ff = nn.Parameter(torch.full((dim,), layer_scale))
        self.dropout = nn.Dropout(dropout)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, key_valid: torch.Tensor | None) -> torch.Tensor:
        branch = self.gamma_attn * self.attn(self.norm_attn(x), pos_emb, key_valid)
        x = x + drop_path(self.dropout(branch), self.drop_path, self.training)
        branch = self.gamma_ff * self.ff(self.norm_ff(x.transpose(1, 2)).transpose(1, 2))
        return x + drop_path(self.dropout(branch), self.drop_path, self.training)


def frame_valid_mask(lengths: torch.Tensor | None, frames: int, batch: int, device: torch.device) -> torch.Tensor:
    """Bool [B, T], True on the first `lengths[b]` frames (`valid_mask`); all True when `lengths` is None."""
    if lengths is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=device)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape [B] = [{batch}], got {tuple(lengths.shape)}")
    return valid_mask(lengths.to(device), frames, batch_first=True)


class RAVEnEncoder(nn.Module):
    """RAVEn video or audio encoder: [B, T, 88, 88] video or [B, N] audio -> features [B, T, d].

    Args:
        modality: ``"video"`` (Conv3d + ResNet-18 front-end) or ``"audio"`` (Conv1d + ResNet-18-1D).
        dim, heads, ffn, blocks: Transformer width d, heads, FFN width, number of blocks.
        dropout: dropout after each scaled branch, inside the FFN and on the positional encodings (0.1).
        attention_dropout: dropout on the attention weights (0.1).
        drop_path: stochastic-depth probability of every residual branch.
        layer_scale: initial LayerScale value (0.1).
        attention: ``"sdpa"`` (fused, relative term as an additive bias) or ``"reference"`` (the original
            structure run eagerly, for benchmarks and as the oracle).
        frontend: a module [B, T, ...] -> [B, T, 512] used instead of the modality's own front-end (e.g. the
            spiking front-end of `SpikingRAVEnClassifier`); lengths then count its T steps as video frames.
    """

    def __init__(
        self,
        modality: Modality,
        dim: int,
        heads: int,
        ffn: int,
        blocks: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        drop_path: float = 0.0,
        layer_scale: float = 0.1,
        attention: AttentionImplementation = "sdpa",
        frontend: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if modality not in ("video", "audio"):
            raise ValueError(f"modality must be 'video' or 'audio', got {modality!r}")
        self.modality, self.dim = modality, dim
        if frontend is None:
            frontend = VideoFrontend() if modality == "video" else AudioFrontend()
        self.frontend = frontend
        self.embed = nn.Linear(FRONTEND_FEATURES, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, ffn, dropout, attention_dropout, drop_path, layer_scale, attention)
            for _ in range(blocks)
        )
        self.norm_out = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid 25 Hz frames per sample from input lengths (frames for video, samples for audio)."""
        return lengths if self.modality == "video" else lengths // AUDIO_SAMPLES_PER_FRAME

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: video [B, T, 88, 88] or audio [B, N]; lengths [B]: valid frames (video) or samples (audio), None =
        all valid. Returns [B, T, d] (T = N // 640 for audio); padded frames are computed but never attended to."""
        features = self.frontend(x)
        batch, frames = features.shape[:2]
        key_valid = None
        if lengths is not None:
            key_valid = frame_valid_mask(self.frame_lengths(lengths), frames, batch, x.device)
        hidden = self.dropout(self.embed(features) * math.sqrt(self.dim))
        pos_emb = self.dropout(relative_sinusoids(frames, self.dim, x.device).to(hidden.dtype))
        for block in self.blocks:
            hidden = block(hidden, pos_emb, key_valid)
        return self.norm_out(hidden)


# ----------------------------------------------------------------------------------------------------------------
# Attention decoder and recogniser


class DecoderLayer(nn.Module):
    """Pre-norm Transformer decoder layer: tokens [B, L, d], memory keys/values -> [B, L, d].

    x += dropout(SelfAttn(LN1(x)));  x += dropout(SrcAttn(LN2(x), memory));  x += dropout(FFN(LN3(x)))
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads, attention_dropout)
        self.src_attn = MultiHeadAttention(dim, heads, attention_dropout)
        self.ff = FeedForward(dim, ffn, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        self_keys: torch.Tensor,
        self_values: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory: tuple[torch.Tensor, torch.Tensor],
        memory_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x: the queries' layer input [B, L, d]; self_keys/values [B, h, S, d_k] of LN1 of every position seen so
        far (S >= L); memory: projected source keys/values [M, h, T, d_k] with B = M x W: rows m W .. m W + W - 1
        of x attend to memory row m (W = 1: one memory row per row of x; W > 1: the hypotheses of a beam search
        attend to their utterance's memory as W x L queries, without a copy of it per hypothesis)."""
        x = x + self.dropout(
            self.self_attn.attend(self.self_attn.linear_q(self.norm1(x)), self_keys, self_values, self_mask)
        )
        query = self.src_attn.linear_q(self.norm2(x))
        grouped = query.reshape(memory[0].shape[0], -1, query.shape[-1])  # [M, W L, d]
        x = x + self.dropout(self.src_attn.attend(grouped, *memory, memory_mask).reshape(x.shape))
        return x + self.dropout(self.ff(self.norm3(x)))


@dataclasses.dataclass
class DecoderState:
    """What incremental decoding keeps: the encoder memory per utterance (M rows) and the decoded positions per
    hypothesis (N = M x W rows; hypotheses m W .. m W + W - 1 read memory row m).

    Attributes:
        memory: per layer, the source keys and values [M, h, T, d_k].
        memory_mask: bool [M, 1, 1, T] valid source frames.
        keys, values: per layer, keys/values of the tokens decoded so far [N, h, t, d_k].
    """

    memory: list[tuple[torch.Tensor, torch.Tensor]]
    memory_mask: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def select(self, index: torch.Tensor, memory_rows: bool | torch.Tensor = True) -> DecoderState:
        """The states of hypotheses `index` [N'] (e.g. the surviving beams), with memory rows

        - True: one per selected hypothesis (``memory[index]``; needs N = M);
        - False: the memory as it is (`index` keeps each group of hypotheses reading the same memory row, N' = M W');
        - a tensor [M']: those rows (e.g. the utterances a beam search still decodes; N' = M' W').
        """
        memory, memory_mask = self.memory, self.memory_mask
        if isinstance(memory_rows, torch.Tensor) or memory_rows:
            rows = memory_rows if isinstance(memory_rows, torch.Tensor) else index
            memory, memory_mask = [(k[rows], v[rows]) for k, v in memory], memory_mask[rows]
        return DecoderState(
            memory=memory,
            memory_mask=memory_mask,
            keys=[k[index] for k in self.keys],
            values=[v[index] for v in self.values],
        )


class RAVEnDecoder(nn.Module):
    """Transformer attention decoder: tokens [B, L] + encoder memory [B, T, d_enc] -> logits [B, L, V].

    Embedding(V, d) * sqrt(d) + absolute sinusoids, dropout, pre-norm `DecoderLayer`s, LayerNorm, Linear(d -> V).
    ``memory_proj`` (Linear(d_enc -> d)) exists only when d != d_enc.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_dim: int,
        dim: int,
        heads: int,
        ffn: int,
        layers: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.memory_proj = nn.Linear(encoder_dim, dim) if encoder_dim != dim else None
        self.embed = nn.Embedding(vocab_size, dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn, dropout, attention_dropout) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.output = nn.Linear(dim, vocab_size)

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        positions = absolute_sinusoids(start + tokens.shape[1], self.dim, tokens.device)[start:]
        return self.dropout(self.embed(tokens) * math.sqrt(self.dim) + positions.to(self.embed.weight.dtype))

    def init_state(self, memory: torch.Tensor, memory_valid: torch.Tensor) -> DecoderState:
        """Project the encoder output [B, T, d_enc] (valid frames bool [B, T]) once for every layer."""
        if self.memory_proj is not None:
            memory = self.memory_proj(memory)
        empty = memory.new_zeros(memory.shape[0], self.layers[0].self_attn.heads, 0, self.layers[0].self_attn.head_dim)
        return DecoderState(
            memory=[layer.src_attn.project_memory(memory) for layer in self.layers],
            memory_mask=memory_valid[:, None, None, :],
            keys=[empty] * len(self.layers),
            values=[empty] * len(self.layers),
        )

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, memory_valid: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens [B, L] (<sos> first; padding any valid id) -> logits [B, L, V], causal."""
        state = self.init_state(memory, memory_valid)
        length = tokens.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        x = self._embed(tokens, 0)
        for layer, source in zip(self.layers, state.memory, strict=True):
            normed = layer.norm1(x)
            keys, values = layer.self_attn.project_memory(normed)
            x = layer(x, keys, values, causal, source, state.memory_mask)
        return self.output(self.norm_out(x))

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """One incremental step: the last tokens [N] (position t = tokens decoded so far; N = M x W for a state
        with M memory rows, `DecoderState`) -> log-probabilities of the next unit [N, V] and the state extended by
        this position. Equals `forward` at position t."""
        position = state.keys[0].shape[2]
        x = self._embed(tokens[:, None], position)
        keys, values = [], []
        for index, layer in enumerate(self.layers):
            new_keys, new_values = layer.self_attn.project_memory(layer.norm1(x))
            keys.append(torch.cat((state.keys[index], new_keys), dim=2))
            values.append(torch.cat((state.values[index], new_values), dim=2))
            x = layer(x, keys[-1], values[-1], None, state.memory[index], state.memory_mask)
        logits = self.output(self.norm_out(x[:, 0]))
        return torch.log_softmax(logits.float(), dim=-1), dataclasses.replace(state, keys=keys, values=values)


def teacher_forcing_input(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """The decoder's teacher-forcing input: unit ids [B, L] padded with -1 -> [B, L + 1], <sos> (= <eos>) first and
    the padding replaced by <eos> (any valid id: the causal mask keeps it from the positions that are scored)."""
    sos = tokens.new_full((tokens.shape[0], 1), eos_id)
    return torch.cat((sos, tokens.masked_fill(tokens < 0, eos_id)), dim=1)


class RAVEnRecognizer(nn.Module):
    """VSR/ASR model: `RAVEnEncoder` + CTC head + `RAVEnDecoder`.

    ``forward(x, lengths=None, tokens=None)`` returns a dict:
        ``ctc_logits`` [B, T, V] (in training mode after dropout `ctc_dropout` on the encoder output, as the
        original's ESPnet CTC module, which drops out in evaluation mode too: that only adds noise to the
        original's validation CTC loss and is not reproduced; decoding reads the encoder output without dropout);
        ``frame_lengths`` [B] int64
        valid encoder frames; ``decoder_logits`` [B, L+1, V] (only with `tokens` [B, L] int64 unit ids padded with
        -1: teacher forcing on <sos> + tokens; position l predicts tokens[l], position L the <eos>).
    """

    def __init__(
        self, encoder: RAVEnEncoder, decoder: RAVEnDecoder, vocab_size: int = VOCAB_SIZE, ctc_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.ctc_dropout = nn.Dropout(ctc_dropout)
        self.ctc_head = nn.Linear(encoder.dim, vocab_size)
        self.decoder = decoder
        self.vocab_size = vocab_size

    @property
    def eos_id(self) -> int:
        return self.vocab_size - 1

    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output [B, T, d] and valid frames bool [B, T]."""
        memory = self.encoder(x, lengths)
        batch, frames = memory.shape[:2]
        frame_lengths = None if lengths is None else self.encoder.frame_lengths(lengths)
        return memory, frame_valid_mask(frame_lengths, frames, batch, memory.device)

    @torch.no_grad()
    def recognize(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        beam_size: int = 40,
        ctc_weight: float = 0.1,
        lm: IncrementalLanguageModel | None = None,
        lm_weight: float = 0.0,
    ) -> list[list[int]]:
        """Unit ids of the best hypothesis per utterance: hybrid CTC/attention beam search (`zoo.decoding`,
        score = (1 - ctc_weight) attention + ctc_weight CTC, as RAVEn: 0.1, beam 40), plus ``lm_weight`` times the
        log-probability of a language model `lm` (e.g. ``zoo.models.raven_lm.load_language_model(PATH)``; 0.2 or
        0.3 in RAVEn's "+LM" rows; no LM by default); ``beam_size=0`` decodes CTC greedily instead (no LM). Runs in
        the model's current mode (call ``eval()`` first)."""
        memory, valid = self.encode(x, lengths)
        ctc_logits = self.ctc_head(memory)
        if beam_size == 0:
            return ctc_greedy(ctc_logits, valid.sum(1), blank=BLANK_ID)
        log_probs = torch.log_softmax(ctc_logits.float(), dim=-1)
        return beam_search(
            self.decoder,
            memory,
            valid,
            log_probs,
            self.eos_id,
            BLANK_ID,
            beam_size=beam_size,
            ctc_weight=ctc_weight,
            lm=lm,
            lm_weight=lm_weight,
        )

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, tokens: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        memory, valid = self.encode(x, lengths)
        output = {"ctc_logits": self.ctc_head(self.ctc_dropout(memory)), "frame_lengths": valid.sum(1)}
        if tokens is not None:
            output["decoder_logits"] = self.decoder(teacher_forcing_input(tokens, self.eos_id), memory, valid)
        return output


# ----------------------------------------------------------------------------------------------------------------
# Registered models

PAPER = (
    "Jointly Learning Visual and Auditory Speech Representations from Raw Data (Haliassos, Ma, Mira, Petridis, "
    "Pantic, ICLR 2023)"
)
CITATION = (
    "@inproceedings{haliassos2023jointly, title = {Jointly Learning Visual and Auditory Speech Representations "
    "from Raw Data}, author = {Haliassos, Alexandros and Ma, Pingchuan and Mira, Rodrigo and Petridis, Stavros "
    "and Pantic, Maja}, booktitle = {International Conference on Learning Representations}, year = {2023}}"
)

ENCODER_SIZES: dict[str, dict[str, int | float]] = {
    "base": dict(dim=512, heads=8, ffn=2048, blocks=12, drop_path=0.0),
    "large": dict(dim=1024, heads=16, ffn=4096, blocks=24, drop_path=0.1),
}
"""Encoder hyper-parameters of the released configurations (`resnet_transformer_{base,large}`)."""

DECODER_SIZES: dict[str, dict[str, int]] = {
    "base": dict(decoder_dim=512, decoder_heads=8, decoder_ffn=2048, decoder_layers=6),
    "large": dict(decoder_dim=1024, decoder_heads=16, decoder_ffn=4096, decoder_layers=9),
    "lowres": dict(decoder_dim=256, decoder_heads=4, decoder_ffn=2048, decoder_layers=6),
}
"""Decoders of the fine-tuned checkpoints: high-resource Base/Large, and the low-resource (LRS3 trainval) one."""

_AXES_VIDEO = {"B": "batch", "T": "video frames at 25 fps (40 ms)"}
_AXES_AUDIO = {"B": "batch", "N": "16 kHz samples (trimmed to a multiple of 640)"}
INPUTS: dict[Modality, dict[str, TensorSpec]] = {
    "video": {
        "x": TensorSpec(
            shape=("B", "T", 88, 88),
            axes=_AXES_VIDEO,
            sizes={"B": 8, "T": 150},
            description="grayscale mouth crops, (pixel / 255 - 0.421) / 0.165 (`normalise_video`); padding 0.0",
        ),
        "lengths": TensorSpec(
            shape=("B",), axes={"B": "batch"}, dtype="int64", description="valid frames per sample", optional=True
        ),
    },
    "audio": {
        "x": TensorSpec(
            shape=("B", "N"),
            axes=_AXES_AUDIO,
            sizes={"B": 8, "N": 150 * AUDIO_SAMPLES_PER_FRAME},
            description="raw waveform, torchaudio normalize=True scale; pad 0.0",
        ),
        "lengths": TensorSpec(
            shape=("B",), axes={"B": "batch"}, dtype="int64", description="valid samples per sample", optional=True
        ),
    },
}
_AXES_OUT = {"B": "batch", "T": "25 Hz frames (N // 640 for audio)"}
ENCODER_OUTPUTS = {
    "features": TensorSpec(
        shape=("B", "T", "d"),
        axes={**_AXES_OUT, "d": "encoder width (512 Base, 1024 Large)"},
        description="encoder output after the final LayerNorm (padded frames computed too)",
    )
}
RECOGNIZER_INPUT_TOKENS = TensorSpec(
    shape=("B", "L"),
    axes={"B": "batch", "L": "target units"},
    dtype="int64",
    description="unit ids 1..1047 padded with -1, for teacher forcing",
    optional=True,
)
RECOGNIZER_OUTPUTS = {
    "ctc_logits": TensorSpec(
        shape=("B", "T", 1049), axes=_AXES_OUT, description="CTC logits (0 = <blank>, 1048 = <eos>)"
    ),
    "frame_lengths": TensorSpec(shape=("B",), axes={"B": "batch"}, dtype="int64", description="valid frames"),
    "decoder_logits": TensorSpec(
        shape=("B", "L+1", 1049),
        axes={"B": "batch", "L+1": "<sos> + target units"},
        description="teacher-forced attention-decoder logits (only when tokens are given)",
    ),
}


SMALL_ENCODER = dict(dim=32, heads=4, ffn=64, blocks=1)
SMALL_DECODER = dict(decoder_dim=16, decoder_heads=2, decoder_ffn=32, decoder_layers=1)
SMALL_SIZES = {"video": {"T": 3}, "audio": {"N": 3 * AUDIO_SAMPLES_PER_FRAME}}
SMALL_LENGTHS = {"video": [3, 2], "audio": [3 * AUDIO_SAMPLES_PER_FRAME, 2 * AUDIO_SAMPLES_PER_FRAME]}
SMALL_TOKENS = [[1, 2, 3, 4], [5, 6, -1, -1]]
"""The small configurations of the registry-wide tests (the front-ends keep their fixed size)."""


def _register_encoder(modality: Modality, size: str) -> None:
    preset = ENCODER_SIZES[size]
    name = f"raven-{modality}-{size}"

    @register_model(
        name,
        family="raven",
        paper=PAPER,
        citation=CITATION,
        inputs=INPUTS[modality],
        outputs=ENCODER_OUTPUTS,
        small=SmallConfig(SMALL_ENCODER, SMALL_SIZES[modality], {"lengths": SMALL_LENGTHS[modality]}),
    )
    def builder(
        dim: int = int(preset["dim"]),
        heads: int = int(preset["heads"]),
        ffn: int = int(preset["ffn"]),
        blocks: int = int(preset["blocks"]),
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        drop_path: float = float(preset["drop_path"]),
        layer_scale: float = 0.1,
        attention: AttentionImplementation = "sdpa",
    ) -> RAVEnEncoder:
        return RAVEnEncoder(
            modality, dim, heads, ffn, blocks, dropout, attention_dropout, drop_path, layer_scale, attention
        )

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = f"{name}: RAVEn {size} {modality} encoder ({preset['blocks']} blocks, d {preset['dim']})."


def _register_recognizer(task: Literal["vsr", "asr"], size: str, lowres: bool) -> None:
    modality: Modality = "video" if task == "vsr" else "audio"
    preset = ENCODER_SIZES[size]
    decoder = DECODER_SIZES["lowres" if lowres else size]
    name = f"raven-{task}-{size}" + ("-lowres" if lowres else "")

    @register_model(
        name,
        family="raven",
        paper=PAPER,
        citation=CITATION,
        inputs={**INPUTS[modality], "tokens": RECOGNIZER_INPUT_TOKENS},
        outputs=RECOGNIZER_OUTPUTS,
        small=SmallConfig(
            {**SMALL_ENCODER, **SMALL_DECODER},
            SMALL_SIZES[modality],
            {"lengths": SMALL_LENGTHS[modality], "tokens": SMALL_TOKENS},
        ),
    )
    def builder(
        dim: int = int(preset["dim"]),
        heads: int = int(preset["heads"]),
        ffn: int = int(preset["ffn"]),
        blocks: int = int(preset["blocks"]),
        decoder_dim: int = decoder["decoder_dim"],
        decoder_heads: int = decoder["decoder_heads"],
        decoder_ffn: int = decoder["decoder_ffn"],
        decoder_layers: int = decoder["decoder_layers"],
        vocab_size: int = VOCAB_SIZE,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        drop_path: float = float(preset["drop_path"]),
        layer_scale: float = 0.1,
        attention: AttentionImplementation = "sdpa",
        pretrained_encoder: str | None = None,
    ) -> RAVEnRecognizer:
        encoder = RAVEnEncoder(
            modality, dim, heads, ffn, blocks, dropout, attention_dropout, drop_path, layer_scale, attention
        )
        head = RAVEnDecoder(
            vocab_size, dim, decoder_dim, decoder_heads, decoder_ffn, decoder_layers, dropout, attention_dropout
        )
        model = RAVEnRecognizer(encoder, head, vocab_size, ctc_dropout=dropout)
        if pretrained_encoder is not None:
            state = torch.load(pretrained_encoder, map_location="cpu", weights_only=True)
            load_pretrained_encoder(model, state, source=pretrained_encoder)
        return model

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = (
        "``pretrained_encoder``: path of a pre-trained encoder file (`load_pretrained_encoder`). "
        f"{name}: RAVEn {size} {modality} encoder + CTC + {decoder['decoder_layers']}-layer decoder "
        f"(d {decoder['decoder_dim']}){' as the low-resource checkpoints' if lowres else ''}."
    )


for _modality in ("video", "audio"):
    for _size in ENCODER_SIZES:
        _register_encoder(_modality, _size)
for _task in ("vsr", "asr"):
    for _size in ENCODER_SIZES:
        for _lowres in (False, True):
            _register_recognizer(_task, _size, _lowres)


# ----------------------------------------------------------------------------------------------------------------
# Self-supervised pre-training (respike_raven.md, section B.5)


def span_mask(lengths: torch.Tensor, frames: int, probability: float = 0.2, span: int = 3) -> torch.Tensor:
    """fairseq's static span masking (``compute_mask_indices``), as RAVEn masks: bool [B, T], True = masked.

    Per utterance of n valid frames: k = int(probability * n / span + u), u ~ U[0, 1), span starts drawn without
    replacement from 0 .. n - span - 1 (fewer when n is short), each masking `span` frames (spans may overlap).
    The draws are made for the whole batch at once on the lengths' device with its default generator (no host
    synchronisation, no per-utterance loop).
    """
    device = lengths.device
    batch, positions = lengths.shape[0], max(frames - span, 1)
    choices = lengths - span
    uniform = torch.rand(batch, device=device)
    counts = torch.minimum((probability * lengths / span + uniform).long(), choices.clamp(min=0))
    place = torch.arange(positions, device=device)
    keys = torch.rand(batch, positions, device=device).masked_fill(place >= choices[:, None], 2.0)
    starts = torch.zeros(batch, frames, dtype=torch.bool, device=device)
    starts.scatter_(1, keys.argsort(dim=1), place < counts[:, None])
    mask = starts.clone()
    for offset in range(1, span):
        mask[:, offset:] |= starts[:, :-offset]
    return mask


class Predictor(nn.Module):
    """RAVEn's predictor: Linear(d_in -> width), masked frames replaced by a learned token, relative-position
    Transformer blocks, LayerNorm, Linear(width -> d_out): [B, T, d_in] -> [B, T, d_out]."""

    def __init__(self, in_dim: int, out_dim: int, width: int = 512, heads: int = 8, ffn: int = 2048, blocks: int = 2):
        super().__init__()
        self.width = width
        self.input = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList(EncoderBlock(width, heads, ffn, 0.1, 0.1, 0.0, 0.1, "sdpa") for _ in range(blocks))
        self.norm_out = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.output = nn.Linear(width, out_dim)

    def forward(self, features: torch.Tensor, masked: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        x = torch.where(masked[..., None], self.mask_token.to(features.dtype), self.input(features))
        pos_emb = relative_sinusoids(x.shape[1], self.width, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, pos_emb, key_valid)
        return self.output(self.norm_out(x))


PROBE_VOCAB_SIZE = 41
"""Output units of RAVEn's online probe (``E2E(41, ...)`` in the original's ``models/byol_av.py``): 0 = <blank>,
1..39 transcript units, 40 = <eos> (also <sos>), ESPnet's layout. Which 39 units is not published: the original's
pre-training configs point at the unigram1000 CSVs, whose ids (up to 1047) do not fit 41 outputs; 39 units are
probably characters (e.g. letters, digits, apostrophe, space, <unk>) [inferred]."""
PROBE_DECODER: dict[str, int] = dict(decoder_dim=256, decoder_heads=4, decoder_ffn=2048, decoder_layers=6)
"""The probe's decoder in the original's pre-training backbone configs (Base and Large alike: ddim 256, dheads 4,
dunits 2048, dlayers 6; a Linear(d -> 256) on the memory)."""


def check_unit_ids(tokens: torch.Tensor, vocab_size: int, owner: str, hint: str = "") -> None:
    """Raise `ConfigError` (naming `owner`, ending with `hint`) unless every id of `tokens` (any shape, int64) is -1
    (padding) or a unit of a `vocab_size`-unit list laid out as 0 = <blank>, 1..vocab_size - 2, vocab_size - 1 = <eos>.

    One host synchronisation (whether any id is out of range); the offending ids are listed only on failure.
    """
    outside = (tokens != -1) & ((tokens < 1) | (tokens > vocab_size - 2))
    if outside.any():
        found = sorted(set(tokens[outside].tolist()))
        raise ConfigError(
            f"{owner}: target unit ids {found[:8]} do not fit its {vocab_size} outputs (0 = <blank>, units "
            f"1..{vocab_size - 2}, {vocab_size - 1} = <eos>, -1 = padding){'; ' + hint if hint else ''}"
        )


class OnlineProbe(nn.Module):
    """RAVEn's online probe of one student (design note B.5): a CTC head and a `RAVEnDecoder` trained on the
    student's encoder output behind a stop-gradient, so they monitor what the features say about the transcript
    without shaping the encoder.

    ``forward(features [B, T, d], valid bool [B, T], tokens [B, L] or None)`` returns ``ctc_logits`` [B, T, V]
    (dropout on the features first, as ESPnet's CTC module) and, with `tokens` (unit ids 1..V-2 padded with -1,
    checked by `check_unit_ids`), the teacher-forced ``decoder_logits`` [B, L+1, V] (as `RAVEnRecognizer`).
    """

    def __init__(
        self,
        encoder_dim: int,
        vocab_size: int = PROBE_VOCAB_SIZE,
        decoder_dim: int = PROBE_DECODER["decoder_dim"],
        decoder_heads: int = PROBE_DECODER["decoder_heads"],
        decoder_ffn: int = PROBE_DECODER["decoder_ffn"],
        decoder_layers: int = PROBE_DECODER["decoder_layers"],
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_range("probe_vocab_size", vocab_size, low=3, owner="OnlineProbe (0 = no probe)")
        self.vocab_size = vocab_size
        self.ctc_dropout = nn.Dropout(dropout)
        self.ctc_head = nn.Linear(encoder_dim, vocab_size)
        self.decoder = RAVEnDecoder(
            vocab_size, encoder_dim, decoder_dim, decoder_heads, decoder_ffn, decoder_layers, dropout, attention_dropout
        )

    def forward(
        self, features: torch.Tensor, valid: torch.Tensor, tokens: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        features = features.detach()
        output = {"ctc_logits": self.ctc_head(self.ctc_dropout(features))}
        if tokens is not None:
            check_unit_ids(
                tokens,
                self.vocab_size,
                f"the online probe (probe_vocab_size={self.vocab_size})",
                "the model option probe_vocab_size must fit the transcripts' unit ids: 1049 for the unigram1000 "
                "CSVs, 0 for no probe",
            )
            decoder_in = teacher_forcing_input(tokens, self.vocab_size - 1)
            output["decoder_logits"] = self.decoder(decoder_in, features, valid)
        return output


class RAVEnPretrainer(nn.Module):
    """RAVEn's pre-training model: video and audio student encoders, their EMA teachers (``teachers``, no gradient,
    no dropout, updated by the ``ema`` step hook), the predictors video->audio, audio->audio, audio->video, and
    the students' online probes (``probes``, `OnlineProbe`; none when ``probe_vocab_size=0``).

    ``forward(video [B, T, 88, 88], audio [B, T * 640], lengths [B] frames, tokens [B, L])``: span masks (p 0.2,
    3 frames) are drawn per modality; the students see masked inputs (masked video frames and their 640 audio
    samples set to 0), the teachers the full ones. Returns ``{"video_to_audio", "audio_to_audio", "audio_to_video"}``
    predictions [B, T, d], the teacher targets ``audio_target`` / ``video_target`` [B, T, d] (detached), and
    ``video_mask``, ``audio_mask``, ``valid`` bool [B, T]; with the probes, ``<modality>_probe_ctc_logits``
    [B, T, V] of the video then the audio student and, with `tokens` (the transcript's unit ids 1..V-2, padded with
    -1; ignored without probes), ``<modality>_probe_decoder_logits`` [B, L+1, V] after each. `raven_pretrain`
    (zoo.train.recipes.raven) turns them into the loss.
    """

    def __init__(
        self,
        encoder: dict[str, Any],
        predictor_width: int = 512,
        predictor_blocks: int = 2,
        probe_vocab_size: int = PROBE_VOCAB_SIZE,
        probe_decoder: Mapping[str, int] = PROBE_DECODER,
    ) -> None:
        super().__init__()
        quiet = {**encoder, "dropout": 0.0, "attention_dropout": 0.0, "drop_path": 0.0}
        self.students = nn.ModuleDict({m: RAVEnEncoder(m, **encoder) for m in ("video", "audio")})
        self.teachers = nn.ModuleDict({m: RAVEnEncoder(m, **quiet) for m in ("video", "audio")})
        self.teachers.load_state_dict(self.students.state_dict())
        self.teachers.requires_grad_(False)
        dim = encoder["dim"]
        heads = max(1, predictor_width // 64)
        self.predictors = nn.ModuleDict(
            {
                name: Predictor(dim, dim, predictor_width, heads, 4 * predictor_width, predictor_blocks)
                for name in ("video_to_audio", "audio_to_audio", "audio_to_video")
            }
        )
        dropout = dict(dropout=encoder.get("dropout", 0.1), attention_dropout=encoder.get("attention_dropout", 0.1))
        self.probes = nn.ModuleDict(
            {m: OnlineProbe(dim, probe_vocab_size, **probe_decoder, **dropout) for m in ("video", "audio")}
            if probe_vocab_size
            else {}
        )

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        batch, frames = video.shape[:2]
        if audio.shape[1] // AUDIO_SAMPLES_PER_FRAME != frames:
            raise ValueError(f"audio has {audio.shape[1]} samples for {frames} video frames (expected {frames * 640})")
        lengths = torch.full((batch,), frames, device=video.device) if lengths is None else lengths
        valid = frame_valid_mask(lengths, frames, batch, video.device)
        video_mask, audio_mask = span_mask(lengths, frames), span_mask(lengths, frames)
        samples = audio_mask.repeat_interleave(AUDIO_SAMPLES_PER_FRAME, dim=1)
        audio = audio[:, : frames * AUDIO_SAMPLES_PER_FRAME]
        student_video = self.students["video"](video.masked_fill(video_mask[..., None, None], 0.0), lengths)
        student_audio = self.students["audio"](audio.masked_fill(samples, 0.0), lengths * AUDIO_SAMPLES_PER_FRAME)
        with torch.no_grad():
            video_target = self.teachers["video"](video, lengths)
            audio_target = self.teachers["audio"](audio, lengths * AUDIO_SAMPLES_PER_FRAME)
        output = {
            "video_to_audio": self.predictors["video_to_audio"](student_video, video_mask, valid),
            "audio_to_audio": self.predictors["audio_to_audio"](student_audio, audio_mask, valid),
            "audio_to_video": self.predictors["audio_to_video"](student_audio, audio_mask, valid),
            "audio_target": audio_target,
            "video_target": video_target,
            "video_mask": video_mask,
            "audio_mask": audio_mask,
            "valid": valid,
        }
        for modality, features in (("video", student_video), ("audio", student_audio)):
            if modality in self.probes:
                probed = self.probes[modality](features, valid, tokens)
                output.update({f"{modality}_probe_{key}": value for key, value in probed.items()})
        return output


_PRETRAIN_AXES = {"B": "batch", "T": "video frames at 25 fps (40 ms)", "d": "encoder width"}
PRETRAIN_INPUTS = {
    "video": INPUTS["video"]["x"],
    "audio": TensorSpec(
        shape=("B", "N"),
        axes={"B": "batch", "N": "16 kHz samples = 640 x video frames"},
        description="waveform aligned with the video (cut or zero-padded to T x 640 samples)",
    ),
    "lengths": INPUTS["video"]["lengths"],
    "tokens": TensorSpec(
        shape=("B", "L"),
        axes={"B": "batch", "L": "target units"},
        dtype="int64",
        description="transcript unit ids 1..V-2 padded with -1, for the online probes' teacher forcing (V = "
        "probe_vocab_size, 41 as the original; ignored with probe_vocab_size=0)",
        optional=True,
    ),
}
_PROBE_UNITS = "probe units (0 = <blank>, V - 1 = <eos>)"
PRETRAIN_OUTPUTS = {
    **{
        name: TensorSpec(shape=("B", "T", "d"), axes=_PRETRAIN_AXES, description=f"{name} prediction")
        for name in ("video_to_audio", "audio_to_audio", "audio_to_video")
    },
    **{
        name: TensorSpec(shape=("B", "T", "d"), axes=_PRETRAIN_AXES, description=f"EMA teacher's {name}")
        for name in ("audio_target", "video_target")
    },
    **{
        name: TensorSpec(shape=("B", "T"), axes={"B": "batch", "T": "video frames"}, dtype="bool", description=name)
        for name in ("video_mask", "audio_mask", "valid")
    },
    **{
        key: spec
        for modality in ("video", "audio")
        for key, spec in {
            f"{modality}_probe_ctc_logits": TensorSpec(
                shape=("B", "T", "V"),
                axes={"B": "batch", "T": _PRETRAIN_AXES["T"], "V": _PROBE_UNITS},
                description=f"online probe's CTC logits on the detached {modality} student features (with a probe)",
            ),
            f"{modality}_probe_decoder_logits": TensorSpec(
                shape=("B", "L+1", "V"),
                axes={"B": "batch", "L+1": "<sos> + target units", "V": _PROBE_UNITS},
                description=f"online probe's teacher-forced decoder logits, {modality} student (with a probe and "
                "tokens)",
            ),
        }.items()
    },
}


def _register_pretrainer(size: str) -> None:
    preset = ENCODER_SIZES[size]
    name = f"raven-pretrain-{size}"

    @register_model(
        name,
        family="raven",
        paper=PAPER,
        citation=CITATION,
        inputs=PRETRAIN_INPUTS,
        outputs=PRETRAIN_OUTPUTS,
        small=SmallConfig(
            {
                **SMALL_ENCODER,
                "predictor_width": 32,
                "predictor_blocks": 1,
                **{f"probe_{key}": value for key, value in SMALL_DECODER.items()},
            },
            {"T": 4, "N": 4 * AUDIO_SAMPLES_PER_FRAME},
            {"lengths": [4, 3], "tokens": SMALL_TOKENS},
        ),
    )
    def builder(
        dim: int = int(preset["dim"]),
        heads: int = int(preset["heads"]),
        ffn: int = int(preset["ffn"]),
        blocks: int = int(preset["blocks"]),
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        drop_path: float = float(preset["drop_path"]),
        predictor_width: int = 512,
        predictor_blocks: int = 2,
        probe_vocab_size: int = PROBE_VOCAB_SIZE,
        probe_decoder_dim: int = PROBE_DECODER["decoder_dim"],
        probe_decoder_heads: int = PROBE_DECODER["decoder_heads"],
        probe_decoder_ffn: int = PROBE_DECODER["decoder_ffn"],
        probe_decoder_layers: int = PROBE_DECODER["decoder_layers"],
    ) -> RAVEnPretrainer:
        encoder = dict(
            dim=dim,
            heads=heads,
            ffn=ffn,
            blocks=blocks,
            dropout=dropout,
            attention_dropout=attention_dropout,
            drop_path=drop_path,
        )
        probe_decoder = dict(
            decoder_dim=probe_decoder_dim,
            decoder_heads=probe_decoder_heads,
            decoder_ffn=probe_decoder_ffn,
            decoder_layers=probe_decoder_layers,
        )
        return RAVEnPretrainer(encoder, predictor_width, predictor_blocks, probe_vocab_size, probe_decoder)

    builder.__name__ = builder.__qualname__ = name.replace("-", "_")
    builder.__doc__ = (
        "``probe_vocab_size``: units of the students' online CTC/attention probes (`OnlineProbe`; 41 as the "
        "original: 0 = <blank>, 1..39, 40 = <eos>; 1049 for the unigram1000 CSVs; 0 = no probe), "
        "``probe_decoder_*``: the probe decoder's size (d 256, 4 heads, FFN 2048, 6 layers as the original). "
        f"{name}: RAVEn {size} pre-training (students, EMA teachers, predictors, online probes)."
    )


for _size in ENCODER_SIZES:
    _register_pretrainer(_size)


# ----------------------------------------------------------------------------------------------------------------
# Beyond the paper: a spiking RAVEn-style word classifier for DVS-Lip (jellyzoo's own construction)


class SpikingLipFrontend(nn.Module):
    """SpikGRU's spiking lip-reading trunk (`zoo.models.spikgru.spikgru_frontend`: LIF neurons of `zoo.layers.lif`,
    one `zoo.kernels.lif_scan` per layer, IF neurons after the poolings) as a RAVEn front-end.

    events [B, T, 2, 88, 88] (DVS-Lip counts, channel 0 ON, channel 1 -OFF) -> spikes [B, T, 512] in {0, 1}
    ({-1, 0, +1} with signed neurons): the spikes of the IF neurons after the global average pool. Time stride 1.
    Input shapes are checked by `zoo.input_check`, which `zoo.build` installs.
    """

    def __init__(self, settings: NeuronSettings) -> None:
        super().__init__()
        self.trunk = spikgru.spikgru_frontend(settings)

    def forward(self, events: torch.Tensor) -> torch.Tensor:
        return self.trunk(events).transpose(0, 1)


class SpikingRAVEnClassifier(nn.Module):
    """Hybrid spiking RAVEn-style word classifier: spiking front-end, float Transformer, per-step linear readout.

    Not a published model: jellyzoo's construction after respike_raven.md, section C (the "SNN front-end x
    Transformer back-end" cell, option (a): attention stays float, so the model is *hybrid*, not an SNN).

        events [B, T, 2, 88, 88] -> `SpikingLipFrontend` (spikes [B, T, 512])
                                 -> `RAVEnEncoder` blocks: Linear(512 -> d) * sqrt(d), relative-position
                                    pre-norm Transformer with LayerScale, LayerNorm         -> [B, T, d] float
                                 -> Linear(d -> num_classes) per step, mean over T          -> logits [B, C]

    Spiking layers (each with a `SpikeRecord`): the stem, the pool IF, both neurons of the 8 residual blocks and the
    global-pool IF (19 rates in `zoo.firing_rates`; the 17 LIF layers enter `zoo.spike_penalty`). Float, non-spiking
    parts: the stem convolution on event counts, the embedding's output and everything after it (attention, softmax,
    LayerNorm, BatchNorm, FFN, readout). The embedding's input is spikes, so its products are accumulates.

    Args:
        num_classes: words (100 for DVS-Lip).
        dim, heads, ffn, blocks: Transformer width d, heads, FFN width and number of blocks.
        signed: signed {-1, 0, +1} spikes in every front-end neuron (binary {0, 1} otherwise).
        threshold, gamma: firing threshold and surrogate sharpness of the front-end neurons.
        dropout, attention_dropout, drop_path, layer_scale, attention: as `RAVEnEncoder`.
    """

    def __init__(
        self,
        num_classes: int = 100,
        dim: int = 256,
        heads: int = 4,
        ffn: int = 1024,
        blocks: int = 6,
        signed: bool = False,
        threshold: float = 1.0,
        gamma: float = 10.0,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        drop_path: float = 0.1,
        layer_scale: float = 0.1,
        attention: AttentionImplementation = "sdpa",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for key, value in (("num_classes", num_classes), ("dim", dim), ("heads", heads), ("ffn", ffn)):
            check_range(key, value, low=1, owner=owner)
        check_range("blocks", blocks, low=0, owner=owner)
        for key, value in (("threshold", threshold), ("gamma", gamma)):
            check_range(key, value, low=0.0, low_open=True, owner=owner)
        if dim % heads:
            raise ValueError(f"{owner}: dim ({dim}) must be a multiple of heads ({heads})")
        frontend = SpikingLipFrontend(NeuronSettings(spiking=True, signed=signed, threshold=threshold, gamma=gamma))
        self.encoder = RAVEnEncoder(
            "video", dim, heads, ffn, blocks, dropout, attention_dropout, drop_path, layer_scale, attention, frontend
        )
        self.readout = nn.Linear(dim, num_classes)

    def forward(self, events: torch.Tensor) -> torch.Tensor:
        """events [B, T, 2, 88, 88] -> logits [B, num_classes] (time mean of the per-step readout)."""
        return self.forward_steps(events).mean(1)

    def forward_steps(self, events: torch.Tensor) -> torch.Tensor:
        """events [B, T, 2, 88, 88] -> per-step readout [B, T, num_classes]."""
        return self.readout(self.encoder(events))

    def clamp_parameters(self) -> None:
        """Clamp the front-end's learnable leaks to [0, 1] (the engine calls this after every optimiser step)."""
        for module in self.encoder.frontend.modules():
            if isinstance(module, LIFNeuron):
                module.clamp_parameters()


SPIKING_DVSLIP_SIZE: dict[str, int | float] = dict(dim=256, heads=4, ffn=1024, blocks=6, drop_path=0.1)
"""The default ("RAVEn-S") preset (respike_raven.md, section C): DVS-Lip has on the order of 10^4 word clips, orders
of magnitude below the data RAVEn Base was built for, so d 256 with 4 heads (d_k 64 as in RAVEn Base), FFN 4 d as
RAVEn, 6 blocks (half of Base) and drop-path 0.1. The back-end (embedding, blocks, readout) has 5.3 M parameters,
a ninth of SpikGRU2+'s 47.2 M-parameter SpikGRU head, on the same 11.2 M-parameter front-end (16.5 M in all)."""


SPIKING_DVSLIP_PAPER = (
    "jellyzoo's own construction, not a published model: a hybrid (spiking front-end, float attention) RAVEn-style "
    "encoder classifying DVS-Lip words, built from " + PAPER + " and the spiking front-end of " + spikgru.PAPER
)
SPIKING_DVSLIP_CITATION = (
    "No publication of its own; cite the two works it combines. " + CITATION + " " + spikgru.CITATION
)


@register_model(
    "raven-spiking-dvslip",
    family="raven",
    paper=SPIKING_DVSLIP_PAPER,
    citation=SPIKING_DVSLIP_CITATION,
    inputs=spikgru.INPUTS,
    outputs=spikgru.OUTPUTS,
    small=SmallConfig(SMALL_ENCODER, {"T": 2}),
)
def raven_spiking_dvslip(
    num_classes: int = 100,
    dim: int = int(SPIKING_DVSLIP_SIZE["dim"]),
    heads: int = int(SPIKING_DVSLIP_SIZE["heads"]),
    ffn: int = int(SPIKING_DVSLIP_SIZE["ffn"]),
    blocks: int = int(SPIKING_DVSLIP_SIZE["blocks"]),
    signed: bool = False,
    threshold: float = 1.0,
    gamma: float = 10.0,
    dropout: float = 0.1,
    attention_dropout: float = 0.1,
    drop_path: float = float(SPIKING_DVSLIP_SIZE["drop_path"]),
    layer_scale: float = 0.1,
    attention: AttentionImplementation = "sdpa",
) -> SpikingRAVEnClassifier:
    """raven-spiking-dvslip (hybrid; jellyzoo's own, not a published model): SpikGRU's spiking ResNet-18 front-end
    (binary spikes, ``signed=True``: {-1, 0, +1}) + a 6-block d 256 RAVEn Transformer (float attention) + a per-step
    linear readout averaged over time; DVS-Lip event frames [B, T, 2, 88, 88] -> logits [B, 100]."""
    return SpikingRAVEnClassifier(
        num_classes,
        dim,
        heads,
        ffn,
        blocks,
        signed,
        threshold,
        gamma,
        dropout,
        attention_dropout,
        drop_path,
        layer_scale,
        attention,
    )


# ----------------------------------------------------------------------------------------------------------------
# Conversion from the original checkpoints
#
# Original (espnet `E2E` of ahaliassos/raven) -> ours:
#   encoder: frontend.frontend3D.{0,1} (video) / frontend.trunk.{conv1,bn1} (audio) -> frontend.stem.{conv,bn};
#            frontend.trunk.layer<k>.<b>.* -> frontend.layer<k+1>.<b>.* with downsample.{0,1} ->
#            shortcut_{conv,bn}; embed.0 -> embed; encoders.N -> blocks.N with norm_mha -> norm_attn,
#            self_attn -> attn, gamma_mha -> gamma_attn, feed_forward -> ff; after_norm -> norm_out
#   ctc.ctc_lo -> ctc_head
#   decoder: proj_decoder -> memory_proj; embed.0 -> embed; decoders.N -> layers.N with feed_forward -> ff;
#            after_norm -> norm_out; output_layer -> output
# Accepted layouts: flat E2E state dicts (optionally under Lightning's "model." prefix); for the encoder models,
# pre-trained encoder files with any prefix up to the "encoder." before frontend./embed./encoders./after_norm.;
# the original's legacy names (encoder input_layer. -> embed., norm. -> after_norm.; decoder output_norm. ->
# after_norm.). The positional encodings are not in the checkpoints (recomputed).

_ENCODER_TOP = ("frontend.", "embed.", "encoders.", "after_norm.", "input_layer.", "norm.")


def _stage(rest: str) -> Callable[[re.Match[str]], str]:
    """Replacement of the original's frontend.trunk.layer<k>.<block>. (k = 1..4): our frontend.layer<k+1>.<block>.
    followed by `rest` (a template of the block-relative name)."""
    return lambda match: f"frontend.layer{int(match.group(1)) + 1}.{match.expand(rest)}"


_ENCODER_LEGACY = ((re.compile(r"^input_layer\."), "embed."), (re.compile(r"^norm\."), "after_norm."))
_DECODER_LEGACY = ((re.compile(r"^output_norm\."), "after_norm."),)
_ENCODER_RENAMES = (
    (re.compile(r"^frontend\.frontend3D\.0\."), "frontend.stem.conv."),
    (re.compile(r"^frontend\.frontend3D\.1\."), "frontend.stem.bn."),
    (re.compile(r"^frontend\.trunk\.conv1\."), "frontend.stem.conv."),
    (re.compile(r"^frontend\.trunk\.bn1\."), "frontend.stem.bn."),
    (re.compile(r"^frontend\.trunk\.layer(\d)\.(\d)\.downsample\.0\."), _stage(r"\2.shortcut_conv.")),
    (re.compile(r"^frontend\.trunk\.layer(\d)\.(\d)\.downsample\.1\."), _stage(r"\2.shortcut_bn.")),
    (re.compile(r"^frontend\.trunk\.layer(\d)\.(\d)\."), _stage(r"\2.")),
    (re.compile(r"^embed\.0\."), "embed."),
    (re.compile(r"^encoders\.(\d+)\.norm_mha\."), r"blocks.\1.norm_attn."),
    (re.compile(r"^encoders\.(\d+)\.self_attn\."), r"blocks.\1.attn."),
    (re.compile(r"^encoders\.(\d+)\.gamma_mha$"), r"blocks.\1.gamma_attn"),
    (re.compile(r"^encoders\.(\d+)\.feed_forward\."), r"blocks.\1.ff."),
    (re.compile(r"^encoders\.(\d+)\."), r"blocks.\1."),
    (re.compile(r"^after_norm\."), "norm_out."),
)
_DECODER_RENAMES = (
    (re.compile(r"^after_norm\."), "norm_out."),
    (re.compile(r"^proj_decoder\."), "memory_proj."),
    (re.compile(r"^embed\.0\."), "embed."),
    (re.compile(r"^decoders\.(\d+)\.feed_forward\."), r"layers.\1.ff."),
    (re.compile(r"^decoders\.(\d+)\."), r"layers.\1."),
    (re.compile(r"^output_layer\."), "output."),
)


def _rename_first(key: str, renames: tuple[tuple[re.Pattern[str], str], ...]) -> str | None:
    """`key` renamed by the first pattern of `renames` that matches it, or None when none does."""
    for pattern, replacement in renames:
        renamed, count = pattern.subn(replacement, key)
        if count:
            return renamed
    return None


def _first_rename(key: str, renames: tuple[tuple[re.Pattern[str], str], ...]) -> str:
    """`key` renamed by the first pattern of `renames` that matches it (unchanged when none does)."""
    renamed = _rename_first(key, renames)
    return key if renamed is None else renamed


def _encoder_name(key: str) -> str:
    """Our name of an original encoder key (relative to the encoder), legacy names included."""
    return _first_rename(_first_rename(key, _ENCODER_LEGACY), _ENCODER_RENAMES)


def _decoder_name(key: str) -> str:
    """Our name of an original decoder key (relative to the decoder), legacy names included."""
    return _first_rename(_first_rename(key, _DECODER_LEGACY), _DECODER_RENAMES)


def _encoder_key(key: str) -> str | None:
    """The bare encoder key of `key` (any prefix up to the last "encoder." before a top-level name), or None."""
    for start in [0] + [match.end() for match in re.finditer(r"(?:^|\.)encoder\.", key)]:
        rest = key[start:]
        if rest.startswith(_ENCODER_TOP):
            return rest
    return None


def _store(converted: dict[str, torch.Tensor], key: str, value: torch.Tensor, source: str) -> None:
    """``converted[key] = value``; a second checkpoint key (`source`) mapping to the same name is an error."""
    if key in converted:
        raise KeyError(f"raven converter: two checkpoint keys map to {key!r} (the second is {source!r})")
    converted[key] = value


def convert_raven(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any], recognizer: bool) -> dict:
    """Map an original RAVEn state dict onto `RAVEnEncoder` (``recognizer=False``) or `RAVEnRecognizer` keys.

    Unknown keys are an error naming them (the strict load in `from_reference` reports missing ones).
    """
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        flat = key.removeprefix("model.") if recognizer else key
        if recognizer and flat.startswith("ctc.ctc_lo."):
            _store(converted, "ctc_head." + flat[len("ctc.ctc_lo.") :], value, key)
        elif recognizer and flat.startswith("decoder."):
            _store(converted, "decoder." + _decoder_name(flat[len("decoder.") :]), value, key)
        elif recognizer and flat.startswith("encoder.") and flat[len("encoder.") :].startswith(_ENCODER_TOP):
            _store(converted, "encoder." + _encoder_name(flat[len("encoder.") :]), value, key)
        elif not recognizer and (bare := _encoder_key(key)) is not None:
            _store(converted, _encoder_name(bare), value, key)
        else:
            unknown.append(key)
    if unknown:
        layout = "a flat E2E state dict (encoder.*, ctc.*, decoder.*)" if recognizer else "encoder keys"
        raise KeyError(f"raven converter: expected {layout}; unexpected keys {unknown[:10]}")
    return converted


def load_pretrained_encoder(
    model: RAVEnRecognizer, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Load a pre-trained encoder (any layout `convert_raven` accepts, or ours) into ``model.encoder``, as the
    original fine-tuning does: every encoder weight strictly except the final LayerNorm, which keeps its fresh
    initialisation (the original drops ``after_norm.*``)."""
    upcast = {key: value.float() if value.is_floating_point() else value for key, value in state_dict.items()}
    ours = set(model.encoder.state_dict())
    converted = upcast if set(upcast) == ours else convert_raven(upcast, {}, recognizer=False)
    kept = {key: value for key, value in converted.items() if not key.startswith("norm_out.")}
    missing, unexpected = model.encoder.load_state_dict(kept, strict=False)
    missing = [key for key in missing if not key.startswith("norm_out.")]
    if missing or unexpected:
        raise ValueError(
            f"pre-trained encoder {source} does not match the model's encoder; missing {missing[:10]}, "
            f"unexpected {unexpected[:10]}"
        )


@register_converter(*(f"raven-{modality}-{size}" for modality in ("video", "audio") for size in ENCODER_SIZES))
def convert_raven_encoder(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict:
    """Pre-trained encoder files (bare or prefixed encoder keys) -> `RAVEnEncoder`."""
    return convert_raven(state_dict, config, recognizer=False)


@register_converter(
    *(f"raven-{task}-{size}{res}" for task in ("vsr", "asr") for size in ENCODER_SIZES for res in ("", "-lowres"))
)
def convert_raven_recognizer(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict:
    """Fine-tuned E2E files (flat encoder.*, ctc.*, decoder.* keys) -> `RAVEnRecognizer`."""
    return convert_raven(state_dict, config, recognizer=True)
