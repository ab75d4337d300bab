"""``batchplan apply``: plan under the state lock, ask, then make the calls."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType

from batchplan.apply import apply_plan, describe_result
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
from batchplan.plan import PlanOptions
from batchplan.planfile import SavedPlan, looks_like_plan_file, read_plan_file
from batchplan.render.text import render_text
from batchplan.state.writer import StateWriter


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


def apply(
    paths: Sequence[str],
    options: Options,
    plan_options: PlanOptions,
    echo: Callable[[str], None],
    *,
    confirm: Callable[[], bool] | None,
    auto_approve: bool = False,
    fail_fast: bool = False,
) -> int:
    """Plan, refuse on conflicts or unsafe plans, confirm, apply; return the exit code.

    ``paths`` may instead be one saved plan file: then the config is re-read
    from the paths it records, and the new plan must have the same checksum,
    or nothing is called (exit 4). ``confirm`` asks the user and is None when
    there is no terminal to ask on.
    """
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
    config = load_config(paths, variables=dict(options.variables))
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
            echo(render_text(plan, color=options.color, verbose=options.verbose).rstrip("\n"))
            raise StalePlanError(_stale_reason(saved, planned))
        echo(render_text(plan, color=options.color, verbose=options.verbose).rstrip("\n"))
        if plan.conflicts:
            raise PlanError("Apply refused: the plan has conflicts; no call was made.")
        reasons = unsafe_reasons(planned)
        if reasons:
            raise UnsafePlanError(
                "Apply refused, the plan is unsafe (use --force if it is intended):\n"
                + "\n".join(f"  - {reason}" for reason in reasons)
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
                echo("Apply cancelled; no call was made.")
                return EXIT_ERROR
        stop = threading.Event()
        writer = StateWriter(planned.backend, planned.state)
        with stop_on_signals(stop):
            result = apply_plan(
                plan,
                planned.client,
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


def _stale_reason(saved: SavedPlan, planned: Planned) -> str:
    state = planned.state
    if (saved.lineage, saved.serial) != (stored_lineage(state), state.serial):
        why = f"state changed since the plan was made (serial {saved.serial} -> {state.serial})"
    else:
        why = "the configuration or the live batches changed since the plan was made"
    return f"Saved plan is stale: {why}. No call was made; make a new plan and review it."
