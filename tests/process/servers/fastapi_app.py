"""A FastAPI app for uvicorn: ``/health``, ``/quick`` and ``/slow?seconds=N``.

``/slow`` writes a marker file ``slow-<pid>-<n>`` into ``$SERVERS_MARKER_DIR``
once its handler runs, so the test knows the request is in progress before it
sends SIGTERM, then awaits N seconds (default 30) and answers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

from fastapi import FastAPI

app = FastAPI()
_count = itertools.count(1)


@app.get("/health")
async def health() -> str:
    return "ok"


@app.get("/quick")
async def quick() -> str:
    return "quick"


@app.get("/slow")
async def slow(seconds: float = 30.0) -> str:
    marker = Path(os.environ["SERVERS_MARKER_DIR"]) / f"slow-{os.getpid()}-{next(_count)}"
    marker.write_text(str(seconds))
    await asyncio.sleep(seconds)
    return "slow"
