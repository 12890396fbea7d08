"""Decoding of CTC/attention speech recognisers: greedy CTC, batched beam search with CTC prefix scores, unit lists,
word error rate.

Beam search (hybrid CTC/attention decoding, Watanabe et al. 2017, "Hybrid CTC/Attention Architecture for
End-to-End Speech Recognition", section III and Algorithm 2). A hypothesis h = <sos> y_1 .. y_n is scored

    score(h) = (1 - lambda) log p_att(y_1..y_n | x) + lambda log p_ctc(y_1..y_n ... | x) + beta log p_lm(y_1..y_n)   (1)

with p_ctc the CTC *prefix* probability (every label sequence that starts with y_1..y_n); for an ended hypothesis
(y_n = <eos>) it is the full CTC probability of y_1..y_{n-1}. lambda = 0.1 in RAVEn. The last term is shallow fusion
with a language model (`IncrementalLanguageModel`, e.g. `zoo.models.raven_lm.RAVEnLM`; <eos> scored too): beta = 0
(no LM) by default, 0.2 or 0.3 in RAVEn's "+LM" rows. As in ESPnet, the LM joins the total score only: the
candidates of a hypothesis are still its best units by attention score. The prefix probability of
h = g + c follows from g's forward variables r^n_t(g) (prefix ending in c's label at frame t) and r^b_t(g)
(ending in blank), in the log domain:

    phi_t      = r^b_t(g)                         if c == last(g),  else  r^b_t(g) (+) r^n_t(g)
    r^n_t(h)   = (r^n_{t-1}(h) (+) phi_{t-1}) + log p_t(c),      r^n_0(h) = log p_0(c) if g = <sos>, else -inf
    r^b_t(h)   = (r^n_{t-1}(h) (+) r^b_{t-1}(h)) + log p_t(blank),  r^b_0(h) = -inf
    log psi(h) = (+)_t  phi_{t-1} + log p_t(c)      (with the t = 0 term r^n_0(h))                             (2)

((+) = log-add-exp.) Frames past an utterance's length get log p = -inf for every unit but blank (log p = 0), so
they carry the forward variables unchanged. Only the `pre_beam` best units of each hypothesis by attention
score (1.5 x beam, as ESPnet) get CTC scores; the blank unit is never a candidate.

The search runs all utterances of a batch and their beams as one batch of hypotheses on the device.
A hypothesis that emits <eos> ends; an utterance stops when its best ended score is at least the best running
score (scores never increase, every term of (1) being a log-probability, so no running hypothesis can overtake it:
the result equals an exhaustive search restricted to the beam), or after T steps (T = its number of encoder
frames; the running hypotheses then end as they are, like ESPnet at maxlenratio 0).

Each step computes only what can still change a result: the working batch holds the utterances not yet stopped,
each with its hypotheses that can still win (running, and scoring above the utterance's best ended hypothesis:
one at the first step, up to K after), padded to the same number W per utterance (N = M x W rows, so the decoder
reads each utterance's memory once for its W hypotheses). The top K of an utterance are chosen among its candidates
placed where a search carrying all K beams every step would hold them (-inf in the places of dropped hypotheses), so
the hypotheses that can win are the ones that search keeps: a dropped hypothesis and its extensions score no more
than the best ended one, which only a higher score replaces. (The one way to differ: exactly equal scores at the
K-th place, where which of them topk keeps may depend on the rest of the row.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from zoo.layers.valid_steps import valid_mask
from zoo.options import check_range

__all__ = [
    "IncrementalDecoder",
    "IncrementalLanguageModel",
    "UnitList",
    "beam_search",
    "check_search_weights",
    "ctc_greedy",
    "ctc_prefix_extend",
    "word_error_rate",
    "word_errors",
]

WORD_BOUNDARY = "\u2581"
"""SentencePiece's word-start marker."""


class DecoderStateLike(Protocol):
    def select(self, index: torch.Tensor, memory_rows: bool | torch.Tensor = True) -> DecoderStateLike: ...


