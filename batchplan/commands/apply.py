"""``batchplan apply``: plan under the state lock, ask, then make the calls."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

import click

from batchplan.api.session import Session
from batchplan.commands.applying import ApplyOutput
from batchplan.commands.arguments import ApplyArguments
from batchplan.commands.plan import tell_if_no_state
from batchplan.config.environments import settle
from batchplan.config.load import load_config
from batchplan.errors import (
    EXIT_ERROR,
    EXIT_OK,
    ModifiedPlanError,
    PlanError,
    StalePlanError,
    UnsafePlanError,
    UsageError,
)
from batchplan.options import Options
from batchplan.plan.changes import PlanOptions
from batchplan.plan.planfile import (
    SavedPlan,
    looks_like_plan_file,
    read_plan_file,
    recorded_options,
    recorded_paths,
    stale_message,
    unreviewed_changes,
    unreviewed_message,
)
from batchplan.plan.planning import Planned, make_plan
from batchplan.plan.words import breach_text
from batchplan.state.location import state_backend
from batchplan.views.apply import CANCELLED, ask_approval
from batchplan.views.terminal import make_echo
from batchplan.views.text import render_text


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
    output: ApplyOutput | None = None,
) -> int:
    """Plan, refuse on conflicts, staleness or limits, confirm, apply; return the exit code.

    ``paths`` may instead be one saved plan file: then the config, endpoint
    and state come from what the plan recorded, and the new plan must have
    the same checksum and the same changes as the file, or nothing is called
    (exit 4); ``--force`` comes from ``plan_options``, never from the file. When several refusals
    hold, the exit code is the first of 1 (conflicts), 4 (stale), 3 (unsafe).
    ``confirm`` asks the user and is None when there is no terminal to ask
    on. ``explicit`` names the options given on the command line.
    ``output`` says what to print (the text view by default).
    """
    output = output or ApplyOutput("text", False, echo)
    saved = None
    plan_files = [path for path in paths if looks_like_plan_file(path)]
    if plan_files and len(paths) > 1:
        raise UsageError(
            f"{plan_files[0]} is a saved plan, and a saved plan is applied alone: "
            f"`batchplan apply {plan_files[0]}` reads the configuration it records; "
            "to plan and apply the configuration instead, leave the plan file out"
        )
    if plan_files:
        if plan_options != PlanOptions(force=plan_options.force):
            raise UsageError(
                "a saved plan keeps its own --target, --reassert-priority and limits; "
                "give them to `plan`, not to `apply PLANFILE`"
            )
        saved = read_plan_file(paths[0])
        # Every recorded path first: a missing one is named as such, before any is read.
        paths = recorded_paths(saved)
        options = saved_plan_options(saved, options, explicit)
        # --force is the applier's decision, never the file's.
        plan_options = replace(saved.options, force=plan_options.force)
        # A reviewed plan is the approval.
        auto_approve = True
    else:
        options = settle(paths, options, explicit=explicit, tell=_stderr)
    output.check_approval(auto_approve)
    config = load_config(paths, variables=dict(options.variables))
    with Session(options) as session:
        if saved is not None and saved.endpoint != session.endpoint.identity:
            raise StalePlanError(
                f"the plan was made for endpoint {saved.endpoint}, this run talks to "
                f"{session.endpoint.identity}; no call was made"
            )
        backend = state_backend(options, session.endpoint)
        if saved is not None:
            output.show_plan(
                f"Applying {saved.path}: config {', '.join(paths)}, state {backend.location}, "
                f"environment {options.environment or '(none)'}"
            )
        with backend.lock("apply", options.lock_timeout):
            planned = make_plan(config, session, backend, plan_options)
            if saved is None:
                tell_if_no_state(planned.state, backend.location)
            return _refuse_or_apply(
                planned, saved, options, output, confirm, auto_approve, fail_fast
            )


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def saved_plan_options(saved: SavedPlan, options: Options, explicit: Collection[str]) -> Options:
    """The options of ``apply PLANFILE``: the plan's environment, var files, endpoint and state.

    Everything recorded resolves against the current folder. ``--var``
    values are never recorded: each name given at plan time must be given
    again, or the run stops here naming them.
    """
    if options.environment is not None and options.environment != saved.environment:
        raise UsageError(
            f"--env {options.environment} differs from the environment recorded in "
            f"{saved.path} ({saved.environment or 'none'}); leave --env out to use the "
            "recorded one, or make a new plan"
        )
    missing = sorted(set(saved.var_names) - set(options.var_names))
    if missing:
        raise UsageError(
            f"{saved.path} was planned with "
            + ", ".join(f"--var {name}" for name in missing)
            + "; the plan records names, never values: give "
            + " ".join(f"--var {name}=VALUE" for name in missing)
            + " again"
        )
    from batchplan.config.load import read_variables

    given = dict(options.variables)
    # The recorded var files are read again here; --var given now wins, as at plan time.
    recorded = read_variables((), [p for p in saved.var_files if p not in options.var_files])
    options = replace(
        options,
        environment=saved.environment,
        variables=tuple({**recorded, **given}.items()),
        var_files=(*saved.var_files, *options.var_files),
    )
    options = settle(saved.config_paths, options, explicit=explicit, tell=_stderr)
    return recorded_options(saved, options, explicit)


def _refuse_or_apply(
    planned: Planned,
    saved: SavedPlan | None,
    options: Options,
    output: ApplyOutput,
    confirm: Callable[[], bool] | None,
    auto_approve: bool,
    fail_fast: bool,
) -> int:
    plan = planned.plan
    if saved is not None and planned.checksum != saved.checksum:
        inputs = planned.inputs(saved.inputs.salt)
        # Never print the fresh plan here: it is not what was reviewed.
        if plan.conflicts:
            output.show_plan(stale_message(saved, inputs, planned.checksum))
            raise PlanError(
                f"Apply refused: the configuration now has {len(plan.conflicts)} conflict(s); "
                "run `batchplan plan` to see them. No call was made."
            )
        raise StalePlanError(stale_message(saved, inputs, planned.checksum))
    differ = [] if saved is None else unreviewed_changes(saved.plan, plan)
    if saved is not None and differ:
        # The file shows other changes than would run: refuse, printing neither.
        if plan.conflicts:
            raise PlanError("Apply refused: the plan has conflicts; no call was made.")
        raise ModifiedPlanError(unreviewed_message(saved, differ))
    output.show_plan(render_text(plan, color=options.color, verbose=options.verbose).rstrip("\n"))
    if plan.conflicts:
        raise PlanError("Apply refused: the plan has conflicts; no call was made.")
    if plan.unsafe:
        raise UnsafePlanError(
            "Apply refused, the plan is over a safety limit (use --force if it is intended):\n"
            + "\n".join(f"  - {breach_text(breach)}" for breach in plan.unsafe)
        )
    if not plan.summary.has_changes:
        output.no_changes()
        return EXIT_OK
    if not auto_approve:
        if confirm is None:
            raise UsageError(
                "not a terminal, so apply cannot ask for approval: "
                "review the plan and re-run with --auto-approve"
            )
        if not confirm():
            output.show_plan(CANCELLED)
            return EXIT_ERROR
    return output.run(
        plan,
        planned.session.client,
        planned.backend,
        planned.state,
        parallelism=options.parallelism,
        fail_fast=fail_fast,
    )


def run(args: ApplyArguments) -> int:
    """``batchplan apply`` with its parsed arguments; asks for approval only on a terminal."""
    echo = make_echo(args.options.color)
    return apply(
        args.paths,
        args.options,
        args.plan_options,
        echo,
        confirm=ask_approval if sys.stdin.isatty() else None,
        auto_approve=args.auto_approve,
        fail_fast=args.fail_fast,
        explicit=args.explicit,
        output=ApplyOutput(args.format, args.compact, echo),
    )
