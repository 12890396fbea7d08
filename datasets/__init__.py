"""Loaders for the published datasets in their real on-disk formats (installed as `zoo.datasets`).

Each dataset yields batch-first tensors as the models take them; nothing is downloaded.
"""

from zoo.datasets.audio_commands import HeidelbergDigits, SpeechCommands
from zoo.datasets.dvslip import DVSLip
from zoo.datasets.mvsec import MVSEC
from zoo.datasets.shd import SHD, SSC

__all__ = ["DVSLip", "HeidelbergDigits", "MVSEC", "SHD", "SSC", "SpeechCommands"]
