"""Two views of apply's events: lines and a progress line for people, JSON Lines for machines.

Both read only events (``batchplan.apply.events``); neither decides anything.
Views are called from apply's worker threads, one event at a time, and the
text view also draws from its own ticker thread, so each holds a lock.

Output never stops apply: views write through ``GuardedStream``, which
swallows a write that fails (stdout closed by ``| head``, a full disk), tells
it once on stderr, and drops everything later written to that stream. Every
text that came from the API or an exception (errors, retry reasons) goes
through ``batchplan.redact`` first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Protocol

import click

from batchplan import threads
from batchplan.apply.events import (
    ApplyEvent,
    ApplyStart,
    CallEvent,
    InterruptedEvent,
    NotStartedEvent,
    RetryEvent,
    SummaryEvent,
    to_json,
)
from batchplan.redact import redact

# How often a run without a terminal says it is still going; CI systems
# kill jobs that stay silent too long.
HEARTBEAT_SECONDS = 10.0
# How often the progress line on a terminal is redrawn when nothing happens
# (so elapsed time and ETA move).
TICK_SECONDS = 0.5
# Batches listed by name in a text summary, per list; JSON lists them all.
LISTED = 20

CLEAR_LINE = "\r\x1b[K"


class Stream(Protocol):
    """What a view writes to: a text stream (``sys.stdout``) or a ``GuardedStream``."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


class OutputTrouble:
    """The first output problem of a run, told once on ``err`` (if ``err`` still works)."""

    def __init__(self, err: Stream) -> None:
        self.err = err
        self.problem: str | None = None
        self._lock = threading.Lock()

    def tell(self, name: str, error: BaseException) -> None:
        reason = getattr(error, "strerror", None) or type(error).__name__
        with self._lock:
            if self.problem is not None:
                return
            self.problem = f"{name}: {reason}"
        if name == "stderr":
            return  # nowhere left to tell it
        try:
            self.err.write(
                f"batchplan: could not write to {name} ({reason}); "
                f"apply goes on and saves state, but prints nothing more to {name}\n"
            )
            self.err.flush()
        except (OSError, ValueError):
            pass


class GuardedStream:
    """A stream whose failures are told once and never raised: output never stops work."""

    def __init__(self, stream: Stream, name: str, trouble: OutputTrouble) -> None:
        self.stream = stream
        self.name = name
        self.trouble = trouble
        self.broken = False

    def write(self, text: str, /) -> int:
        if self.broken:
            return 0
        try:
            return self.stream.write(text)
        except (OSError, ValueError) as exc:
            self._broke(exc)
            return 0

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError) as exc:
            self._broke(exc)

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False

    def _broke(self, error: BaseException) -> None:
        self.broken = True
        self.trouble.tell(self.name, error)


HEADINGS = {
    "complete": "Apply complete",
    "failed": "Apply failed",
    "interrupted": "Apply interrupted",
}
COUNTED = (
    ("created", "created"),
    ("metadata_set", "metadata set"),
    ("prioritized", "prioritized"),
    ("finalized", "finalized"),
    ("adopted", "adopted"),
    ("forgotten", "forgotten"),
)


def clock_text(seconds: float) -> str:
    """``0:07``, ``12:03``, ``1:02:03``: elapsed time as people read it."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def retries_text(count: int) -> str:
    return "1 retry" if count == 1 else f"{count} retries"


#: Said instead of applying when the prompt is declined.
CANCELLED = "Apply cancelled. No call was made."


def ask_approval() -> bool:
    """Ask on the terminal; only ``yes`` approves. "no", Ctrl-D or Ctrl-C at the prompt decline."""
    try:
        answer = click.prompt(
            "\nDo you want to perform these actions? Only 'yes' will be accepted",
            default="",
            show_default=False,
        )
    except (click.exceptions.Abort, EOFError):
        click.echo("")
        return False
    return bool(answer.strip() == "yes")


#: How a failure to print the apply view is named (``OutputTrouble.tell``).
APPLY_VIEW = "the apply view"

#: After a second Ctrl-C: what may have happened, and how the next run catches up.
STOPPED_NOW = (
    "Stopped now: calls that were in flight may have been made. State keeps "
    "every result it recorded; the next plan reads live and adopts the rest.\n"
)


def interrupt_message(in_flight: int) -> str:
    """The first Ctrl-C's notice; ``in_flight`` counts HTTP requests awaiting an answer."""
    if not in_flight:
        return "Interrupted: no call in flight, stopping"
    return (
        f"Interrupted: waiting for {plural(in_flight, 'call')} in flight (Ctrl-C again to stop now)"
    )


