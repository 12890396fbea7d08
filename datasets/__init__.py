"""Loaders for the published datasets in their real on-disk formats (installed as `zoo.datasets`).

Each dataset yields batch-first tensors as the models take them; nothing is downloaded. Importing this package
registers every built-in dataset under the name that recipes use (``get_dataset("shd")``); a new dataset module
registers its own names with ``@register_dataset(name)`` and gets one import line here.
"""

from zoo.datasets.registry import get_dataset, list_datasets, register_dataset  # isort: split

from zoo.datasets.audio_commands import HeidelbergDigits, SpeechCommands
from zoo.datasets.dvslip import DVSLip
from zoo.datasets.mvsec import MVSEC
from zoo.datasets.shd import SHD, SSC

register_dataset("shd")(SHD)
register_dataset("ssc")(SSC)
register_dataset("heidelberg-digits")(HeidelbergDigits)
register_dataset("speech-commands")(SpeechCommands)
register_dataset("dvslip")(DVSLip)
register_dataset("mvsec")(MVSEC)

__all__ = [
    "DVSLip",
    "HeidelbergDigits",
    "MVSEC",
    "SHD",
    "SSC",
    "SpeechCommands",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]
