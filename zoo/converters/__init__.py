"""Converters from the original repositories' checkpoints, one module per family.

Each module registers its converters with `zoo.convert.register_converter` and adds one import line here.
"""

from zoo.converters import sparch, spikgru, stereospike  # noqa: F401  (imported to register their converters)
