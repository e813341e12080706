"""``python -m replay.cli``: the ``nakama-replay`` command."""

import sys

from replay.cli._main import main

sys.exit(main())
