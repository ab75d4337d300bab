"""Click commands. Thin: parse, call a plain function, map errors to exit codes.

Exit codes: 0 success / no changes; 1 error, usage errors included (click's
own 2 is remapped); 2 changes pending (only with ``--detailed-exitcode``);
3 unsafe plan; 4 stale saved plan; 130 interrupted.

Global options (``--endpoint``, ``--state``, ``--no-color``, ``--verbose``,
``--debug``) are accepted before the command name and after it; each command
declares only those that mean something to it. Each callback is one line:
click's values become the command's typed arguments
(:mod:`batchplan.commands.arguments`), and the command runs with them.
Adding an option is one decorator here and one field in its arguments.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click
from click.core import ParameterSource

from batchplan import __version__
from batchplan.commands import SCHEMAS
from batchplan.errors import EXIT_ERROR, EXIT_INTERRUPTED, BatchplanError
from batchplan.options import DEFAULT_ENDPOINT, DEFAULT_SANDBOX_STATE, DEFAULT_STATE
from batchplan.redact import redact
from batchplan.views.terminal import colour_wanted, make_echo, tell, use_color

if TYPE_CHECKING:
    # Built inside each callback: the module defines many classes, so `--version`
    # does not load it.
    from batchplan.commands.arguments import (
        ApplyArguments,
        ImportArguments,
        InitArguments,
        PlanArguments,
        SandboxServeArguments,
        SchemaArguments,
        ShowArguments,
        StateListArguments,
        StatePullArguments,
        StatePushArguments,
        StateRmArguments,
        StateShowArguments,
        StateUnlockArguments,
        StatusArguments,
        ValidateArguments,
    )

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A")

# Re-exported: the command line's helpers, where scripts and tests have found them.
__all__ = ["cli", "colour_wanted", "main", "make_echo", "run", "tell", "use_color"]


class FiniteFloat(click.types.FloatParamType):
    """A number of seconds (or a rate): finite and in a range, else a usage error.

    click's FloatRange takes ``nan`` (every comparison with it is false, so it
    passes any bound) and, without an upper bound, ``inf`` and ``1e308``,
    which later overflow a socket or thread timeout. Every float option uses
    this type instead.
    """

    name = "number"

    def __init__(self, low: float, high: float, *, low_open: bool = False) -> None:
        self.low = low
        self.high = high
        self.low_open = low_open

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        too_low = number <= self.low if self.low_open else number < self.low
        if too_low or number > self.high:
            self.fail(f"{value} is not in the range {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        return f"{self.low:g}{'<' if self.low_open else '<='}x<={self.high:g}"

    def __repr__(self) -> str:
        return f"FiniteFloat {self._range()}"


#: The longest wait any option may ask for: a day.
_DAY: Final = 86_400.0


# --- global options ----------------------------------------------------------------


@dataclass
class Given:
    """Global options given on the command line, shared by every context of one run.

    Mutable on purpose: click fills it while parsing, the group's options
    first, so a command's own options can fall back to them.
    """

    values: dict[str, Any] = field(default_factory=dict)
    #: Names given before the command name (checked against the command).
    before: dict[str, str] = field(default_factory=dict)


def _merge_global(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Command line (after the command, then before it) > environment > default."""
    assert param.name is not None
    given = ctx.ensure_object(Given)
    if ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        given.values[param.name] = value
        if isinstance(ctx.command, click.Group):
            given.before[param.name] = param.opts[0]
        return value
    return given.values.get(param.name, value)


def global_option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """An option accepted before the command name and after it."""
    return click.option(*decls, callback=_merge_global, **attrs)


