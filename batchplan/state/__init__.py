"""What batchplan itself applied before, behind one small backend interface.

The state is needed because the API never returns a batch's priority. It
holds no secret: no API key, no callback (the API returns callbacks, and one
may carry a token). Backends store and lock it (``store.StateStore`` over a
backend's few primitives); this module is the document itself.

May import: the core (``errors``, ``model``, ``options``) and ``api`` (an endpoint's identity).
"""

from __future__ import annotations

import functools
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from batchplan.errors import StateError
from batchplan.files import parse_json
from batchplan.model import PRIORITY_MAX, PRIORITY_MIN, BatchRecord

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Damaged:
    """A record that failed validation: the located reason, and the entry as stored."""

    problem: str
    entry: Any = field(compare=False)


@dataclass(frozen=True)
class State:
    """One version of the state: ``serial`` grows by one per write.

    ``environment`` is the ``--env`` it belongs to (None without environments):
    a state of one environment is never read or written as another's.
    """

    lineage: str
    serial: int
    endpoint: str
    batches: Mapping[str, BatchRecord] = field(default_factory=dict)
    environment: str | None = None
    # Records that failed validation, kept as read (name -> why, raw entry) so
    # that ``state list``, ``state rm`` and ``state push --force`` can repair
    # a state holding one; every other command refuses such a state.
    damaged: Mapping[str, Damaged] = field(default_factory=dict)

    @classmethod
    def new(cls, endpoint: str, environment: str | None = None) -> State:
        return cls(
            lineage=str(uuid.uuid4()),
            serial=0,
            endpoint=endpoint,
            batches={},
            environment=environment,
        )

    def merged(self, updates: Mapping[str, BatchRecord | None]) -> State:
        """A copy with records replaced (``None`` drops one); serial unchanged."""
        batches = dict(self.batches)
        damaged = dict(self.damaged)
        for name, record in updates.items():
            damaged.pop(name, None)
            if record is None:
                batches.pop(name, None)
            else:
                batches[name] = record
        return replace(self, batches=batches, damaged=damaged)

    def successor(self, updates: Mapping[str, BatchRecord | None]) -> State:
        """The next version: records replaced (``None`` drops one), serial + 1.

        Every writer (apply's state writer, import, ``state rm``) makes the
        state it writes this way, so the backend's serial check holds.
        """
        return replace(self.merged(updates), serial=self.serial + 1)


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
    if state.environment is not None:
        head += f'  "environment": {_encode(state.environment)},\n'
    rows = [_record_line(name, record) for name, record in sorted(state.batches.items())]
    if state.damaged:
        # Kept as read, so that repairing one record never loses another.
        rows = [row for _, row in sorted(_rows_with_damaged(state))]
    if not rows:
        return head + '  "batches": {}\n}\n'
    return head + '  "batches": {\n' + ",\n".join(rows) + "\n  }\n}\n"


def _rows_with_damaged(state: State) -> Iterator[tuple[str, str]]:
    for name, record in state.batches.items():
        yield name, _record_line(name, record)
    for name, bad in state.damaged.items():
        yield name, f"    {_encode(name)}: {_encode(bad.entry)}"


def first_damaged(state: State) -> tuple[str, Damaged] | None:
    """The first damaged record by name, or None when every record is valid."""
    if not state.damaged:
        return None
    name = min(state.damaged)
    return name, state.damaged[name]


# Control characters (C0, DEL, C1) in a name or project: never valid, and
# they could disguise a line of terminal output.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_RECORD_FIELDS = frozenset(
    {"name", "project", "priority", "calibration_batch", "self_label_batch", "updated_at"}
)


