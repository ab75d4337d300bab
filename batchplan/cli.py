"""Click commands. Thin: parse, call a plain function, map errors to exit codes.

Exit codes (DESIGN.md section 6): 0 success / no changes; 1 error, usage
errors included (click's own 2 is remapped); 2 changes pending (only with
``--detailed-exitcode``); 3 unsafe plan; 4 stale saved plan; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from batchplan import __version__
from batchplan.context import DEFAULT_ENDPOINT, DEFAULT_SANDBOX_STATE, DEFAULT_STATE, Options
from batchplan.errors import EXIT_ERROR, EXIT_INTERRUPTED, BatchplanError
from batchplan.plan import PlanOptions
from batchplan.scale import ClientOptions
from batchplan.state import StateBackend

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PATHS = ("batchplan.yaml",)


def echo(line: str) -> None:
    click.echo(line)


def use_color(no_color: bool) -> bool:
    """Colour only on a terminal, and never with ``--no-color`` or ``NO_COLOR`` set."""
    return not no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def stacked(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click decorators as one, applied in the order written."""

    def decorate(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


endpoint_option = click.option(
    "--endpoint",
    envvar="BATCHPLAN_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="API base URL, 'sandbox' or 'sandbox:DBFILE' (env BATCHPLAN_ENDPOINT).",
)
state_option = click.option(
    "--state",
    "state",
    envvar="BATCHPLAN_STATE",
    default=None,
    help=f"State file or s3://bucket/key (default {DEFAULT_STATE}; "
    f"{DEFAULT_SANDBOX_STATE} for the sandbox).",
)
lock_timeout_option = click.option(
    "--lock-timeout",
    default=0.0,
    type=click.FloatRange(min=0),
    help="Seconds to wait for the state lock.",
)
no_color_option = click.option(
    "--no-color", is_flag=True, help="No colour (also NO_COLOR, or no terminal)."
)
verbose_option = click.option(
    "--verbose", "-v", is_flag=True, help="List unmanaged batches and more."
)
debug_option = click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")

# The options of every command that reaches the API.
common_options = stacked(
    endpoint_option,
    state_option,
    lock_timeout_option,
    click.option(
        "--parallelism",
        default=8,
        type=click.IntRange(1, 64),
        show_default=True,
        help="Concurrent API calls.",
    ),
    click.option(
        "--request-timeout",
        default=60.0,
        type=click.FloatRange(min=0.1),
        show_default=True,
        help="Seconds to wait for one API answer.",
    ),
    click.option(
        "--max-retries",
        default=4,
        type=click.IntRange(0, 20),
        show_default=True,
        help="Retries of a transient failure (no answer, 408, 429, 5xx).",
    ),
    click.option(
        "--retry-max-time",
        default=120.0,
        type=click.FloatRange(min=0),
        show_default=True,
        help="Stop retrying one call after this many seconds.",
    ),
    no_color_option,
    verbose_option,
    debug_option,
)


variable_options = stacked(
    click.option(
        "--var",
        "var",
        multiple=True,
        metavar="NAME=VALUE",
        help="Give ${NAME} a value, ahead of the environment (repeatable; never printed).",
    ),
    click.option(
        "--var-file",
        "var_file",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="A YAML map of NAME: VALUE for ${NAME} (repeatable; --var wins).",
    ),
)


def make_variables(kw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    from batchplan.config import read_variables

    return tuple(read_variables(kw.pop("var", ()), kw.pop("var_file", ())).items())


def make_options(kw: dict[str, Any]) -> Options:
    return Options(
        variables=make_variables(kw),
        endpoint=kw.pop("endpoint"),
        state=kw.pop("state"),
        lock_timeout=kw.pop("lock_timeout"),
        parallelism=kw.pop("parallelism"),
        color=use_color(kw.pop("no_color")),
        verbose=kw.pop("verbose"),
        debug=kw.pop("debug"),
        client=ClientOptions(
            read_timeout=kw.pop("request_timeout"),
            max_attempts=kw.pop("max_retries") + 1,
            max_retry_time=kw.pop("retry_max_time"),
        ),
    )


limit_options = stacked(
    click.option(
        "--max-finalize",
        type=click.IntRange(min=0),
        default=None,
        help="Refuse more finalizes than this (default 50, or settings:).",
    ),
    click.option(
        "--max-changes",
        type=click.IntRange(min=0),
        default=None,
        help="Refuse more API calls than this (default 500, or settings:).",
    ),
    click.option(
        "--max-forget",
        type=click.IntRange(min=0),
        default=None,
        help="Refuse more forgets than this (default 10, or settings:).",
    ),
    click.option("--force", is_flag=True, help="Go past the safety limits."),
)


def make_plan_options(kw: dict[str, Any]) -> PlanOptions:
    return PlanOptions(
        targets=tuple(kw.pop("targets")),
        reassert_priority=kw.pop("reassert_priority"),
        max_finalize=kw.pop("max_finalize"),
        max_changes=kw.pop("max_changes"),
        max_forget=kw.pop("max_forget"),
        force=kw.pop("force"),
    )


paths_argument = click.argument("paths", nargs=-1, type=click.Path())
target_option = click.option(
    "--target", "targets", multiple=True, metavar="NAME", help="Only this batch (repeatable)."
)
reassert_option = click.option(
    "--reassert-priority", is_flag=True, help="Re-send every managed priority."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchplan")
def cli() -> None:
    """Plan and apply Scale AI batches from YAML, like Terraform."""


@cli.command()
@paths_argument
@variable_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for programs, github for pull request annotations.",
)
@debug_option
def validate(paths: tuple[str, ...], fmt: str, debug: bool, **kw: Any) -> int:
    """Check the configuration files; no network (an unset ${NAME} is only a note)."""
    from batchplan.commands.validate import validate as run

    return run(paths or DEFAULT_PATHS, echo, fmt=fmt, variables=dict(make_variables(kw)))


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for terminals, json for machines, markdown for pull requests.",
)


@cli.command()
@paths_argument
@common_options
@variable_options
@limit_options
@target_option
@reassert_option
@format_option
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `apply FILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
def plan(paths: tuple[str, ...], **kw: Any) -> int:
    """Show what apply would do."""
    from batchplan.commands.plan import plan as run

    options, plan_options = make_options(kw), make_plan_options(kw)
    return run(
        paths or DEFAULT_PATHS,
        options,
        plan_options,
        echo,
        fmt=kw["fmt"],
        out=kw["out"],
        detailed_exitcode=kw["detailed_exitcode"],
    )


@cli.command()
@click.argument("planfile", type=click.Path())
@format_option
@no_color_option
@verbose_option
@debug_option
def show(planfile: str, fmt: str, no_color: bool, verbose: bool, debug: bool) -> int:
    """Print a saved plan (from `plan --out`)."""
    from batchplan.commands.plan import show as run

    options = Options(color=use_color(no_color), verbose=verbose, debug=debug)
    return run(planfile, options, echo, fmt=fmt)


@cli.command()
@paths_argument
@common_options
@variable_options
@limit_options
@target_option
@reassert_option
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (for CI).")
@click.option("--fail-fast", is_flag=True, help="Stop starting new batches after a failure.")
def apply(paths: tuple[str, ...], **kw: Any) -> int:
    """Make the calls that bring the account in line (PATHS or one saved PLANFILE)."""
    from batchplan.commands.apply import apply as run

    options, plan_options = make_options(kw), make_plan_options(kw)
    confirm = None
    if sys.stdin.isatty():

        def confirm() -> bool:
            answer = click.prompt(
                "\nDo you want to perform these actions? Only 'yes' will be accepted",
                default="",
                show_default=False,
            )
            return bool(answer.strip() == "yes")

    return run(
        paths or DEFAULT_PATHS,
        options,
        plan_options,
        echo,
        confirm=confirm,
        auto_approve=kw["auto_approve"],
        fail_fast=kw["fail_fast"],
    )


@cli.command("import")
@click.option("--project", "projects", multiple=True, required=True, help="Repeatable.")
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Write the YAML here (default stdout)."
)
@click.option(
    "--assume-priority",
    type=click.IntRange(10, 30),
    default=None,
    help="Record this priority in state without a call, and write it in defaults.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@common_options
def import_(
    projects: tuple[str, ...], out: str | None, assume_priority: int | None, force: bool, **kw: Any
) -> int:
    """Write YAML for live batches and adopt them into state."""
    from batchplan.commands.importing import import_batches

    return import_batches(
        projects, make_options(kw), echo, out=out, assume_priority=assume_priority, force=force
    )


@cli.group()
def state() -> None:
    """Inspect and repair batchplan's state (no API calls)."""


# ``state`` subcommands only need to find the state, not the API.
state_options = stacked(endpoint_option, state_option, lock_timeout_option, debug_option)


def state_backend_for(kw: dict[str, Any]) -> StateBackend:
    from batchplan.context import backend_at

    endpoint: str = kw.pop("endpoint")
    location = kw.pop("state") or (
        DEFAULT_SANDBOX_STATE if endpoint.split(":")[0] == "sandbox" else DEFAULT_STATE
    )
    return backend_at(location)


@state.command("list")
@state_options
def state_list(**kw: Any) -> int:
    """List the batches in state."""
    from batchplan.commands.state import state_list as run

    return run(state_backend_for(kw), echo)


@state.command("show")
@click.argument("name")
@state_options
def state_show(name: str, **kw: Any) -> int:
    """Show one batch's record as JSON."""
    from batchplan.commands.state import state_show as run

    return run(state_backend_for(kw), name, echo)


@state.command("rm")
@click.argument("names", nargs=-1, required=True)
@state_options
def state_rm(names: tuple[str, ...], **kw: Any) -> int:
    """Drop batches from state; the batches themselves stay."""
    from batchplan.commands.state import state_rm as run

    backend = state_backend_for(kw)
    return run(backend, names, kw["lock_timeout"], echo)


@state.command("pull")
@state_options
def state_pull(**kw: Any) -> int:
    """Print the state as JSON."""
    from batchplan.commands.state import state_pull as run

    return run(state_backend_for(kw), echo)


@state.command("push")
@click.argument("path", type=click.Path())
@click.option("--force", is_flag=True, help="Replace even another lineage or an older serial.")
@state_options
def state_push(path: str, force: bool, **kw: Any) -> int:
    """Replace the stored state with FILE."""
    from batchplan.commands.state import state_push as run

    backend = state_backend_for(kw)
    return run(backend, path, force, kw["lock_timeout"], echo)


@state.command("unlock")
@click.argument("lock_id")
@state_options
def state_unlock(lock_id: str, **kw: Any) -> int:
    """Break a stale state lock."""
    from batchplan.commands.state import state_unlock as run

    return run(state_backend_for(kw), lock_id, echo)


@cli.group()
def sandbox() -> None:
    """The embedded Scale-compatible API server."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8020, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", "db_path", default=".batchplan/sandbox.db", show_default=True)
@click.option("--api-key", default=None, envvar="SANDBOX_API_KEY", help="Require this key.")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(min=0))
@click.option("--fault-rate", default=0.0, type=click.FloatRange(0, 1))
@click.option("--rate-limit", default=None, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=None, type=int)
@click.option(
    "--strict-projects", is_flag=True, help="Only projects created with POST /projects exist."
)
def sandbox_serve(
    host: str,
    port: int,
    db_path: str,
    api_key: str | None,
    latency_ms: float,
    fault_rate: float,
    rate_limit: float | None,
    seed: int | None,
    strict_projects: bool,
) -> int:
    """Serve the sandbox API until Ctrl-C or SIGTERM."""
    from batchplan.sandbox import SandboxOptions, serve

    options = SandboxOptions(
        host=host,
        port=port,
        db_path=db_path,
        api_key=api_key,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        rate_limit=rate_limit,
        seed=seed,
        strict_projects=strict_projects,
    )
    return serve(options, echo=echo)


def _report(message: str) -> None:
    click.echo(
        click.style("Error: ", fg="red", bold=True) + message
        if sys.stderr.isatty()
        else "Error: " + message,
        err=True,
    )


def run(args: list[str] | None = None) -> int:
    """Run the CLI and return the exit code; every expected error becomes a message."""
    argv = sys.argv[1:] if args is None else args
    debug = "--debug" in argv
    try:
        code = cli.main(args=argv, prog_name="batchplan", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        # Usage errors exit 1, not click's 2: 2 means "changes pending".
        exc.show()
        return EXIT_ERROR
    except BatchplanError as exc:
        if debug:
            traceback.print_exc()
        _report(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _report(
            f"unexpected {type(exc).__name__}: {exc} "
            "(a bug in batchplan; --debug shows the traceback)"
        )
        return EXIT_ERROR
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run())
