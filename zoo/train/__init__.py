"""Training and evaluation engine shared by every model family.

>>> from zoo.train import RunConfig, list_recipes, run
>>> list_recipes()
>>> result = run(RunConfig(recipe="<recipe>", data="/data/root", overrides=["epochs=2", "model.num_classes=10"]))

Command line: ``python -m zoo.train <recipe> --data ROOT [--model NAME] [key=value ...]`` (``--help`` lists the
recipes and options; ``torchrun --nproc_per_node N -m zoo.train ...`` for several GPUs) and
``python -m zoo.evaluate --checkpoint PATH --data ROOT``. Families register recipes, datasets, losses and metrics
in ``zoo/train/recipes/<family>.py``.
"""

from zoo.train.config import RunConfig
from zoo.train.engine import RunResult, run
from zoo.train.errors import ConfigError
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe, get_recipe, list_recipes, register_recipe
from zoo.train.registries import register_dataset, register_loss, register_metric

__all__ = [
    "ConfigError",
    "Recipe",
    "RunConfig",
    "RunResult",
    "get_recipe",
    "list_recipes",
    "load_plugin",
    "register_dataset",
    "register_loss",
    "register_metric",
    "register_recipe",
    "run",
]
