"""The plan for a terminal: Terraform-like symbols, optional colour."""

from __future__ import annotations

from collections.abc import Callable

import click

from batchplan.escaping import escape_controls as safe
from batchplan.plan.changes import Action, Change, Plan
from batchplan.plan.words import (
    finding_diagnostic,
    headline,
    metadata_text,
    refusal_line,
    summary_line,
    value_text,
)

SYMBOLS = {
    Action.CREATE: ("+", "green"),
    Action.ADOPT: ("<=", "cyan"),
    Action.FORGET: ("-/", "magenta"),
    Action.SET_METADATA: ("~", "yellow"),
    Action.PRIORITIZE: ("~", "yellow"),
    Action.FINALIZE: ("~", "yellow"),
}

__all__ = ["SYMBOLS", "render_text", "summary_line"]


def _priority(value: int | None) -> str:
    return "(unknown)" if value is None else str(value)


def _action_lines(change: Change) -> list[tuple[str, str]]:
    before, after = change.before, change.after
    lines = []
    for action in change.actions:
        if action is Action.CREATE:
            detail = f"in project {change.project}"
            if after is not None and after.callback:
                detail += f", callback {after.callback}"
            flags = [
                flag
                for flag, value in (
                    ("calibration_batch", change.calibration_batch),
                    ("self_label_batch", change.self_label_batch),
                )
                if value
            ]
            if flags:
                detail += ", " + ", ".join(f"{flag}: true" for flag in flags)
            lines.append((action.value, detail))
            lines.extend(
                ("+ metadata", f"{edit.key}: {value_text(edit.after)}") for edit in change.metadata
            )
            continue
        if action is Action.SET_METADATA:
            lines.extend(("~ metadata", metadata_text(edit)) for edit in change.metadata)
            continue
        if action is Action.ADOPT:
            status = before.status if before is not None else "live"
            detail = f"{status} in project {change.project}, not yet in state; no API call"
        elif action is Action.PRIORITIZE:
            old = None if before is None else before.priority
            new = None if after is None else after.priority
            detail = (
                _priority(new)
                if Action.CREATE in change.actions
                else (f"{_priority(old)} -> {_priority(new)}")
            )
        elif action is Action.FINALIZE:
            detail = (
                "(if created staging)" if change.finalize_if_staging else "staging -> in_progress"
            )
        else:
            detail = "dropped from state; the batch itself is not deleted"
        lines.append((action.value, detail))
    return lines


def compact_actions(change: Change) -> str:
    """A change's actions on one line: ``create, prioritize 20, finalize``."""
    before, after = change.before, change.after
    words = []
    for action in change.actions:
        if action is Action.PRIORITIZE:
            new = _priority(None if after is None else after.priority)
            if Action.CREATE in change.actions:
                words.append(f"prioritize {new}")
            else:
                old = _priority(None if before is None else before.priority)
                words.append(f"prioritize {old} -> {new}")
        elif action is Action.SET_METADATA:
            count = len(change.metadata)
            words.append(f"set_metadata ({count} key{'' if count == 1 else 's'})")
        else:
            words.append(action.value)
    return ", ".join(words)


_COUNTED_ACTIONS = (
    (Action.CREATE, "to create"),
    (Action.SET_METADATA, "to set metadata"),
    (Action.FINALIZE, "to finalize"),
    (Action.PRIORITIZE, "to prioritize"),
    (Action.ADOPT, "to adopt"),
    (Action.FORGET, "to forget"),
)


def by_project(plan: Plan) -> list[tuple[str, list[Change], str]]:
    """The changes grouped by project (sorted), each with its counts (``3 to create``)."""
    groups: dict[str, list[Change]] = {}
    for change in plan.changes:
        groups.setdefault(change.project, []).append(change)
    found = []
    for project in sorted(groups):
        changes = groups[project]
        counts = [
            f"{sum(action in c.actions for c in changes):,} {words}"
            for action, words in _COUNTED_ACTIONS
            if any(action in c.actions for c in changes)
        ]
        found.append((project, changes, ", ".join(counts)))
    return found


