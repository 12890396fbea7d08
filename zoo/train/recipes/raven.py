"""RAVEn fine-tuning for lip reading (VSR) and speech recognition (ASR) on LRS3 (design note respike_raven.md,
section B.6; the fine-tuning scripts of ahaliassos/raven at 040e987).

======================================  =========================================================================
recipe                                  setting (``scripts/finetuning/<task>/<data>/base_lrs3.sh``)
======================================  =========================================================================
``raven-vsr-base-lrs3``                 VSR, 433 h: lr 2e-3 (encoder) / 6e-3 (CTC + decoder), weight decay 0.04,
                                        drop-path 0.1, no layer decay, 75 epochs, 20 warm-up
``raven-vsr-base-lrs3-lowres``          VSR, 30 h (trainval): 1e-3 / 5e-3, weight decay 0.1, drop-path 0.2,
                                        layer decay 0.5, 50 epochs, low-resource decoder (d 256)
``raven-asr-base-lrs3``                 ASR: 1e-3 / 2e-3, weight decay 0.1, drop-path 0, no layer decay, 75
                                        epochs, time masks of up to 0.6 s per 2 s (the script trains on
                                        ``lrs3_trainval`` although named "lrs3"; we use the full set)
``raven-asr-base-lrs3-lowres``          ASR, 30 h: 1e-3 / 5e-3, weight decay 0.1, drop-path 0.2, layer decay 0.5,
                                        200 epochs, low-resource decoder
``raven-{vsr,asr}-large-lrs3[-lowres]``  Large (``large_lrs3vox2.sh``), 24 blocks: VSR 2e-3 / 4e-3, wd 0.04,
                                        drop-path 0.3, layer decay 0.75, 75 epochs (30 h: 1e-3 / 5e-3, 0.1, 0.2,
                                        0.6, 50); ASR 1e-3 / 2e-3, 0.04, 0.3, 0.75, 150 epochs (30 h: 1e-3 /
                                        5e-3, 0.1, 0.2, 0.75, 200); 2000 frames per GPU in the scripts
======================================  =========================================================================

Common: AdamW (0.9, 0.98), linear warm-up then cosine to 1e-5, gradient clipping 5.0, float32; loss
``raven_hybrid`` = 0.1 CTC + 0.9 label-smoothed (0.1) attention cross-entropy, both summed over units and
divided by the batch size (ESPnet); metric ``unit_error_rate`` (greedy CTC units vs the reference units). The
encoder starts from a pre-trained RAVEn encoder: ``model.pretrained_encoder=PATH`` (any layout of the released
encoder files; `zoo.models.raven.load_pretrained_encoder`). WER with beam search: `word_error_rate_of`
(``python -m zoo.evaluate --units FILE``).

Layer-wise learning rates (the original's rule, as explicit `param_groups`): encoder block i of N gets
lr x rho^(N - i - 1), the front-end and the embedding lr x rho^N, the CTC head, the decoder and the encoder's
final LayerNorm (re-initialised for fine-tuning) get lr_other, the recipe's ``lr``.

Batches hold up to 2400 frames per process for training (2000 in the Large 433 h scripts) and 500 for validation
(``data.max_frames``, `zoo.datasets.lrs3.FrameBudgetBatchSampler`; ``batch_size`` is then unused;
``data.max_frames=None`` batches by ``batch_size``). The final model is the average of the weights after the
last 10 epochs (``average_last=10``: the run directory's ``averaged.pt``, `zoo.train.checkpoint.average_checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.decoding import IncrementalLanguageModel, UnitList, ctc_greedy, word_error_rate, word_errors
from zoo.errors import ConfigError
from zoo.models.raven import VOCAB_SIZE
from zoo.models.raven_lm import load_language_model
from zoo.train.recipe import Recipe, register_recipe
from zoo.train.recipes.spikgru import SPIKGRU_DVSLIP
from zoo.train.registries import register_loss, register_metric

__all__ = [
    "RAVEN_PRETRAIN",
    "RAVEN_RECIPES",
    "RAVEN_SPIKING_DVSLIP",
    "ctc_and_attention_losses",
    "hybrid_ctc_attention_loss",
    "layer_decay_groups",
    "probe_output",
    "raven_pretrain_loss",
    "transcribe",
    "unit_error_rate",
    "word_error_rate_of",
]

EOS_OFFSET = 1
"""<eos> is the last unit: vocabulary size - 1."""


def ctc_and_attention_losses(
    output: Mapping[str, torch.Tensor], target: torch.Tensor, label_smoothing: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CTC and the attention loss of a RAVEn recogniser's output (teacher forced), each summed over units and
    frames and divided by the batch size, as ESPnet.

    Args:
        output: ``ctc_logits`` [B, T, V], ``frame_lengths`` [B], ``decoder_logits`` [B, L+1, V].
        target: unit ids [B, L], padded with -1; the decoder's targets are the units then <eos> (id V - 1).
        label_smoothing: epsilon of the attention loss: KL(q || p) with q = 1 - eps on the target unit and
            eps / (V - 1) on every other one (ESPnet's ``LabelSmoothingLoss``; equals the smoothed cross-entropy
            minus the entropy of q).

    CTC alignments that are impossible (more units than frames) count as 0 instead of infinity.
    """
    batch = target.shape[0]
    valid = target >= 0
    target_lengths = valid.sum(1)
    log_probs = torch.log_softmax(output["ctc_logits"].float(), dim=-1)
    ctc = F.ctc_loss(
        log_probs.transpose(0, 1),
        target.clamp(min=0),
        output["frame_lengths"],
        target_lengths,
        blank=0,
        reduction="sum",
        zero_infinity=True,
    )
    logits = output["decoder_logits"].float()
    vocab = logits.shape[-1]
    eos = vocab - EOS_OFFSET
    with_eos = F.pad(target, (0, 1), value=-1)
    with_eos[torch.arange(batch, device=target.device), target_lengths] = eos
    keep = with_eos >= 0
    smoothed = torch.full_like(logits, label_smoothing / (vocab - 1))
    smoothed.scatter_(-1, with_eos.clamp(min=0)[..., None], 1.0 - label_smoothing)
    log_q = torch.where(smoothed > 0, smoothed.log(), torch.zeros_like(smoothed))
    kl = (smoothed * (log_q - torch.log_softmax(logits, dim=-1))).sum(-1)
    attention = (kl * keep).sum()
    return ctc / batch, attention / batch


