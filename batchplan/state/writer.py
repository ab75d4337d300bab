"""The one writer that makes state follow every successful call.

Records arrive from apply's workers at any rate; a single thread writes them.
While one write is in flight, the records that arrive meanwhile are merged,
and go out together in the next write. So a crash loses at most the records
of the write that was in flight, and the next plan's ``adopt`` rows recover
those.
"""

from __future__ import annotations

import threading

from batchplan import threads
from batchplan.errors import StateError
from batchplan.model import BatchRecord
from batchplan.state import State, StateBackend


class StateWriter:
    """Writes records to the backend as they arrive, from one thread, merging bursts."""

    def __init__(self, backend: StateBackend, state: State) -> None:
        self._backend = backend
        self._state = state
        self._pending: dict[str, BatchRecord | None] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._writing = False
        self.error: StateError | None = None
        self.writes = 0
        self._thread = threads.start("batchplan-state", self._run)

    @property
    def state(self) -> State:
        """The state as last written (not counting pending records)."""
        with self._cond:
            return self._state

    def record(self, record: BatchRecord) -> None:
        self._put(record.name, record)

    def forget(self, name: str) -> None:
        self._put(name, None)

    def _put(self, name: str, record: BatchRecord | None) -> None:
        with self._cond:
            if self.error is not None:
                raise self.error
            if self._closing:
                raise StateError("state writer is closed; this record would be lost")
            self._pending[name] = record
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                updates, self._pending = self._pending, {}
                base = self._state
                self._writing = True
            new = base.successor(updates)
            try:
                self._backend.write(new)
            except Exception as exc:
                # A failed write stops the writer; apply sees ``error`` and
                # starts no new call, since state could no longer follow.
                error = (
                    exc
                    if isinstance(exc, StateError)
                    else StateError(f"cannot write state {self._backend.location}: {exc}")
                )
                with self._cond:
                    self.error = error
                    self._pending = {**updates, **self._pending}
                    self._writing = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._state = new
                self.writes += 1
                self._writing = False
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until every record so far is written (or the writer failed)."""
        with self._cond:
            while (self._pending or self._writing) and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def close(self) -> None:
        """Write what is pending and stop the thread; raises the write error, if any."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if self.error is not None:
            raise self.error

    @property
    def unwritten(self) -> int:
        """Records not yet written (kept after a failed write, so none is silently lost)."""
        with self._cond:
            return len(self._pending)
