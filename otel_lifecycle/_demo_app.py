"""The demo's workload: an agent-like app with five concurrent conversations.

Run as ``python -m otel_lifecycle._demo_app {plain,lifecycle} ENDPOINT``; the
same hand-instrumented code runs in both modes, only the span processor differs
(the one line otel_lifecycle asks for). Each conversation is a root span
(``agent.run``) with children (LLM and tool calls):

- ``success``: ends every span;
- ``raises``: a tool raises; the exception escapes before the root is ended;
- ``max-iterations``: the loop stops at its limit and returns without ending the root;
- ``hangs``: a tool call never returns, past the root timeout;
- ``mid-flight``: still waiting on the LLM when the process gets SIGTERM.

The app prints ``ready`` once the first three are over, ``hangs`` is past the
root timeout and ``mid-flight`` is waiting on its LLM call; then it waits for
SIGTERM, like a pod being rolled by Kubernetes.
"""

from __future__ import annotations

import sys
import threading

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_lifecycle._conversation import conversation
from otel_lifecycle._processor import LifecycleSpanProcessor

ROOT_TIMEOUT = 1.0
SCENARIOS = ("success", "raises", "max-iterations", "hangs", "mid-flight")

_stuck = threading.Event()


class ToolError(RuntimeError):
    """The failure of the ``raises`` conversation."""


def _agent(tracer: trace.Tracer, scenario: str, done: threading.Barrier) -> None:
    with conversation(f"conv-{scenario}"):
        root = tracer.start_span("agent.run", attributes={"input.value": f"task: {scenario}"})
        with trace.use_span(root, end_on_exit=False):
            try:
                answered = _steps(tracer, scenario, done)
            except ToolError:
                answered = False
        if answered:
            root.set_attribute("output.value", "42")
            root.end()
        done.wait()


def _steps(tracer: trace.Tracer, scenario: str, done: threading.Barrier) -> bool:
    """The agent loop; True when it produced an answer."""
    with tracer.start_as_current_span("llm.call"):
        pass
    if scenario == "raises":
        with tracer.start_as_current_span("tool.search"):
            raise ToolError("search backend returned 500")
    if scenario == "max-iterations":
        for _ in range(3):
            with tracer.start_as_current_span("llm.call"):
                pass
        return False
    if scenario in ("hangs", "mid-flight"):
        name = "tool.browser" if scenario == "hangs" else "llm.call"
        with tracer.start_as_current_span(name):
            done.wait()
            _stuck.wait()
    return True


def main(mode: str, endpoint: str) -> None:
    """Run the workload with the ``plain`` SDK or with ``lifecycle``, exporting to ``endpoint``."""
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    provider = TracerProvider(resource=Resource.create({"service.name": f"demo-agent-{mode}"}))
    if mode == "lifecycle":
        provider.add_span_processor(LifecycleSpanProcessor(exporter, root_timeout=ROOT_TIMEOUT))
    else:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("otel_lifecycle.demo")
    early = [scenario for scenario in SCENARIOS if scenario != "mid-flight"]
    first = threading.Barrier(len(early) + 1)
    for scenario in early:
        threading.Thread(target=_agent, args=(tracer, scenario, first), daemon=True).start()
    first.wait()
    _stuck.wait(ROOT_TIMEOUT * 1.5)
    late = threading.Barrier(2)
    threading.Thread(target=_agent, args=(tracer, "mid-flight", late), daemon=True).start()
    late.wait()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
