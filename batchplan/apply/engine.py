"""Carry out a plan: per batch in order, batches concurrently, state after every call.

Per batch the order is fixed (create, set_metadata, prioritize, finalize) and
a failed call stops that batch: a batch whose prioritize failed is never
finalized. Other batches carry on unless ``fail_fast``. When ``stop`` is set
(Ctrl-C, SIGTERM, a state write that failed), no new call starts; the calls
in flight end and their results are recorded.

The engine never prints: it reports through events (``batchplan.apply.events``)
and a view renders them.
"""

from __future__ import annotations

import datetime
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from batchplan import threads
from batchplan.api.client import Attempt, CallCancelled, DuplicateBatchError, ScaleClient
from batchplan.apply.events import (
    ApplyEvent,
    ApplyStart,
    CallEvent,
    EventSink,
    InterruptedEvent,
    NotStartedEvent,
    RetryEvent,
    SummaryEvent,
)
from batchplan.errors import ApiError, BatchplanError
from batchplan.model import STAGING, BatchRecord, DesiredBatch, same_callback
from batchplan.plan.changes import Action, Change, Plan
from batchplan.state.writer import StateWriter


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class BatchOutcome:
    """What happened to one change's actions."""

    change: Change
    done: list[Action] = field(default_factory=list)
    skipped: list[Action] = field(default_factory=list)
    failed: Action | None = None
    error: str | None = None

    @property
    def not_started(self) -> list[Action]:
        finished = {*self.done, *self.skipped}
        if self.failed is not None:
            finished.add(self.failed)
        return [a for a in self.change.actions if a not in finished]


@dataclass
class ApplyResult:
    outcomes: list[BatchOutcome]
    summary: SummaryEvent
    interrupted: bool = False
    state_error: str | None = None
    # The first event the view could not take (it raised): the calls went on.
    output_error: str | None = None

    @property
    def failed(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if o.failed is not None]

    @property
    def unfinished(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if o.failed is None and o.not_started]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unfinished and self.state_error is None

    def count(self, action: Action) -> int:
        return sum(action in o.done for o in self.outcomes)


@dataclass
class _Call:
    """One action in progress on a worker thread, as the attempt listener sees it."""

    batch: str
    action: Action
    path: str | None = None
    attempts: int = 0


class _Calls:
    """Which action each worker thread is running, so HTTP attempts map to actions.

    The client tells its listeners about every attempt on the calling thread;
    a thread-local "current call" turns those into ``retry`` events and
    attempt counts.
    """

    def __init__(self, emit_retry: Callable[[RetryEvent], bool]) -> None:
        # Emits a retry event unless the client is cancelled (no retry then).
        self._emit_retry = emit_retry
        self._local = threading.local()
        self._lock = threading.Lock()
        self._running: dict[int, _Call] = {}
        self.retries = 0

    @contextmanager
    def running(self, batch: str, action: Action) -> Iterator[_Call]:
        call = _Call(batch, action)
        ident = threading.get_ident()
        self._local.call = call
        with self._lock:
            self._running[ident] = call
        try:
            yield call
        finally:
            self._local.call = None
            with self._lock:
                del self._running[ident]

    def on_attempt(self, attempt: Attempt) -> None:
        call: _Call | None = getattr(self._local, "call", None)
        if call is None:
            return
        # The action's own request; a create's follow-up read is not counted.
        if call.path is None:
            call.path = attempt.path
        if attempt.path == call.path:
            call.attempts = attempt.attempt
        if attempt.retry_in is None:
            return
        reason = attempt.error or "failed"
        if attempt.status is not None:
            reason = f"HTTP {attempt.status}: {reason}"
        event = RetryEvent(
            call.batch, call.action.value, attempt.attempt, reason, round(attempt.retry_in, 2)
        )
        if self._emit_retry(event):
            with self._lock:
                self.retries += 1


