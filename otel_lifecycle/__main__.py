"""``python -m otel_lifecycle``: the same as the ``otel-lifecycle`` command."""

from __future__ import annotations

import sys

from otel_lifecycle._cli.main import main

sys.exit(main())
