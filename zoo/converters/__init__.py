"""Converters from the original repositories' checkpoints, one module per family.

Each module registers its converters with `zoo.convert.register_converter` and adds one import line here.
"""
from zoo.converters import stereospike  # noqa: F401
from zoo.converters import spikgru  # noqa: F401
from zoo.converters import sparch  # noqa: F401
