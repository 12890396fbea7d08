"""RAVEn's Transformer LM (zoo.models.raven_lm) and shallow fusion in the beam search (zoo.decoding.beam_search).

No LM file of the original is available offline (none in /work/shared/reference): the original key layout below is
written from the classes the original builds (RAVEn's ESPnet copy: TransformerLM(1049, language_model config) ->
Encoder(input_layer="linear", pos_enc none) -> EncoderLayer(norm_mha, self_attn, norm_ff, feed_forward) ->
after_norm; decoder Linear), not read from a real checkpoint.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.convert import from_reference
from zoo.decoding import beam_search
from zoo.models.raven import RAVEnDecoder
from zoo.models.raven_lm import RAVEnLM, load_language_model

SMALL = dict(embed_dim=8, dim=16, heads=2, ffn=32, layers=2)


def original_layout(vocab: int, embed: int, dim: int, ffn: int, layers: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the original TransformerLM's state dict (module docstring)."""
    keys = {
        "embed.weight": (vocab, embed),
        "encoder.embed.0.weight": (dim, embed),
        "encoder.embed.0.bias": (dim,),
        "encoder.embed.1.weight": (dim,),
        "encoder.embed.1.bias": (dim,),
    }
    for i in range(layers):
        block = f"encoder.encoders.{i}."
        for name in ("linear_q", "linear_k", "linear_v", "linear_out"):
            keys[f"{block}self_attn.{name}.weight"] = (dim, dim)
            keys[f"{block}self_attn.{name}.bias"] = (dim,)
        keys[f"{block}feed_forward.w_1.weight"] = (ffn, dim)
        keys[f"{block}feed_forward.w_1.bias"] = (ffn,)
        keys[f"{block}feed_forward.w_2.weight"] = (dim, ffn)
        keys[f"{block}feed_forward.w_2.bias"] = (dim,)
        for norm in ("norm_ff", "norm_mha"):
            keys[f"{block}{norm}.weight"] = (dim,)
            keys[f"{block}{norm}.bias"] = (dim,)
    keys |= {"encoder.after_norm.weight": (dim,), "encoder.after_norm.bias": (dim,)}
    keys |= {"decoder.weight": (vocab, dim), "decoder.bias": (vocab,)}
    return keys


def original_state_dict(seed: int = 0, vocab: int = 1049) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    layout = original_layout(vocab, SMALL["embed_dim"], SMALL["dim"], SMALL["ffn"], SMALL["layers"])
    return {key: 0.3 * torch.randn(shape, generator=generator) for key, shape in layout.items()}


