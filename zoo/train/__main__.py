"""``python -m zoo.train``: see `zoo.train.cli.main`."""

import sys

from zoo.train.cli import main

sys.exit(main())
