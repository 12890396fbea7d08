"""Model families. Importing this package registers every family's builders with `zoo.registry`.

Each family lives in one module (blocks first, then the model class, then small builders that only set
hyper-parameters) and adds one import line here.
"""
from zoo.models import stereospike  # noqa: F401
from zoo.models import spikgru  # noqa: F401
from zoo.models import sparch  # noqa: F401
