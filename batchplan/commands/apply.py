"""``batchplan apply``: plan under the state lock, ask, then make the calls."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType

import click

from batchplan.apply import apply_plan, describe_result
from batchplan.config import load_config
from batchplan.context import Options, state_backend
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
from batchplan.plan import PlanOptions
from batchplan.planfile import (
    SavedPlan,
    looks_like_plan_file,
    read_plan_file,
    recorded_options,
    recorded_paths,
    stale_message,
)
from batchplan.planning import Planned, make_plan
from batchplan.render.text import render_text
from batchplan.render.words import breach_text
from batchplan.session import Session
from batchplan.state.writer import StateWriter

CANCELLED = "Apply cancelled. No call was made."


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While applying, Ctrl-C and SIGTERM ask for a clean stop instead of killing.

    No new call starts; the calls in flight end, state is saved, exit 130.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def apply(
    paths: Sequence[str],
    options: Options,
    plan_options: PlanOptions,
    echo: Callable[[str], None],
    *,
    confirm: Callable[[], bool] | None,
    auto_approve: bool = False,
    fail_fast: bool = False,
    explicit: Collection[str] = (),
) -> int:
    """Plan, refuse on conflicts, staleness or limits, confirm, apply; return the exit code.

    ``paths`` may instead be one saved plan file: then the config, endpoint
    and state come from what the plan recorded, and the new plan must have
    the same checksum, or nothing is called (exit 4). When several refusals
    hold, the exit code is the first of 1 (conflicts), 4 (stale), 3 (unsafe).
    ``confirm`` asks the user and is None when there is no terminal to ask
    on. ``explicit`` names the options given on the command line.
    """
    saved = None
    if len(paths) == 1 and looks_like_plan_file(paths[0]):
        if plan_options != PlanOptions(force=plan_options.force):
            raise UsageError(
                "a saved plan keeps its own --target, --reassert-priority and limits; "
                "give them to `plan`, not to `apply PLANFILE`"
            )
        saved = read_plan_file(paths[0])
        options = recorded_options(saved, options, explicit)
        plan_options = replace(saved.options, force=saved.options.force or plan_options.force)
        paths = recorded_paths(saved)
        # A reviewed plan is the approval.
        auto_approve = True
    config = load_config(paths)
    with Session(options) as session:
        if saved is not None and saved.endpoint != session.endpoint.identity:
            raise StalePlanError(
                f"the plan was made for endpoint {saved.endpoint}, this run talks to "
                f"{session.endpoint.identity}; no call was made"
            )
        backend = state_backend(options, session.endpoint)
        with backend.lock("apply", options.lock_timeout):
            planned = make_plan(config, session, backend, plan_options)
            return _refuse_or_apply(planned, saved, options, echo, confirm, auto_approve, fail_fast)


def _refuse_or_apply(
    planned: Planned,
    saved: SavedPlan | None,
    options: Options,
    echo: Callable[[str], None],
    confirm: Callable[[], bool] | None,
    auto_approve: bool,
    fail_fast: bool,
) -> int:
    plan = planned.plan
    if saved is not None and planned.checksum != saved.checksum:
        inputs = planned.inputs(saved.inputs.salt)
        # Never print the fresh plan here: it is not what was reviewed.
        if plan.conflicts:
            echo(stale_message(saved, inputs, planned.checksum))
            raise PlanError(
                f"Apply refused: the configuration now has {len(plan.conflicts)} conflict(s); "
                "run `batchplan plan` to see them. No call was made."
            )
        raise StalePlanError(stale_message(saved, inputs, planned.checksum))
    echo(render_text(plan, color=options.color, verbose=options.verbose).rstrip("\n"))
    if plan.conflicts:
        raise PlanError("Apply refused: the plan has conflicts; no call was made.")
    if plan.unsafe:
        raise UnsafePlanError(
            "Apply refused, the plan is over a safety limit (use --force if it is intended):\n"
            + "\n".join(f"  - {breach_text(breach)}" for breach in plan.unsafe)
        )
    if not plan.summary.has_changes:
        return EXIT_OK
    if not auto_approve:
        if confirm is None:
            raise UsageError(
                "not a terminal, so apply cannot ask for approval: "
                "review the plan and re-run with --auto-approve"
            )
        if not confirm():
            echo(CANCELLED)
            return EXIT_ERROR
    stop = threading.Event()
    writer = StateWriter(planned.backend, planned.state)
    with stop_on_signals(stop):
        result = apply_plan(
            plan,
            planned.session.client,
            writer,
            planned.state.batches,
            parallelism=options.parallelism,
            fail_fast=fail_fast,
            stop=stop,
            report=echo,
        )
    try:
        writer.close()
    except BatchplanError as exc:
        if result.state_error is None:
            result.state_error = str(exc)
    echo("")
    echo(describe_result(result).rstrip("\n"))
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_ERROR
