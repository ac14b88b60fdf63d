"""python -m stemdesk: the same as the stemdesk command."""

import sys

from .launch import main

sys.exit(main())
