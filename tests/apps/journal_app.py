"""A traced application with a crash journal, run as a real subprocess by test_journal_crash.

``crash JOURNAL ENDPOINT``: opens two roots (one under a remote parent) with a
child left open and a child ended, plus a root that ends; flushes, prints
``ready`` once the journal holds the open roots, then waits to be killed.
``fork JOURNAL ENDPOINT``: opens ``parent.root``, forks; the child opens
``child.root``; each process prints ``ready PID`` once the journal holds its
roots, then waits to be killed.
``fork-ends JOURNAL ENDPOINT``: opens ``parent.root`` and journals it, forks; the
child ends ``parent.root`` and flushes; each process prints ``ready PID`` once
that is done, then waits to be killed.
``recover JOURNAL ENDPOINT``: prints ``waiting``, starts when a line arrives on
stdin (so several recoverers start together), lets the processor's background
recovery run, shuts down and prints ``done``.
"""

from __future__ import annotations

import os
import sys
import threading

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_lifecycle import LifecycleSpanProcessor, conversation

REMOTE_PARENT = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7, True, TraceFlags(1)
)


def main(mode: str, journal: str, endpoint: str) -> None:
    if mode == "recover":
        print("waiting", flush=True)
        sys.stdin.readline()
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"journal-{mode}"}), shutdown_on_exit=False
    )
    processor = LifecycleSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint, insecure=True), journal=journal, on_flush="none"
    )
    provider.add_span_processor(processor)
    if mode == "recover":
        provider.shutdown()
        print("done", flush=True)
        return
    tracer = provider.get_tracer("journal.app", "1.2.3")
    if mode == "fork-ends":
        root = tracer.start_span("parent.root")
        assert processor.force_flush()
        if os.fork() == 0:
            root.end()
        assert processor.force_flush()
        os.write(sys.stdout.fileno(), f"ready {os.getpid()}\n".encode())
        threading.Event().wait()
    if mode == "fork":
        tracer.start_span("parent.root")
        name = "child.root" if os.fork() == 0 else "parent.root.later"
        tracer.start_span(name)
        assert processor.force_flush()
        os.write(sys.stdout.fileno(), f"ready {os.getpid()}\n".encode())
        threading.Event().wait()
    with conversation("conv-7"):
        agent = tracer.start_span(
            "agent.run",
            kind=SpanKind.SERVER,
            attributes={"input.value": "What is 6 x 7?", "retries": 3, "tags": ("a", "b")},
        )
        context = trace.set_span_in_context(agent)
        tracer.start_span("llm.call", context=context).end()
        tracer.start_span("tool.open", context=context)
        tracer.start_span("short.root").end()
    job = tracer.start_span(
        "job.handle",
        context=trace.set_span_in_context(NonRecordingSpan(REMOTE_PARENT)),
        attributes={"session.id": "sess-9"},
    )
    assert job.get_span_context().trace_id == REMOTE_PARENT.trace_id
    assert provider.force_flush()
    print("ready", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main(*sys.argv[1:4])
