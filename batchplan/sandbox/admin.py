"""Test-only ``/_sandbox`` endpoints: what the real API hides, and knobs for tests.

None of them is delayed, faulted or rate-limited, so a test can always look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchplan.model import STAGING, STATUSES
from batchplan.sandbox.api import status_body
from batchplan.sandbox.messages import ErrorReply, Reply, Request, describe, ok
from batchplan.sandbox.routing import PLACEHOLDER, Route
from batchplan.sandbox.store import TASK_STATES

if TYPE_CHECKING:
    from batchplan.sandbox.app import SandboxApp


def info(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/info``: the instance id and how many batches exist."""
    return ok({"instance_id": app.store.instance_id, "batches": app.store.count()})


def batch_record(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/batches/{name}``: the batch with its priority and create-time flags."""
    return ok(app.store.record(args[0]))


def complete(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/batches/{name}/complete``: as if its last task were done."""
    batch, changed = app.store.complete(args[0])
    return ok(batch, committed=changed)


def set_status(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/batches/{name}/status``: ``{"status": S}`` puts the batch in status S.

    Any non-empty string is taken (``paused``, ``cancelled``, or one no API
    has yet): real accounts hold statuses the reference does not list.
    """
    status = request.json_object().get("status")
    if not isinstance(status, str) or not status:
        raise ErrorReply(400, f"status must be a non-empty string, not {describe(status)}")
    batch, changed = app.store.set_status(args[0], status)
    return ok(batch, committed=changed)


def set_tasks(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/batches/{name}/tasks``: set task counts, e.g. ``{"pending": 3}``.

    Keys from pending, completed, error, canceled; the ones not given are kept.
    Answers what ``GET /v1/batches/{name}/status`` now answers.
    """
    body = request.json_object()
    unknown = sorted(set(body) - set(TASK_STATES))
    if unknown or not body:
        raise ErrorReply(
            400,
            f"give task counts by state ({', '.join(TASK_STATES)})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
        )
    for state, count in body.items():
        if type(count) is not int or count < 0:
            shown = count if type(count) is int else describe(count)
            raise ErrorReply(400, f"{state} must be an integer >= 0, not {shown}")
    app.store.set_task_counts(args[0], body)
    return ok(status_body(app.store, args[0]), committed=True)


def requests_log(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/requests``: every ``/v1`` request since start or the last clear."""
    return ok({"requests": app.log.entries()})


def clear_requests(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``DELETE /_sandbox/requests``."""
    app.log.clear()
    return ok({"result": "success"})


def events(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/events``: the persistent log of committed mutations."""
    return ok({"events": app.store.events()})


def seed(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/seed``: bulk-insert ``count`` batches ``{prefix}{i:06d}``."""
    body = request.json_object()
    project, prefix = body.get("project"), body.get("prefix", "")
    count, status = body.get("count"), body.get("status", STAGING)
    callback = body.get("callback")
    if not isinstance(project, str) or not project:
        raise ErrorReply(400, f"project must be a non-empty string, not {describe(project)}")
    if not isinstance(prefix, str):
        raise ErrorReply(400, f"prefix must be a string, not {describe(prefix)}")
    if type(count) is not int or count < 0:
        raise ErrorReply(400, f"count must be an integer >= 0, not {describe(count)}")
    if status not in STATUSES:
        raise ErrorReply(400, f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if callback is not None and not isinstance(callback, str):
        raise ErrorReply(400, f"callback must be a string, not {describe(callback)}")
    created = app.store.seed(project, prefix, count, status=status, callback=callback)
    return ok({"created": created}, committed=True)


def faults(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /_sandbox/faults``: the current fault settings."""
    return ok(app.faults.settings())


def configure_faults(app: SandboxApp, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /_sandbox/faults``: change latency_ms / fault_rate / rate_limit while running."""
    changes: dict[str, Any] = request.json_object()
    try:
        app.faults.configure(changes)
    except ValueError as error:
        raise ErrorReply(400, str(error)) from error
    return ok(app.faults.settings())


ROUTES: list[Route[SandboxApp]] = [
    Route(("info",), {"GET": info}),
    Route(("batches", PLACEHOLDER), {"GET": batch_record}),
    Route(("batches", PLACEHOLDER, "complete"), {"POST": complete}),
    Route(("batches", PLACEHOLDER, "tasks"), {"POST": set_tasks}),
    Route(("batches", PLACEHOLDER, "status"), {"POST": set_status}),
    Route(("requests",), {"GET": requests_log, "DELETE": clear_requests}),
    Route(("events",), {"GET": events}),
    Route(("seed",), {"POST": seed}),
    Route(("faults",), {"GET": faults, "POST": configure_faults}),
]
