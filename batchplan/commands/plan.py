"""``batchplan plan`` and ``batchplan show``: what apply would do, in three formats."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence

import click

from batchplan.api.session import Session
from batchplan.commands.arguments import PlanArguments, ShowArguments
from batchplan.config.environments import settle
from batchplan.config.load import load_config
from batchplan.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNSAFE,
    first_exit,
)
from batchplan.options import Options
from batchplan.plan.changes import Plan, PlanOptions
from batchplan.plan.planfile import check_out_path, read_plan_file, write_plan_file
from batchplan.plan.planning import make_plan
from batchplan.state import State
from batchplan.state.location import (
    DEFAULT_SANDBOX_STATE,
    DEFAULT_STATE,
    default_state,
    state_backend,
    state_location,
)
from batchplan.views.plan import no_state_line, plan_view
from batchplan.views.terminal import make_echo


def plan_exit_code(plan: Plan, *, detailed_exitcode: bool) -> int:
    """1 with conflicts, else 3 when refused by a limit, else 2 for changes with -detailed."""
    return first_exit(
        (
            EXIT_ERROR if plan.conflicts else EXIT_OK,
            EXIT_UNSAFE if plan.unsafe else EXIT_OK,
            EXIT_CHANGES if detailed_exitcode and plan.summary.has_changes else EXIT_OK,
        )
    )


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def plan(
    paths: Sequence[str],
    options: Options,
    plan_options: PlanOptions,
    echo: Callable[[str], None],
    *,
    fmt: str = "text",
    out: str | None = None,
    detailed_exitcode: bool = False,
    compact: bool = False,
    explicit: Sequence[str] = (),
) -> int:
    """Print the plan and save it with ``out``; the exit code follows ``plan_exit_code``.

    stdout holds the rendered plan and nothing else, in every format; where
    the plan was saved, the environment's overridden values and a missing
    state go to stderr. ``explicit`` names the options given on the command line.
    """
    view = plan_view(fmt, echo, color=options.color, verbose=options.verbose, compact=compact)
    options = settle(paths, options, explicit=explicit, tell=_stderr)
    if out is not None:
        check_out_path(out, reserved_for_state(options))
    config = load_config(paths, variables=dict(options.variables))
    with Session(options) as session:
        backend = state_backend(options, session.endpoint)
        planned = make_plan(config, session, backend, plan_options)
        tell_if_no_state(planned.state, backend.location)
        view.show(planned.plan)
        if out is not None:
            write_plan_file(
                out,
                planned.plan,
                config_paths=list(paths),
                folder=os.getcwd(),
                endpoint=session.endpoint.identity,
                endpoint_spec=options.endpoint,
                state_location=state_location(options, session.endpoint),
                options=plan_options,
                inputs=planned.inputs(),
                digest=planned.checksum,
                environment=options.environment,
                var_files=options.var_files,
                var_names=options.var_names,
            )
            # On stderr, so stdout is exactly what `show` prints for this plan.
            for line in saved_lines(planned.plan, out, options.var_names):
                _stderr(line)
    return plan_exit_code(planned.plan, detailed_exitcode=detailed_exitcode)


def tell_if_no_state(state: State, location: str) -> None:
    """A plan from no state adopts or creates everything: say why, once, on stderr."""
    if state.serial == 0:
        _stderr(no_state_line(location))


def saved_lines(plan: Plan, out: str, var_names: Sequence[str] = ()) -> list[str]:
    """Where the plan was saved, and what applying it would do: never a command
    that would only be refused. The command holds everything apply needs that
    the plan cannot record: each ``--var`` given (its value never written down)."""
    command = " ".join(
        [f"batchplan apply {shlex.quote(out)}", *(f"--var {name}=..." for name in var_names)]
    )
    if plan.conflicts:
        return [
            f"Saved the plan to {out}. It has conflicts, so apply refuses it; "
            "resolve them and make a new plan."
        ]
    if plan.unsafe:
        return [
            f"Saved the plan to {out}. It is over a safety limit: apply refuses it without "
            "--force. If the review accepts that:",
            f"    {command} --force",
        ]
    if not plan.summary.has_changes:
        return [f"Saved the plan to {out}. It has no changes: applying it does nothing."]
    lines = [f"Saved the plan to {out}. To apply exactly this plan:", f"    {command}"]
    if var_names:
        lines.append("(the plan records each --var name, never its value: give the values again)")
    return lines


def reserved_for_state(options: Options) -> list[str]:
    """The local state files (and their locks) a plan file must never replace."""
    locations = [
        DEFAULT_STATE,
        DEFAULT_SANDBOX_STATE,
        default_state(options.root, False),
        default_state(options.root, True),
    ]
    if options.state is not None and "://" not in options.state:
        locations.append(options.state)
    return [name for location in locations for name in (location, location + ".lock")]


def show(
    path: str,
    options: Options,
    echo: Callable[[str], None],
    *,
    fmt: str = "text",
    compact: bool = False,
) -> int:
    """Print a saved plan exactly as ``plan --format FMT [--compact]`` printed it."""
    view = plan_view(fmt, echo, color=options.color, verbose=options.verbose, compact=compact)
    saved = read_plan_file(path)
    view.show(saved.plan)
    return EXIT_OK


def run_plan(args: PlanArguments) -> int:
    """``batchplan plan`` with its parsed arguments."""
    return plan(
        args.paths,
        args.options,
        args.plan_options,
        make_echo(args.options.color),
        fmt=args.format,
        out=args.out,
        detailed_exitcode=args.detailed_exitcode,
        compact=args.compact,
        explicit=args.explicit,
    )


def run_show(args: ShowArguments) -> int:
    """``batchplan show`` with its parsed arguments."""
    echo = make_echo(args.options.color)
    return show(args.planfile, args.options, echo, fmt=args.format, compact=args.compact)
