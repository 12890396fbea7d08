"""jellyzoo: published spiking neural networks as fast, faithful PyTorch modules.

>>> import zoo
>>> zoo.list_models("spikgru*")
>>> model = zoo.build("spikgru2plus", num_classes=100)
>>> zoo.model_info("spikgru2plus").num_params
"""

from zoo.layers.spike_record import firing_rates, spike_penalty
from zoo.registry import (
    ModelInfo,
    TensorSpec,
    build,
    list_models,
    model_info,
    register_model,
    resolve_config,
)

__all__ = [
    "ModelInfo",
    "TensorSpec",
    "build",
    "firing_rates",
    "list_models",
    "model_info",
    "register_model",
    "resolve_config",
    "spike_penalty",
]
__version__ = "0.1.0"
