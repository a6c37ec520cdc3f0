"""gunicorn settings of the tests: each worker reports when it is ready; no control socket."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

control_socket_disable = True
"""gunicorn >= 27 otherwise opens a control socket in ``~/.gunicorn``, shared by concurrent runs
(older versions skip the setting)."""


def post_worker_init(worker: Any) -> None:
    """Record the worker's pid in ``$SERVERS_READY_DIR``.

    gunicorn calls this once the worker has its own signal handlers and has
    loaded the app. Until then a SIGTERM to it is swallowed by the handler
    inherited from the master, and the master waits the whole graceful timeout.
    """
    Path(os.environ["SERVERS_READY_DIR"], f"ready-{worker.pid}").touch()
