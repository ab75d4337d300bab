"""The views of ``batchplan status``: a table for people, JSON, OpenMetrics.

May import: the core. Rows are plain :class:`BatchProgress` values read by
the command; the view turns them into text for a terminal, a log, a program
or a Prometheus textfile collector.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TextIO

from batchplan.errors import UsageError
from batchplan.escaping import escape_controls
from batchplan.model import COMPLETED, STATUSES

NOT_CREATED = "not_created"
BAR_WIDTH = 20


@dataclass(frozen=True)
class BatchProgress:
    """One managed batch's labeling progress; counts are None when it is not created."""

    name: str
    project: str
    status: str
    tasks_pending: int | None = None
    tasks_completed: int | None = None
    tasks_error: int | None = None
    tasks_canceled: int | None = None

    @property
    def tasks_total(self) -> int | None:
        """Every task of the batch, whatever its state; None when not created."""
        counts = (self.tasks_pending, self.tasks_completed, self.tasks_error, self.tasks_canceled)
        if any(count is None for count in counts):
            return None
        return sum(count or 0 for count in counts)

    @property
    def percent(self) -> int | None:
        """Whole percent of tasks completed; None when there is nothing to count.

        Errored and canceled tasks count in the total but never as done: 50
        completed and 3 errored is 94%, not 100%.
        """
        total = self.tasks_total
        if total is None or self.tasks_completed is None:
            return None
        if total == 0:
            return 100 if self.status == COMPLETED else None
        return 100 * self.tasks_completed // total

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project": self.project,
            "status": self.status,
            "tasks_pending": self.tasks_pending,
            "tasks_completed": self.tasks_completed,
            "tasks_error": self.tasks_error,
            "tasks_canceled": self.tasks_canceled,
        }


TASK_COUNTS = ("tasks_pending", "tasks_completed", "tasks_error", "tasks_canceled")


def statuses_seen(seen: Iterable[str]) -> tuple[str, ...]:
    """The statuses to show: batchplan's own three first, then any other the account has.

    A real account has more (``paused``, ``cancelled``, whatever comes next);
    each is counted under its own name, never dropped from a total.
    """
    others = sorted(set(seen) - {*STATUSES, NOT_CREATED})
    return (*STATUSES, *others, NOT_CREATED)


def _tally(rows: Sequence[BatchProgress]) -> dict[str, Any]:
    """``batches``, the four task counts, and batches per status.

    Every status seen is counted in ``statuses``; the three batchplan acts on
    and ``not_created`` also have a key of their own, as before there were
    others. Another status never gets a key beside ``batches``: a status an
    API names ``batches`` must not overwrite the count of batches.
    """
    by_status: dict[str, int] = {}
    counts: dict[str, Any] = {"batches": len(rows), **dict.fromkeys(TASK_COUNTS, 0)}
    for row in rows:
        by_status[row.status] = by_status.get(row.status, 0) + 1
        for key in TASK_COUNTS:
            counts[key] += getattr(row, key) or 0
    for status in (NOT_CREATED, *STATUSES):
        counts[status] = by_status.get(status, 0)
    counts["statuses"] = {
        status: by_status[status] for status in statuses_seen(by_status) if status in by_status
    }
    return counts


def totals(rows: Sequence[BatchProgress]) -> dict[str, Any]:
    """Counts of batches by status and of tasks, per project and for all."""
    projects: dict[str, list[BatchProgress]] = {}
    for row in rows:
        projects.setdefault(row.project, []).append(row)
    return {
        "projects": {project: _tally(group) for project, group in sorted(projects.items())},
        "all": _tally(rows),
    }


def status_json(rows: Sequence[BatchProgress]) -> dict[str, Any]:
    return {"batches": [row.to_json() for row in rows], "totals": totals(rows)}


def bar(percent: int | None) -> str:
    """``[#####---------------]  25%``; blank when there is nothing to count."""
    if percent is None:
        return " " * (BAR_WIDTH + 7)
    filled = BAR_WIDTH * percent // 100
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent:3d}%"


