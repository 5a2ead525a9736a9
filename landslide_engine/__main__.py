"""``python -m landslide_engine``: see :mod:`landslide_engine.cli`."""

import sys

from landslide_engine.cli import main

sys.exit(main())