@register_loss("raven_hybrid")
def hybrid_ctc_attention_loss(
    output: Mapping[str, torch.Tensor],
    target: torch.Tensor,
    model: nn.Module,
    ctc_weight: float = 0.1,
    label_smoothing: float = 0.1,
) -> torch.Tensor:
    """``ctc_weight * CTC + (1 - ctc_weight) * attention`` of a RAVEn recogniser's output (`ctc_and_attention_losses`:
    `output`, `target` and `label_smoothing` there); `ctc_weight` is the original's ``mtlalpha`` (0.1)."""
    ctc, attention = ctc_and_attention_losses(output, target, label_smoothing)
    return ctc_weight * ctc + (1.0 - ctc_weight) * attention


def _edit_distance(hypothesis: Sequence[int], reference: Sequence[int]) -> int:
    return word_errors(" ".join(map(str, hypothesis)), " ".join(map(str, reference)))


@register_metric("unit_error_rate", higher_is_better=False, during_training=False)
def unit_error_rate(output: Mapping[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(edit distance, reference units) of the greedy CTC transcription against the reference units [B, L]
    (padded with -1); the rate is their ratio. Decoded and compared on the host, so computed in validation and
    evaluation passes only (``during_training=False``)."""
    hypotheses = ctc_greedy(output["ctc_logits"], output["frame_lengths"])
    references = [[unit for unit in row if unit >= 0] for row in target.tolist()]
    errors = sum(_edit_distance(hyp, ref) for hyp, ref in zip(hypotheses, references, strict=True))
    words = sum(len(ref) for ref in references)
    device = target.device
    return torch.tensor(float(errors), device=device), torch.tensor(float(words), device=device)


@torch.no_grad()
def transcribe(
    model: nn.Module,
    batches: Iterable[tuple[Mapping[str, torch.Tensor], torch.Tensor]],
    units: UnitList,
    beam_size: int = 40,
    ctc_weight: float = 0.1,
    device: torch.device | str = "cpu",
    lm: IncrementalLanguageModel | str | Path | None = None,
    lm_weight: float = 0.0,
) -> tuple[list[str], list[str]]:
    """Hypotheses and reference texts of a recogniser (a model with RAVEn's ``recognize(x, lengths, beam_size,
    ctc_weight, lm, lm_weight)``) over collated batches ``({"x", "lengths"}, unit ids padded with -1)``, e.g. a
    DataLoader of `zoo.datasets.LRS3` with its ``collate_fn``: beam search (``beam_size=0``: greedy CTC), unit ids
    to text through `units`.

    `lm` (a language model, or the path of one: the released ``rnnlm.model.best`` or a ``raven-lm-lrs3`` run,
    read by `zoo.models.raven_lm.load_language_model`) joins the search with weight `lm_weight`, as the "+LM" rows
    (0.2 for VSR on LRS3, 0.3 for the 30 h VSR and ASR rows in the original's scripts).

    Returns:
        (hypotheses, references), one text per utterance in batch order.
    """
    model.eval()
    if isinstance(lm, (str, Path)):
        lm = load_language_model(lm).to(device)
    hypotheses, references = [], []
    for inputs, target in batches:
        found = model.recognize(
            inputs["x"].to(device),
            inputs["lengths"].to(device),
            beam_size=beam_size,
            ctc_weight=ctc_weight,
            lm=lm,
            lm_weight=lm_weight,
        )
        hypotheses += [units.text(hyp) for hyp in found]
        references += [units.text([unit for unit in row if unit >= 0]) for row in target.tolist()]
    return hypotheses, references


def word_error_rate_of(
    model: nn.Module,
    batches: Iterable[tuple[Mapping[str, torch.Tensor], torch.Tensor]],
    units: UnitList,
    beam_size: int = 40,
    ctc_weight: float = 0.1,
    device: torch.device | str = "cpu",
    lm: IncrementalLanguageModel | str | Path | None = None,
    lm_weight: float = 0.0,
) -> tuple[float, list[str]]:
    """WER of a recogniser over collated batches (arguments as `transcribe`; ``python -m zoo.evaluate --units``
    runs it on a dataset split).

    Returns:
        (word errors / reference words, the hypotheses in order).
    """
    hypotheses, references = transcribe(model, batches, units, beam_size, ctc_weight, device, lm, lm_weight)
    errors, words = word_error_rate(hypotheses, references)
    return errors / max(words, 1), hypotheses


def layer_decay_groups(blocks: int, encoder_lr: float, other_lr: float, decay: float) -> tuple[dict[str, Any], ...]:
    """The original's layer-wise learning rates as `Recipe.param_groups` (lr scales relative to `other_lr`, the
    recipe's ``lr``): encoder block i -> encoder_lr * decay^(blocks - i - 1), front-end and embedding ->
    encoder_lr * decay^blocks; everything else (CTC head, decoder, the encoder's final norm) stays at other_lr."""
    scale = encoder_lr / other_lr
    groups = [
        {"params": f"encoder.blocks.{index}.*", "lr_scale": scale * decay ** (blocks - index - 1)}
        for index in range(blocks)
    ]
    groups.append({"params": ("encoder.frontend.*", "encoder.embed.*"), "lr_scale": scale * decay**blocks})
    return tuple(groups)


def _finetune_recipe(
    name: str,
    model: str,
    modality: str,
    train_list: str,
    encoder_lr: float,
    other_lr: float,
    weight_decay: float,
    drop_path: float,
    decay: float,
    epochs: int,
    time_mask: tuple[float, float],
    description: str,
    blocks: int = 12,
    frames: int = 2400,
) -> Recipe:
    return Recipe(
        name=name,
        model=model,
        dataset="lrs3",
        model_overrides={"drop_path": drop_path},
        dataset_options={"modality": modality, "train_list": train_list, "max_frames": 500},
        train_options={"time_mask_window_s": time_mask[0], "time_mask_stride_s": time_mask[1], "max_frames": frames},
        optimizer="adamw",
        optimizer_options={"betas": (0.9, 0.98)},
        lr=other_lr,
        weight_decay=weight_decay,
        schedule="cosine",
        warmup_epochs=20,
        min_lr=1e-5,
        epochs=epochs,
        batch_size=16,
        grad_clip=5.0,
        param_groups=layer_decay_groups(blocks, encoder_lr, other_lr, decay),
        after_step={},
        amp=False,
        loss="raven_hybrid",
        loss_options={"ctc_weight": 0.1, "label_smoothing": 0.1},
        metrics=("unit_error_rate",),
        selection_metric="unit_error_rate",
        average_last=10,
        description=description,
    )


RAVEN_RECIPES = (
    _finetune_recipe(
        "raven-vsr-base-lrs3",
        "raven-vsr-base",
        "video",
        "train",
        2e-3,
        6e-3,
        0.04,
        0.1,
        1.0,
        75,
        (0.4, 1.0),
        "RAVEn Base VSR fine-tuning on LRS3 (433 h)",
    ),
    _finetune_recipe(
        "raven-vsr-base-lrs3-lowres",
        "raven-vsr-base-lowres",
        "video",
        "trainval",
        1e-3,
        5e-3,
        0.1,
        0.2,
        0.5,
        50,
        (0.4, 1.0),
        "RAVEn Base VSR fine-tuning on LRS3 trainval (30 h)",
    ),
    _finetune_recipe(
        "raven-asr-base-lrs3",
        "raven-asr-base",
        "audio",
        "train",
        1e-3,
        2e-3,
        0.1,
        0.0,
        1.0,
        75,
        (0.6, 2.0),
        "RAVEn Base ASR fine-tuning on LRS3 (433 h)",
    ),
    _finetune_recipe(
        "raven-asr-base-lrs3-lowres",
        "raven-asr-base-lowres",
        "audio",
        "trainval",
        1e-3,
        5e-3,
        0.1,
        0.2,
        0.5,
        200,
        (0.6, 2.0),
        "RAVEn Base ASR fine-tuning on LRS3 trainval (30 h)",
    ),
    _finetune_recipe(
        "raven-vsr-large-lrs3",
        "raven-vsr-large",
        "video",
        "train",
        2e-3,
        4e-3,
        0.04,
        0.3,
        0.75,
        75,
        (0.4, 1.0),
        "RAVEn Large VSR fine-tuning on LRS3 (433 h)",
        blocks=24,
        frames=2000,
    ),
    _finetune_recipe(
        "raven-vsr-large-lrs3-lowres",
        "raven-vsr-large-lowres",
        "video",
        "trainval",
        1e-3,
        5e-3,
        0.1,
        0.2,
        0.6,
        50,
        (0.4, 1.0),
        "RAVEn Large VSR fine-tuning on LRS3 trainval (30 h)",
        blocks=24,
    ),
    _finetune_recipe(
        "raven-asr-large-lrs3",
        "raven-asr-large",
        "audio",
        "train",
        1e-3,
        2e-3,
        0.04,
        0.3,
        0.75,
        150,
        (0.6, 2.0),
        "RAVEn Large ASR fine-tuning on LRS3 (433 h)",
        blocks=24,
        frames=2000,
    ),
    _finetune_recipe(
        "raven-asr-large-lrs3-lowres",
        "raven-asr-large-lowres",
        "audio",
        "trainval",
        1e-3,
        5e-3,
        0.1,
        0.2,
        0.75,
        200,
        (0.6, 2.0),
        "RAVEn Large ASR fine-tuning on LRS3 trainval (30 h)",
        blocks=24,
    ),
)
for _recipe in RAVEN_RECIPES:
    register_recipe(_recipe)


# ----------------------------------------------------------------------------------------------------------------
# Self-supervised pre-training (respike_raven.md, section B.5)


def _negative_cosine(prediction: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """-mean over the frames `where` [B, T] of cos(prediction, target) along the last axis."""
    cosine = F.cosine_similarity(prediction.float(), target.float(), dim=-1)
    return -(cosine * where).sum() / where.sum().clamp(min=1)


PROBED_MODALITIES = ("video", "audio")
"""The students with an online probe, in the order of the model's outputs."""


def probe_output(output: Mapping[str, torch.Tensor], modality: str) -> dict[str, torch.Tensor]:
    """The online probe of the `modality` student in a `zoo.models.raven.RAVEnPretrainer` output, as a recogniser's
    output: ``ctc_logits`` [B, T, V], ``frame_lengths`` [B] (the valid frames) and, when the forward had the
    transcripts, ``decoder_logits`` [B, L+1, V].

    Raises:
        ConfigError: the model has no probe (built with ``probe_vocab_size=0``).
    """
    prefix = f"{modality}_probe_"
    if prefix + "ctc_logits" not in output:
        raise ConfigError(
            "the RAVEn pre-training model has no online probe (probe_vocab_size=0): drop the probe metrics "
            "(metrics=()) or build it with a probe"
        )
    probe = {key.removeprefix(prefix): value for key, value in output.items() if key.startswith(prefix)}
    return {**probe, "frame_lengths": output["valid"].sum(1)}


@register_loss("raven_pretrain")
def raven_pretrain_loss(
    output: Mapping[str, torch.Tensor],
    target: torch.Tensor,
    model: nn.Module,
    video_to_audio: float = 1.0,
    audio_to_audio: float = 1.0,
    audio_to_video: float = 1.0,
    probe_label_smoothing: float = 0.1,
) -> torch.Tensor:
    """RAVEn's objective from a `zoo.models.raven.RAVEnPretrainer` output (design note B.5): negative cosine
    similarities to the EMA teachers' outputs, video->audio and audio->video over every valid frame, audio->audio
    over the masked frames only; weights as the original's config (v2v 0, the others 1). With the students' online
    probes, each adds its CTC + attention loss (`ctc_and_attention_losses` of the transcript units `target` [B, L]
    padded with -1; label smoothing 0.1; weight 1 each, as the original's learner adds ``loss_ctc + loss_att``),
    computed on detached features, so the probes train without moving the encoders.

    Raises:
        ValueError: the model has probes but its forward had no transcripts (``tokens``).
    """
    valid = output["valid"]
    masked = output["audio_mask"] & valid
    loss = (
        video_to_audio * _negative_cosine(output["video_to_audio"], output["audio_target"], valid)
        + audio_to_audio * _negative_cosine(output["audio_to_audio"], output["audio_target"], masked)
        + audio_to_video * _negative_cosine(output["audio_to_video"], output["video_target"], valid)
    )
    for modality in PROBED_MODALITIES:
        if f"{modality}_probe_ctc_logits" not in output:
            continue
        probe = probe_output(output, modality)
        if "decoder_logits" not in probe:
            raise ValueError(
                "raven_pretrain: the model's online probes need the transcripts: call it with tokens=[B, L] unit ids"
            )
        ctc, attention = ctc_and_attention_losses(probe, target, probe_label_smoothing)
        loss = loss + ctc + attention
    return loss


def _probe_unit_error_rate(modality: str) -> Callable[[Mapping[str, torch.Tensor], torch.Tensor], tuple]:
    def metric(output: Mapping[str, torch.Tensor], target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return unit_error_rate(probe_output(output, modality), target)

    metric.__name__ = metric.__qualname__ = f"{modality}_probe_unit_error_rate"
    metric.__doc__ = (
        f"`unit_error_rate` of the {modality} student's online probe (greedy CTC) in a RAVEn pre-training output."
    )
    return metric


for _modality in PROBED_MODALITIES:
    register_metric(f"{_modality}_probe_unit_error_rate", higher_is_better=False, during_training=False)(
        _probe_unit_error_rate(_modality)
    )


RAVEN_PRETRAIN = register_recipe(
    Recipe(
        name="raven-pretrain-base-lrs3",
        model="raven-pretrain-base",
        model_overrides={"probe_vocab_size": VOCAB_SIZE},
        dataset="lrs3",
        dataset_options={"modality": "audiovisual", "max_frames": 500},
        train_options={"augment_time_mask": False, "max_frames": 2400},
        optimizer="adamw",
        optimizer_options={"betas": (0.9, 0.999)},
        lr=3e-3,
        weight_decay=0.04,
        schedule="cosine",
        warmup_epochs=40,
        min_lr=1e-5,
        epochs=150,
        batch_size=32,
        grad_clip=3.0,
        after_step={"ema": {"student": "students", "teacher": "teachers", "momentum": 0.999, "final_momentum": 1.0}},
        amp=False,
        loss="raven_pretrain",
        metrics=tuple(f"{modality}_probe_unit_error_rate" for modality in PROBED_MODALITIES),
        selection_metric="loss",
        description="RAVEn Base self-supervised pre-training on LRS3 (scripts/pretraining/base_lrs3.sh)",
    )
)
"""RAVEn Base pre-training on LRS3 (``scripts/pretraining/base_lrs3.sh``): AdamW (0.9, 0.999), weight decay 0.04,
peak lr 3e-3 after 40 warm-up epochs, cosine to 1e-5, 150 epochs, clipping 3.0, float32; EMA teachers with momentum
0.999 -> 1 (cosine). Online probes as the original's: each student's CTC head + attention decoder (d 256, 4 heads,
FFN 2048, 6 layers) on its detached features, loss CTC + attention (label smoothing 0.1) added to the objective,
metrics ``video_probe_unit_error_rate`` / ``audio_probe_unit_error_rate`` (greedy CTC units against the
transcripts' units; the original logs the decoder's accuracy and the CTC loss instead). Differences: the probes
read the CSVs' unigram1000 units (``model.probe_vocab_size=1049``): the original's probes have 41 units (the model's
default: 0 = <blank>, 1..39, 40 = <eos>), an unpublished set (probably characters) that the original's own
pre-training CSVs (unigram1000 ids up to 1047) do not fit; ``model.probe_vocab_size=41`` restores them for
41-unit transcripts (another id stops the run with an error naming the ids) and ``model.probe_vocab_size=0
metrics=()`` drops the probes. One AdamW over both students, the predictors and the
probes instead of one per modality (the same updates: the two losses touch disjoint parameters; clipping is then
global instead of per modality, and the probes' gradients count in it, as in the original's per-modality
clipping)."""


# ----------------------------------------------------------------------------------------------------------------
# raven-spiking-dvslip on DVS-Lip (jellyzoo's own hybrid model; no published recipe or result to reproduce)

RAVEN_SPIKING_DVSLIP: dict[str, Any] = {
    **SPIKGRU_DVSLIP,
    "optimizer": "adamw",
    "optimizer_options": {"betas": (0.9, 0.98)},
    "lr": 3e-4,
    "weight_decay": 0.04,
    "no_weight_decay": ("bn", "norm", "bias", "gamma", "alpha"),
    "schedule": "cosine",
    "min_lr": 5e-6,
    "grad_clip": 5.0,
}
"""Settings of ``raven-spiking-dvslip``: SpikGRU's DVS-Lip data protocol unchanged for a like-for-like comparison
(``zoo.train.recipes.spikgru.SPIKGRU_DVSLIP``: T = 90 bins, augS + augT, batch 32, 100 epochs, 1 warm-up epoch,
float32, loss ``spikgru`` = cross-entropy + ``actreg`` x spike penalty, accuracy), SpikGRU's learning rate 3e-4 and
cosine floor 5e-6; the Transformer's optimiser as RAVEn's fine-tuning (section B.6): AdamW (0.9, 0.98), weight
decay 0.04 (not on norms, biases, LayerScale gammas or the LIF leaks), gradient clipping 5.0."""

register_recipe(
    Recipe(
        name="raven-spiking-dvslip",
        model="raven-spiking-dvslip",
        description="hybrid spiking RAVEn-style classifier (jellyzoo's own) on DVS-Lip: SpikGRU's data protocol, "
        "AdamW 3e-4 cosine -> 5e-6, weight decay 0.04, 100 epochs; no published result to compare with",
        **RAVEN_SPIKING_DVSLIP,
    )
)
