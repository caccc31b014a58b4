"""``python -m corpus``: the same as the ``corpus`` command."""

import sys

from corpus.cli import main

sys.exit(main())
