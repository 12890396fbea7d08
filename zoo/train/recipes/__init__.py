"""Family recipes. Importing this package registers every family's recipes, datasets, losses and metrics.

Each family keeps them in ``zoo/train/recipes/<family>.py`` and adds one import line here.
"""

from zoo.train.recipes import sparch, spikgru, stereospike  # noqa: F401  (imported to register their recipes)
