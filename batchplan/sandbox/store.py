"""The sandbox's data: batches, projects and the event log in one SQLite file.

One connection guarded by one lock serves every request thread. A store
call takes tens of microseconds, a fraction of what the HTTP layer spends on
the same request (see docs/sandbox.md), so the lock is not what limits
throughput; and it makes each check-then-write (name taken? project
exists?) atomic without retry loops on ``SQLITE_BUSY``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchplan.errors import UsageError
from batchplan.model import COMPLETED, IN_PROGRESS, STAGING, STATUSES

# Implicit projects (every name exists unless strict) behave like Rapid ones:
# their batches start in staging, which is what a demo of finalize needs.
IMPLICIT_PROJECT_TYPE = "imageannotation"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    rapid INTEGER NOT NULL,
    studio INTEGER NOT NULL,
    params TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL,
    callback TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    metadata TEXT NOT NULL,
    priority INTEGER,
    calibration_batch INTEGER NOT NULL,
    self_label_batch INTEGER NOT NULL,
    tasks_pending INTEGER NOT NULL DEFAULT 0,
    tasks_completed INTEGER NOT NULL DEFAULT 0,
    tasks_error INTEGER NOT NULL DEFAULT 0,
    tasks_canceled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS batches_by_project ON batches (project, created_at, id);
CREATE INDEX IF NOT EXISTS batches_by_created ON batches (created_at, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    batch TEXT NOT NULL,
    detail TEXT
);
"""

# Task counts by task state, as the official client names them. The sandbox
# has no tasks: tests set these through /_sandbox.
TASK_STATES = ("pending", "completed", "error", "canceled")

_BATCH_COLUMNS = (
    "name, project, callback, status, created_at, completed_at, metadata, "
    "priority, calibration_batch, self_label_batch"
)


class NotFound(LookupError):
    """The named batch or project does not exist."""


class Duplicate(ValueError):
    """The name is already taken."""


def now() -> str:
    """The current time as the API writes it: ISO 8601, UTC, milliseconds, ``Z``."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """``moment`` (aware) in the API's timestamp format, so text order is time order."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class NewBatch:
    """A validated create request."""

    project: str
    name: str
    callback: str
    calibration_batch: bool
    self_label_batch: bool
    metadata: dict[str, Any]


@dataclass(frozen=True)
class BatchQuery:
    """Filters and page of ``GET /batches``; times already in the stored format."""

    project: str | None = None
    status: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    limit: int = 100
    offset: int = 0


def _metadata(text: str) -> Any:
    return {} if text == "{}" else json.loads(text)


def _batch(row: sqlite3.Row) -> dict[str, Any]:
    """The public batch object: never the priority or the create-time flags."""
    batch: dict[str, Any] = {
        "project": row["project"],
        "name": row["name"],
        "callback": row["callback"],
        "status": row["status"],
        "created_at": row["created_at"],
        "metadata": _metadata(row["metadata"]),
    }
    if row["completed_at"] is not None:
        batch["completed_at"] = row["completed_at"]
    return batch


def _record(row: sqlite3.Row) -> dict[str, Any]:
    """Everything kept about a batch, for ``/_sandbox`` and tests."""
    return {
        **_batch(row),
        "priority": row["priority"],
        "calibration_batch": bool(row["calibration_batch"]),
        "self_label_batch": bool(row["self_label_batch"]),
    }


def read_instance_id(path: str) -> str | None:
    """The instance id of the sandbox database at ``path``, read without changing anything.

    None when there is no database there yet, or one no sandbox has opened.
    Lets a command learn a sandbox's identity without serving it (``state push``).
    """
    file = Path(path)
    if not file.is_file():
        return None
    try:
        # Read-only: no table created, no id made, no journal switched.
        db = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            return None
        raise UsageError(f"sandbox database {path}: cannot read it ({exc})") from None
    return None if row is None else str(row[0])