def stacked(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click decorators as one, applied in the order written."""

    def decorate(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


endpoint_option = global_option(
    "--endpoint",
    envvar="BATCHPLAN_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="API base URL, 'sandbox' or 'sandbox:DBFILE' (env BATCHPLAN_ENDPOINT).",
)
state_option = global_option(
    "--state",
    "state",
    envvar="BATCHPLAN_STATE",
    default=None,
    help=f"State file or s3://bucket/key (default {DEFAULT_STATE}; "
    f"{DEFAULT_SANDBOX_STATE} for the sandbox).",
)
no_color_option = global_option(
    "--no-color", is_flag=True, help="No colour (also NO_COLOR, or no terminal)."
)
verbose_option = global_option(
    "--verbose", "-v", is_flag=True, help="List unmanaged batches and more."
)
debug_option = global_option(
    "--debug", is_flag=True, help="Show the traceback of an unexpected error (a bug)."
)
env_option = click.option(
    "--env",
    "env",
    envvar="BATCHPLAN_ENV",
    default=None,
    metavar="NAME",
    help="The environment (from the config's environments:) to work on (env BATCHPLAN_ENV).",
)


def explicit_options(*names: str) -> list[str]:
    """Which of the global options ``names`` the user gave (flag or environment variable)."""
    context = click.get_current_context()
    return [
        name
        for name in names
        if context.get_parameter_source(name) is not ParameterSource.DEFAULT
        or name in context.ensure_object(Given).values
    ]


def taking(command: Callable[[A], int]) -> Callable[..., int]:
    """A click callback that turns click's values into ``command``'s arguments, then runs it.

    The arguments' class is the one ``command`` annotates ``args`` with, in
    :mod:`batchplan.commands.arguments`, the one place that reads click's
    values; the command itself only sees the typed value. ``explicit`` (the
    endpoint and state options the user gave, not defaulted) is worked out
    here, where click's context is at hand.
    """
    class_name = str(command.__annotations__["args"])

    def callback(**params: Any) -> int:
        from batchplan.commands import arguments

        build: Callable[[Mapping[str, Any], Sequence[str]], A] = getattr(
            arguments, class_name
        ).build
        explicit = explicit_options(*(name for name in ("endpoint", "state") if name in params))
        return command(build(params, explicit))

    callback.__name__ = command.__name__
    callback.__doc__ = command.__doc__
    return callback


lock_timeout_option = click.option(
    "--lock-timeout",
    default=0.0,
    type=FiniteFloat(0, _DAY),
    help="Seconds to wait for the state lock.",
)

# Every command prints errors, so every command takes these two.
output_options = stacked(no_color_option, debug_option)

# The options of every command that reaches the API.
common_options = stacked(
    endpoint_option,
    state_option,
    click.option(
        "--parallelism",
        default=16,
        type=click.IntRange(1, 64),
        show_default=True,
        help="Most API calls in flight at once; fewer while the API answers 429/503.",
    ),
    click.option(
        "--fixed-parallelism",
        is_flag=True,
        help="Always keep --parallelism calls in flight: no adapting to 429/503.",
    ),
    click.option(
        "--request-timeout",
        default=60.0,
        type=FiniteFloat(0.1, 3600),
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
        type=FiniteFloat(0, _DAY),
        show_default=True,
        help="Stop retrying one call after this many seconds.",
    ),
    output_options,
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


def format_option(*choices: str, help: str) -> Callable[[F], F]:
    """``--format`` with these choices, ``text`` first and the default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help,
    )


class Command(click.Command):
    """A command that refuses a global option given before it that it does not take."""

    def invoke(self, ctx: click.Context) -> Any:
        given = ctx.find_object(Given)
        if given is not None:
            mine = {param.name for param in self.params}
            for name, flag in given.before.items():
                if name not in mine:
                    raise click.UsageError(
                        f"{flag} does not apply to '{ctx.command_path}'", ctx=ctx
                    )
        return super().invoke(ctx)


class Group(click.Group):
    """Commands and nested groups of this CLI all use :class:`Command`."""

    command_class = Command
    group_class = type


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