def _optional(value: Any, kind: type, where: str) -> Any:
    if value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    expected = {int: "an integer", bool: "true or false", str: "a string"}[kind]
    raise StateError(f"{where}: expected {expected} or null, got {json.dumps(value)}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise StateError(f"{where}: expected a non-empty string, got {json.dumps(value)}")
    if _CONTROL.search(value):
        raise StateError(f"{where}: {value!r} holds a control character")
    return value


def _record(name: str, entry: Any, location: str) -> BatchRecord:
    """One record, checked field by field; each error names the file, batch and field."""
    where = f"{location}: batches[{json.dumps(name, ensure_ascii=False)}]"
    if not isinstance(entry, dict):
        raise StateError(f"{where}: expected an object, got {json.dumps(entry)}")
    unknown = sorted(set(entry) - _RECORD_FIELDS)
    if unknown:
        raise StateError(
            f"{where}: unknown field {unknown[0]!r} (a record holds "
            + ", ".join(sorted(_RECORD_FIELDS - {"name"}))
            + ")"
        )
    _text(name, f"{where} (the batch name)")
    if name in (".", ".."):
        raise StateError(f"{where}: {name!r} is not a batch name")
    if "name" in entry and entry["name"] != name:
        raise StateError(
            f"{where}.name: {json.dumps(entry['name'])} does not match its key "
            f"{json.dumps(name, ensure_ascii=False)}"
        )
    if "project" not in entry:
        raise StateError(f"{where}: 'project' is missing")
    priority = _optional(entry.get("priority"), int, f"{where}.priority")
    if priority is not None and not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise StateError(
            f"{where}.priority: {priority} is outside {PRIORITY_MIN} to {PRIORITY_MAX}"
        )
    return BatchRecord(
        name=name,
        project=_text(entry["project"], f"{where}.project"),
        priority=priority,
        calibration_batch=_optional(
            entry.get("calibration_batch"), bool, f"{where}.calibration_batch"
        ),
        self_label_batch=_optional(
            entry.get("self_label_batch"), bool, f"{where}.self_label_batch"
        ),
        updated_at=_optional(entry.get("updated_at"), str, f"{where}.updated_at"),
    )


class _DuplicateKey(Exception):
    """A JSON object names a key twice: json.loads would keep the last one silently."""


# Record fields whose values repeat from record to record: the project, and
# the time written (to the second, which many records share).
_SHARED_FIELDS = frozenset({"project", "updated_at"})


def _object_hook() -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json.loads`` pairs hook: refuses a key named twice; stores repeated values once.

    json.loads makes a new string for every value it reads, so 100,000
    records would hold 100,000 copies of their project; here each distinct
    value is kept once per read (a project is interned, so the live listing's
    batches share it too).
    """
    shared: dict[str, str] = {}

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, value in pairs:
            if key in document:
                raise _DuplicateKey(key)
            if key in _SHARED_FIELDS and type(value) is str:
                value = sys.intern(value) if key == "project" else shared.setdefault(value, value)
            document[key] = value
        return document

    return unique_keys


def loads(text: str, location: str, *, keep_damaged: bool = False) -> State:
    """Parse and check a state document; any damage is a ``StateError`` naming the place.

    Every record is checked (types, priority range, name), so a hand-edited
    or foreign state is refused where it is read, not deep in a plan. With
    ``keep_damaged`` a bad record is kept apart in ``State.damaged`` instead
    (damage to the document itself is still an error): the repair commands
    read a state that way.
    """
    try:
        document = parse_json(
            text, where=location, error=StateError, object_pairs_hook=_object_hook()
        )
    except _DuplicateKey as exc:
        raise StateError(f"{location}: key {json.dumps(str(exc))} appears twice") from None
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
    environment = document.get("environment")
    if environment is not None and (not isinstance(environment, str) or not environment):
        raise StateError(f"{location}: 'environment' must be a non-empty string")
    raw = document.get("batches", {})
    if not isinstance(raw, dict):
        raise StateError(f"{location}: 'batches' must be an object")
    if not keep_damaged:
        batches = {name: _record(name, entry, location) for name, entry in raw.items()}
        return State(lineage, serial, endpoint, batches, environment)
    batches, damaged = {}, {}
    for name, entry in raw.items():
        try:
            batches[name] = _record(name, entry, location)
        except StateError as exc:
            damaged[name] = Damaged(str(exc), entry)
    return State(lineage, serial, endpoint, batches, environment, damaged)


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
    """Where state lives. ``write`` must never lose a concurrent update.

    Both backends are a ``store.StateStore`` over their storage primitives;
    commands depend on this protocol only, so tests can wrap a backend.
    """

    location: str

    def read(self, *, keep_damaged: bool = False) -> State | None:
        """The stored state, or None when there is none yet.

        A bad record is a ``StateError``; with ``keep_damaged`` it is kept in
        ``State.damaged`` instead, for the commands that repair a state.
        """

    def write(self, state: State, *, force: bool = False) -> None:
        """Store ``state``, whose serial must be above the stored one, same lineage.

        Raises ``StateError`` if the stored state changed meanwhile (another
        writer): a lost update is never possible. ``force`` (``state push
        --force``) skips the lineage and serial checks.
        """

    def push(self, pushed: State, source: str, *, endpoint: str | None, force: bool) -> int | None:
        """``state push``: replace the stored state with ``pushed``, under the lock.

        Refuses another endpoint's state, another lineage, an older serial or
        the same serial with other content (unless ``force``). Returns the
        serial written, or None when the stored state is already ``pushed``.
        """

    def lock(self, operation: str, timeout: float) -> AbstractContextManager[LockInfo]:
        """Hold the lock for the block; wait up to ``timeout`` seconds for it."""

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock with this id (``state unlock``); returns who held it."""


def iter_sorted(state: State) -> Iterator[BatchRecord]:
    """The records by name, the order every listing shows them in."""
    for name in sorted(state.batches):
        yield state.batches[name]