def original_forward(state: dict[str, torch.Tensor], inputs: torch.Tensor, heads: int) -> torch.Tensor:
    """The original's computation written out on its own state dict: ids [B, L] (<sos> included) -> logits."""
    x = F.embedding(inputs, state["embed.weight"])
    x = F.linear(x, state["encoder.embed.0.weight"], state["encoder.embed.0.bias"])
    x = torch.relu(F.layer_norm(x, x.shape[-1:], state["encoder.embed.1.weight"], state["encoder.embed.1.bias"]))
    length, dim = inputs.shape[1], x.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()

    def norm(y: torch.Tensor, key: str) -> torch.Tensor:
        return F.layer_norm(y, (dim,), state[f"{key}.weight"], state[f"{key}.bias"], eps=1e-12)

    layer = 0
    while f"encoder.encoders.{layer}.norm_mha.weight" in state:
        p = f"encoder.encoders.{layer}."
        h = norm(x, p + "norm_mha")
        q, k, v = (
            F.linear(h, state[f"{p}self_attn.linear_{n}.weight"], state[f"{p}self_attn.linear_{n}.bias"])
            .unflatten(-1, (heads, dim // heads))
            .transpose(1, 2)
            for n in "qkv"
        )
        scores = (q @ k.transpose(-1, -2) / math.sqrt(dim // heads)).masked_fill(~causal, -math.inf)
        attended = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
        x = x + F.linear(attended, state[f"{p}self_attn.linear_out.weight"], state[f"{p}self_attn.linear_out.bias"])
        h = norm(x, p + "norm_ff")
        h = F.linear(h, state[f"{p}feed_forward.w_1.weight"], state[f"{p}feed_forward.w_1.bias"]).relu()
        x = x + F.linear(h, state[f"{p}feed_forward.w_2.weight"], state[f"{p}feed_forward.w_2.bias"])
        layer += 1
    return F.linear(norm(x, "encoder.after_norm"), state["decoder.weight"], state["decoder.bias"])


def test_default_config_is_the_originals() -> None:
    info = zoo.model_info("raven-lm")
    config = info.config
    assert (config["vocab_size"], config["embed_dim"], config["dim"], config["heads"]) == (1049, 128, 512, 8)
    assert (config["ffn"], config["layers"], config["dropout"]) == (2048, 16, 0.0)
    expected = sum(math.prod(shape) for shape in original_layout(1049, 128, 512, 2048, 16).values())
    assert info.num_params == expected


def test_original_layout_loads_strictly_and_computes_as_the_original() -> None:
    state = original_state_dict()
    model = from_reference("raven-lm", state, **SMALL).eval()
    tokens = torch.tensor([[5, 17, 1047, 3], [9, 2, -1, -1]])
    with torch.no_grad():
        logits = model(tokens)
    inputs = torch.cat((torch.full((2, 1), 1048), tokens.clamp(min=0)), dim=1)
    reference = original_forward(state, inputs, SMALL["heads"])
    torch.testing.assert_close(logits[0], reference[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits[1, :3], reference[1, :3], rtol=1e-4, atol=1e-4)  # the valid positions


def test_legacy_names_load_and_wrong_files_fail_naming_the_keys() -> None:
    state = original_state_dict()
    legacy = {
        key.replace("encoder.embed.", "encoder.input_layer.").replace("encoder.after_norm.", "encoder.norm."): value
        for key, value in state.items()
    }
    loaded = from_reference("raven-lm", legacy, **SMALL)
    torch.testing.assert_close(loaded.norm_out.weight, state["encoder.after_norm.weight"])
    torch.testing.assert_close(loaded.input_proj.weight, state["encoder.embed.0.weight"])
    with pytest.raises(KeyError, match="module.embed.weight"):
        from_reference("raven-lm", {f"module.{key}": value for key, value in state.items()}, **SMALL)
    missing = {key: value for key, value in state.items() if not key.startswith("encoder.encoders.1.norm_ff")}
    with pytest.raises(ValueError, match="blocks.1.norm_ff.weight"):
        from_reference("raven-lm", missing, **SMALL)


def test_load_language_model_reads_the_original_file_and_ours(tmp_path: Path) -> None:
    state = original_state_dict()
    torch.save(state, tmp_path / "rnnlm.model.best")
    original = load_language_model(tmp_path / "rnnlm.model.best", **SMALL)
    assert not original.training
    torch.save(original.state_dict(), tmp_path / "ours.pt")
    ours = load_language_model(tmp_path / "ours.pt", **SMALL)
    tokens = torch.tensor([[4, 8, 15]])
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), original(tokens))


def test_incremental_steps_equal_the_full_forward() -> None:
    torch.manual_seed(0)
    model = RAVEnLM(**SMALL).eval()
    tokens = torch.tensor([[5, 17, 1047, 3], [9, 2, 1, 1000]])
    with torch.no_grad():
        full = torch.log_softmax(model(tokens), dim=-1)
        state = model.init_state(2, "cpu")
        last = torch.full((2,), model.eos_id)
        for position in range(5):
            if position:
                last = tokens[:, position - 1]
            previous = state
            log_probs, state = model.step(last, state)
            torch.testing.assert_close(log_probs, full[:, position], rtol=1e-5, atol=1e-5)
        swapped = torch.tensor([1, 0])
        reordered, _ = model.step(last[swapped], previous.select(swapped))
    torch.testing.assert_close(reordered, log_probs[swapped])


# ----------------------------------------------------------------------------------------------------------------
# Shallow fusion


@dataclasses.dataclass
class NoState:
    def select(self, index: torch.Tensor, reorder_memory: bool = True) -> NoState:
        return self


class BigramTable:
    """A decoder or LM whose next-unit log-probabilities depend on the last unit only: table[last] -> [V]."""

    def __init__(self, table: dict[int, list[float]]) -> None:
        self.table = table

    def init_state(self, *args: object) -> NoState:
        return NoState()

    def step(self, tokens: torch.Tensor, state: NoState) -> tuple[torch.Tensor, NoState]:
        rows = [self.table.get(int(token), self.table[-1]) for token in tokens]
        return torch.tensor(rows).log(), state


BLANK, A, B, EOS = 0, 1, 2, 3
ATTENTION = BigramTable({EOS: [0.0, 0.5, 0.4, 0.1], -1: [0.0, 0.1, 0.1, 0.8]})  # after <sos>; after a unit
LANGUAGE_MODEL = BigramTable({EOS: [0.0, 0.1, 0.8, 0.1], -1: [0.0, 0.05, 0.05, 0.9]})
CTC = torch.tensor([[[0.1, 0.5, 0.4, 0.0], [0.8, 0.1, 0.1, 0.0]]]).log()  # 2 frames; columns blank, a, b, <eos>


def hand_search(lm_weight: float) -> list[list[int]]:
    return beam_search(
        ATTENTION,
        torch.zeros(1, 2, 1),
        torch.ones(1, 2, dtype=torch.bool),
        CTC,
        eos=EOS,
        blank=BLANK,
        beam_size=3,
        ctc_weight=0.1,
        lm=LANGUAGE_MODEL,
        lm_weight=lm_weight,
    )


def test_the_language_model_changes_the_winner_at_the_weight_worked_out_by_hand() -> None:
    """Full CTC probabilities over 2 frames: P(a) = .5*.1 + .5*.8 + .1*.1 = .46, P(b) = .4*.1 + .4*.8 + .1*.1 = .37.
    Without LM, a <eos> beats b <eos> by 0.9 log(.5/.4) + 0.1 log(.46/.37) = 0.2226 (the attention's <eos> .8 is
    common to both); the LM gives b <eos> beta log(.8/.1) = 2.0794 beta more (its <eos> .9 common too). So b wins
    once beta > 0.2226 / 2.0794 = 0.107. The other hypotheses (<eos> at once, a b, b a) score lower throughout."""
    without = 0.9 * math.log(0.5 / 0.4) + 0.1 * math.log(0.46 / 0.37)
    threshold = without / math.log(0.8 / 0.1)
    assert hand_search(0.0) == [[A]]
    assert hand_search(threshold - 0.005) == [[A]]
    assert hand_search(threshold + 0.005) == [[B]]
    assert hand_search(0.2) == [[B]]


def exhaustive_best(decoder, lm, memory, ctc_log_probs, eos, ctc_weight, lm_weight):
    """Best eq. (1) score with the LM term over every hypothesis the search can return: ended by <eos> within T
    steps (LM and attention score <eos> too), or T units cut at the last step (scored as a prefix); CTC
    probabilities summed over every alignment."""
    frames, vocab = ctc_log_probs.shape
    probs = ctc_log_probs.exp().double()
    full: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab - 1), repeat=frames):
        merged = [unit for index, unit in enumerate(path) if index == 0 or unit != path[index - 1]]
        key = tuple(unit for unit in merged if unit != 0)
        full[key] = full.get(key, 0.0) + math.prod(probs[t, unit].item() for t, unit in enumerate(path))
    best, best_score = None, -math.inf
    for length in range(frames + 1):
        hypotheses = list(itertools.product(range(1, vocab - 1), repeat=length))
        units = torch.tensor(hypotheses, dtype=torch.long).reshape(len(hypotheses), length)
        steps = torch.cat((units, torch.full((len(hypotheses), 1), eos)), dim=1)
        with torch.no_grad():
            inputs = torch.cat((torch.full((len(hypotheses), 1), eos), units), dim=1)
            valid = torch.ones(len(hypotheses), frames, dtype=torch.bool)
            attention = torch.log_softmax(decoder(inputs, memory.expand(len(hypotheses), -1, -1), valid), -1)
            language = torch.log_softmax(lm(units), -1)
        att = attention.gather(2, steps[..., None])[..., 0].double()
        fused = language.gather(2, steps[..., None])[..., 0].double()
        for index, hypothesis in enumerate(hypotheses):
            if length < frames:  # ended by <eos> at step length + 1 <= T
                ctc = math.log(max(full.get(hypothesis, 0.0), 1e-300))
                model_terms = (1 - ctc_weight) * att[index].sum() + lm_weight * fused[index].sum()
            else:  # still running at step T: cut there, scored as a prefix
                prefix = sum(p for key, p in full.items() if key[:length] == hypothesis)
                ctc = math.log(max(prefix, 1e-300))
                model_terms = (1 - ctc_weight) * att[index, :-1].sum() + lm_weight * fused[index, :-1].sum()
            score = float(model_terms) + ctc_weight * ctc
            if score > best_score:
                best, best_score = list(hypothesis), score
    return best


@pytest.mark.parametrize("seed", [1, 3])
def test_fused_search_equals_exhaustive_search(seed: int) -> None:
    """Seeds where the LM changes the plain search's answer (checked below), so the LM term is exercised."""
    torch.manual_seed(seed)
    vocab, eos, frames = 5, 4, 4
    decoder = RAVEnDecoder(vocab, encoder_dim=8, dim=8, heads=2, ffn=16, layers=1, dropout=0.0).eval()
    lm = RAVEnLM(vocab, embed_dim=4, dim=8, heads=2, ffn=16, layers=1).eval()
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.mul_(3.0)  # peaked distributions
        lm.output.weight.mul_(10.0)
    memory = torch.randn(1, frames, 8)
    ctc = torch.log_softmax(3 * torch.randn(1, frames, vocab), -1)
    valid = torch.ones(1, frames, dtype=torch.bool)
    found = beam_search(decoder, memory, valid, ctc, eos, beam_size=81, ctc_weight=0.3, lm=lm, lm_weight=1.0)
    assert found == [exhaustive_best(decoder, lm, memory, ctc[0], eos, 0.3, 1.0)]
    assert found != beam_search(decoder, memory, valid, ctc, eos, beam_size=81, ctc_weight=0.3)


def test_no_language_model_or_weight_zero_is_the_plain_search() -> None:
    torch.manual_seed(1)
    decoder = RAVEnDecoder(1049, encoder_dim=8, dim=8, heads=2, ffn=16, layers=1, dropout=0.0).eval()
    lm = RAVEnLM(**SMALL).eval()
    memory, valid = torch.randn(2, 6, 8), torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    ctc = torch.log_softmax(2 * torch.randn(2, 6, 1049), -1)
    plain = beam_search(decoder, memory, valid, ctc, eos=1048, beam_size=3)
    assert beam_search(decoder, memory, valid, ctc, eos=1048, beam_size=3, lm=lm, lm_weight=0.0) == plain
    assert beam_search(decoder, memory, valid, ctc, eos=1048, beam_size=3, lm=None, lm_weight=0.5) == plain


def test_batched_search_with_the_lm_equals_one_utterance_at_a_time() -> None:
    torch.manual_seed(2)
    vocab = 1049
    decoder = RAVEnDecoder(vocab, encoder_dim=8, dim=8, heads=2, ffn=16, layers=1, dropout=0.0).eval()
    lm = RAVEnLM(**SMALL).eval()
    with torch.no_grad():
        lm.output.weight.mul_(20.0)  # an LM with opinions
    memory = torch.randn(3, 7, 8)
    lengths = torch.tensor([7, 4, 6])
    valid = torch.arange(7)[None] < lengths[:, None]
    ctc = torch.log_softmax(torch.randn(3, 7, vocab), -1)
    options = dict(eos=vocab - 1, beam_size=4, lm=lm, lm_weight=0.5)
    batched = beam_search(decoder, memory, valid, ctc, **options)
    alone = [
        beam_search(decoder, memory[i : i + 1, :n], valid[i : i + 1, :n], ctc[i : i + 1, :n], **options)[0]
        for i, n in enumerate(lengths.tolist())
    ]
    assert batched == alone
    assert batched != beam_search(decoder, memory, valid, ctc, eos=vocab - 1, beam_size=4)


def test_recognize_fuses_the_language_model() -> None:
    torch.manual_seed(3)
    small = dict(dim=16, heads=2, ffn=32, blocks=1, decoder_dim=8, decoder_heads=2, decoder_ffn=16, decoder_layers=1)
    model = zoo.build("raven-asr-base-lowres", vocab_size=8, **small).eval()
    lm = RAVEnLM(vocab_size=8, **SMALL).eval()
    audio, lengths = torch.randn(2, 6 * 640), torch.tensor([6 * 640, 4 * 640])
    found = model.recognize(audio, lengths, beam_size=3, lm=lm, lm_weight=0.3)
    with torch.no_grad():
        memory, valid = model.encode(audio, lengths)
        ctc = torch.log_softmax(model.ctc_head(memory), -1)
    assert found == beam_search(model.decoder, memory, valid, ctc, eos=7, beam_size=3, lm=lm, lm_weight=0.3)
