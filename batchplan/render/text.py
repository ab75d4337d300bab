"""The plan for a terminal: Terraform-like symbols, optional colour."""

from __future__ import annotations

from collections.abc import Callable

import click

from batchplan.plan import Action, Change, Plan, Summary

SYMBOLS = {
    Action.CREATE: ("+", "green"),
    Action.ADOPT: ("<=", "cyan"),
    Action.FORGET: ("-/", "magenta"),
    Action.PRIORITIZE: ("~", "yellow"),
    Action.FINALIZE: ("~", "yellow"),
}


def summary_line(summary: Summary) -> str:
    """``Plan: 2 to create, 1 to finalize, 3 to prioritize, 1 to adopt, 0 to forget.``

    Priorities set from an unknown value (imported or adopted batches) are
    counted apart, so a default that re-prioritises many batches stands out.
    """
    if not summary.has_changes:
        return "No changes."
    prioritize = f"{summary.prioritize} to prioritize"
    if summary.prioritize_from_unknown:
        prioritize += f" ({summary.prioritize_from_unknown} from unknown priority)"
    return (
        f"Plan: {summary.create} to create, {summary.finalize} to finalize, {prioritize}, "
        f"{summary.adopt} to adopt, {summary.forget} to forget."
    )


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
            if change.desired is not None:
                flags = [
                    flag
                    for flag in ("calibration_batch", "self_label_batch")
                    if getattr(change.desired, flag)
                ]
                if flags:
                    detail += ", " + ", ".join(f"{flag}: true" for flag in flags)
        elif action is Action.ADOPT:
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


def render_text(plan: Plan, *, color: bool = False, verbose: bool = False) -> str:
    """The whole plan as terminal text, ending with the summary line."""

    def style(text: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color else text

    out: list[str] = []
    add: Callable[[str], None] = out.append
    if plan.targets:
        add(f"Targets only: {', '.join(plan.targets)} (every other batch is left out).")
    if plan.reassert_priority:
        add("--reassert-priority: every managed priority is sent again.")
    if plan.targets or plan.reassert_priority:
        add("")
    if plan.changes:
        add("batchplan will perform these actions:")
        add("")
        for change in plan.changes:
            action = change.symbol_action
            symbol, fg = SYMBOLS[action]
            add(
                f"  {style(symbol, fg, bold=True)} {style(change.batch, bold=True)}"
                f"  ({change.project})"
            )
            for name, detail in _action_lines(change):
                add(f"      {name:<11}{detail}")
            add("")

    if plan.conflicts:
        add(style("Conflicts (apply refuses to start while any remain):", "red", bold=True))
        for conflict in plan.conflicts:
            subject = conflict.batch or f"project {conflict.project}"
            where = f" [{conflict.where}]" if conflict.where else ""
            add(f"  {style('!', 'red', bold=True)} {subject}{where}: {conflict.message}")
        add("")

    if plan.warnings:
        add(style("Warnings:", "yellow", bold=True))
        for warning in plan.warnings:
            subject = warning.batch or f"project {warning.project}"
            add(f"  {style('!', 'yellow')} {subject}: {warning.message}")
        add("")

    if plan.completed_with_priority:
        count = len(plan.completed_with_priority)
        add(
            f"Note: {count} completed batch{'es' if count != 1 else ''} "
            f"ha{'ve' if count != 1 else 's'} a priority in config; a completed batch has "
            "no tasks left to order, so its priority is not sent."
        )
        if verbose:
            add("  " + ", ".join(plan.completed_with_priority))
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
                add(f"    {batch.name}  ({batch.project}, {batch.status})")
        add("")

    line = summary_line(plan.summary)
    add(style(line, bold=True))
    return "\n".join(out) + "\n"
