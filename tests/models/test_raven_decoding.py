"""Decoding (zoo.decoding) as RAVEn uses it: greedy CTC, CTC prefix scores, batched hybrid beam search, unit lists,
word error rate. The beam search is checked against an exhaustive search on a tiny model whose CTC probabilities
come from enumerating every alignment."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.decoding import UnitList, beam_search, ctc_greedy, ctc_prefix_extend, word_error_rate, word_errors
from zoo.models.raven import RAVEnDecoder


def test_ctc_greedy_merges_repeats_and_drops_blanks() -> None:
    path = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0], [3, 0, 3, 3, 1, 1, 1, 1]])
    logits = F.one_hot(path, 4).float()
    assert ctc_greedy(logits) == [[1, 1, 2], [3, 3, 1]]
    assert ctc_greedy(logits, torch.tensor([3, 4])) == [[1], [3, 3]]


def test_prefix_scores_by_hand() -> None:
    """T = 2, units {blank, a, b}: P(prefix a) = p0(a)p1(a) + p0(a)p1(-) + p0(-)p1(a) + p0(a)p1(b)."""
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    log_probs = probs.log()
    (p0, p1) = probs
    blank = log_probs[None, :, 0]
    empty_blank = blank.cumsum(1)
    empty_nonblank = torch.full((1, 2), -math.inf)
    candidates = log_probs.T[None, 1:2]  # c = a
    psi, r_n, r_b = ctc_prefix_extend(candidates, blank, empty_nonblank, empty_blank, torch.tensor([[False]]), True)
    by_hand = p0[1] * p1[1] + p0[1] * p1[0] + p0[0] * p1[1] + p0[1] * p1[2]
    torch.testing.assert_close(psi.exp(), by_hand.reshape(1, 1))
    full = torch.logaddexp(r_n[0, 0, -1], r_b[0, 0, -1]).exp()  # P(y = a): the same paths but "ab"
    torch.testing.assert_close(full, p0[1] * p1[1] + p0[1] * p1[0] + p0[0] * p1[1])
    ctc = -F.ctc_loss(log_probs[:, None], torch.tensor([[1]]), torch.tensor([2]), torch.tensor([1]), reduction="sum")
    torch.testing.assert_close(full.log(), ctc)
    # "a" then "a" again needs a blank between: from prefix a, P(prefix aa) = p0(a) p1(-) p?(a) = 0 at T = 2
    psi_aa, _, _ = ctc_prefix_extend(candidates, blank, r_n[0], r_b[0], torch.tensor([[True]]), False, start=1)
    assert psi_aa.exp().item() == 0.0


def collapse(path: tuple[int, ...], blank: int = 0) -> tuple[int, ...]:
    merged = [unit for index, unit in enumerate(path) if index == 0 or unit != path[index - 1]]
    return tuple(unit for unit in merged if unit != blank)


def brute_force(decoder: RAVEnDecoder, memory: torch.Tensor, ctc_log_probs: torch.Tensor, eos: int, weight: float):
    """Best eq. (1) score over every hypothesis the search can return (ended by <eos> within T steps, or T units
    cut at the last step), with CTC probabilities summed over all alignments."""
    frames, vocab = ctc_log_probs.shape
    probs = ctc_log_probs.exp().double()
    full: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab - 1), repeat=frames):  # units 0..V-2 (<eos> has CTC prob too, unused)
        p = math.prod(probs[t, unit].item() for t, unit in enumerate(path))
        key = collapse(path)
        full[key] = full.get(key, 0.0) + p

    def prefix(units: tuple[int, ...]) -> float:
        return sum(p for key, p in full.items() if key[: len(units)] == units)

    valid = torch.ones(1, memory.shape[1], dtype=torch.bool)
    best, best_score = None, -math.inf
    for length in range(frames + 1):
        for units in itertools.product(range(1, vocab - 1), repeat=length):
            tokens = torch.tensor([[eos, *units]])
            with torch.no_grad():
                attention = torch.log_softmax(decoder(tokens, memory, valid)[0], -1)
            steps = [*units, eos]
            att = [attention[i, unit].item() for i, unit in enumerate(steps)]
            if length < frames:  # ended by <eos> at step length + 1 <= T
                score = (1 - weight) * sum(att) + weight * math.log(max(full.get(units, 0.0), 1e-300))
                if score > best_score:
                    best, best_score = list(units), score
            if length == frames:  # still running at step T: cut there, scored as a prefix
                score = (1 - weight) * sum(att[:-1]) + weight * math.log(max(prefix(units), 1e-300))
                if score > best_score:
                    best, best_score = list(units), score
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_equals_exhaustive_search(seed: int) -> None:
    torch.manual_seed(seed)
    vocab, eos, frames = 5, 4, 4
    decoder = RAVEnDecoder(vocab, encoder_dim=8, dim=8, heads=2, ffn=16, layers=1, dropout=0.0).eval()
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.mul_(3.0)  # peaked distributions
    memory = torch.randn(1, frames, 8)
    ctc_log_probs = torch.log_softmax(3 * torch.randn(1, frames, vocab), -1)
    valid = torch.ones(1, frames, dtype=torch.bool)
    found = beam_search(decoder, memory, valid, ctc_log_probs, eos, beam_size=81, ctc_weight=0.3)
    assert found == [brute_force(decoder, memory, ctc_log_probs[0], eos, 0.3)]


def test_batched_search_equals_one_utterance_at_a_time() -> None:
    torch.manual_seed(4)
    decoder = RAVEnDecoder(9, encoder_dim=8, dim=8, heads=2, ffn=16, layers=2, dropout=0.0).eval()
    memory = torch.randn(3, 7, 8)
    lengths = torch.tensor([7, 4, 6])
    valid = torch.arange(7)[None] < lengths[:, None]
    ctc_log_probs = torch.log_softmax(2 * torch.randn(3, 7, 9), -1)
    batched = beam_search(decoder, memory, valid, ctc_log_probs, eos=8, beam_size=4)
    alone = [
        beam_search(decoder, memory[i : i + 1, :n], valid[i : i + 1, :n], ctc_log_probs[i : i + 1, :n], 8, beam_size=4)[
            0
        ]
        for i, n in enumerate(lengths.tolist())
    ]
    assert batched == alone
    assert all(0 not in hyp and 8 not in hyp for hyp in batched)


def test_recognizer_decodes_to_text(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = zoo.build(
        "raven-asr-base-lowres",
        dim=16,
        heads=2,
        ffn=32,
        blocks=1,
        decoder_dim=8,
        decoder_heads=2,
        decoder_ffn=16,
        decoder_layers=1,
        vocab_size=6,
    ).eval()
    units = tmp_path / "units.txt"
    units.write_text("<unk> 1\n\u2581A 2\n\u2581B 3\nC 4\n", encoding="utf-8")
    unit_list = UnitList.from_file(units)
    audio = torch.randn(2, 5 * 640)
    for beam in (0, 3):
        hyps = model.recognize(audio, torch.tensor([5 * 640, 3 * 640]), beam_size=beam)
        assert len(hyps) == 2 and all(1 <= unit <= 4 for hyp in hyps for unit in hyp)
        assert all(isinstance(unit_list.text(hyp), str) for hyp in hyps)


def test_unit_list_reads_the_units_file_and_writes_text(tmp_path: Path) -> None:
    path = tmp_path / "unigram_units.txt"
    path.write_text("<unk> 1\n' 2\n\u2581THE 3\n\u2581CA 4\nT 5\nS 6\n", encoding="utf-8")
    units = UnitList.from_file(path)
    assert units.text([3, 4, 5, 6]) == "THE CATS"
    assert units.ids("THE CATS") == [3, 4, 5, 6]
    with pytest.raises(KeyError, match="unit id 9"):
        units.text([3, 9])
    (tmp_path / "bad.txt").write_text("\u2581A 1\n\u2581B one\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'unit id'"):
        UnitList.from_file(tmp_path / "bad.txt")
    (tmp_path / "twice.txt").write_text("\u2581A 1\n\u2581B 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="id 1 listed twice"):
        UnitList.from_file(tmp_path / "twice.txt")


def test_word_errors_count_substitutions_deletions_insertions() -> None:
    assert word_errors("the cat sat", "the cat sat") == 0
    assert word_errors("the bat sat", "the cat sat") == 1
    assert word_errors("the sat", "the cat sat") == 1
    assert word_errors("the cat sat down", "the cat sat") == 1
    assert word_errors("", "a b c") == 3
    assert word_error_rate(["a b", "x"], ["a c", "x y"]) == (2, 4)
