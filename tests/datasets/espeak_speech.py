"""Real speech for the tests, synthesised by eSpeak NG through its C library (``libespeak-ng`` and its voice data
come with the `espeakng-loader` wheel of the dev extra; no espeak-ng program is needed).

Importable as ``espeak_speech`` from any test (``pythonpath`` in pyproject.toml lists this folder).

Every synthesis runs in a private copy of the library, loaded for that text and closed after it: libespeak-ng keeps
wave-generator state from one text to the next (the pitch-flutter phase is a function-level static that neither
``espeak_Terminate`` nor ``espeak_Initialize`` resets), so in one loaded copy the same text comes out a few samples
longer or shorter each time, depending on what was spoken before. With a fresh copy the samples depend on the text
alone (as they do for the espeak-ng program, one process per call), in whatever order the tests run. `speech` keeps
each synthesis for the rest of the session.
"""

from __future__ import annotations

import _ctypes
import ctypes
import functools
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import espeakng_loader
import numpy as np
import torch
import torchaudio.functional

AUDIO_OUTPUT_SYNCHRONOUS = 2
"""``espeak_AUDIO_OUTPUT``: synthesise inside ``espeak_Synth``, handing the samples to the callback."""
INITIALIZE_DONT_EXIT = 0x8000
"""``espeak_Initialize`` option: return an error instead of exiting the process when the data cannot be read."""
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAMETER_RATE = 1
"""``espeakRATE``: speaking rate in words per minute (80..450)."""
DEFAULT_WORDS_PER_MINUTE = 175
"""eSpeak NG's own default rate (``espeak-ng -s``)."""
SPEECH_RATE = 16000
"""Sample rate (Hz) of `speech_16k`: LRS3's and the audio models' rate."""

SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
"""``int callback(short *wav, int numsamples, espeak_EVENT *events)``; returning 0 continues the synthesis."""


class Speech(NamedTuple):
    """A synthesised utterance: samples [N] int16 (read-only) at `rate` Hz (eSpeak NG's native rate)."""

    samples: np.ndarray
    rate: int


def synthesise(text: str, voice: str = "en", words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> Speech:
    """Speak `text` with the eSpeak NG `voice` (``espeak_SetVoiceByName``, e.g. ``"en"``, ``"de"``) at
    `words_per_minute`, in a freshly loaded copy of libespeak-ng. Raises `ValueError` for an unknown voice and
    `RuntimeError` when the library cannot start or synthesise."""
    chunks: list[np.ndarray] = []

    @SynthCallback
    def collect(wav, count: int, events) -> int:
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        return 0

    with tempfile.TemporaryDirectory() as folder:
        private_copy = Path(folder) / "libespeak-ng.so"
        shutil.copyfile(espeakng_loader.get_library_path(), private_copy)
        library = ctypes.CDLL(str(private_copy))
        try:
            library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            data = espeakng_loader.get_data_path()
            rate = library.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), INITIALIZE_DONT_EXIT)
            if rate <= 0:
                raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with the voice data at {data}")
            library.espeak_SetSynthCallback(collect)
            if library.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            if library.espeak_SetParameter(PARAMETER_RATE, words_per_minute, 0) != 0:
                raise RuntimeError(f"eSpeak NG refused the rate {words_per_minute} words per minute")
            encoded = text.encode()
            status = library.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            if status != 0 or library.espeak_Synchronize() != 0:
                raise RuntimeError(f"espeak_Synth failed (status {status}) on {text!r}")
            library.espeak_Terminate()
        finally:
            _ctypes.dlclose(library._handle)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    samples.flags.writeable = False
    return Speech(samples, rate)


@functools.cache
def speech(text: str, voice: str = "en", words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> Speech:
    """`synthesise`, once per session for each (text, voice, rate)."""
    return synthesise(text, voice, words_per_minute)


def speech_16k(text: str, voice: str = "en", words_per_minute: int = DEFAULT_WORDS_PER_MINUTE) -> torch.Tensor:
    """`speech` as a 16 kHz waveform [N'] float32 in [-1, 1] (int16 / 32768, torchaudio's windowed-sinc resampler;
    N' = ceil(N * 16000 / native rate))."""
    samples, rate = speech(text, voice, words_per_minute)
    waveform = torch.from_numpy(samples.astype(np.float32) / 32768)
    return torchaudio.functional.resample(waveform, rate, SPEECH_RATE)
