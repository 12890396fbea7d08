"""Model families. Importing this package registers every family's builders with `zoo.registry`.

Each family lives in one module (blocks first, then the model class, then small builders that only set
hyper-parameters, then "Conversion from the original checkpoints": its `zoo.convert.register_converter`
converters) and adds one import line here.
"""

from zoo.models import raven, raven_lm, respike, sparch, spikgru, stereospike  # noqa: F401  (imported to register their builders)
