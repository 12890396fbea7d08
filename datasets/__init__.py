"""Loaders for the published datasets in their real on-disk formats (installed as `zoo.datasets`).

Each dataset yields batch-first tensors as the models take them; nothing is downloaded.
"""

from zoo.datasets.audio_commands import HeidelbergDigits, SpeechCommands  # noqa: F401
from zoo.datasets.shd import SHD, SSC  # noqa: F401
from zoo.datasets.mvsec import MVSEC  # noqa: F401
from zoo.datasets.dvslip import DVSLip  # noqa: F401
