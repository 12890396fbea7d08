"""Loaders for the published datasets in their real on-disk formats (installed as `zoo.datasets`).

Each dataset yields batch-first tensors as the models take them; nothing is downloaded. Importing this package
registers every built-in dataset under the name that recipes use (``get_dataset("shd")``); a new dataset module
registers its own names with ``@register_dataset(name)`` and gets one import line here.
"""

from zoo.datasets.registry import get_dataset, list_datasets, register_dataset  # isort: split

from zoo.datasets.audio_commands import HeidelbergDigits, SpeechCommands
from zoo.datasets.dvslip import DVSLip
from zoo.datasets.hmdb51 import HMDB51
from zoo.datasets.kinetics import Kinetics400
from zoo.datasets.lrs3 import LRS3
from zoo.datasets.mvsec import MVSEC
from zoo.datasets.shd import SHD, SSC
from zoo.datasets.ucf101 import UCF101

register_dataset("shd")(SHD)
register_dataset("ssc")(SSC)
register_dataset("heidelberg-digits")(HeidelbergDigits)
register_dataset("speech-commands")(SpeechCommands)
register_dataset("dvslip")(DVSLip)
register_dataset("mvsec")(MVSEC)
register_dataset("hmdb51")(HMDB51)
register_dataset("ucf101")(UCF101)
register_dataset("kinetics400")(Kinetics400)
register_dataset("lrs3")(LRS3)

__all__ = [
    "DVSLip",
    "HMDB51",
    "HeidelbergDigits",
    "Kinetics400",
    "LRS3",
    "MVSEC",
    "SHD",
    "SSC",
    "SpeechCommands",
    "UCF101",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]
