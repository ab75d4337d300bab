"""The Scale-compatible ``/v1`` endpoints: validation, then one store call each."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from batchplan.model import PRIORITY_MAX, PRIORITY_MIN
from batchplan.sandbox.messages import ErrorReply, Reply, Request, describe, ok
from batchplan.sandbox.routing import PLACEHOLDER, Route
from batchplan.sandbox.store import BatchQuery, NewBatch, Store, format_time

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TRUE = ("true", "1")
_FALSE = ("false", "0")


def _string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise ErrorReply(400, f"{field} is required")
    if not isinstance(value, str):
        raise ErrorReply(400, f"{field} must be a string, not {describe(value)}")
    if not value.strip():
        raise ErrorReply(400, f"{field} must not be empty")
    return value


def _flag(body: dict[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ErrorReply(400, f"{field} must be a boolean, not {describe(value)}")
    return value


def _object(body: dict[str, Any], field: str) -> dict[str, Any] | None:
    value = body.get(field)
    if value is not None and not isinstance(value, dict):
        raise ErrorReply(400, f"{field} must be an object, not {describe(value)}")
    return value


def _callback(body: dict[str, Any]) -> str:
    value = body.get("callback")
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ErrorReply(400, f"callback must be a string, not {describe(value)}")
    if _EMAIL.fullmatch(value) or _is_http_url(value):
        return value
    # The value may hold a token: the answer does not repeat it.
    raise ErrorReply(400, "callback must be an http(s) URL with a host, or an e-mail address")


def _is_http_url(value: str) -> bool:
    """Whether ``value`` parses as an http(s) URL with a host and a numeric port, if any."""
    try:
        url = urlsplit(value)
        # .port raises for a port that is no number or out of range.
        url.port  # noqa: B018
    except ValueError:
        # "https://[::1" and the like: a bad request, not a server error.
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)


def create_batch(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /batches``: 400 for a bad body, 404 for an unknown project, 409 for a taken name."""
    body = request.json_object()
    new = NewBatch(
        name=_string(body, "name"),
        project=_string(body, "project"),
        callback=_callback(body),
        calibration_batch=_flag(body, "calibration_batch"),
        self_label_batch=_flag(body, "self_label_batch"),
        metadata=_object(body, "metadata") or {},
    )
    return ok(store.create_batch(new), committed=True)


def get_batch(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /batches/{name}``."""
    return ok(store.batch(args[0]))


def batch_status(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /batches/{name}/status``: the reference's and the official client's counters."""
    return ok(status_body(store, args[0]))


def status_body(store: Store, name: str) -> dict[str, Any]:
    """The status answer: the reference names two counts, the official client reads four."""
    status, counts = store.task_counts(name)
    return {
        "status": status,
        "tasks_pending": counts["pending"],
        "tasks_completed": counts["completed"],
        **counts,
    }


def finalize(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /batches/{name}/finalize``: any body is ignored (the reference shows one)."""
    batch, changed = store.finalize(args[0])
    return ok(batch, committed=changed)


def prioritize(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /batches/{name}/prioritize`` with ``{"priority": N}``, N from 10 to 30."""
    priority = request.json_object().get("priority")
    # bool is an int subclass in Python, but true is not a priority.
    if type(priority) is not int or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        shown = describe(priority) if type(priority) is not int else priority
        raise ErrorReply(
            400, f"priority must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX}, not {shown}"
        )
    store.prioritize(args[0], priority)
    return ok({"result": "success"}, committed=True)


def set_metadata(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /batches/{name}/setMetadata``: the body is the new metadata."""
    metadata = request.json_object() if request.body.strip() else {}
    return ok(store.set_metadata(args[0], metadata), committed=True)


def _int_param(query: dict[str, str], field: str, default: int, low: int, high: int) -> int:
    text = query.get(field, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ErrorReply(400, f"{field} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        bounds = f"from {low} to {high}" if high < 2**62 else f"of at least {low}"
        raise ErrorReply(400, f"{field} must be an integer {bounds}, not {value}")
    return value


def _time_param(query: dict[str, str], field: str) -> str | None:
    text = query.get(field, "")
    if text == "":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ErrorReply(400, f"{field} must be an ISO 8601 date or time, not {text!r}") from None
    try:
        return format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except OverflowError:
        # e.g. 9999-12-31T23:59-23:59, which is past the last time in UTC
        raise ErrorReply(400, f"{field} is out of range in UTC: {text!r}") from None


def _bool_param(query: dict[str, str], field: str) -> None:
    text = query.get(field, "").lower()
    if text and text not in _TRUE + _FALSE:
        raise ErrorReply(400, f"{field} must be true or false, not {query[field]!r}")


def list_batches(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /batches``: filtered, newest first, paged by limit and offset."""
    query = request.query
    # Any status filters: an account may hold ``paused``, ``cancelled`` or
    # statuses not known yet, and a filter on one lists those batches.
    status = query.get("status") or None
    # Accepted for compatibility: nothing is archived, and details are not kept.
    _bool_param(query, "exclude_archived")
    _bool_param(query, "detailed")
    page = BatchQuery(
        project=query.get("project") or None,
        status=status,
        start_time=_time_param(query, "start_time"),
        end_time=_time_param(query, "end_time"),
        limit=_int_param(query, "limit", 100, 1, 100),
        offset=_int_param(query, "offset", 0, 0, 2**63 - 1),
    )
    docs, total = store.list_batches(page)
    return ok(
        {
            "docs": docs,
            "totalDocs": total,
            "limit": page.limit,
            "offset": page.offset,
            "has_more": page.offset + len(docs) < total,
        }
    )


def list_projects(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /projects``: a bare array."""
    return ok(store.projects())


def get_project(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``GET /projects/{name}``: 404 unless it exists (every name does unless strict)."""
    return ok(store.project(args[0]))


def create_project(store: Store, request: Request, args: tuple[str, ...]) -> Reply:
    """``POST /projects``: ``type`` and ``name`` required; 409 if created before."""
    body = request.json_object()
    type_ = _string(body, "type")
    name = _string(body, "name")
    project = store.create_project(
        name,
        type_,
        params=_object(body, "params"),
        rapid=_flag(body, "rapid"),
        studio=_flag(body, "studio"),
    )
    return ok(project, committed=True)


_NAME = PLACEHOLDER
ROUTES: list[Route[Store]] = [
    Route(("batches",), {"GET": list_batches, "POST": create_batch}),
    Route(("batches", _NAME), {"GET": get_batch}),
    Route(("batches", _NAME, "status"), {"GET": batch_status}),
    Route(("batches", _NAME, "finalize"), {"POST": finalize}),
    Route(("batches", _NAME, "prioritize"), {"POST": prioritize}),
    Route(("batches", _NAME, "setMetadata"), {"POST": set_metadata}),
    Route(("projects",), {"GET": list_projects, "POST": create_project}),
    Route(("projects", _NAME), {"GET": get_project}),
]
