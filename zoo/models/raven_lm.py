"""RAVEn's Transformer language model over the 1049 recogniser units, for shallow fusion in the beam search (the
"+LM" rows of the RAVEn README; design note respike_raven.md, section B.6).

The original builds ESPnet's ``TransformerLM(1049, cfg.model.language_model)`` (ahaliassos/raven at 040e987,
``finetune_learner.py``; config ``conf/model/language_model/default.yaml``: ``pos_enc: none, embed_unit: 128,
att_unit: 512, head: 8, unit: 2048, layer: 16, dropout_rate: 0.0``) on RAVEn's copy of ESPnet's Transformer encoder
(``espnet/nets/pytorch_backend/transformer/encoder.py`` with ``input_layer="linear"``)::

    tokens [B, L] -> Embedding(V, 128) -> Linear(128 -> 512) -> LayerNorm (eps 1e-5) -> dropout -> ReLU
    -> 16 pre-norm causal self-attention blocks:  x += dropout(MHA(LN(x)));  x += dropout(W2 dropout(ReLU(W1 LN(x))))
    -> LayerNorm -> Linear(512 -> V)                                   (block and final LayerNorms: eps 1e-12)

There is no positional encoding (``pos_enc: none``): word order reaches the model only through the causal mask.
Units are the recognisers' (0 = <blank>, 1..1047 SentencePiece units, 1048 = <eos>, also <sos>); a sentence is
scored as ``<sos> y_1 .. y_n <eos>``, as ESPnet's LM training and its beam search do.

`RAVEnLM.step` decodes incrementally with the keys and values of every layer cached per hypothesis (ESPnet caches
each layer's outputs and re-projects them every step; the result is the same). It is the scorer that
`zoo.decoding.beam_search` fuses with weight ``lm_weight`` (0.2 or 0.3 in the original's "+LM" scripts).

Parameter names follow ours; the original's (``embed.*``, ``encoder.embed.{0,1}.*``, ``encoder.encoders.<i>.*``,
``encoder.after_norm.*``, ``decoder.*``) load through ``zoo.convert.from_reference("raven-lm", state_dict)``
(last section of this module); `load_language_model` reads either kind of file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.convert import from_reference, register_converter
from zoo.layers.attention import MultiHeadAttention
from zoo.models.raven import (
    CITATION,
    LAYER_NORM_EPS,
    PAPER,
    SMALL_TOKENS,
    VOCAB_SIZE,
    FeedForward,
    _first_rename,
    _rename_first,
    _store,
    teacher_forcing_input,
)
from zoo.registry import SmallConfig, TensorSpec, build, register_model
from zoo.weights import load_state_dict_strict, read_checkpoint

__all__ = ["LanguageModelState", "RAVEnLM", "convert_raven_lm", "load_language_model"]

INPUT_LAYER_NORM_EPS = 1e-5
"""The input layer's LayerNorm is ``torch.nn.LayerNorm`` with its default eps (ESPnet's own LayerNorm, 1e-12,
normalises the blocks and the output)."""


class LanguageModelBlock(nn.Module):
    """Pre-norm causal self-attention block: x [B, L, d] -> [B, L, d].

    x += dropout(SelfAttn(LN_attn(x)));  x += dropout(FFN(LN_ff(x)))
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.self_attn = MultiHeadAttention(dim, heads, attention_dropout)
        self.norm_ff = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.ff = FeedForward(dim, ffn, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x: the queries' block input [B, L, d]; keys/values [B, h, S, d_k] of LN_attn of every position seen so
        far (S >= L, the queries last); mask: bool, broadcastable to [B, h, L, S], or None (all allowed)."""
        attended = self.self_attn.attend(self.self_attn.linear_q(self.norm_attn(x)), keys, values, mask)
        x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.norm_ff(x)))


@dataclasses.dataclass
class LanguageModelState:
    """The keys and values of every block for the units read so far, per hypothesis: [N, h, t, d_k] each."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def select(self, index: torch.Tensor) -> LanguageModelState:
        """The states of hypotheses `index` [N'] (e.g. the surviving beams)."""
        return LanguageModelState([k[index] for k in self.keys], [v[index] for v in self.values])


class RAVEnLM(nn.Module):
    """Causal Transformer language model over unit ids (module docstring).

    ``forward(tokens)``: unit ids [B, L] padded with -1 -> logits [B, L+1, V] of <sos> + tokens: position l
    predicts tokens[l], position L (of an unpadded row; the row's length otherwise) the <eos>.
    ``step(tokens, state)``: one incremental step for beam search (`zoo.decoding.IncrementalLanguageModel`).
    """

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        embed_dim: int = 128,
        dim: int = 512,
        heads: int = 8,
        ffn: int = 2048,
        layers: int = 16,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.input_proj = nn.Linear(embed_dim, dim)
        self.input_norm = nn.LayerNorm(dim, eps=INPUT_LAYER_NORM_EPS)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            LanguageModelBlock(dim, heads, ffn, dropout, attention_dropout) for _ in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.output = nn.Linear(dim, vocab_size)

    @property
    def eos_id(self) -> int:
        """<eos> (also <sos>): the last unit."""
        return self.vocab_size - 1

    def _input(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unit ids [B, L] -> block input [B, L, d] (no positional encoding)."""
        return torch.relu(self.input_dropout(self.input_norm(self.input_proj(self.embed(tokens)))))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        inputs = teacher_forcing_input(tokens, self.eos_id)
        length = inputs.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        x = self._input(inputs)
        for block in self.blocks:
            keys, values = block.self_attn.project_memory(block.norm_attn(x))
            x = block(x, keys, values, causal)
        return self.output(self.norm_out(x))

    def init_state(self, hypotheses: int, device: torch.device | str | None = None) -> LanguageModelState:
        """Empty caches for `hypotheses` sequences (nothing read yet; the first `step` reads <sos>)."""
        attention = self.blocks[0].self_attn
        empty = self.output.weight.new_zeros(hypotheses, attention.heads, 0, attention.head_dim, device=device)
        return LanguageModelState([empty] * len(self.blocks), [empty] * len(self.blocks))

    def step(self, tokens: torch.Tensor, state: LanguageModelState) -> tuple[torch.Tensor, LanguageModelState]:
        """Read the last units [N] -> float32 log-probabilities of the next unit [N, V] and the extended state.
        Equals `forward` at the same position (log-softmaxed)."""
        x = self._input(tokens[:, None])
        keys, values = [], []
        for block, cached_keys, cached_values in zip(self.blocks, state.keys, state.values, strict=True):
            new_keys, new_values = block.self_attn.project_memory(block.norm_attn(x))
            keys.append(torch.cat((cached_keys, new_keys), dim=2))
            values.append(torch.cat((cached_values, new_values), dim=2))
            x = block(x, keys[-1], values[-1], None)
        logits = self.output(self.norm_out(x[:, 0]))
        return torch.log_softmax(logits.float(), dim=-1), LanguageModelState(keys, values)


# ----------------------------------------------------------------------------------------------------------------
# Registered model

LM_INPUTS = {
    "tokens": TensorSpec(
        shape=("B", "L"),
        axes={"B": "batch", "L": "units"},
        dtype="int64",
        sizes={"B": 64, "L": 40},
        value_range=(1, VOCAB_SIZE - 2),
        description="unit ids 1..1047 padded with -1 (<sos> is prepended inside)",
    )
}
LM_OUTPUTS = {
    "logits": TensorSpec(
        shape=("B", "L+1", 1049),
        axes={"B": "batch", "L+1": "<sos> + units"},
        description="next-unit logits: position l predicts unit l, the last position <eos> (0 = <blank>)",
    )
}


@register_model(
    "raven-lm",
    family="raven",
    paper=PAPER,
    citation=CITATION,
    inputs=LM_INPUTS,
    outputs=LM_OUTPUTS,
    small=SmallConfig(dict(embed_dim=8, dim=16, heads=2, ffn=32, layers=1), values={"tokens": SMALL_TOKENS}),
)
def raven_lm(
    vocab_size: int = VOCAB_SIZE,
    embed_dim: int = 128,
    dim: int = 512,
    heads: int = 8,
    ffn: int = 2048,
    layers: int = 16,
    dropout: float = 0.0,
    attention_dropout: float = 0.0,
) -> RAVEnLM:
    """raven-lm: RAVEn's 16-layer Transformer LM (d 512, 8 heads, FFN 2048, embedding 128, no positional
    encoding) over the 1049 units, for shallow fusion (``RAVEnRecognizer.recognize(lm=..., lm_weight=...)``)."""
    return RAVEnLM(vocab_size, embed_dim, dim, heads, ffn, layers, dropout, attention_dropout)


def load_language_model(path: str | Path, **overrides: Any) -> RAVEnLM:
    """The LM saved at `path`, in eval mode: a ``zoo.train`` run directory or checkpoint or a ``python -m zoo
    export`` folder (built from its saved config), or a plain state-dict file in our layout or the original's
    (e.g. the released ``rnnlm.model.best``; built as ``raven-lm`` with `overrides`, loaded strictly).

    Raises:
        FileNotFoundError / ValueError: nothing loadable at `path`, or weights that do not fit the model.
    """
    saved = read_checkpoint(path)
    if saved.model is not None:
        if saved.model != "raven-lm":
            raise ValueError(f"{str(saved.source)!r} holds a {saved.model!r} model, not a raven-lm language model")
        model = build("raven-lm", checkpoint=saved, **saved.model_config)
    elif any(key.startswith("encoder.") for key in saved.state_dict):
        model = from_reference("raven-lm", saved.state_dict, **overrides)
    else:
        model = build("raven-lm", **overrides)
        load_state_dict_strict(model, saved.state_dict, str(saved.source))
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# Conversion from the original checkpoints. Layout derived from the classes the original builds (RAVEn's ESPnet
# copy: TransformerLM -> Encoder(input_layer="linear") -> EncoderLayer with norm_mha / norm_ff); the released file
# itself was not available to check. The original loads it with ESPnet's `torch_load`: a plain, flat state dict
# (the "model" entry of a file named *snapshot*), strictly, after the Encoder's load hook renamed the legacy
# ``encoder.input_layer.`` -> ``encoder.embed.`` and ``encoder.norm.`` -> ``encoder.after_norm.``. No other prefix
# is accepted there, so none is here.

_LM_LEGACY = (
    (re.compile(r"^encoder\.input_layer\."), "encoder.embed."),
    (re.compile(r"^encoder\.norm\."), "encoder.after_norm."),
)
_LM_RENAMES = (
    (re.compile(r"^embed\."), "embed."),
    (re.compile(r"^encoder\.embed\.0\."), "input_proj."),
    (re.compile(r"^encoder\.embed\.1\."), "input_norm."),
    (re.compile(r"^encoder\.encoders\.(\d+)\.self_attn\.(linear_[qkv]|linear_out)\."), r"blocks.\1.self_attn.\2."),
    (re.compile(r"^encoder\.encoders\.(\d+)\.feed_forward\.(w_[12])\."), r"blocks.\1.ff.\2."),
    (re.compile(r"^encoder\.encoders\.(\d+)\.norm_mha\."), r"blocks.\1.norm_attn."),
    (re.compile(r"^encoder\.encoders\.(\d+)\.norm_ff\."), r"blocks.\1.norm_ff."),
    (re.compile(r"^encoder\.after_norm\."), "norm_out."),
    (re.compile(r"^decoder\."), "output."),
)


@register_converter("raven-lm")
def convert_raven_lm(state_dict: Mapping[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The original TransformerLM's flat state dict -> `RAVEnLM` keys; a key of no known name is an error naming
    it (the strict load in `from_reference` reports missing ones)."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        ours = _rename_first(_first_rename(key, _LM_LEGACY), _LM_RENAMES)
        if ours is None:
            unknown.append(key)
        else:
            _store(converted, ours, value, key)
    if unknown:
        raise KeyError(
            "raven-lm converter: expected the original TransformerLM's keys (embed.*, encoder.embed.*, "
            f"encoder.encoders.*, encoder.after_norm.*, decoder.*); unexpected keys {unknown[:10]}"
        )
    return converted