class _BatchRun:
    """The calls of one change, in order, each followed by its state record."""

    def __init__(
        self,
        change: Change,
        record: BatchRecord | None,
        client: ScaleClient,
        writer: StateWriter,
        calls: _Calls,
        should_stop: Callable[[], bool],
        emit: EventSink,
        now: Callable[[], str],
    ) -> None:
        self.change = change
        self.record = record
        self.client = client
        self.writer = writer
        self.calls = calls
        self.should_stop = should_stop
        self.emit = emit
        self.now = now
        self.outcome = BatchOutcome(change)
        self.status: str | None = change.before.status if change.before else None
        self.existing = False

    def _save(self, **fields: object) -> None:
        base = self.record or BatchRecord(name=self.change.batch, project=self.change.project)
        self.record = replace(base, updated_at=self.now(), **fields)  # type: ignore[arg-type]
        self.writer.record(self.record)

    def run(self) -> BatchOutcome:
        for action in self.change.actions:
            if action.calls_api and self.should_stop():
                break
            started = time.monotonic()
            with self.calls.running(self.change.batch, action) as call:
                try:
                    done = self._do(action)
                except CallCancelled:
                    # Interrupted before or between attempts: not started, not failed.
                    break
                except BatchplanError as exc:
                    self.outcome.failed = action
                    self.outcome.error = str(exc)
                    self._tell(action, "failed", call, started, error=str(exc))
                    break
            if not done:
                self.outcome.skipped.append(action)
                self._tell(action, "skipped", call, started)
                continue
            self.outcome.done.append(action)
            self._tell(action, "done", call, started)
        return self.outcome

    def _tell(
        self, action: Action, outcome: str, call: _Call, started: float, error: str | None = None
    ) -> None:
        desired = self.change.desired
        self.emit(
            CallEvent(
                batch=self.change.batch,
                action=action.value,
                outcome=outcome,  # type: ignore[arg-type]
                attempts=call.attempts,
                ms=round((time.monotonic() - started) * 1000, 1),
                error=error,
                status=self.status if action is Action.CREATE and outcome == "done" else None,
                priority=desired.priority
                if action is Action.PRIORITIZE and desired is not None
                else None,
                existing=self.existing and action is Action.CREATE,
            )
        )

    def _do(self, action: Action) -> bool:
        """Run one action; False when it turned out not to be needed."""
        desired = self.change.desired
        name = self.change.batch
        if action is Action.FORGET:
            self.writer.forget(name)
        elif action is Action.ADOPT:
            self._save()
        elif action is Action.CREATE:
            assert desired is not None
            self.status = self._create(desired)
            self._save(
                calibration_batch=desired.calibration_batch,
                self_label_batch=desired.self_label_batch,
            )
        elif action is Action.SET_METADATA:
            # State keeps no metadata: its values may come from ${NAME}.
            # The diff computed the whole object: live keys with the configured ones applied.
            assert self.change.metadata_to_send is not None
            self.client.set_batch_metadata(name, dict(self.change.metadata_to_send))
            self._save()
        elif action is Action.PRIORITIZE:
            assert desired is not None and desired.priority is not None
            self.client.prioritize_batch(name, desired.priority)
            self._save(priority=desired.priority)
        else:
            if self.change.finalize_if_staging and self.status != STAGING:
                # Non-Rapid projects start in_progress: there is nothing to finalize.
                return False
            self.client.finalize_batch(name)
            self._save()
        return True

    def _create(self, desired: DesiredBatch) -> str:
        """Create the batch; adopt a 409 only if it can be this run's own create.

        A 409 is ours only when an earlier attempt of this very create ended
        without an answer and the batch now there matches project and
        callback. Anything else is someone else's batch: no further call.
        """
        try:
            return self.client.create_batch(desired).status
        except DuplicateBatchError as exc:
            if not exc.after_unknown_attempt:
                raise ApiError(
                    exc.method,
                    exc.path,
                    409,
                    f"{exc.api_message}; the name was taken after the plan was made, "
                    "so this batch gets no further call",
                ) from None
            live = self.client.get_batch(desired.name)
            if (
                live is None
                or live.project != desired.project
                or not same_callback(live.callback, desired.callback)
            ):
                raise ApiError(
                    exc.method,
                    exc.path,
                    409,
                    "the name is taken by a batch that does not match this create "
                    "(project or callback differ); it gets no further call",
                ) from None
            self.existing = True
            return live.status


