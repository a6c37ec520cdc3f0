"""The demo's workload: an agent-like app with five concurrent conversations.

Run as ``python -m otel_lifecycle._cli.demo_app {plain,lifecycle} ENDPOINT``; the
same instrumented code runs in both modes, only the span processor differs (the
one line otel_lifecycle asks for). Each conversation is a root span
(``agent.run``) with children (LLM and tool calls), made with the package's
``span()`` and ``fail()``, except where a hand-made root is the point:

- ``success``: answers; every span ends, the root OK;
- ``raises``: the root is opened by hand with ``start_span()``; a tool raises
  and the exception escapes the agent's thread, so the root is never ended
  (otel_lifecycle records the exception and finalizes the root with its type);
- ``max-iterations``: the loop stops at its limit: ``fail(...,
  error_type="max_iterations")`` and returns;
- ``hangs``: a tool call never returns, past the root timeout;
- ``mid-flight``: still waiting on the LLM when the process gets SIGTERM.

Once ``hangs`` is past the root timeout the app calls ``force_flush()`` (the
plain SDK exports what ended so far; otel_lifecycle also finalizes the roots past
their timeout). When ``mid-flight`` waits on its LLM call, the app prints
``trace SCENARIO TRACE_ID`` for each conversation, then ``ready``, and waits for
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

from otel_lifecycle._api.span import fail, span
from otel_lifecycle._api.traced import traced
from otel_lifecycle._processor.processor import LifecycleSpanProcessor

ROOT_TIMEOUT = 1.0
"""Seconds; the ``root_timeout`` of the otel_lifecycle run."""
HANG = ROOT_TIMEOUT * 1.5
"""Seconds the ``hangs`` tool call has been stuck when SIGTERM comes."""
MAX_ITERATIONS = 3
SCENARIOS = ("success", "raises", "max-iterations", "hangs", "mid-flight")
SETTINGS = (
    f"root_timeout {ROOT_TIMEOUT:g} s (otel_lifecycle run only); the app calls force_flush()"
    f" once the hang has lasted {HANG:g} s, then starts mid-flight and gets SIGTERM while it"
    " waits on its LLM; every other setting at its default (OTEL_BSP_SCHEDULE_DELAY 5 s;"
    " OTEL_* variables of the calling environment are not passed on)"
)

_forever = threading.Event()
"""Never set: what a stuck call waits on."""


class ToolError(RuntimeError):
    """The failure of the ``raises`` conversation."""


def service_name(mode: str) -> str:
    """The ``service.name`` of a run, to look for in the backend."""
    return f"demo-agent-{mode}"


@traced(name="llm.call")
def _llm(prompt: str) -> str:
    return f"thought about {prompt}"


def _agent(scenario: str, traces: dict[str, str], stuck: threading.Event) -> None:
    """One conversation; records its trace id in ``traces``; sets ``stuck`` if it blocks."""
    task = f"task: {scenario}"
    if scenario == "raises":
        _agent_with_a_hand_made_root(task, traces)
        return
    with span("agent.run", input=task, conversation_id=f"conv-{scenario}") as run:
        traces[scenario] = format(run.span.get_span_context().trace_id, "032x")
        thought = _llm(task)
        if scenario == "max-iterations":
            for _ in range(MAX_ITERATIONS - 1):
                thought = _llm(thought)
            fail(f"stopped after {MAX_ITERATIONS} iterations", error_type="max_iterations")
        elif scenario in ("hangs", "mid-flight"):
            name = "tool.browser" if scenario == "hangs" else "llm.call"
            with span(name, input=thought):
                stuck.set()
                _forever.wait()
        run.set_output("42")


def _agent_with_a_hand_made_root(task: str, traces: dict[str, str]) -> None:
    """``raises``: a root from ``start_span()`` that nothing ends once a ToolError escapes."""
    root = trace.get_tracer("otel_lifecycle.demo").start_span(
        "agent.run", attributes={"input.value": task, "gen_ai.conversation.id": "conv-raises"}
    )
    traces["raises"] = format(root.get_span_context().trace_id, "032x")
    with trace.use_span(root, record_exception=False, set_status_on_exception=False):
        _llm(task)
        with span("tool.search", input={"query": task}):
            raise ToolError("search backend returned 500")


def _keep_agent_errors_quiet(args: threading.ExceptHookArgs) -> None:
    """The ``raises`` agent's escaping ToolError is the scenario, not news: no traceback."""


def main(mode: str, endpoint: str) -> None:
    """Run the workload with the ``plain`` SDK or with ``lifecycle``, exporting to ``endpoint``."""
    threading.excepthook = _keep_agent_errors_quiet
    exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name(mode)}))
    if mode == "lifecycle":
        provider.add_span_processor(LifecycleSpanProcessor(exporter, root_timeout=ROOT_TIMEOUT))
    else:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    traces: dict[str, str] = {}
    stuck = {scenario: threading.Event() for scenario in SCENARIOS}
    threads = {
        scenario: threading.Thread(
            target=_agent, args=(scenario, traces, stuck[scenario]), daemon=True
        )
        for scenario in SCENARIOS
    }
    for scenario in ("success", "raises", "max-iterations", "hangs"):
        threads[scenario].start()
    for scenario in ("success", "raises", "max-iterations"):
        threads[scenario].join()
    stuck["hangs"].wait()
    _forever.wait(HANG)
    provider.force_flush()
    threads["mid-flight"].start()
    stuck["mid-flight"].wait()
    for scenario in SCENARIOS:
        print(f"trace {scenario} {traces[scenario]}")
    print("ready", flush=True)
    _forever.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
