"""The making of the calls, as ``batchplan apply`` runs it: its output, its signals, its state.

``ApplyOutput`` is chosen by ``--format`` and ``--compact``: where the plan
goes, which view renders apply's events, and the run itself (the state
writer, Ctrl-C and SIGTERM handling, the exit code).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from batchplan.api.client import ScaleClient
from batchplan.apply.engine import apply_plan
from batchplan.apply.events import ApplyStart, SummaryEvent
from batchplan.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, BatchplanError, UsageError
from batchplan.model import BatchRecord
from batchplan.plan.changes import Plan
from batchplan.redact import redact
from batchplan.state import State, StateBackend
from batchplan.state.writer import StateWriter
from batchplan.views.apply import (
    APPLY_VIEW,
    HEARTBEAT_SECONDS,
    STOPPED_NOW,
    GuardedStream,
    JsonView,
    OutputTrouble,
    Stream,
    TextView,
)

FORMATS = ("text", "json")


class StopNow(KeyboardInterrupt):
    """A second Ctrl-C or SIGTERM: leave at once, without waiting for calls in flight."""


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While applying, the first Ctrl-C or SIGTERM asks for a clean stop; the second ends it.

    The first sets ``stop``: apply starts no call and no retry, lets the calls
    on the wire end, saves state and exits 130. The second raises
    ``StopNow`` in the main thread: apply is left at once (state writes are
    atomic, so the file stays valid), still exit 130.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = 0

    def handler(_signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received > 1:
            raise StopNow
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def heartbeat_seconds() -> float:
    """Seconds between "still applying" lines without a terminal (BATCHPLAN_PROGRESS_INTERVAL)."""
    text = os.environ.get("BATCHPLAN_PROGRESS_INTERVAL", "").strip()
    if not text:
        return HEARTBEAT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(
            f"BATCHPLAN_PROGRESS_INTERVAL must be a number of seconds > 0, not {text!r}"
        )
    return value


NOTHING_DONE = SummaryEvent(
    result="complete",
    created=0,
    metadata_set=0,
    prioritized=0,
    finalized=0,
    adopted=0,
    forgotten=0,
    failed=0,
    not_started=0,
    calls=0,
    retries=0,
    elapsed_s=0.0,
)


class ApplyOutput:
    """What ``apply`` prints, for one ``--format`` (``text`` or ``json``) and ``--compact``.

    ``json`` writes apply's events as JSON Lines on ``out`` and nothing else
    there: the plan goes to ``err``. ``text`` prints the plan, a line per
    call (only failures with ``compact``) and the summary on ``out``, and the
    progress on ``err``.
    """

    def __init__(
        self,
        fmt: str,
        compact: bool,
        echo: Callable[[str], None],
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fmt = fmt
        self.compact = compact
        self.echo = echo
        real_err: Stream = err or sys.stderr
        # A closed stdout (apply piped to `head`) or stderr is told once and
        # never stops the calls or the saving of state.
        self.trouble = OutputTrouble(real_err)
        self.out = GuardedStream(out or sys.stdout, "stdout", self.trouble)
        self.err = GuardedStream(real_err, "stderr", self.trouble)
        self.heartbeat = heartbeat_seconds()

    def check_approval(self, auto_approve: bool) -> None:
        """JSON output cannot ask: it needs --auto-approve or a saved plan (which approves)."""
        if self.fmt == "json" and not auto_approve:
            raise UsageError(
                "apply --format json cannot ask for approval: "
                "add --auto-approve, or apply a saved plan file"
            )

    def show_plan(self, text: str) -> None:
        """The plan before the calls: on stdout as text, on stderr beside JSON events."""
        if self.fmt == "json":
            self.err.write(text + "\n")
            self.err.flush()
        elif not self.out.broken:
            try:
                self.echo(text)
            except (OSError, ValueError) as exc:
                self.out.broken = True
                self.trouble.tell("stdout", exc)

    def _view(self) -> TextView | JsonView:
        if self.fmt == "json":
            return JsonView(self.out, self.err)
        return TextView(
            self.out,
            self.err,
            live=self.err.isatty(),
            compact=self.compact,
            heartbeat=self.heartbeat,
        )

    def no_changes(self) -> None:
        """Nothing to apply: a machine reading the stream still gets a start and a summary."""
        if self.fmt == "json":
            view = self._view()
            view(ApplyStart(batches=0, calls=0))
            view(NOTHING_DONE)

    def run(
        self,
        plan: Plan,
        client: ScaleClient,
        backend: StateBackend,
        state: State,
        *,
        parallelism: int,
        fail_fast: bool,
    ) -> int:
        """Make the plan's calls with state following them; the exit code (0, 1 or 130)."""
        view = self._view()
        stop = threading.Event()
        writer = StateWriter(backend, state)
        records: Mapping[str, BatchRecord] = state.batches
        try:
            with stop_on_signals(stop):
                result = apply_plan(
                    plan,
                    client,
                    writer,
                    records,
                    parallelism=parallelism,
                    fail_fast=fail_fast,
                    stop=stop,
                    emit=view,
                )
        except StopNow:
            # Calls still on the wire run on in daemon threads that end with
            # the process; whatever they did, the next plan reads it from live.
            view.close()
            self.err.write(STOPPED_NOW)
            self.err.flush()
            return EXIT_INTERRUPTED
        finally:
            view.close()
        if result.output_error is not None and self.trouble.problem is None:
            self.trouble.tell(APPLY_VIEW, RuntimeError(redact(result.output_error)))
        try:
            writer.close()
        except BatchplanError:
            # Already in the summary; anything new is worth an error of its own.
            if result.state_error is None:
                raise
        if result.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if result.ok else EXIT_ERROR
