"""The batched beam search (zoo.decoding.beam_search) computes only live work: utterances that have stopped leave
the working batch, hypotheses that can no longer win are dropped, the decoder reads each utterance's memory once
for all its hypotheses; and it still returns what each utterance decoded alone returns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.decoding import beam_search, ctc_prefix_extend
from zoo.models.raven import RAVEnDecoder
from zoo.models.raven_lm import RAVEnLM

VOCAB, EOS = 12, 11


class RowCounter:
    """An `IncrementalDecoder` that records, per step, the hypotheses it is given and the memory rows they read."""

    def __init__(self, decoder: RAVEnDecoder) -> None:
        self.decoder = decoder
        self.hypotheses: list[int] = []
        self.memory_rows: list[int] = []

    def init_state(self, memory: torch.Tensor, memory_valid: torch.Tensor):
        return self.decoder.init_state(memory, memory_valid)

    def step(self, tokens: torch.Tensor, state):
        self.hypotheses.append(tokens.shape[0])
        self.memory_rows.append(state.memory_mask.shape[0])
        return self.decoder.step(tokens, state)


def peaked_decoder(seed: int, eos_bias: float) -> RAVEnDecoder:
    torch.manual_seed(seed)
    decoder = RAVEnDecoder(VOCAB, encoder_dim=8, dim=16, heads=2, ffn=16, layers=2, dropout=0.0).eval()
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.mul_(2.0)
        decoder.output.bias[EOS] += eos_bias
    return decoder


def batch_of_lengths(lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    memory = torch.randn(len(lengths), frames, 8, generator=generator)
    valid = torch.arange(frames)[None] < torch.tensor(lengths)[:, None]
    ctc_log_probs = torch.log_softmax(2 * torch.randn(len(lengths), frames, VOCAB, generator=generator), -1)
    return memory, valid, ctc_log_probs


@pytest.mark.parametrize("with_lm", [False, True])
def test_utterances_of_very_different_lengths_decode_as_alone(with_lm: bool) -> None:
    lengths = [3, 14, 1, 9, 5]
    memory, valid, ctc_log_probs = batch_of_lengths(lengths, seed=1)
    lm = RAVEnLM(vocab_size=VOCAB, embed_dim=8, dim=16, heads=2, ffn=16, layers=2).eval() if with_lm else None
    settings = dict(eos=EOS, beam_size=5, ctc_weight=0.3, lm=lm, lm_weight=0.3 if with_lm else 0.0)
    counter = RowCounter(peaked_decoder(0, eos_bias=0.0))
    batched = beam_search(counter, memory, valid, ctc_log_probs, **settings)
    alone = [
        beam_search(
            counter.decoder, memory[i : i + 1, :n], valid[i : i + 1, :n], ctc_log_probs[i : i + 1, :n], **settings
        )[0]
        for i, n in enumerate(lengths)
    ]
    assert batched == alone
    # one hypothesis per utterance at the first step; an utterance whose frames are used up is gone the step after
    assert counter.hypotheses[0] == counter.memory_rows[0] == len(lengths)
    for step, (hypotheses, rows) in enumerate(zip(counter.hypotheses, counter.memory_rows, strict=True)):
        decodable = sum(length > step for length in lengths)
        assert rows <= decodable
        assert hypotheses <= 5 * rows and hypotheses % rows == 0
    assert len(counter.hypotheses) <= max(lengths)
    assert counter.memory_rows[-1] == 1  # the 14-frame utterance decodes alone at the end


def test_hypotheses_that_cannot_win_leave_the_batch() -> None:
    """A decoder that likes <eos>: once hypotheses end, the running ones scoring below the best ended one are
    dropped, so fewer than K hypotheses per utterance are computed while the search goes on."""
    lengths = [12, 12, 12]
    memory, valid, ctc_log_probs = batch_of_lengths(lengths, seed=2)
    decoder = peaked_decoder(3, eos_bias=4.0)
    counter = RowCounter(decoder)
    batched = beam_search(counter, memory, valid, ctc_log_probs, EOS, beam_size=6, ctc_weight=0.1)
    alone = [
        beam_search(decoder, memory[i : i + 1], valid[i : i + 1], ctc_log_probs[i : i + 1], EOS, beam_size=6)[0]
        for i in range(len(lengths))
    ]
    assert batched == alone
    assert len(counter.hypotheses) < max(lengths)  # every utterance stopped before its last frame
    widths = [hypotheses // rows for hypotheses, rows in zip(counter.hypotheses, counter.memory_rows, strict=True)]
    assert any(width < 6 for width in widths[1:])


def test_hypotheses_read_their_utterances_memory_as_a_copy_per_hypothesis_would() -> None:
    """A state of M memory rows and W hypotheses each steps as the state with the memory copied per hypothesis."""
    torch.manual_seed(5)
    decoder = RAVEnDecoder(VOCAB, encoder_dim=8, dim=16, heads=2, ffn=16, layers=2).eval()
    memory = torch.randn(2, 6, 8)
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    with torch.no_grad():
        state = decoder.init_state(memory, valid)
        _, state = decoder.step(torch.tensor([EOS, EOS]), state)
        hypotheses = torch.tensor([0, 0, 0, 1, 1, 1])  # W = 3 per utterance
        grouped = state.select(hypotheses, False)
        copied = state.select(hypotheses)  # memory row per hypothesis
        assert grouped.memory_mask.shape[0] == 2 and copied.memory_mask.shape[0] == 6
        tokens = torch.tensor([3, 4, 5, 3, 4, 5])
        grouped_out, grouped_next = decoder.step(tokens, grouped)
        copied_out, _ = decoder.step(tokens, copied)
        torch.testing.assert_close(grouped_out, copied_out, rtol=1e-5, atol=1e-5)
        # dropping the first utterance: its memory row goes, the other's hypotheses keep reading theirs
        second = grouped_next.select(torch.tensor([3, 5]), torch.tensor([1]))
        second_out, _ = decoder.step(torch.tensor([7, 8]), second)
        expected, _ = decoder.step(
            torch.tensor([7, 8]), grouped_next.select(torch.tensor([3, 5]), torch.tensor([1, 1]))
        )
    assert second.memory_mask.shape[0] == 1
    torch.testing.assert_close(second_out, expected, rtol=1e-5, atol=1e-5)


def test_prefix_forward_variables_give_the_ctc_probability_of_each_prefix() -> None:
    """ctc_prefix_extend's two recursions (r^n, r^b, run as one stacked update per frame) extended unit by unit:
    at the last frame they sum to the full CTC probability of the prefix (torch's CTC loss as the oracle), repeated
    units included."""
    generator = torch.Generator().manual_seed(6)
    frames, units = 12, [3, 1, 1, 4, 2]
    log_probs = torch.log_softmax(2 * torch.randn(frames, 6, generator=generator), -1)
    blank = log_probs[None, :, 0]
    r_nonblank, r_blank = torch.full((1, frames), -float("inf")), blank.cumsum(1)
    last = None
    for length, unit in enumerate(units, start=1):
        candidate = log_probs.T[None, unit : unit + 1]  # [1, P = 1, T]
        same = torch.tensor([[unit == last]])
        _, r_n, r_b = ctc_prefix_extend(candidate, blank, r_nonblank, r_blank, same, length == 1, max(length - 1, 1))
        r_nonblank, r_blank, last = r_n[:, 0], r_b[:, 0], unit
        full = torch.logaddexp(r_nonblank[0, -1], r_blank[0, -1])
        target, sizes = torch.tensor([units[:length]]), (torch.tensor([frames]), torch.tensor([length]))
        oracle = -F.ctc_loss(log_probs[:, None], target, *sizes, reduction="sum")
        torch.testing.assert_close(full, oracle, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("ctc_weight", "lm_weight"), [(-0.1, 0.0), (1.5, 0.0), (0.1, -0.2)])
def test_weights_that_would_let_scores_rise_are_refused(ctc_weight: float, lm_weight: float) -> None:
    """Dropping hypotheses is exact only while every score term is <= 0: the weights are checked first."""
    memory, valid, ctc_log_probs = batch_of_lengths([3], seed=0)
    name = "ctc_weight" if lm_weight == 0.0 else "lm_weight"
    with pytest.raises(ValueError, match=name):
        beam_search(
            peaked_decoder(0, 0.0), memory, valid, ctc_log_probs, EOS, ctc_weight=ctc_weight, lm_weight=lm_weight
        )