class IncrementalDecoder(Protocol):
    """What `beam_search` needs of an attention decoder (e.g. `zoo.models.raven.RAVEnDecoder`): `init_state` for B
    utterances (one hypothesis each: <sos>); `step` reading the last unit of N = M x W hypotheses [N] of a state with
    M memory rows (hypotheses m W .. m W + W - 1 read memory row m) and giving log-probabilities of the next unit
    [N, V]; the state's ``select(index, memory_rows)`` keeping hypotheses `index` [N'] and memory rows `memory_rows`
    (a tensor [M'] of rows, or False: all, the hypotheses still grouped by row)."""

    def init_state(self, memory: torch.Tensor, memory_valid: torch.Tensor) -> DecoderStateLike: ...

    def step(self, tokens: torch.Tensor, state: DecoderStateLike) -> tuple[torch.Tensor, DecoderStateLike]: ...


class LanguageModelStateLike(Protocol):
    def select(self, index: torch.Tensor) -> LanguageModelStateLike: ...


class IncrementalLanguageModel(Protocol):
    """What `beam_search` needs of a language model for shallow fusion (e.g. `zoo.models.raven_lm.RAVEnLM`):
    `init_state` for N hypotheses that have read nothing, `step` reading each hypothesis's last unit [N] (<sos> = the
    beam search's `eos` first) and giving log-probabilities of the next unit [N, V]."""

    def init_state(self, hypotheses: int, device: torch.device) -> LanguageModelStateLike: ...

    def step(
        self, tokens: torch.Tensor, state: LanguageModelStateLike
    ) -> tuple[torch.Tensor, LanguageModelStateLike]: ...


