"""Stopping a run cleanly on SIGINT / SIGTERM: finish the current step, checkpoint, exit.

While `Interrupt` is active (the training part of `zoo.train.run`, in the main thread), the first SIGINT or
SIGTERM only records the signal; the training loop asks `requested` after every optimiser step and, when it
says so, writes ``last.pt`` (atomically) with the state after that step, and `run` returns with
``RunResult.interrupted`` set. ``--resume auto`` then continues bit-exactly (see `zoo.train.engine`). A second
SIGINT raises `KeyboardInterrupt` at once (for a loop that does not reach the next step). Data-loader workers
ignore both signals (`zoo.train.data`); the training process stops them.

Under torchrun every process must stop after the same step, so the processes agree on the flag with an
all-reduce every `every` steps and at every epoch end (one small collective; a single process checks every
step without any collective).
"""

from __future__ import annotations

import signal
import threading
import types
from typing import Any

import torch

from zoo.train.distributed import World, all_reduce_sum

__all__ = ["Interrupt"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupt:
    """Context manager installing the SIGINT/SIGTERM handlers of one run (restored on exit).

    Attributes:
        received: name of the first signal received (``"SIGTERM"``), or None.
    """

    def __init__(self, world: World, device: torch.device, every: int) -> None:
        self.world, self.device, self.every = world, device, max(1, every)
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: types.FrameType | None) -> None:
        if self.received is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signal.Signals(number).name

    def requested(self, step: int | None = None) -> bool:
        """Whether to stop now. `step`: optimiser steps taken (None at an epoch end, where all processes check).

        Under torchrun the processes compare their flags only when `step` is None or a multiple of `every`, so
        all of them stop after the same step.
        """
        if not self.world.distributed:
            return self.received is not None
        if step is not None and step % self.every:
            return False
        flag = torch.tensor([0.0 if self.received is None else 1.0], device=self.device)
        stop = bool(all_reduce_sum(flag, self.world).item() > 0)
        if stop and self.received is None:
            self.received = "signal on another process"
        return stop