class Store:
    """Batches, projects and events in one SQLite file; safe to share between threads."""

    def __init__(self, path: str, *, strict_projects: bool = False) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.strict_projects = strict_projects
        self._lock = threading.Lock()
        self._pages = _PageCache()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a crash of this process (the
        # case tests exercise) without an fsync per request.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()
        self.instance_id = self._meta("instance_id", lambda: uuid.uuid4().hex)
        self.created_at = self._meta("created_at", now)
        self._closed = False

    def _meta(self, key: str, make: Any) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row["value"])
        value = str(make())
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        return value

    def _add_missing_columns(self) -> None:
        """Bring a database written by an older sandbox up to date (columns added since)."""
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(batches)")}
        for state in TASK_STATES:
            if f"tasks_{state}" not in present:
                self._db.execute(
                    f"ALTER TABLE batches ADD COLUMN tasks_{state} INTEGER NOT NULL DEFAULT 0"
                )

    def close(self) -> None:
        """Close the database; later calls fail. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def _transaction(self) -> _Transaction:
        self._pages.forget()
        return _Transaction(self._db)

    def _event(self, kind: str, batch: str, detail: Any) -> None:
        self._db.execute(
            "INSERT INTO events (time, kind, batch, detail) VALUES (?, ?, ?, ?)",
            (now(), kind, batch, json.dumps(detail)),
        )

    def _row(self, name: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self._db.execute(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"batch {name!r} not found")
        return row

    # -- batches -------------------------------------------------------------

    def create_batch(self, new: NewBatch) -> dict[str, Any]:
        """Create a batch; its status follows its project's kind.

        Raises NotFound for a project that does not exist (strict mode) and
        Duplicate for a name used anywhere in the account.
        """
        with self._lock, self._transaction():
            project = self._project(new.project)
            if project is None:
                raise NotFound(f"project {new.project!r} not found")
            if self._db.execute("SELECT 1 FROM batches WHERE name = ?", (new.name,)).fetchone():
                raise Duplicate(f"a batch named {new.name!r} already exists")
            status = STAGING if project["rapid"] or project["studio"] else IN_PROGRESS
            self._db.execute(
                "INSERT INTO batches (name, project, callback, status, created_at, metadata,"
                " calibration_batch, self_label_batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.name,
                    new.project,
                    new.callback,
                    status,
                    now(),
                    json.dumps(new.metadata, separators=(",", ":")),
                    int(new.calibration_batch),
                    int(new.self_label_batch),
                ),
            )
            self._event("create", new.name, {"project": new.project, "status": status})
            return _batch(self._row(new.name))

    def batch(self, name: str) -> dict[str, Any]:
        """The public batch object; NotFound if absent."""
        with self._lock:
            return _batch(self._row(name))

    def record(self, name: str) -> dict[str, Any]:
        """The batch with its priority and create-time flags; NotFound if absent."""
        with self._lock:
            return _record(self._row(name))

    def finalize(self, name: str) -> tuple[dict[str, Any], bool]:
        """Move a staging batch to in_progress; other statuses are left alone.

        Returns the batch and whether anything changed.
        """
        with self._lock, self._transaction():
            row = self._row(name)
            if row["status"] != STAGING:
                return _batch(row), False
            self._db.execute("UPDATE batches SET status = ? WHERE name = ?", (IN_PROGRESS, name))
            self._event("finalize", name, {"from": STAGING, "to": IN_PROGRESS})
            return _batch(self._row(name)), True

    def prioritize(self, name: str, priority: int) -> None:
        """Record a batch's priority (the API never shows it)."""
        with self._lock, self._transaction():
            self._row(name)
            self._db.execute("UPDATE batches SET priority = ? WHERE name = ?", (priority, name))
            self._event("prioritize", name, priority)

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Replace a batch's metadata."""
        with self._lock, self._transaction():
            self._row(name)
            self._db.execute(
                "UPDATE batches SET metadata = ? WHERE name = ?",
                (json.dumps(metadata, separators=(",", ":")), name),
            )
            self._event("set_metadata", name, metadata)
            return _batch(self._row(name))

    def task_counts(self, name: str) -> tuple[str, dict[str, int]]:
        """A batch's status and its task counts by state; NotFound if absent."""
        columns = ", ".join(f"tasks_{state}" for state in TASK_STATES)
        with self._lock:
            row = self._db.execute(
                f"SELECT status, {columns} FROM batches WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFound(f"batch {name!r} not found")
        return row["status"], {state: row[f"tasks_{state}"] for state in TASK_STATES}

    def set_task_counts(self, name: str, counts: dict[str, int]) -> None:
        """Set some of a batch's task counts (keys from ``TASK_STATES``); others are kept."""
        unknown = set(counts) - set(TASK_STATES)
        if unknown:
            raise ValueError(f"unknown task state(s): {', '.join(sorted(unknown))}")
        if not counts:
            return
        assignments = ", ".join(f"tasks_{state} = ?" for state in counts)
        with self._lock, self._transaction():
            self._row(name)
            self._db.execute(
                f"UPDATE batches SET {assignments} WHERE name = ?", (*counts.values(), name)
            )
            self._event("tasks", name, counts)

    def complete(self, name: str) -> tuple[dict[str, Any], bool]:
        """Mark a batch completed, as if its last task were done."""
        with self._lock, self._transaction():
            row = self._row(name)
            if row["status"] == COMPLETED:
                return _batch(row), False
            self._db.execute(
                "UPDATE batches SET status = ?, completed_at = ? WHERE name = ?",
                (COMPLETED, now(), name),
            )
            self._event("complete", name, None)
            return _batch(self._row(name)), True

    def set_status(self, name: str, status: str) -> tuple[dict[str, Any], bool]:
        """Put a batch in any status, known or not (``paused``, ``cancelled``, ...).

        Real accounts hold statuses the reference does not list; tests use
        this to show batchplan one. Returns the batch and whether it changed.
        """
        if not status:
            raise ValueError("status must be a non-empty string")
        with self._lock, self._transaction():
            row = self._row(name)
            if row["status"] == status:
                return _batch(row), False
            completed = now() if status == COMPLETED else None
            self._db.execute(
                "UPDATE batches SET status = ?, completed_at = ? WHERE name = ?",
                (status, completed, name),
            )
            self._event("status", name, {"from": row["status"], "to": status})
            return _batch(self._row(name)), True

    def list_batches(self, query: BatchQuery) -> tuple[list[dict[str, Any]], int]:
        """One page, newest first (insertion order breaks ties), and the total count.

        Offset paging costs O(offset) in SQLite, so paging through 100,000
        batches would be quadratic. Each page therefore remembers where it
        ended; the next page of the same query starts there through the index.
        Both that and the total are forgotten on any write.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("project", "=", query.project),
            ("status", "=", query.status),
            ("created_at", ">=", query.start_time),
            ("created_at", "<=", query.end_time),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        key = (query.project, query.status, query.start_time, query.end_time)
        with self._lock:
            total = self._pages.total(key)
            if total is None:
                where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
                total = int(
                    self._db.execute(f"SELECT COUNT(*) FROM batches {where}", params).fetchone()[0]
                )
                self._pages.set_total(key, total)
            cursor = self._pages.cursor(key, query.offset)
            if cursor is None:
                rows = self._page(clauses, params, query.limit, query.offset)
            else:
                # Two index ranges, not "(created_at, id) < cursor": SQLite would
                # scan every row sharing the cursor's timestamp (a seed's all do).
                created_at, last_id = cursor
                rows = self._page(
                    [*clauses, "created_at = ?", "id < ?"],
                    [*params, created_at, last_id],
                    query.limit,
                    0,
                )
                if len(rows) < query.limit:
                    rows += self._page(
                        [*clauses, "created_at < ?"],
                        [*params, created_at],
                        query.limit - len(rows),
                        0,
                    )
            if rows:
                last = rows[-1]
                self._pages.set_cursor(
                    key, query.offset + len(rows), (last["created_at"], last["id"])
                )
        return [_batch(row) for row in rows], total

    def _page(
        self, clauses: list[str], params: list[Any], limit: int, offset: int
    ) -> list[sqlite3.Row]:
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._db.execute(
            f"SELECT id, {_BATCH_COLUMNS} FROM batches {where}"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()

    def count(self) -> int:
        """How many batches exist."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])

    def seed(
        self,
        project: str,
        prefix: str,
        count: int,
        status: str = STAGING,
        callback: str | None = None,
    ) -> int:
        """Insert ``count`` batches named ``f"{prefix}{i:06d}"`` in one transaction.

        For benchmarks and tests: no project check, one ``seed`` event for the
        lot. Raises Duplicate (and inserts nothing) if any name is taken.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        created = now()
        completed = created if status == COMPLETED else None
        rows = (
            (f"{prefix}{i:06d}", project, callback or "", status, created, completed)
            for i in range(count)
        )
        with self._lock, self._transaction():
            try:
                self._db.executemany(
                    "INSERT INTO batches (name, project, callback, status, created_at,"
                    " completed_at, metadata, calibration_batch, self_label_batch)"
                    " VALUES (?, ?, ?, ?, ?, ?, '{}', 0, 0)",
                    rows,
                )
            except sqlite3.IntegrityError as error:
                raise Duplicate(f"a batch name with prefix {prefix!r} already exists") from error
            self._event("seed", prefix, {"project": project, "count": count, "status": status})
        return count

    # -- projects ------------------------------------------------------------

    def _project(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT name, type, rapid, studio, params, created_at FROM projects WHERE name = ?",
            (name,),
        ).fetchone()
        if row is not None:
            return _project_json(row)
        if self.strict_projects:
            return None
        return self._implicit_project(name)

    def _implicit_project(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": IMPLICIT_PROJECT_TYPE,
            "param_history": [],
            "rapid": True,
            "studio": False,
            "created_at": self.created_at,
        }

    def project(self, name: str) -> dict[str, Any]:
        """The project, implicit unless strict; NotFound if it does not exist."""
        with self._lock:
            project = self._project(name)
        if project is None:
            raise NotFound(f"project {name!r} not found")
        return project

    def projects(self) -> list[dict[str, Any]]:
        """Created projects, plus (unless strict) the implicit ones that hold batches."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, type, rapid, studio, params, created_at FROM projects ORDER BY name"
            ).fetchall()
            implicit: list[str] = []
            if not self.strict_projects:
                implicit = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT DISTINCT project FROM batches"
                        " WHERE project NOT IN (SELECT name FROM projects) ORDER BY project"
                    )
                ]
        return [_project_json(row) for row in rows] + [self._implicit_project(n) for n in implicit]

    def create_project(
        self, name: str, type_: str, params: dict[str, Any] | None, rapid: bool, studio: bool
    ) -> dict[str, Any]:
        """Create a project; Duplicate if one of that name was created before."""
        with self._lock, self._transaction():
            try:
                self._db.execute(
                    "INSERT INTO projects (name, type, rapid, studio, params, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        type_,
                        int(rapid),
                        int(studio),
                        None if params is None else json.dumps(params),
                        now(),
                    ),
                )
            except sqlite3.IntegrityError as error:
                raise Duplicate(f"a project named {name!r} already exists") from error
            project = self._project(name)
        assert project is not None
        return project

    # -- events --------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every committed mutation, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, time, kind, batch, detail FROM events ORDER BY seq"
            ).fetchall()
        return [
            {
                "seq": row["seq"],
                "time": row["time"],
                "kind": row["kind"],
                "batch": row["batch"],
                "detail": json.loads(row["detail"]) if row["detail"] is not None else None,
            }
            for row in rows
        ]


