"""An ``asyncio.run`` app with ``@traced`` roots, under ``opentelemetry-instrument``.

One root returned, one was cancelled by the app, one is still awaiting when the
process gets SIGTERM. Whichever configurator built the provider, all three
arrive once: OK, ERROR ``CancelledError``, ERROR ``SIGTERM`` (finalized by the
lifecycle processor), and the process still dies by SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.receiver import OtlpReceiver

from ._harness import CONFIGURATORS, HERE, assert_no_duplicates, describe, launch

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_done_cancelled_and_running_roots_arrive(
    receiver: OtlpReceiver, tmp_path: Path, configurator: str
) -> None:
    app = launch(
        receiver, tmp_path / "app", [sys.executable, str(HERE / "traced_app.py")], configurator
    )
    try:
        app.wait_for_output("traced-app-ready")
        app.terminate()
        returncode = app.wait_exit(10)
        spans = app.spans()
    finally:
        app.kill()
    report = f"\n{describe(spans)}{app.output()}"
    by_name = {span.name: span for span in spans}

    assert_no_duplicates(spans)
    assert sorted(by_name) == ["traced.cancelled", "traced.done", "traced.running"], report
    assert by_name["traced.done"].status_code == "OK", report
    cancelled = by_name["traced.cancelled"]
    assert cancelled.status_code == "ERROR", report
    assert cancelled.attributes.get("error.type") == "CancelledError", report
    running = by_name["traced.running"]
    assert running.status_code == "ERROR", report
    assert running.attributes.get("error.type") == "SIGTERM", report
    assert running.attributes.get("otel_lifecycle.finalized_by") == "signal", report
    assert returncode == -signal.SIGTERM, report
    assert app.sigterm_to_exit < 5, report
