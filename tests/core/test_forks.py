"""Spans open at ``os.fork()``: exported once, by the process that ends them, in bounded memory.

The first tests run a real forking process (``SCRIPT``), since what they check
is what two processes see of shared memory and how many mappings one process
gets. A delegate span processor records every exported span synchronously, so
a child reports what it exported before its ``os._exit``; every process writes
one JSON line of facts, the test asserts them. The last tests drive the fork
bookkeeping in one process, for the interleavings a real fork cannot pin.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import Span, TracerProvider

from otel_lifecycle._core import forks as forks_module
from otel_lifecycle._core.endings import Inherited
from otel_lifecycle._core.forks import Forks
from otel_lifecycle._core.open_spans import OpenSpans
from tests._paths import ROOT

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")

SCRIPT = r'''
import gc
import json
import os
import sys
from types import ModuleType

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._core import forks as forks_module

SCENARIO = sys.argv[1]
FORKS = 1000


class Recorder(SpanProcessor):
    """Every span handed over, as [name, span id, error.type], in the calling thread."""

    def __init__(self):
        self.ended = []

    def on_end(self, span):
        self.ended.append([span.name, span.context.span_id, span.attributes.get("error.type")])


def say(**facts):
    """One JSON line in one write: the processes share the pipe."""
    os.write(1, (json.dumps(facts) + "\n").encode())


def lifecycle(delegate):
    processor = LifecycleSpanProcessor(delegate, handle_signals=False)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return processor, provider.get_tracer("forks")


def fork(label, recorder, child=lambda: None):
    """Fork a child that runs ``child``, reports what it exported, and leaves by os._exit."""
    pid = os.fork()
    if pid == 0:
        recorder.ended.clear()  # the parent's exports, copied by the fork
        child()
        say(child=label, exported=recorder.ended)
        os._exit(0)
    return pid


def reap(pid):
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status


def slot_of(forks, span_id):
    """The shared slot the fork bookkeeping gave ``span_id``, and the id ticked in it now."""
    slot = forks._slots[span_id]
    return slot, forks._tick(slot)


def mappings():
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def bookkeeping(root):
    """Objects reachable from ``root`` (types and modules excluded): its own state only."""
    seen = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, ModuleType)):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def finish(processor, recorder, **facts):
    finalized = processor.finalize_open_spans("shutdown")
    say(
        parent=True,
        finalized=finalized,
        open_after=processor.stats().open_spans,
        exported=recorder.ended,
        **facts,
    )


def one_child_ends_it():
    """A root inherited by three children in turn: the third ends it."""
    recorder = Recorder()
    processor, tracer = lifecycle(recorder)
    forks = processor._finalizer.forks
    root = tracer.start_span("root")
    slots = []
    for label in ("leaves.1", "leaves.2", "ends"):
        reap(fork(label, recorder, root.end if label == "ends" else lambda: None))
        slots.append(forks._slots.get(root.context.span_id))
    finish(processor, recorder, ids={"root": root.context.span_id}, slots=slots)


def no_child_ends_it():
    recorder = Recorder()
    processor, tracer = lifecycle(recorder)
    root = tracer.start_span("root")
    reap(fork("leaves", recorder))
    finish(processor, recorder, ids={"root": root.context.span_id})


def reused(late_tick):
    """A's slot goes to B. The child of B's fork ends B, or A's child ends A late."""
    forks_module.ARENA_SLOTS = 2  # kept and A fill the first arena: B must reuse A's slot
    recorder = Recorder()
    processor, tracer = lifecycle(recorder)
    forks = processor._finalizer.forks
    kept = tracer.start_span("kept")
    a = tracer.start_span("a")
    ids = {"kept": kept.context.span_id, "a": a.context.span_id}
    release, go = os.pipe()

    def a_child():
        os.close(go)  # should the parent die, the read returns at once
        os.read(release, 1)
        if late_tick:
            a.end()

    first = fork("a.child", recorder, a_child)
    os.close(release)
    slot_a, _ = slot_of(forks, ids["a"])
    a.end()
    b = tracer.start_span("b")
    ids["b"] = b.context.span_id
    reap(fork("b.child", recorder, (lambda: None) if late_tick else b.end))
    slot_b, _ = slot_of(forks, ids["b"])
    os.write(go, b"x")
    reap(first)
    _, value = slot_of(forks, ids["b"])
    finish(processor, recorder, ids=ids, slots=[slot_a, slot_b], tick_in_b_slot=value)