def ctc_greedy(logits: torch.Tensor, lengths: torch.Tensor | None = None, blank: int = 0) -> list[list[int]]:
    """Best path decoding: per frame arg-max, repeats merged, blanks removed.

    Args:
        logits: [B, T, V] CTC logits or log-probabilities.
        lengths: [B] valid frames (None: all T).
        blank: id of the blank unit.

    Returns:
        one list of unit ids per utterance.
    """
    best = logits.argmax(-1)
    keep = torch.ones_like(best, dtype=torch.bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != blank
    if lengths is not None:
        keep &= valid_mask(lengths.to(best.device), best.shape[1], batch_first=True)
    best, keep = best.cpu(), keep.cpu()
    return [row[mask].tolist() for row, mask in zip(best, keep, strict=True)]


class UnitList:
    """The unit list of a SentencePiece vocabulary: a text file with one ``unit id`` per line.

    This is the format of RAVEn's ``labels/unigram1000_units.txt`` (ids 1..1047; id 0 is <blank> and the last id
    <eos>, neither listed). `text` joins units and turns the word-start marker into spaces.
    """

    def __init__(self, units: dict[int, str]) -> None:
        self.units = units

    @classmethod
    def from_file(cls, path: str | Path) -> UnitList:
        """Read `path`; a line that is not ``unit id`` (integer id) or a repeated id is an error naming the line."""
        units: dict[int, str] = {}
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            unit, _, index = line.rstrip().rpartition(" ")
            if not unit or not index.lstrip("-").isdigit():
                raise ValueError(f"{path}:{number}: expected 'unit id', got {line!r}")
            if int(index) in units:
                raise ValueError(f"{path}:{number}: id {index} listed twice ({units[int(index)]!r} and {unit!r})")
            units[int(index)] = unit
        if not units:
            raise ValueError(f"{path}: no units listed")
        return cls(units)

    def text(self, ids: Sequence[int]) -> str:
        """Unit ids -> text; ids outside the list (blank, eos) are an error."""
        try:
            pieces = [self.units[int(index)] for index in ids]
        except KeyError as error:
            raise KeyError(f"unit id {error.args[0]} is not in the unit list") from None
        return "".join(pieces).replace(WORD_BOUNDARY, " ").strip()

    def ids(self, text: str) -> list[int]:
        """Greedy longest-match segmentation of `text` into listed units (words start with the marker).

        For building test transcripts; real CSVs carry SentencePiece's own ids.
        """
        by_unit = {unit: index for index, unit in self.units.items()}
        longest = max(len(unit) for unit in by_unit)
        marked = "".join(WORD_BOUNDARY + word for word in text.split())
        ids, start = [], 0
        while start < len(marked):
            for end in range(min(len(marked), start + longest), start, -1):
                if marked[start:end] in by_unit:
                    ids.append(by_unit[marked[start:end]])
                    start = end
                    break
            else:
                raise ValueError(f"text {text!r} cannot be written with the units (stuck at {marked[start:]!r})")
        return ids


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    hyp, ref = hypothesis.split(), reference.split()
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
        previous = current
    return previous[-1]


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[int, int]:
    """(word errors, reference words) summed over utterances; WER = errors / words."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    errors = sum(word_errors(hyp, ref) for hyp, ref in zip(hypotheses, references, strict=True))
    return errors, sum(len(ref.split()) for ref in references)


def ctc_prefix_extend(
    candidate_log_probs: torch.Tensor,
    blank_log_probs: torch.Tensor,
    r_nonblank: torch.Tensor,
    r_blank: torch.Tensor,
    same_as_last: torch.Tensor,
    empty_prefix: bool,
    start: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (2): prefix scores and forward variables of g + c for P candidates c of each of N hypotheses g.

    Args:
        candidate_log_probs: [N, P, T] log p_t(c).
        blank_log_probs: [N, T] log p_t(blank).
        r_nonblank, r_blank: [N, T] forward variables of g.
        same_as_last: bool [N, P], c == last unit of g.
        empty_prefix: g is <sos> alone.
        start: first frame that can change (frames before it stay -inf; g of n units cannot end before frame
            n - 1), 1 at least.

    Returns:
        log psi [N, P], r^n [N, P, T], r^b [N, P, T] of the extended hypotheses.
    """
    n, p, frames = candidate_log_probs.shape
    r_g = torch.where(same_as_last[..., None], r_blank[:, None], torch.logaddexp(r_blank, r_nonblank)[:, None])
    # one tensor for (phi, r^n, r^b) and one for (log p_t(c), log p_t(blank)), so that a frame's two recursions are
    # two operations (a log-add-exp and an add into place) instead of six
    variables = candidate_log_probs.new_full((n, p, 3, frames), -math.inf)
    variables[:, :, 0] = r_g
    if empty_prefix:
        variables[:, :, 1, 0] = candidate_log_probs[..., 0]
    emitted = torch.stack((candidate_log_probs, blank_log_probs[:, None].expand(n, p, frames)), dim=2)
    start = max(start, 1)
    for t in range(start, frames):
        previous = variables[..., t - 1]
        torch.add(
            torch.logaddexp(previous[:, :, 1:2], previous[:, :, 0::2]), emitted[..., t], out=variables[:, :, 1:, t]
        )
    r_n, r_b = variables[:, :, 1], variables[:, :, 2]
    terms = torch.cat((r_n[..., :1], r_g[..., start - 1 : -1] + candidate_log_probs[..., start:]), dim=-1)
    return torch.logsumexp(terms, dim=-1), r_n, r_b


def check_search_weights(ctc_weight: float, lm_weight: float, owner: str = "beam_search") -> None:
    """Raise ValueError (naming `owner`) unless 0 <= `ctc_weight` <= 1 and `lm_weight` >= 0: every term of the beam
    score must be a non-positive log-probability times a non-negative weight, because the search drops hypotheses
    on the grounds that their scores never rise."""
    check_range("ctc_weight", ctc_weight, low=0.0, high=1.0, owner=owner)
    check_range("lm_weight", lm_weight, low=0.0, owner=owner)


@torch.no_grad()
def beam_search(
    decoder: IncrementalDecoder,
    memory: torch.Tensor,
    memory_valid: torch.Tensor,
    ctc_log_probs: torch.Tensor,
    eos: int,
    blank: int = 0,
    beam_size: int = 40,
    ctc_weight: float = 0.1,
    pre_beam: int | None = None,
    lm: IncrementalLanguageModel | None = None,
    lm_weight: float = 0.0,
) -> list[list[int]]:
    """Hybrid CTC/attention beam search, eq. (1), for a batch of utterances at once.

    Args:
        decoder: attention decoder with `init_state` / `step` (module docstring); <sos> = `eos`.
        memory: encoder output [B, T, d]; memory_valid: bool [B, T] valid frames.
        ctc_log_probs: [B, T, V] CTC log-probabilities.
        eos: id of <eos> (also <sos>); blank: id of the CTC blank.
        beam_size: K hypotheses kept per utterance (40 in RAVEn).
        ctc_weight: lambda of eq. (1) (0.1 in RAVEn), in [0, 1].
        pre_beam: candidate units per hypothesis that get CTC scores (default int(1.5 K), at most V - 1).
        lm: language model fused with weight `lm_weight` (beta of eq. (1), >= 0); unused when None or
            `lm_weight` is 0.

    Returns:
        the best hypothesis of each utterance as unit ids (without <sos>/<eos>).

    Raises:
        ValueError: weights outside `check_search_weights`'s ranges.
    """
    check_search_weights(ctc_weight, lm_weight)
    batch, frames, vocab = ctc_log_probs.shape
    device = ctc_log_probs.device
    beam = beam_size
    pre_beam = min(pre_beam or int(1.5 * beam), vocab - 1)
    lengths = memory_valid.sum(1)

    # padded frames: every unit impossible but blank, which carries the forward variables unchanged
    log_probs = ctc_log_probs.float().masked_fill(~memory_valid[..., None], -math.inf)
    log_probs[..., blank] = log_probs[..., blank].masked_fill(~memory_valid, 0.0)
    by_unit = log_probs.transpose(1, 2)  # [B, V, T]
    blank_by_utterance = log_probs[..., blank]  # [B, T]

    # The working batch: the M utterances still decoded (`utterances`, ids into the batch; per utterance its frame
    # count, best ended score and tokens), `width` hypotheses each (N = M x width rows, utterance-major). `places`
    # [N]: each hypothesis's rank among its utterance's K beams of the step before (K for padding), i.e. its place
    # in a search carrying all B x K beams every step; `dense`: the places are 0 .. width - 1 in every utterance.
    utterances = torch.arange(batch, device=device)
    utterance_lengths = lengths
    utterance_best = log_probs.new_full((batch,), -math.inf)
    utterance_tokens = torch.full((batch, frames + 1), eos, dtype=torch.long, device=device)
    best_tokens = utterance_tokens.clone()
    width, dense, places = 1, True, None
    hypothesis_utterance = utterances
    blank_log_probs = blank_by_utterance  # [N, T]
    state = decoder.init_state(memory, memory_valid)
    fuse_lm = lm is not None and lm_weight != 0.0
    lm_state = lm.init_state(batch, device) if fuse_lm else None
    r_nonblank = log_probs.new_full((batch, frames), -math.inf)
    r_blank = blank_log_probs.cumsum(1)
    psi = log_probs.new_zeros(batch)
    scores = log_probs.new_zeros(batch)
    tokens = torch.full((batch, 0), eos, dtype=torch.long, device=device)
    last = torch.full((batch,), eos, dtype=torch.long, device=device)
    candidate_offsets = torch.arange(pre_beam, device=device)

    for step in range(int(lengths.max())):
        rows, hyps = utterances.shape[0], utterances.shape[0] * width
        row_index = torch.arange(rows, device=device)
        attention, next_state = decoder.step(last, state)
        attention = attention.float()
        attention[:, blank] = -math.inf
        candidate_attention, candidates = attention.topk(pre_beam, dim=1)  # [N, P]
        candidate_log_probs = by_unit[hypothesis_utterance[:, None], candidates]  # [N, P, T]
        psi_new, r_n, r_b = ctc_prefix_extend(
            candidate_log_probs, blank_log_probs, r_nonblank, r_blank, candidates == last[:, None], step == 0, step
        )
        ended = torch.logaddexp(r_nonblank[:, -1], r_blank[:, -1])
        psi_new = torch.where(candidates == eos, ended[:, None], psi_new)
        total = scores[:, None] + (1.0 - ctc_weight) * candidate_attention + ctc_weight * (psi_new - psi[:, None])
        if fuse_lm:
            lm_log_probs, next_lm_state = lm.step(last, lm_state)
            total = total + lm_weight * lm_log_probs.float().gather(1, candidates)
        total = total.masked_fill(total.isnan(), -math.inf)  # -inf - (-inf): dead or CTC-impossible hypotheses

        # each utterance's candidates at their places among K x P (-inf where no hypothesis is; padding -> place K),
        # so the top K are chosen from the same row, in the same order, as with all K beams carried
        if dense:
            placed = total.view(rows, width * pre_beam)
            if width < beam:
                placed = torch.nn.functional.pad(placed, (0, (beam - width) * pre_beam), value=-math.inf)
            top_scores, top_index = placed.topk(beam, dim=1)  # [M, K]
            place = top_index // pre_beam if width == beam else (top_index // pre_beam).clamp(max=width - 1)
            source = (row_index[:, None] * width + place).view(-1)  # [M K] rows of the working batch
        else:
            placed = total.new_full((rows, (beam + 1) * pre_beam), -math.inf)
            columns = (places[:, None] * pre_beam + candidate_offsets).view(rows, width * pre_beam)
            placed.scatter_(1, columns, total.view(rows, width * pre_beam))
            top_scores, top_index = placed[:, : beam * pre_beam].topk(beam, dim=1)
            row_at_place = (row_index[:, None] * width).repeat(1, beam + 1)  # places no hypothesis holds: dead ones
            row_at_place.scatter_(1, places.view(rows, width), torch.arange(hyps, device=device).view(rows, width))
            source = row_at_place.gather(1, top_index // pre_beam).view(-1)
        column = (top_index % pre_beam).view(-1)
        new_units = candidates[source, column]
        new_scores = top_scores

        # hypotheses that end now: those choosing <eos>, and every running one at the utterance's last step
        ending = (new_units.view(rows, beam) == eos) | (step + 1 >= utterance_lengths)[:, None]
        ending &= torch.isfinite(new_scores)
        candidate_best, candidate_beam = new_scores.masked_fill(~ending, -math.inf).max(dim=1)
        improved = candidate_best > utterance_best
        chosen_entry = row_index * beam + candidate_beam
        chosen = torch.full((rows, frames + 1), eos, dtype=torch.long, device=device)
        chosen[:, :step] = tokens[source[chosen_entry]]
        chosen[:, step] = new_units[chosen_entry]
        utterance_tokens = torch.where(improved[:, None], chosen, utterance_tokens)
        utterance_best = torch.where(improved, candidate_best, utterance_best)

        # the next working batch: the hypotheses that can still win (running, above their utterance's best ended
        # score: scores never increase) in place order, padded per utterance to the widest; utterances left without
        # any have stopped and leave it
        new_scores = new_scores.masked_fill(ending, -math.inf)
        live = new_scores > utterance_best[:, None]  # [M, K]
        counts, leading = torch.stack((live.sum(1), live.cumprod(dim=1).sum(1))).tolist()
        width, previous_width = max(counts), width
        kept = [row for row, count in enumerate(counts) if count]
        if len(kept) < rows:
            kept_rows = torch.tensor(kept, dtype=torch.long, device=device)
            best_tokens[utterances] = utterance_tokens
            utterances, utterance_lengths = utterances[kept_rows], utterance_lengths[kept_rows]
            utterance_best, utterance_tokens = utterance_best[kept_rows], utterance_tokens[kept_rows]
        if width == 0:
            break
        dense = all(counts[row] == leading[row] == width for row in kept)
        padding = None
        if dense and len(kept) == rows and width == beam:
            entries = None  # every hypothesis of every utterance goes on
        else:
            row_offsets = (row_index if len(kept) == rows else kept_rows)[:, None] * beam
            if dense:
                entries = (row_offsets + torch.arange(width, device=device)).view(-1)
            else:
                order = torch.argsort((~live).to(torch.uint8), dim=1, stable=True)[:, :width]  # live first, by place
                padding = torch.arange(width, device=device) >= live.sum(1, keepdim=True)  # [M, W']
                order = torch.where(padding, order[:, :1], order)
                if len(kept) < rows:
                    order, padding = order[kept_rows], padding[kept_rows]
                entries = (row_offsets + order).view(-1)  # into the M x K new hypotheses
                places = order.masked_fill(padding, beam).view(-1)
                padding = padding.view(-1)
            source, column = source[entries], column[entries]
            new_units, new_scores = new_units[entries], new_scores.view(-1)[entries]
        if len(kept) < rows or width != previous_width:
            hypothesis_utterance = utterances.repeat_interleave(width)
            blank_log_probs = blank_by_utterance[hypothesis_utterance]
        state = next_state.select(source, kept_rows if len(kept) < rows else False)
        if fuse_lm:
            lm_state = next_lm_state.select(source)
        r_nonblank, r_blank, psi = r_n[source, column], r_b[source, column], psi_new[source, column]
        tokens = torch.cat((tokens[source], new_units.view(-1, 1)), dim=1)
        last = new_units.view(-1)
        scores = new_scores.view(-1) if padding is None else new_scores.masked_fill(padding, -math.inf)

    best_tokens[utterances] = utterance_tokens
    results = []
    for row in best_tokens.cpu().tolist():
        results.append(row[: row.index(eos)] if eos in row else row)
    return results
