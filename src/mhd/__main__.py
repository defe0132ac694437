"""`python -m mhd` is the `mhd` command."""

import sys

from .cli import main

sys.exit(main())
