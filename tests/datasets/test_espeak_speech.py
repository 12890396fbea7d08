"""The tests' speech source (`espeak_speech`): eSpeak NG through its library gives the same samples for the same
text whatever was spoken before, real speech of a plausible length, and different words sound different."""

from __future__ import annotations

import math

import numpy as np
import torch
from espeak_speech import SPEECH_RATE, speech, speech_16k, synthesise

from zoo.datasets.fbank import log_mel_fbank


def test_the_samples_depend_on_the_text_alone() -> None:
    first = synthesise("seven")
    synthesise("the quick brown fox jumps over the lazy dog")  # would shift a shared library's wave generator
    again = synthesise("seven")
    assert first.rate == again.rate == 22050, "eSpeak NG's native rate, as espeak_Initialize reports it"
    assert first.samples.dtype == np.int16 and np.array_equal(first.samples, again.samples)
    assert np.array_equal(speech("seven").samples, first.samples) and speech("seven") is speech("seven")
    assert not speech("seven").samples.flags.writeable, "the session's cached samples cannot be changed"


def test_speech_is_loud_and_lasts_as_long_as_its_words() -> None:
    word, rate = speech("seven")
    assert 0.25 < len(word) / rate < 0.8
    assert np.abs(word).max() > 0.3 * 32768
    windows = word[: len(word) // 220 * 220].reshape(-1, 220).astype(np.float64)  # 10 ms windows
    assert (np.sqrt((windows**2).mean(1)) > 0.01 * 32768).mean() > 0.6, "sound in most of the word, not silence"
    sentence = speech("the quick brown fox jumps over the lazy dog").samples
    assert 4 * len(word) < len(sentence) < 20 * len(word)
    faster = speech("the quick brown fox jumps over the lazy dog", words_per_minute=350).samples
    assert 0.4 * len(sentence) < len(faster) < 0.7 * len(sentence), "twice the rate, about half the time"


def test_16_khz_speech_of_different_words_differs() -> None:
    features = {}
    for word in ("yes", "no", "one", "two"):
        samples, rate = speech(word)
        waveform = speech_16k(word)
        assert waveform.dtype == torch.float32 and len(waveform) == math.ceil(len(samples) * SPEECH_RATE / rate)
        assert 0.3 < waveform.abs().max() <= 1
        features[word] = log_mel_fbank(waveform, SPEECH_RATE)
    for word, ours in features.items():
        for other, theirs in features.items():
            frames = min(len(ours), len(theirs))
            distance = (ours[:frames] - theirs[:frames]).abs().mean().item()
            assert distance == 0 if other == word else distance > 2.0, (word, other, distance)
