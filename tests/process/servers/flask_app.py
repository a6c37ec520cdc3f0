"""A Flask app for gunicorn: ``/health``, ``/quick`` and ``/slow?seconds=N``.

``/slow`` writes a marker file ``slow-<pid>-<n>`` into ``$SERVERS_MARKER_DIR``
once its handler runs, so the test knows which requests a worker is running
before it sends SIGTERM, then sleeps N seconds (default 30) and answers.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from flask import Flask, request

app = Flask(__name__)
_count = itertools.count(1)


@app.get("/health")
def health() -> str:
    return "ok"


@app.get("/quick")
def quick() -> str:
    return "quick"


@app.get("/slow")
def slow() -> str:
    seconds = float(request.args.get("seconds", "30"))
    marker = Path(os.environ["SERVERS_MARKER_DIR"]) / f"slow-{os.getpid()}-{next(_count)}"
    marker.write_text(str(seconds))
    time.sleep(seconds)
    return "slow"