def call_line(event: CallEvent) -> str:
    """One line per action: what was done, or what failed and after how many attempts."""
    name = event.batch
    if event.outcome == "failed":
        tries = f" after {plural(event.attempts, 'attempt')}" if event.attempts else ""
        return f"{name}: {event.action} failed{tries}: {redact(event.error or '')}"
    if event.outcome == "skipped":
        return f"{name}: {event.action} not needed (the batch was created in_progress)"
    if event.action == "create":
        note = "; its first answer was lost and the batch found matches" if event.existing else ""
        return f"{name}: created ({event.status}{note})"
    if event.action == "prioritize":
        return f"{name}: prioritized {event.priority}"
    return {
        "set_metadata": f"{name}: metadata set",
        "finalize": f"{name}: finalized",
        "adopt": f"{name}: adopted into state",
        "forget": f"{name}: forgotten (dropped from state; the batch is not deleted)",
    }.get(event.action, f"{name}: {event.action} done")


def retry_line(event: RetryEvent) -> str:
    return (
        f"{event.batch}: {event.action} attempt {event.attempt} failed ({redact(event.reason)}); "
        f"retrying in {event.wait_s:.1f} s"
    )


def summary_lines(
    summary: SummaryEvent,
    failures: list[CallEvent],
    left: list[NotStartedEvent],
) -> list[str]:
    """The closing report: counts, calls, retries and time, then what failed and what is left."""
    counts = [f"{getattr(summary, key)} {label}" for key, label in COUNTED if getattr(summary, key)]
    calls = plural(summary.calls, "call")
    if summary.failed:
        calls += f" ({summary.failed} failed)"
    lines = [
        f"{HEADINGS[summary.result]}: {', '.join(counts) or 'nothing changed'}. "
        f"{calls}, {retries_text(summary.retries)}, "
        f"{clock_text(summary.elapsed_s)} elapsed."
    ]
    after: dict[str, tuple[str, ...]] = {
        e.batch: e.actions for e in left if e.reason == "after_failure"
    }
    stopped = [e for e in left if e.reason == "stopped"]
    if failures:
        lines.append("Failed:")
        for event in failures[:LISTED]:
            lines.append("  " + call_line(event))
            if event.batch in after:
                lines.append(f"    not attempted after it: {', '.join(after[event.batch])}")
        if len(failures) > LISTED:
            lines.append(f"  and {len(failures) - LISTED} more (--format json lists them all)")
    if stopped:
        lines.append("Not started (a new plan and apply will pick these up):")
        for left_over in stopped[:LISTED]:
            lines.append(f"  {left_over.batch}: {', '.join(left_over.actions)}")
        if len(stopped) > LISTED:
            lines.append(f"  and {len(stopped) - LISTED} more batches")
    if summary.state_error:
        lines.append(f"State could not be saved: {redact(summary.state_error)}")
        lines.append("The next plan reads live and adopts what was done; nothing is lost.")
    return lines


