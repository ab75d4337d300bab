"""``batchplan apply``: plan under the state lock, ask, then make the calls."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType
from typing import TextIO

from batchplan.apply import apply_plan
from batchplan.apply_view import HEARTBEAT_SECONDS, JsonView, TextView
from batchplan.commands.plan import Planned, make_plan, stored_lineage, unsafe_reasons
from batchplan.config import load_config
from batchplan.context import Options, open_endpoint
from batchplan.context import state_backend as open_state
from batchplan.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BatchplanError,
    PlanError,
    StalePlanError,
    UnsafePlanError,
    UsageError,
)
from batchplan.events import ApplyStart, SummaryEvent
from batchplan.plan import PlanOptions
from batchplan.planfile import SavedPlan, looks_like_plan_file, read_plan_file
from batchplan.render.text import render_text
from batchplan.state.writer import StateWriter


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

    def handler(signum: int, frame: FrameType | None) -> None:
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


def apply(
    paths: Sequence[str],
    options: Options,
    plan_options: PlanOptions,
    echo: Callable[[str], None],
    *,
    confirm: Callable[[], bool] | None,
    auto_approve: bool = False,
    fail_fast: bool = False,
    fmt: str = "text",
    compact: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Plan, refuse on conflicts or unsafe plans, confirm, apply; return the exit code.

    ``paths`` may instead be one saved plan file: then the config is re-read
    from the paths it records, and the new plan must have the same checksum,
    or nothing is called (exit 4). ``confirm`` asks the user and is None when
    there is no terminal to ask on.

    ``fmt`` ``json`` writes apply's events as JSON Lines on ``out`` and
    nothing else there (the plan goes to ``err``); it cannot ask, so it
    needs ``auto_approve`` or a saved plan. ``text`` prints a line per call
    (only failures with ``compact``) and the summary on ``out``, and the
    progress on ``err``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    saved = None
    if len(paths) == 1 and looks_like_plan_file(paths[0]):
        saved = read_plan_file(paths[0])
        if plan_options != PlanOptions(force=plan_options.force):
            raise UsageError(
                "a saved plan keeps its own --target, --reassert-priority and limits; "
                "give them to `plan`, not to `apply PLANFILE`"
            )
        plan_options = replace(saved.options, force=saved.options.force or plan_options.force)
        paths = saved.config_paths
        # A reviewed plan is the approval.
        auto_approve = True
    if fmt == "json" and not auto_approve:
        raise UsageError(
            "apply --format json cannot ask for approval: "
            "add --auto-approve, or apply a saved plan file"
        )
    heartbeat = heartbeat_seconds()
    show_plan = echo
    if fmt == "json":
        # Standard output carries only events; the plan goes to the log.
        show_plan = _writer(err)
    config = load_config(paths)
    endpoint = open_endpoint(options.endpoint)
    if saved is not None and saved.endpoint != endpoint.identity:
        raise StalePlanError(
            f"the plan was made for endpoint {saved.endpoint}, this run talks to "
            f"{endpoint.identity}; no call was made"
        )
    backend = open_state(options, endpoint)
    with backend.lock("apply", options.lock_timeout):
        planned = make_plan(
            paths, options, plan_options, config=config, backend=backend, endpoint=endpoint
        )
        plan = planned.plan
        if saved is not None and planned.checksum != saved.checksum:
            show_plan(render_text(plan, color=options.color, verbose=options.verbose).rstrip("\n"))
            raise StalePlanError(_stale_reason(saved, planned))
        show_plan(render_text(plan, color=options.color, verbose=options.verbose).rstrip("\n"))
        if plan.conflicts:
            raise PlanError("Apply refused: the plan has conflicts; no call was made.")
        reasons = unsafe_reasons(planned)
        if reasons:
            raise UnsafePlanError(
                "Apply refused, the plan is unsafe (use --force if it is intended):\n"
                + "\n".join(f"  - {reason}" for reason in reasons)
            )
        view: TextView | JsonView
        if fmt == "json":
            view = JsonView(out, err)
        else:
            view = TextView(out, err, live=err.isatty(), compact=compact, heartbeat=heartbeat)
        if not plan.summary.has_changes:
            if fmt == "json":
                # A machine reading the stream always gets a start and a summary.
                view(ApplyStart(batches=0, calls=0))
                view(_nothing_done())
            return EXIT_OK
        if not auto_approve:
            if confirm is None:
                raise UsageError(
                    "not a terminal, so apply cannot ask for approval: "
                    "review the plan and re-run with --auto-approve"
                )
            if not confirm():
                echo("Apply cancelled; no call was made.")
                return EXIT_ERROR
        stop = threading.Event()
        writer = StateWriter(planned.backend, planned.state)
        try:
            with stop_on_signals(stop):
                result = apply_plan(
                    plan,
                    planned.client,
                    writer,
                    planned.state.batches,
                    parallelism=options.parallelism,
                    fail_fast=fail_fast,
                    stop=stop,
                    emit=view,
                )
        except StopNow:
            # Calls still on the wire run on in daemon threads that end with
            # the process; whatever they did, the next plan reads from live.
            view.close()
            err.write(
                "Stopped now: calls that were in flight may have been made. State keeps "
                "every result it recorded; the next plan reads live and adopts the rest.\n"
            )
            err.flush()
            return EXIT_INTERRUPTED
        finally:
            view.close()
        try:
            writer.close()
        except BatchplanError:
            if result.state_error is None:
                raise
        if result.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if result.ok else EXIT_ERROR


def _writer(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return write


def _nothing_done() -> SummaryEvent:
    return SummaryEvent(
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


def _stale_reason(saved: SavedPlan, planned: Planned) -> str:
    state = planned.state
    if (saved.lineage, saved.serial) != (stored_lineage(state), state.serial):
        why = f"state changed since the plan was made (serial {saved.serial} -> {state.serial})"
    else:
        why = "the configuration or the live batches changed since the plan was made"
    return f"Saved plan is stale: {why}. No call was made; make a new plan and review it."