def many_forks(span_per_fork):
    """Fork and reap FORKS children that exit at once; count mappings and bookkeeping."""
    processor, tracer = lifecycle(InMemorySpanExporter())
    forks = processor._finalizer.forks
    root = tracer.start_span("root")
    before = mappings()
    sizes = []
    for number in range(FORKS):
        span = tracer.start_span(f"request.{number}") if span_per_fork else None
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        reap(pid)
        if span is not None:
            span.end()
        sizes.append(bookkeeping(forks))
    after = mappings()
    say(
        parent=True,
        new_mappings=after - before,
        bookkeeping_first=max(sizes[:10]),
        bookkeeping_last=max(sizes[10:]),
        finalized=processor.finalize_open_spans("shutdown"),
    )


if SCENARIO == "one-child-ends-it":
    one_child_ends_it()
elif SCENARIO == "no-child-ends-it":
    no_child_ends_it()
elif SCENARIO.startswith("reused"):
    reused(late_tick=SCENARIO == "reused-late-tick")
elif SCENARIO.startswith("many-forks"):
    many_forks(span_per_fork=SCENARIO == "many-forks-span-per-fork")
else:
    raise AssertionError(SCENARIO)
'''


def run(scenario: str) -> tuple[dict[str, Any], dict[str, list[list[Any]]]]:
    """Run ``SCRIPT`` with ``scenario``: the parent's facts, and each child's exports by label."""
    completed = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", SCRIPT, scenario],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    (parent,) = [line for line in lines if "parent" in line]
    children = {line["child"]: line["exported"] for line in lines if "child" in line}
    return parent, children


def run_reused(scenario: str) -> tuple[dict[str, Any], dict[str, list[list[Any]]], dict[str, Any]]:
    """:func:`run` a scenario where B took A's slot (checked); also the span ids by name."""
    parent, children = run(scenario)
    slot_a, slot_b = parent["slots"]
    assert slot_a == slot_b
    return parent, children, parent["ids"]


def assert_parent_ends(parent: dict[str, Any], exported: list[list[Any]], finalized: int) -> None:
    """The parent exported ``exported`` (in any order), ``finalized`` of them, none left open."""
    assert sorted(parent["exported"]) == exported
    assert parent["finalized"] == finalized
    assert parent["open_after"] == 0


@needs_fork
def test_a_child_that_ends_an_inherited_span_exports_it_and_the_parent_forgets_it() -> None:
    """Three forks share the root's one slot; the third child ends it: exported there only."""
    parent, children = run("one-child-ends-it")
    root = parent["ids"]["root"]
    assert children == {"leaves.1": [], "leaves.2": [], "ends": [["root", root, None]]}
    assert_parent_ends(parent, [], 0)
    first, second, third = parent["slots"]
    assert first is not None
    assert first == second == third


@needs_fork
def test_a_span_no_child_ends_is_finalized_by_the_parent_once() -> None:
    parent, children = run("no-child-ends-it")
    assert children == {"leaves": []}
    assert_parent_ends(parent, [["root", parent["ids"]["root"], "shutdown"]], 1)


@needs_fork
def test_a_reused_slot_makes_the_parent_forget_only_the_span_its_child_ended() -> None:
    """A ended in the parent, its slot reused by B; B's child ends B: the parent forgets B only."""
    parent, children, ids = run_reused("reused-child-ends-b")
    assert children == {"a.child": [], "b.child": [["b", ids["b"], None]]}
    assert_parent_ends(parent, [["a", ids["a"], None], ["kept", ids["kept"], "shutdown"]], 1)


@needs_fork
def test_a_late_tick_for_a_span_whose_slot_was_reused_leaves_the_new_owner_to_the_parent() -> None:
    """A's child ends A after B took A's slot: the parent still finalizes B, exactly once."""
    parent, children, ids = run_reused("reused-late-tick")
    assert parent["tick_in_b_slot"] == 0  # A's child saw the slot was B's: it wrote nothing
    assert children == {"a.child": [["a", ids["a"], None]], "b.child": []}
    exported = [
        ["a", ids["a"], None],
        ["b", ids["b"], "shutdown"],
        ["kept", ids["kept"], "shutdown"],
    ]
    assert_parent_ends(parent, exported, 2)


@needs_fork
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="counts /proc/self/maps lines")
@pytest.mark.parametrize("scenario", ["many-forks-one-root", "many-forks-span-per-fork"])
def test_a_thousand_forks_add_few_mappings_and_no_bookkeeping(scenario: str) -> None:
    """1,000 forks under one open root (or a new span each, ended after its fork): bounded.

    The bookkeeping (objects reachable from the processor's fork bookkeeping) is
    no larger after the 1,000th fork than it was by the 10th.
    """
    parent, _ = run(scenario)
    assert parent["new_mappings"] <= 50, parent
    assert parent["bookkeeping_last"] <= parent["bookkeeping_first"], parent
    assert parent["finalized"] == 1


# The bookkeeping in one process: each child's side of the fork taken by a copy.


TRACER = TracerProvider(shutdown_on_exit=False).get_tracer("forks")


def opened(open_spans: OpenSpans) -> int:
    """Start a span and track it in ``open_spans``, as ``on_start`` does; its id."""
    span = TRACER.start_span("span")
    assert isinstance(span, Span)
    span_id: int = span.context.span_id
    open_spans.spans[span_id] = span
    return span_id


class Parent:
    """A parent's open spans and fork bookkeeping; its children simulated in this process.

    A simulated child is a shallow copy of the bookkeeping that takes the
    child's side of the fork: its endings write to the parent's arenas, here
    this process's own memory, as a real child writes to memory it shares.
    """

    def __init__(self) -> None:
        self.open = OpenSpans()
        self.forks = Forks()
        self.child = Forks()
        """The bookkeeping of the last child, after its side of the fork."""

    def start(self) -> int:
        return opened(self.open)

    def end(self, span_id: int) -> None:
        del self.open.spans[span_id]

    def fork(self) -> dict[int, Inherited]:
        """The hooks of one ``os.fork()``: the child's inherited endings (its bookkeeping kept)."""
        self.forks.before_fork(self.open)
        self.child = copy.copy(self.forks)
        inherited = self.child.after_fork_in_child()
        self.forks.after_fork_in_parent()
        return inherited


def reused_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Parent, int, dict[int, Inherited], int, dict[int, Inherited]]:
    """One slot an arena: A forked, then ended in the parent; B took A's slot and forked.

    The parent, A, A's child's inherited endings, B, B's child's.
    """
    monkeypatch.setattr(forks_module, "ARENA_SLOTS", 1)
    parent = Parent()
    a = parent.start()
    a_child = parent.fork()
    parent.end(a)
    b = parent.start()
    return parent, a, a_child, b, parent.fork()


def test_a_tick_that_slipped_past_the_owner_check_does_not_make_the_parent_forget_the_new_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A's child checked the owner word before A's slot went to B, and writes after B's fork.

    The tick names A: the parent keeps B open. B's child's own tick then makes
    the parent forget B, and only B.
    """
    parent, a, a_child, b, b_child = reused_slot(monkeypatch)
    assert a_child[a].words is b_child[b].words
    assert a_child[a].owner == b_child[b].owner

    late = a_child[a]
    late.words[late.owner + 1] = a  # the write that passed the check before the slot changed hands
    parent.forks.reclaim(parent.open)
    assert list(parent.open.spans) == [b]

    b_child[b].ended_here()
    parent.forks.reclaim(parent.open)
    assert list(parent.open.spans) == []


def test_a_late_ending_of_a_span_whose_slot_was_freed_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the parent frees a slot (its span closed there), ending the old span ticks nothing."""
    parent, a, a_child, b, b_child = reused_slot(monkeypatch)

    a_child[a].ended_here()
    assert b_child[b].words[b_child[b].owner + 1] == 0
    parent.forks.reclaim(parent.open)
    assert list(parent.open.spans) == [b]


def test_every_span_open_at_a_fork_gets_a_slot_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten spans, four slots an arena: distinct slots, at most three quarters of them in use."""
    monkeypatch.setattr(forks_module, "ARENA_SLOTS", 4)
    parent = Parent()
    span_ids = [parent.start() for _ in range(10)]
    child = parent.fork()
    assert sorted(child) == sorted(span_ids)
    assert len({(id(ending.words), ending.owner) for ending in child.values()}) == 10
    assert len(parent.forks._arenas) == 4

    for span_id in span_ids[::2]:
        child[span_id].ended_here()
    parent.forks.reclaim(parent.open)
    assert sorted(parent.open.spans) == sorted(span_ids[1::2])


def test_a_span_keeps_its_slot_across_forks_and_a_child_forks_with_slots_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Later forks reuse the open span's slot; a child starts empty and maps its own arena."""
    monkeypatch.setattr(forks_module, "ARENA_SLOTS", 1)
    parent = Parent()
    root = parent.start()
    first, second = parent.fork(), parent.fork()
    assert first[root].words is second[root].words
    assert first[root].owner == second[root].owner
    assert len(parent.forks._arenas) == 1

    child = parent.child
    assert (child._slots, child._owners, child._arenas) == ({}, {}, [])
    child_open = OpenSpans()
    opened(child_open)
    child.before_fork(child_open)
    assert len(child._arenas) == 1
    assert child._arenas[0] is not parent.forks._arenas[0]