class TextView:
    """Lines on ``out``; on a terminal, a live progress line on ``err`` under them.

    ``live`` draws the progress line (``err`` is a terminal); otherwise a
    "still applying" line goes to ``err`` every ``heartbeat`` seconds.
    ``compact`` prints only failures and the summary on ``out``.
    """

    def __init__(
        self,
        out: Stream,
        err: Stream,
        *,
        live: bool,
        compact: bool = False,
        heartbeat: float = HEARTBEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.err = err
        self.live = live
        self.compact = compact
        self.heartbeat = heartbeat
        self.clock = clock
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._started = clock()
        self._total = 0
        self._finished = 0
        self._retries = 0
        self._failed = 0
        self._failures: list[CallEvent] = []
        self._left: list[NotStartedEvent] = []
        self._drawn = False

    # -- events ---------------------------------------------------------------

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            if self._closed:
                return
            if isinstance(event, ApplyStart):
                self._start(event)
            elif isinstance(event, CallEvent):
                self._call(event)
            elif isinstance(event, RetryEvent):
                self._retries += 1
                if not self.compact:
                    self._line(retry_line(event))
            elif isinstance(event, InterruptedEvent):
                self._line(interrupt_message(event.in_flight), err=True)
            elif isinstance(event, NotStartedEvent):
                self._left.append(event)
            else:
                self._summary(event)
                return
            if self.live:
                self._draw()

    def _start(self, event: ApplyStart) -> None:
        self._started = self.clock()
        self._total = event.calls
        if event.calls and (self.live or self.heartbeat > 0):
            self._ticker = threads.start("batchplan-progress", self._tick)

    def _call(self, event: CallEvent) -> None:
        if event.action not in ("adopt", "forget"):
            self._finished += 1
        if event.outcome == "failed":
            self._failed += 1
            self._failures.append(event)
            self._line(call_line(event))
        elif not self.compact:
            self._line(call_line(event))

    def _summary(self, event: SummaryEvent) -> None:
        self._stop_ticker()
        self._clear()
        self.out.write("\n" + "\n".join(summary_lines(event, self._failures, self._left)) + "\n")
        self.out.flush()

    # -- drawing --------------------------------------------------------------

    def progress_text(self) -> str:
        """``412/3000 calls (13%), 0:12 elapsed, ETA 1:21, 3 retries, 1 failed``."""
        elapsed = self.clock() - self._started
        total = max(self._total, 1)
        percent = 100 * self._finished // total
        if self._finished:
            eta = clock_text(elapsed / self._finished * (self._total - self._finished))
        else:
            eta = "-:--"
        return (
            f"{self._finished}/{self._total} calls ({percent}%), {clock_text(elapsed)} elapsed, "
            f"ETA {eta}, {retries_text(self._retries)}, {self._failed} failed"
        )

    def _line(self, text: str, *, err: bool = False) -> None:
        self._clear()
        stream = self.err if err else self.out
        stream.write(text + "\n")
        stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.err.write(CLEAR_LINE)
            self.err.flush()
            self._drawn = False

    def _draw(self) -> None:
        self.err.write(CLEAR_LINE + self.progress_text())
        self.err.flush()
        self._drawn = True

    def _tick(self) -> None:
        interval = TICK_SECONDS if self.live else self.heartbeat
        while not self._done.wait(interval):
            with self._lock:
                if self._closed or self._done.is_set():
                    return
                if self.live:
                    self._draw()
                else:
                    self._heartbeat()

    def _heartbeat(self) -> None:
        text = (
            f"still applying: {self._finished} of {self._total} calls, "
            f"{clock_text(self.clock() - self._started)} elapsed"
        )
        if self._retries:
            text += f", {retries_text(self._retries)}"
        if self._failed:
            text += f", {self._failed} failed"
        self.err.write(text + "\n")
        self.err.flush()

    def _stop_ticker(self) -> None:
        self._done.set()

    def close(self) -> None:
        """Stop drawing and drop every later event (a second Ctrl-C, or the end)."""
        with self._lock:
            self._stop_ticker()
            self._clear()
            self._closed = True


#: The fields of a JSON event that carry text from the API or an exception.
FREE_TEXT = ("error", "reason", "state_error")


def event_json(event: ApplyEvent) -> dict[str, object]:
    """``to_json(event)`` with its free text (errors, reasons) redacted."""
    data = to_json(event)
    for key in FREE_TEXT:
        if isinstance(data.get(key), str):
            data[key] = redact(data[key])
    return data


class JsonView:
    """One JSON object per event and per line on ``out``; nothing else goes there.

    The interrupt notice is for the person who pressed Ctrl-C, so it also
    goes to ``err`` in words.
    """

    def __init__(self, out: Stream, err: Stream) -> None:
        self.out = out
        self.err = err
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            if self._closed:
                return
            self.out.write(json.dumps(event_json(event), ensure_ascii=False) + "\n")
            self.out.flush()
            if isinstance(event, InterruptedEvent):
                self.err.write(interrupt_message(event.in_flight) + "\n")
                self.err.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