def _compact_lines(plan: Plan, style: Callable[..., str]) -> list[str]:
    """One line per batch, grouped by project under a line of the project's counts."""
    lines = ["batchplan will perform these actions:", ""]
    for project, changes, counts in by_project(plan):
        lines.append(f"  {style(project, bold=True)}: {counts}")
        width = min(max(len(c.batch) for c in changes), 48)
        for change in changes:
            symbol, fg = SYMBOLS[change.symbol_action]
            lines.append(
                f"    {style(f'{symbol:<2}', fg, bold=True)} {change.batch:<{width}}  "
                f"{compact_actions(change)}"
            )
        lines.append("")
    return lines


def render_text(
    plan: Plan, *, color: bool = False, verbose: bool = False, compact: bool = False
) -> str:
    """The whole plan as terminal text, ending with the line that sums it up.

    ``compact``: one line per batch, grouped by project with the project's
    counts, instead of a block per batch; everything else is the same.
    """

    def style(text: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color else text

    out: list[str] = []
    add: Callable[[str], None] = out.append
    if plan.targets:
        add(f"Targets only: {safe(', '.join(plan.targets))} (every other batch is left out).")
    if plan.reassert_priority:
        add("--reassert-priority: every managed priority is sent again.")
    if plan.targets or plan.reassert_priority:
        add("")
    if plan.changes and compact:
        out.extend(_compact_lines(plan, style))
    elif plan.changes:
        add("batchplan will perform these actions:")
        add("")
        for change in plan.changes:
            action = change.symbol_action
            symbol, fg = SYMBOLS[action]
            add(
                f"  {style(symbol, fg, bold=True)} {style(safe(change.batch), bold=True)}"
                f"  ({safe(change.project)})"
            )
            for name, detail in _action_lines(change):
                # Details quote the callback and metadata, from a file or the API.
                add(f"      {name:<11}{safe(detail)}")
            add("")

    # One finding type: errors (conflicts) first, then warnings; only an
    # error's mark is bold and only an error shows where it was declared.
    for findings, heading, colour, is_error in (
        (plan.conflicts, "Conflicts (apply refuses to start while any remain):", "red", True),
        (plan.warnings, "Warnings:", "yellow", False),
    ):
        if not findings:
            continue
        add(style(heading, colour, bold=True))
        for finding in findings:
            diagnostic = finding_diagnostic(finding)
            subject = safe(finding.batch or f"project {finding.project}")
            place = diagnostic.place
            where = f" [{safe(place)}]" if is_error and place else ""
            mark = style("!", colour, bold=is_error)
            add(f"  {mark} {subject}{where}: {safe(diagnostic.message)}")
        add("")

    if plan.completed_with_priority:
        count = len(plan.completed_with_priority)
        add(
            f"Note: {count} completed batch{'es' if count != 1 else ''} "
            f"ha{'ve' if count != 1 else 's'} a priority in config; a completed batch has "
            "no tasks left to order, so its priority is not sent."
        )
        if verbose:
            add("  " + safe(", ".join(plan.completed_with_priority)))
        add("")

    if plan.unmanaged:
        count = len(plan.unmanaged)
        add(
            f"{count} live batch{'es' if count != 1 else ''} in managed projects "
            f"{'are' if count != 1 else 'is'} in neither config nor state (unmanaged"
            + ("" if verbose else "; --verbose lists them")
            + ")."
        )
        if verbose:
            for batch in plan.unmanaged:
                # Live names: an API can put line breaks or terminal escapes (OSC 52) in them.
                add(f"    {safe(batch.name)}  ({safe(batch.project)}, {safe(batch.status)})")
        add("")

    # The last line sums the plan up and never hides a problem: with
    # conflicts it says nothing will be applied, never "No changes.".
    if plan.summary.has_changes or not plan.conflicts:
        add(style(summary_line(plan.summary), bold=True))
    if plan.unsafe:
        add(style(refusal_line(plan), "red", bold=True))
    if plan.conflicts:
        add(style(headline(plan), "red", bold=True))
    return "\n".join(out) + "\n"
