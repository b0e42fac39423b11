"""``python -m localai.cli``."""

import sys

from localai.cli import main

sys.exit(main())