def apply_plan(
    plan: Plan,
    client: ScaleClient,
    writer: StateWriter,
    records: Mapping[str, BatchRecord],
    *,
    parallelism: int = 8,
    fail_fast: bool = False,
    stop: threading.Event | None = None,
    emit: EventSink = lambda event: None,
    now: Callable[[], str] = utc_now,
) -> ApplyResult:
    """Run every change of ``plan``; never raises for a failed call.

    State-only changes (adopt without calls, forget) are recorded first.
    Then each batch's calls run in order on ``parallelism`` workers. ``stop``
    is watched between calls; once it is set by anyone but apply itself (a
    signal handler, a Ctrl-C reaching this thread), the client is cancelled
    too: no new attempt and no retry starts, and a call waiting to retry is
    abandoned (it counts as not started). Every event goes to ``emit``, one
    at a time.
    """
    stop = stop or threading.Event()
    # Set when apply stops itself (--fail-fast, a bug), as opposed to a signal.
    halted = threading.Event()
    lock = threading.Lock()
    clock = time.monotonic()

    output_errors: list[str] = []

    def tell(event: ApplyEvent) -> None:
        # Called under ``lock``. A view that fails (a bug; a closed stdout is
        # the view's own business) must not turn a call that was made into a
        # failure, nor stop the calls: the first such error is kept and told.
        try:
            emit(event)
        except Exception as exc:
            if not output_errors:
                output_errors.append(f"{type(exc).__name__}: {exc}")

    def say(event: ApplyEvent) -> None:
        with lock:
            tell(event)

    def say_retry(event: RetryEvent) -> bool:
        # Under the lock the interrupt is told with: a retry announced after
        # "interrupted" would never happen.
        with lock:
            if client.cancelled:
                return False
            tell(event)
            return True

    calls = _Calls(say_retry)
    client.add_listener(calls.on_attempt)

    def should_stop() -> bool:
        if writer.error is not None:
            halted.set()
            stop.set()
        return stop.is_set()

    def run(change: Change) -> BatchOutcome:
        outcome = _BatchRun(
            change, records.get(change.batch), client, writer, calls, should_stop, say, now
        ).run()
        if fail_fast and outcome.failed is not None:
            halted.set()
            stop.set()
        return outcome

    say(ApplyStart(batches=len(plan.changes), calls=plan.summary.api_calls))
    outcomes: dict[str, BatchOutcome] = {}
    calling = []
    for change in plan.changes:
        if change.api_calls:
            calling.append(change)
        else:
            outcomes[change.batch] = run(change)

    # Workers hand their outcomes back through a queue: waiting on a set of
    # thousands of futures would cost the main thread O(pending) per wake-up.
    # They are daemon threads, so a second Ctrl-C can end the process at once.
    todo: queue.SimpleQueue[Change | None] = queue.SimpleQueue()
    finished: queue.SimpleQueue[BatchOutcome] = queue.SimpleQueue()

    def worker() -> None:
        while (change := todo.get()) is not None:
            try:
                outcome = run(change)
            except Exception as exc:  # a bug must not lose the other batches' state
                outcome = BatchOutcome(
                    change, failed=change.actions[0], error=f"unexpected {exc!r}"
                )
                halted.set()
                stop.set()
            finished.put(outcome)

    workers = min(max(1, parallelism), len(calling))
    for change in calling:
        todo.put(change)
    for _ in range(workers):
        todo.put(None)
    for index in range(workers):
        threads.start(f"apply-{index}", worker)

    remaining = len(calling)
    cancelled = False
    while remaining:
        try:
            outcome = finished.get(timeout=0.1)
        except queue.Empty:
            pass
        except KeyboardInterrupt:
            if stop.is_set() and not halted.is_set():
                raise
            stop.set()
        else:
            outcomes[outcome.change.batch] = outcome
            remaining -= 1
        if stop.is_set() and not halted.is_set() and not cancelled:
            cancelled = True
            with lock:
                client.cancel()
                # Attempts on the wire now; those waiting for a slot or a retry
                # are cancelled and will not be sent.
                tell(InterruptedEvent(in_flight=client.in_flight))
    interrupted = stop.is_set() and not halted.is_set() and writer.error is None

    state_error = None
    try:
        writer.flush()
    except BatchplanError as exc:
        state_error = str(exc)
    ordered = [outcomes[c.batch] for c in plan.changes if c.batch in outcomes]
    for outcome in ordered:
        if outcome.not_started:
            say(
                NotStartedEvent(
                    outcome.change.batch,
                    tuple(a.value for a in outcome.not_started),
                    "after_failure" if outcome.failed is not None else "stopped",
                )
            )
    summary = _summary(ordered, calls.retries, time.monotonic() - clock, interrupted, state_error)
    say(summary)
    return ApplyResult(
        ordered,
        summary,
        interrupted=interrupted,
        state_error=state_error,
        output_error=output_errors[0] if output_errors else None,
    )


def _summary(
    outcomes: list[BatchOutcome],
    retries: int,
    elapsed: float,
    interrupted: bool,
    state_error: str | None,
) -> SummaryEvent:
    done = dict.fromkeys(Action, 0)
    for outcome in outcomes:
        for action in outcome.done:
            done[action] += 1
    failed = sum(o.failed is not None for o in outcomes)
    not_started = sum(len(o.not_started) for o in outcomes)
    calls = sum(n for action, n in done.items() if action.calls_api) + sum(
        o.failed is not None and o.failed.calls_api for o in outcomes
    )
    if interrupted:
        result = "interrupted"
    elif failed or not_started or state_error:
        result = "failed"
    else:
        result = "complete"
    return SummaryEvent(
        result=result,  # type: ignore[arg-type]
        created=done[Action.CREATE],
        metadata_set=done[Action.SET_METADATA],
        prioritized=done[Action.PRIORITIZE],
        finalized=done[Action.FINALIZE],
        adopted=done[Action.ADOPT],
        forgotten=done[Action.FORGET],
        failed=failed,
        not_started=not_started,
        calls=calls,
        retries=retries,
        elapsed_s=round(elapsed, 2),
        state_error=state_error,
    )
