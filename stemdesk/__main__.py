"""python -m stemdesk: the same as the stemdesk command."""

import sys

from .cli import main

sys.exit(main())
