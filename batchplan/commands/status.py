"""``batchplan status``: how far the labeling of the managed batches has got.

Managed batches are those of the configuration and those in state. Each is
asked ``GET /batches/{name}/status`` once, concurrently; a 404 means the
batch is not created yet. No lock is taken: status only reads.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from batchplan.api.client import NotFoundError, ScaleClient
from batchplan.api.session import Session
from batchplan.config.load import load_names
from batchplan.errors import EXIT_OK
from batchplan.model import COMPLETED, STATUSES, Config
from batchplan.options import Options
from batchplan.state.location import read_state, state_backend

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

    @property
    def percent(self) -> int | None:
        """Whole percent of tasks completed; None when there is nothing to count."""
        if self.tasks_pending is None or self.tasks_completed is None:
            return None
        total = self.tasks_pending + self.tasks_completed
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
        }


def managed_batches(config: Config, session: Session) -> list[tuple[str, str]]:
    """Every managed (name, project): the config's, then state's others."""
    state = read_state(
        state_backend(session.options, session.endpoint),
        session.endpoint,
        session.options.environment,
    )
    projects = {record.name: record.project for record in state.batches.values()}
    projects.update((batch.name, batch.project) for batch in config.batches)
    return sorted(projects.items(), key=lambda item: (item[1], item[0]))


def read_progress(
    client: ScaleClient, batches: Sequence[tuple[str, str]], parallelism: int
) -> list[BatchProgress]:
    """One status call per batch, ``parallelism`` at a time, in the order given."""

    def one(item: tuple[str, str]) -> BatchProgress:
        name, project = item
        try:
            answer = client.batch_status(name)
        except NotFoundError:
            return BatchProgress(name, project, NOT_CREATED)
        return BatchProgress(
            name, project, answer.status, answer.tasks_pending, answer.tasks_completed
        )

    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        return list(pool.map(one, batches))


def _tally(rows: Sequence[BatchProgress]) -> dict[str, int]:
    counts = {"batches": len(rows), NOT_CREATED: 0, **dict.fromkeys(STATUSES, 0)}
    counts["tasks_pending"] = counts["tasks_completed"] = 0
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        counts["tasks_pending"] += row.tasks_pending or 0
        counts["tasks_completed"] += row.tasks_completed or 0
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


def _tasks(pending: int, completed: int) -> str:
    return f"{completed}/{pending + completed} tasks"


def _summary_line(label: str, tally: dict[str, int]) -> str:
    parts = [
        f"{tally[key]} {key.replace('_', ' ')}"
        for key in (*STATUSES, NOT_CREATED)
        if tally.get(key)
    ]
    pending, completed = tally["tasks_pending"], tally["tasks_completed"]
    total = pending + completed
    done = f", {completed} of {total} tasks done ({100 * completed // total}%)" if total else ""
    batches = "1 batch" if tally["batches"] == 1 else f"{tally['batches']} batches"
    return f"{label}: {batches} ({', '.join(parts)}){done}"


def status_text(rows: Sequence[BatchProgress]) -> str:
    """A table, a bar per batch, then a total line per project (and for all, if several)."""
    if not rows:
        return "No managed batches: the configuration and state name none.\n"
    name_width = max(len("BATCH"), *(len(row.name) for row in rows))
    project_width = max(len("PROJECT"), *(len(row.project) for row in rows))
    status_width = len("not created")
    lines = [
        f"{'PROJECT':<{project_width}}  {'BATCH':<{name_width}}  "
        f"{'STATUS':<{status_width}}  {'PROGRESS':<{BAR_WIDTH + 7}}  TASKS"
    ]
    for row in rows:
        status = row.status.replace("_", " ") if row.status == NOT_CREATED else row.status
        line = f"{row.project:<{project_width}}  {row.name:<{name_width}}  {status:<{status_width}}"
        if row.tasks_pending is not None and row.tasks_completed is not None:
            line += f"  {bar(row.percent)}  {_tasks(row.tasks_pending, row.tasks_completed)}"
        lines.append(line.rstrip())
    summary = totals(rows)
    lines.append("")
    for project, tally in summary["projects"].items():
        lines.append(_summary_line(project, tally))
    if len(summary["projects"]) > 1:
        lines.append(_summary_line("All projects", summary["all"]))
    return "\n".join(lines) + "\n"


def finished(rows: Sequence[BatchProgress]) -> bool:
    """Every created batch is completed (a batch not created cannot complete by waiting)."""
    return all(row.status in (COMPLETED, NOT_CREATED) for row in rows)


def status(
    paths: Sequence[str],
    options: Options,
    *,
    fmt: str = "text",
    watch: float | None = None,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the managed batches' progress; with ``watch``, redraw until done or Ctrl-C (exit 0)."""
    out = out or sys.stdout
    config = load_names(paths, dict(options.variables))  # before any network call
    with Session(options) as session:
        batches = managed_batches(config, session)
        return _report(session.client, batches, options, fmt, watch, out, sleep)


def _report(
    client: ScaleClient,
    batches: Sequence[tuple[str, str]],
    options: Options,
    fmt: str,
    watch: float | None,
    out: TextIO,
    sleep: Callable[[float], None],
) -> int:
    screen = watch is not None and fmt == "text" and out.isatty()
    try:
        while True:
            rows = read_progress(client, batches, options.parallelism)
            if fmt == "json":
                document = status_json(rows)
                text = (json.dumps(document) if watch else json.dumps(document, indent=2)) + "\n"
            else:
                text = status_text(rows)
                if watch is not None:
                    header = (
                        f"Every {watch:g} s, {time.strftime('%H:%M:%S')} "
                        "(until every created batch is completed; Ctrl-C to stop)\n\n"
                    )
                    # On a terminal the table is redrawn in place; in a log it repeats.
                    text = ("\x1b[H\x1b[2J" if screen else "\n") + header + text
            out.write(text)
            out.flush()
            if watch is None or finished(rows):
                return EXIT_OK
            sleep(watch)
    except KeyboardInterrupt:
        return EXIT_OK
