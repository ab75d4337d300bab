"""Carry out a plan: per batch in order, batches concurrently, state after every call.

Per batch the order is fixed (create, prioritize, finalize) and a failed call
stops that batch: a batch whose prioritize failed is never finalized. Other
batches carry on unless ``fail_fast``. When ``stop`` is set (Ctrl-C,
SIGTERM, a state write that failed), no new call starts; the calls in flight
end and their results are recorded.
"""

from __future__ import annotations

import datetime
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from batchplan.errors import ApiError, BatchplanError
from batchplan.model import STAGING, BatchRecord, DesiredBatch, same_callback
from batchplan.plan import Action, Change, Plan
from batchplan.scale import DuplicateBatchError, ScaleClient
from batchplan.state.writer import StateWriter

PAST = {
    Action.CREATE: "created",
    Action.ADOPT: "adopted",
    Action.PRIORITIZE: "prioritized",
    Action.FINALIZE: "finalized",
    Action.FORGET: "forgotten",
}


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
    interrupted: bool = False
    state_error: str | None = None

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


class _BatchRun:
    """The calls of one change, in order, each followed by its state record."""

    def __init__(
        self,
        change: Change,
        record: BatchRecord | None,
        client: ScaleClient,
        writer: StateWriter,
        should_stop: Callable[[], bool],
        report: Callable[[str], None],
        now: Callable[[], str],
    ) -> None:
        self.change = change
        self.record = record
        self.client = client
        self.writer = writer
        self.should_stop = should_stop
        self.report = report
        self.now = now
        self.outcome = BatchOutcome(change)
        self.status: str | None = change.before.status if change.before else None

    def _save(self, **fields: object) -> None:
        base = self.record or BatchRecord(name=self.change.batch, project=self.change.project)
        self.record = replace(base, updated_at=self.now(), **fields)  # type: ignore[arg-type]
        self.writer.record(self.record)

    def run(self) -> BatchOutcome:
        for action in self.change.actions:
            if action.calls_api and self.should_stop():
                break
            try:
                detail = self._do(action)
            except BatchplanError as exc:
                self.outcome.failed = action
                self.outcome.error = str(exc)
                self.report(f"{self.change.batch}: {action.value} failed: {exc}")
                break
            if detail is None:
                self.outcome.skipped.append(action)
                continue
            self.outcome.done.append(action)
            self.report(f"{self.change.batch}: {detail}")
        return self.outcome

    def _do(self, action: Action) -> str | None:
        """Run one action; return what to report, or None when it was not needed."""
        desired = self.change.desired
        if action is Action.FORGET:
            self.writer.forget(self.change.batch)
            return "forgotten (dropped from state; the batch is not deleted)"
        if action is Action.ADOPT:
            self._save()
            return "adopted into state"
        if action is Action.CREATE:
            assert desired is not None
            self.status = self._create(desired)
            self._save(
                calibration_batch=desired.calibration_batch,
                self_label_batch=desired.self_label_batch,
            )
            return f"created ({self.status})"
        if action is Action.SET_METADATA:
            # The whole object: live metadata with the configured keys applied.
            assert self.change.metadata_to_send is not None
            self.client.set_batch_metadata(self.change.batch, dict(self.change.metadata_to_send))
            return "metadata set"
        if action is Action.PRIORITIZE:
            assert desired is not None and desired.priority is not None
            self.client.prioritize_batch(self.change.batch, desired.priority)
            self._save(priority=desired.priority)
            return f"prioritized {desired.priority}"
        if self.change.finalize_if_staging and self.status != STAGING:
            # Non-Rapid projects start in_progress: there is nothing to finalize.
            return None
        self.client.finalize_batch(self.change.batch)
        self._save()
        return "finalized"

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
            self.report(
                f"{desired.name}: create answered 409 after an unanswered attempt; "
                "the batch matches, taking it as created"
            )
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
    report: Callable[[str], None] = lambda line: None,
    now: Callable[[], str] = utc_now,
) -> ApplyResult:
    """Run every change of ``plan``; never raises for a failed call.

    State-only changes (adopt without calls, forget) are recorded first.
    Then each batch's calls run in order on a pool of ``parallelism``
    workers. ``stop`` is watched between calls; Ctrl-C reaching this thread
    sets it too.
    """
    stop = stop or threading.Event()
    # Set when apply stops itself (--fail-fast, a bug), as opposed to a signal.
    halted = threading.Event()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            report(line)

    def should_stop() -> bool:
        if writer.error is not None:
            stop.set()
        return stop.is_set()

    def run(change: Change) -> BatchOutcome:
        outcome = _BatchRun(
            change, records.get(change.batch), client, writer, should_stop, say, now
        ).run()
        if fail_fast and outcome.failed is not None:
            halted.set()
            stop.set()
        return outcome

    outcomes: dict[str, BatchOutcome] = {}
    calling = []
    for change in plan.changes:
        if change.api_calls:
            calling.append(change)
        else:
            outcomes[change.batch] = run(change)

    # Workers hand their outcomes back through a queue: waiting on a set of
    # thousands of futures would cost the main thread O(pending) per wake-up.
    finished: queue.SimpleQueue[BatchOutcome] = queue.SimpleQueue()

    def task(change: Change) -> None:
        try:
            outcome = run(change)
        except Exception as exc:  # a bug must not lose the other batches' state
            outcome = BatchOutcome(change, failed=change.actions[0], error=f"unexpected {exc!r}")
            halted.set()
            stop.set()
        finished.put(outcome)

    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="apply") as pool:
        for change in calling:
            pool.submit(task, change)
        remaining = len(calling)
        while remaining:
            try:
                outcome = finished.get(timeout=0.2)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                stop.set()
                continue
            outcomes[outcome.change.batch] = outcome
            remaining -= 1
    interrupted = stop.is_set() and not halted.is_set() and writer.error is None

    state_error = None
    try:
        writer.flush()
    except BatchplanError as exc:
        state_error = str(exc)
    ordered = [outcomes[c.batch] for c in plan.changes if c.batch in outcomes]
    return ApplyResult(ordered, interrupted=interrupted, state_error=state_error)


def describe_result(result: ApplyResult) -> str:
    """The closing report: counts, then what failed and what is left."""
    counts = ", ".join(
        f"{result.count(action)} {PAST[action]}"
        for action in (
            Action.CREATE,
            Action.PRIORITIZE,
            Action.FINALIZE,
            Action.ADOPT,
            Action.FORGET,
        )
    )
    if result.ok:
        return f"Apply complete: {counts}.\n"
    lines = []
    heading = "Apply interrupted" if result.interrupted else "Apply failed"
    lines.append(f"{heading}: {counts}.")
    if result.failed:
        lines.append("Failed:")
        for outcome in result.failed:
            assert outcome.failed is not None
            lines.append(f"  {outcome.change.batch}: {outcome.failed.value}: {outcome.error}")
            after = ", ".join(a.value for a in outcome.not_started)
            if after:
                lines.append(f"    not attempted after it: {after}")
    if result.unfinished:
        lines.append("Not started (a new plan and apply will pick these up):")
        for outcome in result.unfinished:
            rest = ", ".join(a.value for a in outcome.not_started)
            lines.append(f"  {outcome.change.batch}: {rest}")
    if result.state_error:
        lines.append(f"State could not be saved: {result.state_error}")
        lines.append("The next plan reads live and adopts what was done; nothing is lost.")
    return "\n".join(lines) + "\n"
