"""``batchplan status``: how far the labeling of the managed batches has got.

Managed batches are those of the configuration and those in state. Each is
asked ``GET /batches/{name}/status`` once, concurrently; a 404 means the
batch is not created yet. No lock is taken: status only reads.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from batchplan import threads
from batchplan.api.client import NotFoundError, ScaleClient
from batchplan.api.session import Session
from batchplan.commands.arguments import StatusArguments
from batchplan.config.environments import settle
from batchplan.config.load import load_names
from batchplan.errors import EXIT_OK
from batchplan.model import IN_PROGRESS, Config
from batchplan.options import Options
from batchplan.state.location import read_state, state_backend
from batchplan.views.status import (
    NOT_CREATED,
    STATUS_FORMATS,
    BatchProgress,
    StatusView,
    status_json,
    status_openmetrics,
    status_text,
    status_view,
    totals,
)
from batchplan.views.terminal import tell

# Re-exported: the rows and renderers lived here before the views had their module.
__all__ = [
    "NOT_CREATED",
    "STATUS_FORMATS",
    "BatchProgress",
    "managed_batches",
    "read_progress",
    "run",
    "status",
    "status_json",
    "status_openmetrics",
    "status_text",
    "totals",
]


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
            name,
            project,
            answer.status,
            answer.tasks_pending,
            answer.tasks_completed,
            answer.tasks_error,
            answer.tasks_canceled,
        )

    pool = threads.Pool(max_workers=max(1, parallelism))
    try:
        rows = list(pool.map(one, batches))
    except KeyboardInterrupt:
        # Stop now: a call on the wire may take up to the read timeout to end.
        client.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return rows


def finished(rows: Sequence[BatchProgress]) -> bool:
    """No managed batch is in progress: waiting changes nothing any more.

    A batch not created, or staging (not finalized: its tasks are not being
    worked on), cannot complete by waiting, so it does not keep a watch
    running.
    """
    return all(row.status != IN_PROGRESS for row in rows)


def status(
    paths: Sequence[str],
    options: Options,
    *,
    fmt: str = "text",
    watch: float | None = None,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the managed batches' progress; with ``watch``, redraw until done or Ctrl-C (exit 0).

    ``watch`` ends once no managed batch is in progress. ``fmt`` is ``text``,
    ``json`` or ``openmetrics`` (one exposition, so not with ``watch``).
    """
    view = status_view(fmt, out or sys.stdout, watch=watch)
    config = load_names(paths, dict(options.variables))  # before any network call
    with Session(options) as session:
        batches = managed_batches(config, session)
        return _report(session.client, batches, options, view, watch, sleep)


def _report(
    client: ScaleClient,
    batches: Sequence[tuple[str, str]],
    options: Options,
    view: StatusView,
    watch: float | None,
    sleep: Callable[[float], None],
) -> int:
    try:
        while True:
            rows = read_progress(client, batches, options.parallelism)
            view.show(rows)
            if watch is None or finished(rows):
                return EXIT_OK
            sleep(watch)
    except KeyboardInterrupt:
        return EXIT_OK


def run(args: StatusArguments) -> int:
    """``batchplan status`` with its parsed arguments (``--env`` settled first)."""
    options = settle(args.paths, args.options, explicit=args.explicit, tell=tell)
    return status(args.paths, options, fmt=args.format, watch=args.watch)
