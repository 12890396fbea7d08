"""Training and evaluation engine shared by every model family.

>>> from zoo.train import RunConfig, run, list_recipes
>>> list_recipes()
>>> run(RunConfig(recipe="spikgru2plus-dvs-lip", data="/data/DVS-Lip", overrides=["epochs=2"]))

Command line: ``python -m zoo.train <recipe> --data ROOT [--model NAME] [field=value ...]`` (``--help`` lists the
recipes and options) and ``python -m zoo.evaluate --checkpoint PATH --data ROOT``. Families register recipes,
datasets, losses and metrics in ``zoo/train/recipes/<family>.py``.
"""

from zoo.train.errors import ConfigError
from zoo.train.recipe import Recipe, get_recipe, list_recipes, register_recipe
from zoo.train.registries import register_dataset, register_loss, register_metric

__all__ = [
    "ConfigError",
    "Recipe",
    "get_recipe",
    "list_recipes",
    "register_dataset",
    "register_loss",
    "register_metric",
    "register_recipe",
]
