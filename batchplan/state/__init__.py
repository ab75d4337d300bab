"""What batchplan itself applied before, behind one small backend interface.

The state is needed because the API never returns a batch's priority. It
holds no secret: no API key, no callback (the API returns callbacks, and one
may carry a token).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from batchplan.errors import StateError
from batchplan.model import BatchRecord

FORMAT_VERSION = 1


@dataclass(frozen=True)
class State:
    """One version of the state: ``serial`` grows by one per write."""

    lineage: str
    serial: int
    endpoint: str
    batches: Mapping[str, BatchRecord] = field(default_factory=dict)

    @classmethod
    def new(cls, endpoint: str) -> State:
        return cls(lineage=str(uuid.uuid4()), serial=0, endpoint=endpoint, batches={})

    def merged(self, updates: Mapping[str, BatchRecord | None]) -> State:
        """A copy with records replaced (``None`` drops one); serial unchanged."""
        batches = dict(self.batches)
        for name, record in updates.items():
            if record is None:
                batches.pop(name, None)
            else:
                batches[name] = record
        return replace(self, batches=batches)

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(record.project for record in self.batches.values())


_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


@functools.lru_cache(maxsize=250_000)
def _record_line(name: str, record: BatchRecord) -> str:
    """One batch's line; cached, as apply rewrites the state with few records changed."""
    fields = {
        "project": record.project,
        "priority": record.priority,
        "calibration_batch": record.calibration_batch,
        "self_label_batch": record.self_label_batch,
        "updated_at": record.updated_at,
    }
    return f"    {_encode(name)}: {_encode(fields)}"


def dumps(state: State) -> str:
    """Canonical JSON: stable key order, one batch per line, newline at end.

    Each record is encoded on its own line with the C JSON encoder
    (``indent`` would switch to the pure-Python one), and lines are cached:
    apply rewrites the state after every few calls, and the writer must not
    hog the interpreter the request threads share.
    """
    head = (
        "{\n"
        f'  "format_version": {FORMAT_VERSION},\n'
        f'  "lineage": {_encode(state.lineage)},\n'
        f'  "serial": {state.serial},\n'
        f'  "endpoint": {_encode(state.endpoint)},\n'
    )
    rows = [_record_line(name, record) for name, record in sorted(state.batches.items())]
    if not rows:
        return head + '  "batches": {}\n}\n'
    return head + '  "batches": {\n' + ",\n".join(rows) + "\n  }\n}\n"


def _optional(value: Any, kind: type, where: str) -> Any:
    if value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    raise StateError(f"{where}: expected {kind.__name__} or null, got {value!r}")


def loads(text: str, location: str) -> State:
    """Parse and check a state document; any damage is a ``StateError`` naming the place."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{location}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise StateError(f"{location}: a state file holds a JSON object")
    if document.get("format_version") != FORMAT_VERSION:
        raise StateError(
            f"{location}: format_version {document.get('format_version')!r} is not supported "
            f"(this batchplan reads {FORMAT_VERSION})"
        )
    lineage, serial, endpoint = (
        document.get("lineage"),
        document.get("serial"),
        document.get("endpoint"),
    )
    if not isinstance(lineage, str) or not lineage:
        raise StateError(f"{location}: 'lineage' is missing")
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise StateError(f"{location}: 'serial' must be a non-negative integer")
    if not isinstance(endpoint, str) or not endpoint:
        raise StateError(f"{location}: 'endpoint' is missing")
    raw = document.get("batches", {})
    if not isinstance(raw, dict):
        raise StateError(f"{location}: 'batches' must be an object")
    batches = {}
    for name, entry in raw.items():
        where = f"{location}: batches[{name!r}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("project"), str):
            raise StateError(f"{where}: expected an object with a 'project'")
        batches[name] = BatchRecord(
            name=name,
            project=entry["project"],
            priority=_optional(entry.get("priority"), int, f"{where}.priority"),
            calibration_batch=_optional(
                entry.get("calibration_batch"), bool, f"{where}.calibration_batch"
            ),
            self_label_batch=_optional(
                entry.get("self_label_batch"), bool, f"{where}.self_label_batch"
            ),
            updated_at=_optional(entry.get("updated_at"), str, f"{where}.updated_at"),
        )
    return State(lineage=lineage, serial=serial, endpoint=endpoint, batches=batches)


@dataclass(frozen=True)
class LockInfo:
    """Who holds a state lock; shown when another run is refused."""

    id: str
    operation: str
    who: str
    host: str
    pid: int
    created: str

    def describe(self) -> str:
        return (
            f"lock {self.id} held by {self.who} (pid {self.pid} on {self.host}) "
            f"for '{self.operation}' since {self.created}"
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "operation": self.operation,
                "who": self.who,
                "host": self.host,
                "pid": self.pid,
                "created": self.created,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> LockInfo | None:
        try:
            data = json.loads(text)
            return cls(
                id=str(data["id"]),
                operation=str(data["operation"]),
                who=str(data["who"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                created=str(data["created"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class StateBackend(Protocol):
    """Where state lives. ``write`` must never lose a concurrent update."""

    location: str

    def read(self) -> State | None:
        """The stored state, or None when there is none yet."""

    def write(self, state: State, *, force: bool = False) -> None:
        """Store ``state``, whose serial must be above the stored one, same lineage.

        Raises ``StateError`` if the stored state changed meanwhile (another
        writer): a lost update is never possible. ``force`` (``state push
        --force``) skips the lineage and serial checks.
        """

    def lock(self, operation: str, timeout: float) -> AbstractContextManager[LockInfo]:
        """Hold the lock for the block; wait up to ``timeout`` seconds for it."""

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock with this id (``state unlock``); returns who held it."""


def iter_sorted(state: State) -> Iterator[BatchRecord]:
    for name in sorted(state.batches):
        yield state.batches[name]
