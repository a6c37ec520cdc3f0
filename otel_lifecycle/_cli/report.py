"""The demo's comparison as a self-contained HTML page (no scripts, no external assets)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from otel_lifecycle._cli.demo_app import SCENARIOS, SETTINGS
from otel_lifecycle._cli.receiver import ReceivedSpan
from otel_lifecycle._cli.results import RunResult
from otel_lifecycle._console.tree import Forest, describe

_INTRO = (
    "The same agent app, run once per column, with five concurrent conversations ("
    + ", ".join(SCENARIOS)
    + "), ended by SIGTERM. A highlighted span's parent never reached the backend."
)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
.runs { display: flex; gap: 2rem; align-items: flex-start; }
.run { flex: 1; border: 1px solid #ccc; border-radius: 8px; padding: 1rem; }
ul { list-style: none; padding-left: 1.2rem; margin: 0.2rem 0; }
li { margin: 0.15rem 0; font-family: ui-monospace, monospace; font-size: 0.9rem; }
.ERROR { color: #b00020; } .OK { color: #1b7f3b; } .UNSET { color: #555; }
.orphan { background: #fff3cd; }
.summary { font-weight: bold; margin-bottom: 1rem; }
code { font-family: ui-monospace, monospace; }
"""


def _tree_html(spans: Sequence[ReceivedSpan]) -> str:
    forest = Forest(spans)

    def items(parent: ReceivedSpan | None) -> str:
        parts = []
        for span in forest.children(parent):
            orphan = forest.is_orphan(span)
            label = html.escape(describe(span)) + (" (parent never arrived)" if orphan else "")
            css = f"{span.status_code}{' orphan' if orphan else ''}"
            parts.append(f'<li class="{css}">{label}{items(span)}</li>')
        return f"<ul>{''.join(parts)}</ul>" if parts else ""

    return items(None)


def _orphans_html(result: RunResult) -> str:
    """The run's orphans grouped by trace, with the conversation id if any span carries it."""
    groups = result.orphan_groups()
    if not groups:
        return ""
    items = "".join(
        f"<li>trace <code>{group.trace_id}</code>"
        f" ({html.escape(group.scenario or 'unknown scenario')}):"
        f" conversation id {html.escape(group.conversation_id or 'not received')};"
        f" {html.escape(', '.join(group.names))}</li>"
        for group in groups
    )
    return (
        f"<h2>{html.escape(result.title)}: spans whose parent never arrived, by trace</h2>"
        "<p>The scenario is what the app reported; the backend cannot tell it.</p>"
        f"<ul>{items}</ul>"
    )


def write_html(path: str, results: Sequence[RunResult]) -> None:
    """Write the runs side by side to ``path``."""
    columns = "".join(
        f'<div class="run"><h2>{html.escape(result.title)}</h2>'
        f'<p class="summary">{html.escape(result.counts())}</p>'
        f"{_tree_html(result.spans)}</div>"
        for result in results
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>otel_lifecycle demo</title>"
        f"<style>{_STYLE}</style></head><body><h1>What the backend received</h1>"
        f"<p>{html.escape(_INTRO)}</p>"
        f"<p>Settings: {html.escape(SETTINGS)}.</p>"
        f'<div class="runs">{columns}</div>'
        f"{''.join(_orphans_html(result) for result in results)}</body></html>"
    )
    Path(path).write_text(page, encoding="utf-8")
