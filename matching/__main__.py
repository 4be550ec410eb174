"""``python -m matching replay COMMANDS.csv [--reference] [--book]`` (see matching.replay)."""

import sys

from .replay import main

sys.exit(main())
