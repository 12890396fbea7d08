"""jellyzoo: published spiking neural networks as fast, faithful PyTorch modules.

>>> import zoo
>>> zoo.list_models("spikgru*")
>>> model = zoo.build("spikgru2plus", num_classes=100)
>>> zoo.model_info("spikgru2plus").num_params
"""

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
    "list_models",
    "model_info",
    "register_model",
    "resolve_config",
]
__version__ = "0.1.0"
