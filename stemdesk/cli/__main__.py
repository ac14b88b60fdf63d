"""``python -m stemdesk.cli``: the command line, as ``stemdesk`` and ``python -m stemdesk`` run it."""

import sys

from . import main

sys.exit(main())
