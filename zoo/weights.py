"""Model weights on disk: reading checkpoints, strict full or partial loading, and export to safetensors.

Three kinds of file hold a model's weights:

- a ``zoo.train`` checkpoint (``.pt``, a dict with ``format`` = `TRAINING_FORMAT`, the state dict under ``model``
  and the run's config under ``config``); a run directory stands for its ``best.pt`` (else ``last.pt``);
- an export folder written by `export` (``python -m zoo export``): ``model.safetensors`` and ``config.json`` with
  the model name, its full builder config, the recipe and the metrics (`EXPORT_FORMAT`);
- a plain state-dict file (``torch.save(model.state_dict())``, e.g. a torchvision ``.pth``), which names no model.

`read_checkpoint` reads any of them into a `Checkpoint`; `load_weights` loads one strictly into a model, either
whole or into sub-modules (``{prefix: path}``); `load_state_dict_strict` is the one strict loader the converters
and the training engine use too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

__all__ = [
    "EXPORT_FORMAT",
    "TRAINING_FORMAT",
    "Checkpoint",
    "export",
    "load_state_dict_strict",
    "load_weights",
    "read_checkpoint",
]

TRAINING_FORMAT = "jellyzoo-train-1"
EXPORT_FORMAT = "jellyzoo-export-1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RUN_CHECKPOINTS = ("best.pt", "last.pt")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A model's weights read from disk, with what the file says about them.

    Attributes:
        source: the file the weights came from (for messages).
        state_dict: parameter and buffer tensors on the CPU.
        model: registered model name (None for a plain state-dict file).
        model_config: the full builder config the weights belong to (empty when unknown).
        recipe: the ``zoo.train`` recipe (as a dict) that trained them, if known.
        overrides: the ``key=value`` overrides that training run was given, if known.
        metrics: ``{"epoch", "best", "last"}`` results of the training run, if known.
    """

    source: Path
    state_dict: dict[str, torch.Tensor]
    model: str | None = None
    model_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    recipe: dict[str, Any] | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)


def _resolve_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in (WEIGHTS_FILE, *RUN_CHECKPOINTS):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{str(path)!r} holds no weights: expected {WEIGHTS_FILE} (an export folder) or "
            f"{' or '.join(RUN_CHECKPOINTS)} (a zoo.train run directory)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read the weights at `path` (see the module docstring for the accepted files and folders).

    Raises:
        FileNotFoundError: nothing at `path`, or a folder without weights.
        ValueError: a file that is none of the accepted kinds (the message says what was found).
    """
    file = _resolve_path(path)
    if file.suffix == ".safetensors":
        return _read_export(file)
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{str(file)!r} cannot be read as a checkpoint ({type(error).__name__}: {error})") from None
    if isinstance(payload, dict) and "format" in payload:
        if payload["format"] != TRAINING_FORMAT:
            raise ValueError(f"{str(file)!r} has checkpoint format {payload['format']!r}; expected {TRAINING_FORMAT!r}")
        config = payload["config"]
        return Checkpoint(
            source=file,
            state_dict=dict(payload["model"]),
            model=config["model"],
            model_config=dict(config["model_config"]),
            recipe=config.get("recipe"),
            overrides=dict(config.get("overrides") or {}),
            metrics={"epoch": payload.get("epoch"), "best": payload.get("best"), "last": payload.get("metrics")},
        )
    if isinstance(payload, Mapping) and payload and all(isinstance(value, torch.Tensor) for value in payload.values()):
        return Checkpoint(source=file, state_dict=dict(payload))
    kind = f"a dict with keys {sorted(payload)[:8]}" if isinstance(payload, Mapping) else type(payload).__name__
    raise ValueError(f"{str(file)!r} is neither a zoo.train checkpoint nor a state dict of tensors; it holds {kind}")


def _read_export(file: Path) -> Checkpoint:
    state_dict = safetensors.torch.load_file(file, device="cpu")
    config_file = file.parent / CONFIG_FILE
    if not config_file.is_file():
        return Checkpoint(source=file, state_dict=state_dict)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(config_file)!r} is not readable JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{str(config_file)!r} is not a jellyzoo export config (no format {EXPORT_FORMAT!r})")
    return Checkpoint(
        source=file,
        state_dict=state_dict,
        model=config["model"],
        model_config=config["model_config"],
        recipe=config.get("recipe"),
        overrides=config.get("overrides", {}),
        metrics=config.get("metrics", {}),
    )


def _shown(keys: list[str], limit: int = 10) -> str:
    keys = sorted(keys)
    return f"{keys[:limit]}{f' (+{len(keys) - limit} more)' if len(keys) > limit else ''}"


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` into `module`, requiring exactly its keys and shapes.

    Raises:
        ValueError: naming `source` and listing the missing keys, the unexpected keys and the keys whose shapes
            differ (checkpoint vs model).
    """
    expected = module.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mis_shaped = [
        f"{key}: {tuple(state_dict[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)
    ]
    if missing or unexpected or mis_shaped:
        problems = []
        if missing:
            problems.append(f"missing keys: {_shown(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_shown(unexpected)}")
        if mis_shaped:
            problems.append(f"shapes differ (checkpoint vs model): {_shown(mis_shaped)}")
        raise ValueError(f"{source} does not match the model; " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True)


