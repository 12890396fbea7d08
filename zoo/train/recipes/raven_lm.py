"""Training RAVEn's Transformer language model (``raven-lm``, `zoo.models.raven_lm`) on the unit ids of LRS3-format
label CSVs (`zoo.datasets.LRS3` with ``modality="text"``: only the CSVs are read).

Objective as ESPnet's LM training: every sentence is read as ``<sos> y_1 .. y_n`` and predicts ``y_1 .. y_n <eos>``
(<sos> = <eos> = the last unit); the loss is the cross-entropy averaged over the predicted units, <eos> included
(`language_model_loss`), and ``unit_nll`` reports the same average over a whole split in nats per unit
(perplexity = exp(unit_nll)).

The original repository ships the LM file (``rnnlm.model.best``, built from ``conf/model/language_model/
default.yaml``: 16 layers, d 512, 8 heads, FFN 2048, embedding 128, no positional encoding, dropout 0.0) but neither
its training text nor its optimisation settings; the run directory in its README
(``train_transformerlm_pytorch_lm_transformer_large_ngpu8_unigram1000``) only says ESPnet, 8 GPUs, the 1000-unit
SentencePiece vocabulary. The settings of ``raven-lm-lrs3`` are therefore ours: the LRS3 training transcripts
(``train`` list; far less text than an LM for the paper's numbers would see), Adam (0.9, 0.98), lr 1e-3 after one
warm-up epoch, cosine to 1e-5, 50 epochs, 256 sentences per batch, gradient clipping 1.0, float32, dropout 0.0 as
the config. A released LM is used as it is (`zoo.models.raven_lm.load_language_model`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.train.recipe import Recipe, register_recipe
from zoo.train.registries import register_loss, register_metric

__all__ = ["RAVEN_LM_LRS3", "language_model_loss", "unit_nll"]


def _targets(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """Unit ids [B, L] padded with -1 -> the LM's targets [B, L + 1]: the units, <eos> (id V - 1), then -1."""
    lengths = (tokens >= 0).sum(1)
    targets = F.pad(tokens, (0, 1), value=-1)
    targets[torch.arange(tokens.shape[0], device=tokens.device), lengths] = vocab - 1
    return targets


def _summed_nll(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed negative log-likelihood in nats, number of predicted units) of logits [B, L + 1, V] for the units
    [B, L] (padded with -1) followed by <eos>."""
    targets = _targets(target, logits.shape[-1])
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-1, reduction="sum")
    return nll, (targets >= 0).sum()


@register_loss("raven_lm")
def language_model_loss(output: torch.Tensor, target: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Cross-entropy of the next-unit logits [B, L + 1, V] (``raven-lm``'s output) for the units [B, L] (padded with
    -1) then <eos>, averaged over the predicted units (ESPnet's LM loss)."""
    nll, count = _summed_nll(output, target)
    return nll / count


@register_metric("unit_nll", higher_is_better=False)
def unit_nll(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed negative log-likelihood in nats, predicted units, <eos> included): their ratio is the average per
    unit over the split, exp of it the perplexity."""
    nll, count = _summed_nll(output.detach(), target)
    return nll, count.to(nll.dtype)


RAVEN_LM_LRS3 = register_recipe(
    Recipe(
        name="raven-lm-lrs3",
        model="raven-lm",
        dataset="lrs3",
        dataset_options={"modality": "text"},
        optimizer="adam",
        optimizer_options={"betas": (0.9, 0.98)},
        lr=1e-3,
        schedule="cosine",
        warmup_epochs=1,
        min_lr=1e-5,
        epochs=50,
        batch_size=256,
        grad_clip=1.0,
        amp=False,
        loss="raven_lm",
        metrics=("unit_nll",),
        selection_metric="unit_nll",
        description="RAVEn's Transformer LM (raven-lm) on the LRS3 transcripts (unit ids of the label CSVs); "
        "the original's LM training text and settings are not published: these settings are ours",
    )
)
