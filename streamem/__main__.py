"""``python -m streamem``: the same as the ``streamem`` command."""

import sys

from .cli import main

sys.exit(main())
