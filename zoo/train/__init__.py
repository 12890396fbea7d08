"""Training and evaluation engine shared by every model family.

>>> from zoo.train import RunConfig, list_recipes, run
>>> list_recipes()
>>> result = run(RunConfig(recipe="<recipe>", data="/data/root", overrides=["epochs=2", "model.num_classes=10"]))

Command line: ``python -m zoo.train <recipe> --data ROOT [--model NAME] [key=value ...]`` (``--help`` lists the
recipes and options, ``python -m zoo.train show RECIPE`` one recipe; ``torchrun --nproc_per_node N -m zoo.train
...`` for several GPUs) and ``python -m zoo.evaluate --checkpoint PATH --data ROOT``.

Imports run one way: the registries (`zoo.train.recipe`, `zoo.train.registries`, `zoo.datasets.registry`) import
no family; this package imports the shared losses, metrics and step hooks and then the family recipes
(``zoo/train/recipes/<family>.py``) once. Datasets are registered by `zoo.datasets`, which the engine imports only
when it builds a dataset, so recipes, metrics and ``--help`` work without any dataset's dependencies.
"""

from zoo.errors import ConfigError, DatasetError
from zoo.train import (  # noqa: F401  (imported to register the shared entries)
    hooks,
    losses,
    metrics,
    recipes,  # noqa: E402, F401, I001  (last: the families register with the names above)
)
from zoo.train.config import RunConfig
from zoo.train.engine import RunResult, run
from zoo.train.plugins import load_plugin
from zoo.train.recipe import Recipe, get_recipe, list_recipes, register_recipe
from zoo.train.registries import register_loss, register_metric, register_step_hook

__all__ = [
    "ConfigError",
    "DatasetError",
    "Recipe",
    "RunConfig",
    "RunResult",
    "get_recipe",
    "list_recipes",
    "load_plugin",
    "register_loss",
    "register_metric",
    "register_recipe",
    "register_step_hook",
    "run",
]
