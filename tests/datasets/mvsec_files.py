"""MVSEC indoor_flying files in the published format with synthetic content, for the dataset and recipe tests.

Importable as ``mvsec_files`` from any test (``pythonpath`` in pyproject.toml lists this folder).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

PUBLISHED_FRAMES = (1261, 1581, 1816)
"""Depth maps per sequence that cover the published split ranges."""


def write_calibration(root: Path, sensor: tuple[int, int], shifts: dict[str, float]) -> None:
    """``indoor_flying_calib/indoor_flying_{camera}_{x,y}_map.txt``: x' = x + shift, y' = y - shift / 2."""
    height, width = sensor
    calib = root / "indoor_flying_calib"
    calib.mkdir(parents=True, exist_ok=True)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    for camera, shift in shifts.items():
        np.savetxt(calib / f"indoor_flying_{camera}_x_map.txt", columns + shift, fmt="%.4f")
        np.savetxt(calib / f"indoor_flying_{camera}_y_map.txt", rows - shift / 2, fmt="%.4f")


def write_synthetic_sequences(
    root: str | Path,
    sensor: tuple[int, int] = (8, 10),
    frames: tuple[int, int, int] = PUBLISHED_FRAMES,
    events_per_window: float = 30.0,
    seed: int = 0,
) -> Path:
    """Write indoor_flying1..3 ``_data.hdf5``/``_gt.hdf5`` files and calibration maps; returns `root`.

    Depth maps ``[F, H, W]`` float32 metres: a random level per frame plus a gentle slope, 5 % NaN holes; their
    timestamps every 50 ms (+- 2 ms) from 1.5e9 s. Events ``[n, 4]`` (x, y, t in s, polarity -1/+1) uniform in
    space and time, `events_per_window` per 50 ms on average. The calibration maps shift by a fraction of a pixel,
    so a few events leave the sensor.
    """
    root = Path(root)
    height, width = sensor
    rng = np.random.default_rng(seed)
    write_calibration(root, sensor, {"left": 0.3, "right": -0.4})
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    for number, count in enumerate(frames, start=1):
        stamps = 1.5e9 + 0.05 * np.arange(count) + rng.uniform(-2e-3, 2e-3, count)
        depth = 1.0 + 2.0 * rng.random((count, 1, 1)) + 0.1 * rows / height + 0.1 * columns / width
        depth = depth.astype(np.float32)
        depth[rng.random(depth.shape) < 0.05] = np.nan
        with h5py.File(root / f"indoor_flying{number}_gt.hdf5", "w") as gt:
            gt["davis/left/depth_image_rect"] = depth
            gt["davis/left/depth_image_rect_ts"] = stamps
        with h5py.File(root / f"indoor_flying{number}_data.hdf5", "w") as data:
            for camera in ("left", "right"):
                total = rng.poisson(events_per_window * count)
                times = np.sort(rng.uniform(stamps[0] - 0.1, stamps[-1] + 0.05, total))
                events = np.stack(
                    [
                        rng.integers(0, width, total),
                        rng.integers(0, height, total),
                        times,
                        rng.choice([-1.0, 1.0], total),
                    ],
                    axis=1,
                )
                data[f"davis/{camera}/events"] = events
    return root