def _project_json(row: sqlite3.Row) -> dict[str, Any]:
    # The official client reads the newest entry of param_history, with a
    # version, as the project's parameters.
    history = [] if row["params"] is None else [{**json.loads(row["params"]), "version": 0}]
    return {
        "name": row["name"],
        "type": row["type"],
        "param_history": history,
        "rapid": bool(row["rapid"]),
        "studio": bool(row["studio"]),
        "created_at": row["created_at"],
    }


_Key = tuple[str | None, str | None, str | None, str | None]


class _PageCache:
    """Totals and page-end positions of listings; valid until the next write."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._totals: dict[_Key, int] = {}
        self._cursors: dict[tuple[_Key, int], tuple[str, int]] = {}

    def forget(self) -> None:
        self._totals.clear()
        self._cursors.clear()

    def total(self, key: _Key) -> int | None:
        return self._totals.get(key)

    def set_total(self, key: _Key, total: int) -> None:
        if len(self._totals) >= self.LIMIT:
            self._totals.clear()
        self._totals[key] = total

    def cursor(self, key: _Key, offset: int) -> tuple[str, int] | None:
        return self._cursors.get((key, offset)) if offset else None

    def set_cursor(self, key: _Key, offset: int, position: tuple[str, int]) -> None:
        if len(self._cursors) >= self.LIMIT:
            self._cursors.clear()
        self._cursors[(key, offset)] = position


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