def load_weights(
    model: nn.Module,
    checkpoint: str | Path | Checkpoint | Mapping[str, str | Path],
    *,
    model_name: str | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> None:
    """Load `checkpoint` into `model` strictly, whole or into sub-modules.

    Args:
        model: the built model.
        checkpoint: a path or `Checkpoint` (whole model), or ``{prefix: path}`` (each file into
            ``model.get_submodule(prefix)``; ``""`` is the whole model). A prefix names a sub-module with or
            without the trailing dot (``"ann."`` or ``"ann"``).
        model_name, model_config: what `model` is; a checkpoint that records another model name, or the same model
            with another config, is refused before loading with a message naming the differences.

    Raises:
        FileNotFoundError, ValueError: see `read_checkpoint` and `load_state_dict_strict`; a prefix that names no
            sub-module is a ValueError.
    """
    if isinstance(checkpoint, Mapping):
        for prefix, path in checkpoint.items():
            target = prefix.rstrip(".")
            try:
                module = model.get_submodule(target) if target else model
            except AttributeError:
                children = sorted(name for name, _ in model.named_modules() if name and "." not in name)
                raise ValueError(
                    f"checkpoint prefix {prefix!r} names no sub-module; top-level ones: {children}"
                ) from None
            saved = read_checkpoint(path)
            load_state_dict_strict(module, saved.state_dict, f"{str(saved.source)!r} (into {prefix!r})")
        return
    saved = checkpoint if isinstance(checkpoint, Checkpoint) else read_checkpoint(checkpoint)
    if model_name is not None and saved.model is not None and saved.model != model_name:
        raise ValueError(f"{str(saved.source)!r} holds model {saved.model!r}, not {model_name!r}")
    if model_config is not None and saved.model_config:
        differing = {
            key: (saved.model_config[key], value)
            for key, value in model_config.items()
            if key in saved.model_config and _plain(saved.model_config[key]) != _plain(value)
        }
        if differing:
            listed = ", ".join(f"{key}={old!r} (asked {new!r})" for key, (old, new) in differing.items())
            raise ValueError(
                f"{str(saved.source)!r} was saved with {listed}; pass those options or use zoo.load(path), "
                "which builds the saved config"
            )
    load_state_dict_strict(model, saved.state_dict, repr(str(saved.source)))


def _plain(value: Any) -> Any:
    """Tuples as lists, so that a config read back from JSON compares equal to the original."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def export(checkpoint: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the weights of a ``zoo.train`` checkpoint (or run directory) to ``out/model.safetensors`` and
    ``out/config.json`` (format, model name, full builder config, recipe, the run's overrides, metrics), and return
    `out`.

    `zoo.load(out)` and `zoo.build(name, checkpoint=out)` read the folder back.

    Raises:
        FileExistsError: `out` already holds an export and `overwrite` is False.
        ValueError: the checkpoint names no model (a plain state dict cannot be exported without one).
    """
    saved = read_checkpoint(checkpoint)
    if saved.model is None:
        raise ValueError(f"{str(saved.source)!r} names no model; only zoo.train checkpoints can be exported")
    out = Path(out)
    weights_file, config_file = out / WEIGHTS_FILE, out / CONFIG_FILE
    if not overwrite and (weights_file.exists() or config_file.exists()):
        raise FileExistsError(f"{str(out)!r} already holds an export; choose another folder or overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory (tied weights): store each one as its own copy
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in saved.state_dict.items()}
    safetensors.torch.save_file(tensors, str(weights_file))
    described = {
        "format": EXPORT_FORMAT,
        "model": saved.model,
        "model_config": saved.model_config,
        "recipe": saved.recipe,
        "overrides": saved.overrides,
        "metrics": saved.metrics,
        "source": str(saved.source),
    }
    config_file.write_text(json.dumps(described, indent=2, default=repr) + "\n", encoding="utf-8")
    return out
