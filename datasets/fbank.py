"""Audio reading and the 40-bin log-mel Kaldi filterbank features sparch feeds its speech models.

sparch computes ``torchaudio.compliance.kaldi.fbank(waveform, num_mel_bins=40)`` with every other option at its
default: 25 ms Povey windows every 10 ms (``snip_edges``: only whole frames), pre-emphasis 0.97, DC offset removed,
no dither, mel bands from 20 Hz to the Nyquist frequency, natural-log energies, and no mean/variance
normalisation. Those defaults assume 16 kHz audio; `log_mel_fbank` resamples any other rate to 16 kHz first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional
from torchaudio.compliance import kaldi

__all__ = [
    "FEATURE_RATE",
    "FRAME_LENGTH_MS",
    "FRAME_SHIFT_MS",
    "NUM_MEL_BINS",
    "audio_header",
    "log_mel_fbank",
    "read_audio",
]

FEATURE_RATE = 16000
"""Sample rate (Hz) the filterbank is computed at."""
NUM_MEL_BINS = 40
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0


def audio_header(path: str | Path) -> soundfile._SoundFileInfo:
    """The header of an audio file (rate, channels, frames), read without decoding the samples.

    Raises `FileNotFoundError` for a missing file and `ValueError` naming the file when the header cannot be read
    or decoded (a zero-length, truncated or garbage file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        return soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"cannot decode audio file {path}: {error}") from error


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """Read a mono audio file (WAV, FLAC, ... via libsndfile) as ``(waveform [N] float32 in [-1, 1], rate in Hz)``.

    Raises `FileNotFoundError` for a missing file and `ValueError` naming the file when it cannot be decoded,
    holds no samples, has more than one channel or holds non-finite samples (a float WAV with NaN or Inf).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"cannot decode audio file {path}: {error}") from error
    if samples.shape[1] != 1:
        raise ValueError(f"expected mono audio in {path}, got {samples.shape[1]} channels")
    if samples.shape[0] == 0:
        raise ValueError(f"audio file {path} holds no samples")
    finite = np.isfinite(samples)
    if not finite.all():
        raise ValueError(f"audio file {path} holds {int((~finite).sum())} non-finite samples (NaN or Inf)")
    return torch.from_numpy(np.ascontiguousarray(samples[:, 0])), int(rate)


def log_mel_fbank(
    waveform: torch.Tensor, sample_rate: int, *, num_mel_bins: int = NUM_MEL_BINS, resample: bool = True
) -> torch.Tensor:
    """Log-mel filterbank features ``[frames, num_mel_bins]`` float32 of a mono waveform ``[N]`` (float, [-1, 1]).

    With ``resample=True`` a waveform at another rate is resampled to 16 kHz (torchaudio's windowed-sinc
    resampler) so that frames are 25 ms long every 10 ms; ``resample=False`` reproduces sparch, which treats
    every file as 16 kHz. A 16 kHz input gives ``1 + (N - 400) // 160`` frames.
    """
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform [N], got shape {tuple(waveform.shape)}")
    if resample and sample_rate != FEATURE_RATE:
        waveform = torchaudio.functional.resample(waveform, sample_rate, FEATURE_RATE)
    frame_samples = int(FEATURE_RATE * FRAME_LENGTH_MS / 1000)
    if waveform.shape[0] < frame_samples:
        raise ValueError(
            f"audio of {waveform.shape[0]} samples at {FEATURE_RATE} Hz is shorter than one "
            f"{FRAME_LENGTH_MS:g} ms frame ({frame_samples} samples)"
        )
    return kaldi.fbank(
        waveform.unsqueeze(0),
        num_mel_bins=num_mel_bins,
        frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS,
        sample_frequency=FEATURE_RATE,
        dither=0.0,
    )
