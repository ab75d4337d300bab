"""What apply reports while it works: typed events, read by the text and JSON views.

The engine never prints. It hands each event to one callback; a view turns
events into lines for people (``apply_view.TextView``) or into JSON Lines for
machines (``apply_view.JsonView``). ``schemas/apply-events.schema.json``
describes the JSON form of every event, field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

Outcome = Literal["done", "failed", "skipped"]


@dataclass(frozen=True)
class ApplyStart:
    """Apply is about to make its first change: ``batches`` changes, ``calls`` API calls."""

    type: ClassVar[str] = "apply_start"
    batches: int
    calls: int


@dataclass(frozen=True)
class CallEvent:
    """One action of one batch ended.

    ``attempts`` counts the HTTP attempts of the action's request (0 for the
    state-only ``adopt`` and ``forget``); ``ms`` is the whole action, retries
    and waits included. ``status`` is set for a create (the new batch's
    status), ``priority`` for a prioritize, ``existing`` for a create whose
    409 was recognised as this run's own earlier attempt. A ``skipped``
    finalize is one whose create answered ``in_progress``: nothing to do.
    """

    type: ClassVar[str] = "call"
    batch: str
    action: str
    outcome: Outcome
    attempts: int
    ms: float
    error: str | None = None
    status: str | None = None
    priority: int | None = None
    existing: bool = False


@dataclass(frozen=True)
class RetryEvent:
    """Attempt ``attempt`` of an action failed transiently; the next one follows in ``wait_s``."""

    type: ClassVar[str] = "retry"
    batch: str
    action: str
    attempt: int
    reason: str
    wait_s: float


@dataclass(frozen=True)
class InterruptedEvent:
    """The first Ctrl-C or SIGTERM: no new call or retry starts; ``in_flight`` calls end."""

    type: ClassVar[str] = "interrupted"
    in_flight: int


@dataclass(frozen=True)
class NotStartedEvent:
    """Actions of one batch that were never attempted.

    ``reason`` is ``after_failure`` (an earlier action of this batch failed)
    or ``stopped`` (apply stopped: an interrupt, ``--fail-fast``, or a state
    write that failed).
    """

    type: ClassVar[str] = "not_started"
    batch: str
    actions: tuple[str, ...]
    reason: Literal["after_failure", "stopped"]


@dataclass(frozen=True)
class SummaryEvent:
    """The last event: what was done, what failed, what is left, and how long it took.

    ``failed`` counts failed calls, ``not_started`` actions never attempted,
    ``calls`` the API calls that ended (done or failed), ``retries`` the
    attempts that were retried. ``result`` is ``complete``, ``failed`` or
    ``interrupted``.
    """

    type: ClassVar[str] = "summary"
    result: Literal["complete", "failed", "interrupted"]
    created: int
    metadata_set: int
    prioritized: int
    finalized: int
    adopted: int
    forgotten: int
    failed: int
    not_started: int
    calls: int
    retries: int
    elapsed_s: float
    state_error: str | None = None


ApplyEvent = ApplyStart | CallEvent | RetryEvent | InterruptedEvent | NotStartedEvent | SummaryEvent
EventSink = Callable[[ApplyEvent], None]


def to_json(event: ApplyEvent) -> dict[str, Any]:
    """The event as one JSON object, ``type`` first; optional fields left out when unset."""
    data: dict[str, Any] = {"type": event.type, **asdict(event)}
    if isinstance(event, CallEvent):
        for key in ("status", "priority"):
            if data[key] is None:
                del data[key]
        if not event.existing:
            del data["existing"]
    if isinstance(event, NotStartedEvent):
        data["actions"] = list(event.actions)
    return data
