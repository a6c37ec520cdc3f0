"""What the backend received from one run of the demo's workload, and how it is summarized.

Shared by the demo's text output (``demo``) and its HTML page (``report``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from otel_lifecycle._cli.demo_app import SCENARIOS
from otel_lifecycle._cli.receiver import ReceivedSpan
from otel_lifecycle._console.tree import Forest, by_trace
from otel_lifecycle._core.semconv import CONVERSATION_ID


@dataclass(frozen=True)
class OrphanGroup:
    """The spans of one trace whose parent never arrived."""

    trace_id: str
    scenario: str | None
    """The conversation's scenario, as the app reported it (the backend cannot tell)."""
    conversation_id: str | None
    """As received on any span of the trace; None if no span that arrived carries it."""
    names: tuple[str, ...]
    """The orphans' names, by start time."""


@dataclass(frozen=True)
class RunResult:
    """What the backend received from one run of the workload."""

    mode: str
    title: str
    exit_code: int
    spans: tuple[ReceivedSpan, ...]
    traces: Mapping[str, str]
    """Trace id of each scenario, as the app reported it."""

    @property
    def roots_received(self) -> int:
        """Root spans that arrived (ended by the app or finalized by the processor)."""
        return sum(1 for span in self.spans if span.parent_span_id is None)

    @property
    def orphans(self) -> int:
        """Spans whose parent never arrived: a broken trace in the backend."""
        forest = Forest(self.spans)
        return sum(1 for span in self.spans if forest.is_orphan(span))

    def orphan_groups(self) -> list[OrphanGroup]:
        """The orphans grouped by trace, in scenario order."""
        forest = Forest(self.spans)
        scenarios = {trace_id: scenario for scenario, trace_id in self.traces.items()}
        groups = []
        for trace_id, members in by_trace(forest.children(None)).items():
            names = tuple(span.name for span in members if forest.is_orphan(span))
            if not names:
                continue
            conversation = next(
                (
                    str(span.attributes[CONVERSATION_ID])
                    for span in self.spans
                    if span.trace_id == trace_id and CONVERSATION_ID in span.attributes
                ),
                None,
            )
            groups.append(OrphanGroup(trace_id, scenarios.get(trace_id), conversation, names))
        order = {scenario: index for index, scenario in enumerate(SCENARIOS)}
        return sorted(groups, key=lambda group: order.get(group.scenario or "", len(order)))

    def counts(self) -> str:
        """Roots started against roots received, and orphaned children."""
        return (
            f"roots started {len(SCENARIOS)}, roots received {self.roots_received},"
            f" children received without a parent {self.orphans}"
        )

    def summary(self) -> str:
        """The run's summary line."""
        return f"{self.title}: {self.counts()}"
