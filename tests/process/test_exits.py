"""Process exits end to end: real subprocesses, real signals, real OTLP to a local receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest
from gunicorn.config import Config
from gunicorn.workers.base import Worker
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._process.servers import drain_of_handler
from otel_lifecycle._settings.environment import load_settings
from tests._paths import APPS, ROOT
from tests.receiver import OtlpReceiver, ReceivedSpan

APP = APPS / "exits_app.py"
TIMEOUT = 30


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    spans: dict[str, ReceivedSpan]


def endpoint(receiver: OtlpReceiver, transport: str) -> str:
    return receiver.grpc_endpoint if transport == "grpc" else receiver.http_endpoint


def run_app(
    scenario: str,
    receiver: OtlpReceiver,
    transport: str,
    *,
    send: signal.Signals | None = None,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Outcome:
    """Run the app; with ``send``, wait for its ``ready`` line, then send that signal.

    Returns the exit status, the output and the spans received, by name, each
    checked to have arrived exactly once.
    """
    process = subprocess.Popen(
        [sys.executable, str(APP), scenario, transport, endpoint(receiver, transport)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    try:
        if send is not None:
            assert process.stdout is not None
            ready = process.stdout.readline()
            assert ready == "ready\n", process.communicate(timeout=TIMEOUT)
            process.send_signal(send)
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    spans = receiver.spans()
    names = [span.name for span in spans]
    assert len(names) == len(set(names)), f"exported more than once: {sorted(names)}\n{stderr}"
    return Outcome(process.returncode, stdout, stderr, {span.name: span for span in spans})


def reason(span: ReceivedSpan) -> tuple[str, object, object]:
    return (
        span.status_code,
        span.attributes.get("error.type"),
        span.attributes.get("otel_lifecycle.finalized_by"),
    )


SIGTERMED = ("ERROR", "SIGTERM", "signal")
SHUT_DOWN = ("ERROR", "shutdown", "shutdown")
UNTOUCHED = ("UNSET", None, None)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sigterm_finalizes_open_spans_and_the_process_dies_by_sigterm(
    receiver: OtlpReceiver, transport: str
) -> None:
    outcome = run_app("sigterm", receiver, transport, send=signal.SIGTERM)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "app.root": SIGTERMED,
        "app.child": SIGTERMED,
        "app.done": UNTOUCHED,
    }
    assert outcome.spans["app.root"].status_message == (
        "span not ended before the process received SIGTERM"
    )


def test_a_decorated_root_keeps_its_input_and_conversation_on_sigterm(
    receiver: OtlpReceiver,
) -> None:
    outcome = run_app("traced-sigterm", receiver, "grpc", send=signal.SIGTERM)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "agent.run": SIGTERMED,
        "llm.call": SIGTERMED,
    }
    root = outcome.spans["agent.run"]
    assert root.attributes["input.value"] == (
        '{"question":"What is 6 x 7?","session":"conv-9","api_key":"[REDACTED]"}'
    )
    assert root.attributes["input.mime_type"] == "application/json"
    assert "output.value" not in root.attributes
    assert root.attributes["gen_ai.conversation.id"] == "conv-9"
    assert outcome.spans["llm.call"].attributes["gen_ai.conversation.id"] == "conv-9"
    assert outcome.spans["llm.call"].parent_span_id == root.span_id


def test_sigterm_chains_the_handler_the_application_installed_earlier(
    receiver: OtlpReceiver,
) -> None:
    outcome = run_app("sigterm-chained", receiver, "http", send=signal.SIGTERM)
    assert outcome.returncode == 7, outcome.stderr
    assert outcome.stdout == "app handler\n"
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "app.root": SIGTERMED,
        "app.child": SIGTERMED,
        "app.done": UNTOUCHED,
    }


def test_sigint_ends_every_open_span_with_keyboard_interrupt(receiver: OtlpReceiver) -> None:
    outcome = run_app("sigint", receiver, "grpc", send=signal.SIGINT)
    assert outcome.returncode == -signal.SIGINT, outcome.stderr
    assert "KeyboardInterrupt" in outcome.stderr
    interrupted = ("ERROR", "KeyboardInterrupt", "signal")
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "app.root": interrupted,
        "app.open": interrupted,
        "app.step": ("ERROR", "KeyboardInterrupt", None),
    }
    assert [event.name for event in outcome.spans["app.root"].events] == ["exception"]


def test_unhandled_exception_is_recorded_on_the_open_root(receiver: OtlpReceiver) -> None:
    outcome = run_app("exception", receiver, "http")
    assert outcome.returncode == 1
    assert outcome.stderr.endswith(
        "ValueError: boom\notel_lifecycle: finalized 2 open span(s) at shutdown"
        " (error.type=ValueError: 1, shutdown: 1)\n"
    )
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "app.root": ("ERROR", "ValueError", "exception"),
        "app.child": SHUT_DOWN,
    }
    (event,) = outcome.spans["app.root"].events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "boom"


def test_sys_exit_finalizes_the_open_root_with_shutdown(receiver: OtlpReceiver) -> None:
    outcome = run_app("sys-exit", receiver, "grpc")
    assert outcome.returncode == 3, outcome.stderr
    assert outcome.stdout == "first processor saw ['app.root']\n"
    assert {name: reason(span) for name, span in outcome.spans.items()} == {"app.root": SHUT_DOWN}
    assert outcome.spans["app.root"].events == ()


def test_returning_through_a_batch_span_processor_exports_at_exit(receiver: OtlpReceiver) -> None:
    """Python 3.12+ starts no thread in atexit: the delegate is shut down without a new one."""
    outcome = run_app("returns-batch-processor", receiver, "grpc")
    assert outcome.returncode == 0, outcome.stderr
    assert "Exception ignored" not in outcome.stderr
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "app.root": SHUT_DOWN,
        "app.done": UNTOUCHED,
    }


def test_fork_child_starts_empty_and_runs_its_own_threads(receiver: OtlpReceiver) -> None:
    outcome = run_app("fork", receiver, "http", env={"OTEL_LIFECYCLE_ROOT_TIMEOUT": "0.3"})
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout == "child exit=0\n"
    timed_out = ("ERROR", "timeout", "timeout")
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "parent.root": timed_out,
        "child.root": timed_out,
        "child.done": UNTOUCHED,
    }


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool_worker_exports_before_exiting(
    receiver: OtlpReceiver, method: str
) -> None:
    outcome = run_app(f"pool-{method}", receiver, "grpc")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout.startswith("worker=")
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "parent.root": UNTOUCHED,
        "worker.done.1": UNTOUCHED,
        "worker.open.1": SHUT_DOWN,
    }


def test_sigterm_opt_out_leaves_the_plain_sdk_behaviour(receiver: OtlpReceiver) -> None:
    outcome = run_app(
        "sigterm",
        receiver,
        "grpc",
        send=signal.SIGTERM,
        env={"OTEL_LIFECYCLE_HANDLE_SIGNALS": "false"},
    )
    assert outcome.returncode == -signal.SIGTERM
    assert outcome.spans == {}


def test_unhandled_exception_in_a_thread_is_recorded_on_the_roots_it_started(
    receiver: OtlpReceiver,
) -> None:
    outcome = run_app("thread-exception", receiver, "grpc")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stderr.endswith(
        "RuntimeError: worker failed\notel_lifecycle: finalized 2 open span(s) at shutdown"
        " (error.type=RuntimeError: 1, shutdown: 1)\n"
    )
    assert {name: reason(span) for name, span in outcome.spans.items()} == {
        "thread.root": ("ERROR", "RuntimeError", "exception"),
        "main.root": SHUT_DOWN,
    }
    assert [event.name for event in outcome.spans["thread.root"].events] == ["exception"]
    assert outcome.spans["main.root"].events == ()


def test_application_calling_provider_shutdown_itself(receiver: OtlpReceiver) -> None:
    """The documented limit: processors added before ours are shut down before it finalizes."""
    outcome = run_app("provider-shutdown", receiver, "http")
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout == "first processor saw []\n"
    assert {name: reason(span) for name, span in outcome.spans.items()} == {"app.root": SHUT_DOWN}


@pytest.mark.parametrize(
    ("scenario", "send", "returncode"),
    [("sys-exit", None, 3), ("sigterm", signal.SIGTERM, -signal.SIGTERM)],
)
def test_collector_down_the_process_still_exits_within_the_bound(
    scenario: str, send: signal.Signals | None, returncode: int
) -> None:
    """The exporter would wait 60 s for the hanging collector; shutdown gives up after 1 s."""
    with OtlpReceiver(hang=True) as hanging:
        outcome = run_app(
            scenario,
            hanging,
            "grpc",
            send=send,
            env={"OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT": "1", "OTEL_EXPORTER_OTLP_TIMEOUT": "60"},
            timeout=20,
        )
    assert outcome.returncode == returncode, outcome.stderr
    assert outcome.spans == {}


def test_handle_signals_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="handle_signals must be a bool"):
        LifecycleSpanProcessor(
            SimpleSpanProcessor(InMemorySpanExporter()),
            handle_signals="no",  # type: ignore[arg-type]
        )


def test_bad_handle_signals_variable_warns_and_keeps_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings({"OTEL_LIFECYCLE_HANDLE_SIGNALS": "maybe"})
    assert settings.handle_signals is True
    assert settings.sources["handle_signals"] == "default"
    (record,) = caplog.records
    assert "OTEL_LIFECYCLE_HANDLE_SIGNALS" in record.getMessage()


def test_a_gunicorn_workers_handler_gives_its_graceful_timeout_less_the_margin() -> None:
    """The drain window read from a real gunicorn worker's SIGTERM handler; none from others."""
    worker = Worker.__new__(Worker)
    worker.cfg = Config()
    worker.cfg.set("graceful_timeout", 8)
    assert drain_of_handler(worker.handle_exit) == 7.0
    worker.cfg.set("graceful_timeout", 2)
    assert drain_of_handler(worker.handle_exit) == 1.5
    assert drain_of_handler(signal.default_int_handler) is None
    assert drain_of_handler(signal.SIG_DFL) is None


def test_sigterm_logs_one_line_on_stderr_of_the_dying_process(receiver: OtlpReceiver) -> None:
    """A real process killed by SIGTERM with 2 open spans says so once on its stderr."""
    outcome = run_app("sigterm", receiver, "grpc", send=signal.SIGTERM)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    lines = [line for line in outcome.stderr.splitlines() if "open span(s)" in line]
    assert lines == ["otel_lifecycle: finalized 2 open span(s) on SIGTERM (error.type=SIGTERM)"]
