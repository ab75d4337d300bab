"""``batchplan plan`` and ``batchplan show``: what apply would do, in three formats."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from batchplan.config import load_config
from batchplan.context import Endpoint, Options, make_client, open_endpoint, read_state
from batchplan.context import state_backend as open_state
from batchplan.diff import diff
from batchplan.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, EXIT_UNSAFE, UsageError
from batchplan.model import (
    DEFAULT_MAX_CHANGES,
    DEFAULT_MAX_FINALIZE,
    DEFAULT_MAX_FORGET,
    Config,
    LiveView,
)
from batchplan.plan import Limits, Plan, PlanOptions, limit_violations
from batchplan.planfile import checksum, read_plan_file, write_plan_file
from batchplan.refresh import read_live
from batchplan.scale import ScaleClient
from batchplan.state import State, StateBackend

FORMATS = ("text", "json", "markdown")


@dataclass
class Planned:
    """Everything a plan was made from, for apply to carry on with."""

    config: Config
    endpoint: Endpoint
    client: ScaleClient
    backend: StateBackend
    state: State
    live: LiveView
    plan: Plan
    options: PlanOptions
    checksum: str


def stored_lineage(state: State) -> str | None:
    """The lineage, or None for a state never written (each run invents a new one)."""
    return state.lineage if state.serial > 0 else None


def limits_for(config: Config, options: PlanOptions) -> Limits:
    """Flags win over ``settings:``, which wins over the defaults."""

    def pick(flag: int | None, setting: int | None, default: int) -> int:
        if flag is not None:
            return flag
        return setting if setting is not None else default

    settings = config.settings
    return Limits(
        max_finalize=pick(options.max_finalize, settings.max_finalize, DEFAULT_MAX_FINALIZE),
        max_changes=pick(options.max_changes, settings.max_changes, DEFAULT_MAX_CHANGES),
        max_forget=pick(options.max_forget, settings.max_forget, DEFAULT_MAX_FORGET),
    )


def check_targets(targets: Sequence[str], config: Config, state: State) -> None:
    """A target that names no batch is a typo; planning nothing would hide it."""
    known = {b.name for b in config.batches} | set(state.batches)
    unknown = sorted(set(targets) - known)
    if unknown:
        raise UsageError(
            "--target names no batch in the configuration or state: "
            + ", ".join(repr(name) for name in unknown)
        )


def make_plan(
    paths: Sequence[str],
    options: Options,
    plan_options: PlanOptions,
    *,
    config: Config | None = None,
    backend: StateBackend | None = None,
    endpoint: Endpoint | None = None,
) -> Planned:
    """Load and validate the config before anything touches the network, then plan."""
    config = config or load_config(paths, variables=dict(options.variables))
    endpoint = endpoint or open_endpoint(options.endpoint)
    client = make_client(endpoint, options)
    backend = backend or open_state(options, endpoint)
    state = read_state(backend, endpoint)
    check_targets(plan_options.targets, config, state)
    live = read_live(
        client,
        config,
        ((r.name, r.project) for r in state.batches.values()),
        options.parallelism,
    )
    plan = diff(
        config,
        live,
        state.batches,
        targets=plan_options.targets,
        reassert_priority=plan_options.reassert_priority,
    )
    digest = checksum(
        endpoint=endpoint.identity,
        options=plan_options,
        config=config,
        lineage=stored_lineage(state),
        serial=state.serial,
        live=live,
        state_names=sorted(state.batches),
        plan=plan,
    )
    return Planned(config, endpoint, client, backend, state, live, plan, plan_options, digest)


def unsafe_reasons(planned: Planned) -> Sequence[str]:
    if planned.options.force:
        return ()
    return limit_violations(planned.plan, limits_for(planned.config, planned.options))


def render(plan: Plan, fmt: str, options: Options) -> str:
    if fmt == "json":
        from batchplan.render.json import render_json

        return render_json(plan)
    if fmt == "markdown":
        from batchplan.render.markdown import render_markdown

        return render_markdown(plan)
    from batchplan.render.text import render_text

    return render_text(plan, color=options.color, verbose=options.verbose)


def plan(
    paths: Sequence[str],
    options: Options,
    plan_options: PlanOptions,
    echo: Callable[[str], None],
    *,
    fmt: str = "text",
    out: str | None = None,
    detailed_exitcode: bool = False,
) -> int:
    """Print the plan; exit 1 on conflicts, 3 if unsafe, 2 for changes with -detailed.

    With ``--format json`` stdout holds the JSON document and nothing else;
    the unsafe-plan reasons then go to stderr.
    """
    planned = make_plan(paths, options, plan_options)
    echo(render(planned.plan, fmt, options).rstrip("\n"))
    if out is not None:
        write_plan_file(
            out,
            planned.plan,
            config_paths=list(paths),
            endpoint=planned.endpoint.identity,
            options=plan_options,
            lineage=stored_lineage(planned.state),
            serial=planned.state.serial,
            digest=planned.checksum,
        )
    if planned.plan.conflicts:
        return EXIT_ERROR
    reasons = unsafe_reasons(planned)
    if reasons:
        say = echo if fmt == "text" else _stderr
        say("")
        say("Unsafe plan: apply refuses it without --force:")
        for reason in reasons:
            say(f"  - {reason}")
        return EXIT_UNSAFE
    if detailed_exitcode and planned.plan.summary.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _stderr(line: str) -> None:
    import click

    click.echo(line, err=True)


def show(path: str, options: Options, echo: Callable[[str], None], *, fmt: str = "text") -> int:
    """Print a saved plan in any format; JSON is the saved document itself."""
    saved = read_plan_file(path)
    if fmt == "json":
        import json

        echo(json.dumps(saved.document, indent=2, ensure_ascii=False))
    else:
        echo(render(saved.plan, fmt, options).rstrip("\n"))
    return EXIT_OK
