"""``python -m mindood`` is the ``mindood`` command."""

import sys

from mindood.cli import main

sys.exit(main())