def _tasks(row: BatchProgress) -> str:
    """``50/53 tasks, 3 error``: completed of all tasks, then the ones that will not be done."""
    text = f"{row.tasks_completed}/{row.tasks_total} tasks"
    if row.tasks_error:
        text += f", {row.tasks_error} error"
    if row.tasks_canceled:
        text += f", {row.tasks_canceled} canceled"
    return text


def _summary_line(label: str, tally: dict[str, Any]) -> str:
    parts = [
        f"{count} {escape_controls(status).replace('_', ' ')}"
        for status, count in tally["statuses"].items()
    ]
    completed = tally["tasks_completed"]
    total = sum(tally[key] for key in TASK_COUNTS)
    done = f", {completed} of {total} tasks done ({100 * completed // total}%)" if total else ""
    for key, word in (("tasks_error", "error"), ("tasks_canceled", "canceled")):
        if tally[key]:
            done += f", {tally[key]} {word}"
    batches = "1 batch" if tally["batches"] == 1 else f"{tally['batches']} batches"
    return f"{label}: {batches} ({', '.join(parts)}){done}"


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "\u2026"


#: Narrowest the project and batch columns get when the terminal is narrow.
MIN_NAME_WIDTH = 12


def _column_widths(rows: Sequence[BatchProgress], width: int | None) -> tuple[int, int]:
    """Project and batch column widths; narrowed (batch first) to fit ``width`` columns."""
    name_width = max(len("BATCH"), *(len(row.name) for row in rows))
    project_width = max(len("PROJECT"), *(len(row.project) for row in rows))
    if width is None:
        return project_width, name_width
    tasks_width = max(len("TASKS"), *(len(_tasks(r)) for r in rows if r.tasks_total is not None))
    rest = 2 + len("not created") + 2 + BAR_WIDTH + 7 + 2 + tasks_width
    over = project_width + 2 + name_width + rest - width
    if over > 0:
        cut = min(over, max(name_width - MIN_NAME_WIDTH, 0))
        name_width -= cut
        over -= cut
    if over > 0:
        project_width -= min(over, max(project_width - MIN_NAME_WIDTH, 0))
    return project_width, name_width


def status_text(rows: Sequence[BatchProgress], width: int | None = None) -> str:
    """A table, a bar per batch, then a total line per project (and for all, if several).

    With ``width`` (the terminal's), long batch and project names are
    shortened with an ellipsis so that each table line fits.
    """
    if not rows:
        return "No managed batches: the configuration and state name none.\n"
    # Names and statuses come from files and the API: escaped before widths are measured.
    rows = [
        replace(
            row,
            name=escape_controls(row.name),
            project=escape_controls(row.project),
            status=escape_controls(row.status),
        )
        for row in rows
    ]
    project_width, name_width = _column_widths(rows, width)
    status_width = len("not created")
    lines = [
        f"{'PROJECT':<{project_width}}  {'BATCH':<{name_width}}  "
        f"{'STATUS':<{status_width}}  {'PROGRESS':<{BAR_WIDTH + 7}}  TASKS"
    ]
    for row in rows:
        status = row.status.replace("_", " ") if row.status == NOT_CREATED else row.status
        project = shorten(row.project, project_width)
        name = shorten(row.name, name_width)
        line = f"{project:<{project_width}}  {name:<{name_width}}  {status:<{status_width}}"
        if row.tasks_total is not None:
            line += f"  {bar(row.percent)}  {_tasks(row)}"
        lines.append(line.rstrip())
    summary = totals(rows)
    lines.append("")
    totals_lines = [_summary_line(project, tally) for project, tally in summary["projects"].items()]
    if len(summary["projects"]) > 1:
        totals_lines.append(_summary_line("All projects", summary["all"]))
    lines.extend(line if width is None else shorten(line, width) for line in totals_lines)
    return "\n".join(lines) + "\n"


