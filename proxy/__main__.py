"""``python -m proxy`` is the ``handshake-proxy`` command."""

import sys

from .cli import main

sys.exit(main())
