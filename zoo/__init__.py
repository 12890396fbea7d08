"""jellyzoo: published spiking neural networks as fast, faithful PyTorch modules.

>>> import zoo
>>> zoo.list_models("spikgru*")
>>> model = zoo.build("spikgru2plus", num_classes=100)
>>> zoo.model_info("spikgru2plus").num_params
>>> trained = zoo.load("runs/spikgru2plus-dvslip")   # a zoo.train run directory, checkpoint or export folder

The registry (`zoo.registry`) imports no model family; importing this package imports `zoo.models` once, whose
modules register their builders (and their converters of the original checkpoints).
"""

from zoo.errors import ConfigError
from zoo.layers.spike_record import firing_rates, spike_penalty
from zoo.registry import (
    ModelInfo,
    SmallConfig,
    TensorSpec,
    build,
    list_models,
    load,
    model_info,
    register_model,
    resolve_config,
)

__version__ = "0.1.0"

import zoo.models  # noqa: E402, F401  (registers every family; after the registry objects it needs)

__all__ = [
    "ConfigError",
    "ModelInfo",
    "SmallConfig",
    "TensorSpec",
    "build",
    "firing_rates",
    "list_models",
    "load",
    "model_info",
    "register_model",
    "resolve_config",
    "spike_penalty",
]
