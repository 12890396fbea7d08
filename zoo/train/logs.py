"""Per-epoch logs of a run (written by rank 0 only): CSV files, TensorBoard scalars and one console line.

- ``train.log``: the ``zoo.train`` logger's messages of every invocation (run start, one line per epoch, warnings,
  interruptions), appended with timestamps
- ``metrics.csv``: ``epoch, lr, seconds, train_loss, train_<metric>..., <val_split>_loss, ...,
  train_data_wait, <val_split>_data_wait`` (epoch = number of completed epochs, lr = learning rate of the last step
  of the epoch, data_wait = fraction of the pass's time spent waiting for the data loader)
- ``firing_rates.csv``: ``epoch, split, layer, rate`` (mean |spike| per layer over the epoch's samples)
- ``tensorboard/``: the same numbers as scalars ``<split>/<metric>``, ``firing_rate/<split>/<layer>``, ``lr``

When a run resumes, rows after the resumed epoch (written after the checkpoint by an interrupted run) are
dropped, so the files describe one consistent history.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Iterator
from pathlib import Path

__all__ = ["RunLog", "log_to_file"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


@contextlib.contextmanager
def log_to_file(logger: logging.Logger, path: Path) -> Iterator[None]:
    """Append `logger`'s INFO and higher messages to `path` (with timestamps) while the context is active."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()


class RunLog:
    """Writer of one run directory's CSV and TensorBoard logs."""

    def __init__(self, out: Path, resumed_epoch: int, tensorboard: bool) -> None:
        self.metrics_path = out / "metrics.csv"
        self.firing_path = out / "firing_rates.csv"
        for path in (self.metrics_path, self.firing_path):
            _truncate_after(path, resumed_epoch)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(
                str(out / "tensorboard"), purge_step=resumed_epoch + 1 if resumed_epoch else None
            )

    def write_epoch(
        self,
        epoch: int,
        lr: float,
        seconds: float,
        metrics: dict[str, dict[str, float]],
        firing: dict[str, dict[str, float]],
        data_wait: dict[str, float],
    ) -> None:
        """Log epoch `epoch` (1-based): `metrics` and `firing` map a split name to ``{name: value}``, `data_wait` a
        split name to the fraction of its time spent waiting for data."""
        row = {"epoch": epoch, "lr": lr, "seconds": round(seconds, 3)}
        for split, values in metrics.items():
            row.update({f"{split}_{name}": value for name, value in values.items()})
        row.update({f"{split}_data_wait": round(value, 4) for split, value in data_wait.items()})
        _append_rows(self.metrics_path, list(row), [row])
        rows = [
            {"epoch": epoch, "split": split, "layer": layer, "rate": rate}
            for split, rates in firing.items()
            for layer, rate in rates.items()
        ]
        if rows:
            _append_rows(self.firing_path, ["epoch", "split", "layer", "rate"], rows)
        if self.writer is not None:
            self.writer.add_scalar("lr", lr, epoch)
            for split, values in metrics.items():
                for name, value in values.items():
                    self.writer.add_scalar(f"{split}/{name}", value, epoch)
            for split, value in data_wait.items():
                self.writer.add_scalar(f"data_wait/{split}", value, epoch)
            for row in rows:
                self.writer.add_scalar(f"firing_rate/{row['split']}/{row['layer']}", row["rate"], epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _append_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    """Append `rows`; a file whose header lacks some of `header` (written by an older version) is rewritten with
    the new columns added (empty in its old rows)."""
    if path.exists():
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            existing = reader.fieldnames or []
            if set(header) - set(existing):
                kept = list(reader)
                header = [*existing, *(name for name in header if name not in existing)]
                rows = [*kept, *rows]
                path.unlink()
            else:
                header = existing
    new = not path.exists()
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _truncate_after(path: Path, epoch: int) -> None:
    if not path.exists():
        return
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or []
        kept = [row for row in reader if int(row["epoch"]) <= epoch]
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(kept)