paths_argument = click.argument("paths", nargs=-1, type=click.Path())
target_option = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="Only this batch, or the batches a shell-style pattern matches "
    "('kittens_2024-*'; quote it); repeatable.",
)
reassert_option = click.option(
    "--reassert-priority", is_flag=True, help="Re-send every managed priority."
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchplan")
@endpoint_option
@state_option
@no_color_option
@verbose_option
@debug_option
def cli(**_: Any) -> None:
    """Plan and apply Scale AI batches from YAML, like Terraform.

    The options above also work after the command name
    (`batchplan plan --endpoint sandbox`), on the commands they apply to.
    """


@cli.command()
@paths_argument
@variable_options
@format_option(
    "text",
    "json",
    "github",
    help="text for people, json for programs, github for pull request annotations.",
)
@output_options
@verbose_option
@taking
def validate(args: ValidateArguments) -> int:
    """Check the configuration files; no network (an unset ${NAME} is only a note)."""
    from batchplan.commands.validate import run

    return run(args)


compact_plan_option = click.option(
    "--compact",
    is_flag=True,
    help="One line per batch, grouped by project with its counts (text and markdown).",
)
plan_format_option = format_option(
    "text",
    "json",
    "markdown",
    help="text for terminals, json for machines, markdown for pull requests.",
)


@cli.command()
@paths_argument
@common_options
@verbose_option
@variable_options
@limit_options
@target_option
@reassert_option
@plan_format_option
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `apply FILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@compact_plan_option
@env_option
@taking
def plan(args: PlanArguments) -> int:
    """Show what apply would do."""
    from batchplan.commands.plan import run_plan as run

    return run(args)


@cli.command()
@click.argument("planfile", type=click.Path())
@plan_format_option
@output_options
@verbose_option
@compact_plan_option
@taking
def show(args: ShowArguments) -> int:
    """Print a saved plan (from `plan --out`)."""
    from batchplan.commands.plan import run_show as run

    return run(args)


@cli.command()
@paths_argument
@common_options
@verbose_option
@lock_timeout_option
@variable_options
@limit_options
@target_option
@reassert_option
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (for CI).")
@click.option("--fail-fast", is_flag=True, help="Stop starting new batches after a failure.")
@format_option(
    "text",
    "json",
    help="json: apply's events as JSON Lines on stdout (needs --auto-approve or PLANFILE).",
)
@click.option("--compact", is_flag=True, help="Print only failures and the summary.")
@env_option
@taking
def apply(args: ApplyArguments) -> int:
    """Make the calls that bring the account in line (PATHS or one saved PLANFILE)."""
    from batchplan.commands.apply import run

    return run(args)


@cli.command()
@paths_argument
@common_options
@variable_options
@format_option(
    "text",
    "json",
    "openmetrics",
    help="text for people, json for machines, openmetrics for a Prometheus textfile collector.",
)
@click.option(
    "--watch",
    type=FiniteFloat(0.1, _DAY),
    default=None,
    metavar="SECONDS",
    help="Redraw every SECONDS until no managed batch is in progress (or Ctrl-C).",
)
@env_option
@taking
def status(args: StatusArguments) -> int:
    """Show how far the labeling of the managed batches has got."""
    from batchplan.commands.status import run

    return run(args)


def _projects_or_from_state(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``import`` needs ``--project`` unless ``--from-state``: checked once both are parsed."""
    other = "from_state" if param.name == "projects" else "projects"
    if other in ctx.params and not ctx.resilient_parsing:
        given = {param.name: value, other: ctx.params[other]}
        if not given["projects"] and not given["from_state"]:
            raise click.UsageError("Missing option '--project' (or --from-state).", ctx=ctx)
    return value


@cli.command("import")
@click.argument("paths", nargs=-1)
@click.option(
    "--project",
    "projects",
    multiple=True,
    callback=_projects_or_from_state,
    help="Repeatable; required unless --from-state.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the YAML to FILE (- for stdout) and adopt. Without it: a preview, nothing written.",
)
@click.option(
    "--name",
    "patterns",
    multiple=True,
    metavar="PATTERN",
    help="Only batches whose name matches this shell-style glob. Repeatable.",
)
@click.option(
    "--assume-priority",
    type=click.IntRange(10, 30),
    default=None,
    help="Record this priority in state without a call, and write it in defaults.",
)
@click.option(
    "--take-ownership",
    is_flag=True,
    help="Also adopt batches another state's lineage marks, marking them with this one's.",
)
@click.option(
    "--from-state",
    is_flag=True,
    callback=_projects_or_from_state,
    help="Write YAML for the batches the state manages that no config declares; change nothing.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@common_options
@variable_options
@lock_timeout_option
@env_option
@taking
def import_(args: ImportArguments) -> int:
    """Preview YAML for live batches not managed yet (by state or config PATHS); --out adopts."""
    from batchplan.commands.importing import run

    return run(args)


@cli.command()
@click.argument("name", type=click.Choice(list(SCHEMAS)))
@output_options
@taking
def schema(args: SchemaArguments) -> int:
    """Print a JSON Schema: the config file, the saved plan or apply's JSON events."""
    from batchplan.commands.schema import run

    return run(args)


@cli.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@output_options
@taking
def init(args: InitArguments) -> int:
    """Start a project: a starter batchplan.yaml, its schema, .batchplan/ in .gitignore.

    Never overwrites: an existing config or schema copy is left as it is.
    """
    from batchplan.commands.init import run

    return run(args)


@cli.group()
def state() -> None:
    """Inspect and repair batchplan's state (no API calls)."""


# ``state`` subcommands only need to find the state, not the API.
state_options = stacked(endpoint_option, state_option, env_option, output_options)


@state.command("list")
@format_option("text", "json", help="text for people, json for machines.")
@state_options
@verbose_option
@taking
def state_list(args: StateListArguments) -> int:
    """List the batches in state (--verbose: serial, lineage, create-time flags)."""
    from batchplan.commands.state import run_list as run

    return run(args)


@state.command("show")
@click.argument("name")
@state_options
@taking
def state_show(args: StateShowArguments) -> int:
    """Show one batch's record as JSON."""
    from batchplan.commands.state import run_show as run

    return run(args)


@state.command("rm")
@click.argument("names", nargs=-1, required=True)
@state_options
@lock_timeout_option
@taking
def state_rm(args: StateRmArguments) -> int:
    """Drop batches from state; the batches themselves stay."""
    from batchplan.commands.state import run_rm as run

    return run(args)


@state.command("pull")
@state_options
@taking
def state_pull(args: StatePullArguments) -> int:
    """Print the state as JSON."""
    from batchplan.commands.state import run_pull as run

    return run(args)


@state.command("push")
@click.argument("path", type=click.Path())
@click.option(
    "--force",
    is_flag=True,
    help="Replace even another lineage, an older serial or another endpoint's state.",
)
@state_options
@lock_timeout_option
@taking
def state_push(args: StatePushArguments) -> int:
    """Replace the stored state with FILE."""
    from batchplan.commands.state import run_push as run

    return run(args)


@state.command("unlock")
@click.argument("lock_id")
@state_options
@taking
def state_unlock(args: StateUnlockArguments) -> int:
    """Break a stale state lock."""
    from batchplan.commands.state import run_unlock as run

    return run(args)


@cli.group()
def sandbox() -> None:
    """The embedded Scale-compatible API server."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8020,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (read it from the line printed).",
)
@click.option(
    "--db",
    "db_path",
    default=".batchplan/sandbox.db",
    show_default=True,
    help="SQLite file holding the data; it survives restarts.",
)
@click.option(
    "--api-key",
    default=None,
    envvar=["BATCHPLAN_SANDBOX_API_KEY", "SANDBOX_API_KEY"],
    help="Require this API key (HTTP Basic user name); without it any key is accepted. "
    "Prefer the environment variable BATCHPLAN_SANDBOX_API_KEY: a flag shows in `ps`.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    type=FiniteFloat(0, 1000 * _DAY),
    help="Wait this many milliseconds before answering every /v1 request.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    type=FiniteFloat(0, 1),
    help="Answer this fraction of /v1 requests 500 or 503 (half of failed POSTs after committing).",
)
@click.option(
    "--rate-limit",
    default=None,
    type=FiniteFloat(0, 1e9, low_open=True),
    metavar="R",
    help="Allow R /v1 requests a second (a token bucket); others get 429 with Retry-After: 1.",
)
@click.option(
    "--burst",
    default=None,
    type=click.IntRange(min=1),
    metavar="B",
    help="With --rate-limit: how many requests may come at once (the bucket's size). "
    "[default: R rounded up, one second's worth]",
)
@click.option("--seed", default=None, type=int, help="Make the fault draws reproducible.")
@click.option(
    "--strict-projects", is_flag=True, help="Only projects created with POST /projects exist."
)
@click.option(
    "--max-connections",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Connections served at once, a thread each; when all are taken a new one closes "
    "the connection waiting longest for a request.",
)
@output_options
@taking
def sandbox_serve(args: SandboxServeArguments) -> int:
    """Serve the sandbox API until Ctrl-C or SIGTERM."""
    from batchplan.commands.sandbox import run

    return run(args)


def report(message: str, no_color: bool) -> None:
    """Print an error on stderr, the ``Error:`` prefix in red when colour is on."""
    prefix = "Error: "
    color = use_color(no_color, sys.stderr)
    if color:
        prefix = click.style(prefix, fg="red", bold=True)
    click.echo(prefix + message, err=True, color=color)


# click 8.2+ raises this for a group run without a command (older ones print the help).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _out_of_resources(exc: BaseException) -> str | None:
    """What the system refused, when ``exc`` is the machine's limit and not a bug."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, RuntimeError) and str(exc) == "can't start new thread":
        return "another thread"
    return None


def run(args: list[str] | None = None) -> int:
    """Run the CLI and return the exit code; every expected error becomes a message."""
    argv = sys.argv[1:] if args is None else args
    given = Given()
    try:
        code = cli.main(args=argv, prog_name="batchplan", standalone_mode=False, obj=given)
    except click.exceptions.Abort as exc:
        # click turns a Ctrl-C into Abort; a refused prompt is an Abort too.
        interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        click.echo("Interrupted." if interrupted else "Aborted.", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        # Usage errors exit 1, not click's 2: 2 means "changes pending".
        if isinstance(exc, _NO_ARGS_IS_HELP):
            exc.show()  # a group run without a command: its help, nothing else
            return EXIT_ERROR
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f"Try '{exc.ctx.command_path} --help' for help."
            click.echo(f"{exc.ctx.get_usage()}\n{hint}\n", err=True)
        # A usage error can stop parsing before --no-color is read: look for it as written.
        options = argv[: argv.index("--")] if "--" in argv else argv
        report(exc.format_message(), given.values.get("no_color", "--no-color" in options))
        return EXIT_ERROR
    except BatchplanError as exc:
        # An expected failure: its message says everything; no traceback even with --debug.
        report(redact(str(exc)), given.values.get("no_color", False))
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if refused := _out_of_resources(exc):
            report(
                f"the system refused batchplan {refused} (a limit such as "
                "ulimit -v or -u, or the machine is out of memory); try a lower --parallelism",
                given.values.get("no_color", False),
            )
            return EXIT_ERROR
        if given.values.get("debug", False):
            import traceback

            # Through the redaction like every output: a frame's line may hold a secret.
            sys.stderr.write(redact(traceback.format_exc()))
        report(
            redact(
                f"unexpected {type(exc).__name__}: {exc} "
                "(a bug in batchplan; --debug shows the traceback)"
            ),
            given.values.get("no_color", False),
        )
        return EXIT_ERROR
    return code if isinstance(code, int) else 0


def main() -> None:
    """The ``batchplan`` command: run, then exit with its code.

    After a Ctrl-C the process ends at once, whatever the exit code (``status
    --watch`` stops with 0): a worker thread may still wait for an answer for
    up to the read timeout, and joining it would make the interrupt look
    ignored. Output is flushed first; state writes are atomic and done.

    Any other end runs what was registered to run at exit (the logging
    module's flush of the request log, an embedded sandbox's stop), then
    leaves without the interpreter's teardown, which frees every object of
    every module one by one: about 25 ms of a 200 ms ``validate``, for
    nothing, as the process is about to end. Every file batchplan writes is
    closed by then.
    """
    interrupted = False

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        code = run()
    except KeyboardInterrupt:
        # A second Ctrl-C while the first one's message was being printed.
        code = EXIT_INTERRUPTED
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        # The reader of stdout has gone (`| head`): what is left cannot be
        # printed, and must not turn into an error at exit.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    if not (interrupted or code == EXIT_INTERRUPTED):
        atexit._run_exitfuncs()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)
