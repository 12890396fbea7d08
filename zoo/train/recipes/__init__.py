"""Family recipes: importing this package (which `zoo.train` does once) registers every family's recipes and losses.

Each family keeps them in ``zoo/train/recipes/<family>.py`` and adds one import line here. A recipe file imports
`zoo.train.recipe` and `zoo.train.registries` (never the `zoo.train` package, which imports this one) and refers
to its model and dataset by registered name only.
"""

# imported to register their recipes
from zoo.train.recipes import raven, raven_lm, respike, sparch, spikgru, stereospike  # noqa: F401
