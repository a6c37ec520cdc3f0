"""An ``asyncio.run`` app with three ``@traced`` roots: done, cancelled, running.

Run under ``opentelemetry-instrument``. ``traced.done`` returns, ``traced.cancelled``
is cancelled by the app, ``traced.running`` is still awaiting when the test sends
SIGTERM (after the app prints ``traced-app-ready``).
"""

from __future__ import annotations

import asyncio
import contextlib

from otel_lifecycle import traced


@traced(name="traced.done")
async def done() -> str:
    return "done"


@traced(name="traced.cancelled")
async def cancelled(started: asyncio.Event) -> None:
    started.set()
    await asyncio.sleep(60)


@traced(name="traced.running")
async def running(started: asyncio.Event) -> None:
    started.set()
    await asyncio.sleep(60)


async def main() -> None:
    await done()
    started = asyncio.Event()
    task = asyncio.create_task(cancelled(started))
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    started = asyncio.Event()
    task = asyncio.create_task(running(started))
    await started.wait()
    print("traced-app-ready", flush=True)
    await task


asyncio.run(main())