# -- OpenMetrics -------------------------------------------------------------------

_METRICS = (
    ("batchplan_batch_tasks", "Tasks of a managed batch, by task state."),
    (
        "batchplan_batch_status",
        "1 for the managed batch's current status (not_created before it exists), 0 otherwise.",
    ),
)


def label_value(text: str) -> str:
    """A label value for the OpenMetrics text format: backslash, quote and newline escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def status_openmetrics(rows: Sequence[BatchProgress]) -> str:
    """The counts per batch in the OpenMetrics text format, ending with ``# EOF``.

    Only gauges, which the Prometheus text format reads the same way, so a
    node_exporter textfile collector accepts the file as it is.
    """
    lines = []
    seen = statuses_seen(row.status for row in rows)
    statuses = (NOT_CREATED, *(status for status in seen if status != NOT_CREATED))
    for metric, help_text in _METRICS:
        lines += [f"# TYPE {metric} gauge", f"# HELP {metric} {help_text}"]
        for row in rows:
            labels = f'project="{label_value(row.project)}",batch="{label_value(row.name)}"'
            if metric == "batchplan_batch_tasks":
                if row.tasks_total is None:
                    continue
                for key in TASK_COUNTS:
                    state = key.removeprefix("tasks_")
                    lines.append(f'{metric}{{{labels},state="{state}"}} {getattr(row, key)}')
            else:
                for status in statuses:
                    value = 1 if row.status == status else 0
                    lines.append(f'{metric}{{{labels},status="{status}"}} {value}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def terminal_width(out: TextIO) -> int | None:
    """Columns to fit the table in: the terminal's (or ``COLUMNS``); None for a file or pipe.

    Like ``ps``, a table written to a terminal fits it, while a file or a
    log keeps every name whole.
    """
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), 1)
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


#: ``--format`` of status, in the order the help lists them.
STATUS_FORMATS = ("text", "json", "openmetrics")


class StatusView(Protocol):
    """Writes one reading of the managed batches' progress (once, or once per redraw)."""

    def show(self, rows: Sequence[BatchProgress]) -> None: ...


@dataclass(frozen=True)
class StatusText:
    """The table, fitted to a terminal; with ``watch``, redrawn in place (repeated in a log)."""

    out: TextIO
    watch: float | None = None

    def show(self, rows: Sequence[BatchProgress]) -> None:
        text = status_text(rows, terminal_width(self.out))
        if self.watch is not None:
            header = (
                f"Every {self.watch:g} s, {time.strftime('%H:%M:%S')} "
                "(until no batch is in progress; Ctrl-C to stop)\n\n"
            )
            # On a terminal the table is redrawn in place; in a log it repeats.
            text = ("\x1b[H\x1b[2J" if self.out.isatty() else "\n") + header + text
        _write(self.out, text)


@dataclass(frozen=True)
class StatusJSON:
    """One document; with ``watch``, one document per line (JSON Lines)."""

    out: TextIO
    watch: float | None = None

    def show(self, rows: Sequence[BatchProgress]) -> None:
        document = status_json(rows)
        text = json.dumps(document) if self.watch else json.dumps(document, indent=2)
        _write(self.out, text + "\n")


@dataclass(frozen=True)
class StatusOpenMetrics:
    """One OpenMetrics exposition, for a textfile collector."""

    out: TextIO

    def show(self, rows: Sequence[BatchProgress]) -> None:
        _write(self.out, status_openmetrics(rows))


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


def status_view(output_format: str, out: TextIO, *, watch: float | None = None) -> StatusView:
    """The view ``--format`` chose; OpenMetrics is one exposition, so never with ``watch``."""
    if output_format == "openmetrics":
        if watch is not None:
            raise UsageError(
                "--watch does not apply to --format openmetrics: a metrics file holds one "
                "exposition (run status on a schedule instead)"
            )
        return StatusOpenMetrics(out)
    if output_format == "json":
        return StatusJSON(out, watch)
    return StatusText(out, watch)
