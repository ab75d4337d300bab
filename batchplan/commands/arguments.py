"""Typed arguments: one immutable value per command, built in one place from click's values.

click parses the command line into a mapping of parameter names to values;
each ``*Arguments.build`` turns that mapping into the typed value its command
receives, so no command reads a raw flag. The pieces several commands share
(the :class:`~batchplan.options.Options` of the common options, the plan's
limits and targets, the ``--var``/``--var-file`` values, where the state is)
come from the helpers at the top, and nowhere else.

Building may read files (``--var-file``) and may refuse a combination of
options; it never reaches the network. The values are NamedTuples rather
than dataclasses: defining a dataclass costs about a millisecond, which
every ``validate`` would pay sixteen times over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import click

from batchplan.commands import SCHEMAS
from batchplan.errors import ConfigError, UsageError
from batchplan.options import ClientOptions, Options
from batchplan.views.terminal import use_color

if TYPE_CHECKING:
    # Loaded by the builders that need them, so that `validate` or `--version`
    # does not pay for the plan model or the sandbox.
    from batchplan.diagnostics import Diagnostic
    from batchplan.plan.changes import PlanOptions
    from batchplan.sandbox import SandboxOptions

#: click's parsed values of one command, by parameter name.
Params = Mapping[str, Any]

#: The config read when no PATHS are given, in this order of preference.
DEFAULT_CONFIGS: Final = ("batchplan.yaml", "batchplan.yml")


# --- shared pieces ------------------------------------------------------------


def default_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """PATHS as given, or the one default config file of the current folder.

    Both ``batchplan.yaml`` and ``batchplan.yml`` present is refused rather
    than picking one: the other would be silently ignored, and a batch
    missing from the config is a batch plan proposes to forget.
    """
    if paths:
        return tuple(paths)
    found = [name for name in DEFAULT_CONFIGS if Path(name).exists()]
    if len(found) > 1:
        raise UsageError(
            "both batchplan.yaml and batchplan.yml are in this folder: "
            "remove one, or name the files to read as arguments"
        )
    if not found:
        raise UsageError(
            "no batchplan.yaml (or batchplan.yml) in this folder: "
            "create one, or name the config files or folders as arguments"
        )
    return (found[0],)


def variables_of(params: Params) -> tuple[tuple[str, str], ...]:
    """``--var`` and ``--var-file`` as (NAME, VALUE) pairs, ``--var`` winning."""
    from batchplan.config.load import read_variables

    return tuple(read_variables(params.get("var", ()), params.get("var_file", ())).items())


def _var_names(assignments: Sequence[str]) -> tuple[str, ...]:
    """The names of ``--var NAME=VALUE`` (malformed ones are refused by read_variables)."""
    return tuple(sorted({a.partition("=")[0] for a in assignments if "=" in a}))


def options_of(params: Params) -> Options:
    """The shared options of a command that reaches the API (the common options)."""
    return Options(
        var_files=tuple(params.get("var_file", ())),
        var_names=_var_names(params.get("var", ())),
        environment=params.get("env") or None,
        variables=variables_of(params),
        endpoint=params["endpoint"],
        state=params["state"],
        lock_timeout=params.get("lock_timeout", 0.0),
        parallelism=params["parallelism"],
        color=use_color(params["no_color"]),
        verbose=params.get("verbose", False),
        debug=params["debug"],
        client=ClientOptions(
            read_timeout=params["request_timeout"],
            max_attempts=params["max_retries"] + 1,
            max_retry_time=params["retry_max_time"],
            adaptive=not params["fixed_parallelism"],
        ),
    )


def plan_options_of(params: Params) -> PlanOptions:
    """The flags a plan is made with: ``--target``, the limits, ``--force``."""
    from batchplan.plan.changes import PlanOptions

    return PlanOptions(
        targets=tuple(params["targets"]),
        reassert_priority=params["reassert_priority"],
        max_finalize=params["max_finalize"],
        max_changes=params["max_changes"],
        max_forget=params["max_forget"],
        force=params["force"],
    )


class StatePlace(NamedTuple):
    """Where a ``state`` command finds the state: the endpoint, ``--state`` and ``--env``."""

    endpoint: str
    state: str | None
    environment: str | None
    explicit: tuple[str, ...] = ()

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StatePlace:
        return cls(params["endpoint"], params["state"], params.get("env") or None, tuple(explicit))


# --- one value per command ------------------------------------------------------------


class ValidateArguments(NamedTuple):
    """``batchplan validate``."""

    paths: tuple[str, ...]
    format: str
    color: bool
    verbose: bool
    #: Where the values came from: ``--var-file`` files and ``--var`` names.
    var_files: tuple[str, ...] = ()
    var_names: tuple[str, ...] = ()
    #: What was wrong with ``--var`` / ``--var-file``: validate reports it
    #: with the configuration's problems, in the format asked for.
    variable_problems: tuple[Diagnostic, ...] = ()
    #: ``--var`` / ``--var-file`` values: may be secrets, so never in the repr.
    variables: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields[:-1])
        return f"ValidateArguments({shown}, variables=<{len(self.variables)} hidden>)"

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> ValidateArguments:
        paths = default_paths(params["paths"])
        problems: tuple[Diagnostic, ...] = ()
        try:
            variables = variables_of(params)
        except ConfigError as exc:
            variables, problems = (), exc.diagnostics
        return cls(
            paths=paths,
            format=params["fmt"],
            color=use_color(params["no_color"]),
            verbose=params["verbose"],
            var_files=tuple(params.get("var_file", ())),
            var_names=_var_names(params.get("var", ())),
            variable_problems=tuple(problems),
            variables=variables,
        )


class PlanArguments(NamedTuple):
    """``batchplan plan``."""

    paths: tuple[str, ...]
    options: Options
    plan_options: PlanOptions
    format: str = "text"
    out: str | None = None
    detailed_exitcode: bool = False
    compact: bool = False
    #: The global options given on the command line (not defaults), for ``--env``.
    explicit: tuple[str, ...] = ()

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> PlanArguments:
        options, plan_options = options_of(params), plan_options_of(params)
        return cls(
            paths=default_paths(params["paths"]),
            options=options,
            plan_options=plan_options,
            format=params["fmt"],
            out=params["out"],
            detailed_exitcode=params["detailed_exitcode"],
            compact=params["compact"],
            explicit=tuple(explicit),
        )


class ShowArguments(NamedTuple):
    """``batchplan show PLANFILE``."""

    planfile: str
    options: Options
    format: str = "text"
    compact: bool = False

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> ShowArguments:
        options = Options(
            color=use_color(params["no_color"]), verbose=params["verbose"], debug=params["debug"]
        )
        return cls(params["planfile"], options, params["fmt"], params["compact"])


class ApplyArguments(NamedTuple):
    """``batchplan apply [PATHS | PLANFILE]``."""

    paths: tuple[str, ...]
    options: Options
    plan_options: PlanOptions
    format: str = "text"
    compact: bool = False
    auto_approve: bool = False
    fail_fast: bool = False
    explicit: tuple[str, ...] = ()

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> ApplyArguments:
        options, plan_options = options_of(params), plan_options_of(params)
        return cls(
            paths=default_paths(params["paths"]),
            options=options,
            plan_options=plan_options,
            format=params["fmt"],
            compact=params["compact"],
            auto_approve=params["auto_approve"],
            fail_fast=params["fail_fast"],
            explicit=tuple(explicit),
        )


class StatusArguments(NamedTuple):
    """``batchplan status``."""

    paths: tuple[str, ...]
    options: Options
    format: str = "text"
    watch: float | None = None
    explicit: tuple[str, ...] = ()

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StatusArguments:
        paths = default_paths(params["paths"])
        return cls(paths, options_of(params), params["fmt"], params["watch"], tuple(explicit))


class ImportArguments(NamedTuple):
    """``batchplan import``."""

    paths: tuple[str, ...]
    projects: tuple[str, ...]
    options: Options
    out: str | None = None
    patterns: tuple[str, ...] = ()
    assume_priority: int | None = None
    take_ownership: bool = False
    from_state: bool = False
    force: bool = False
    explicit: tuple[str, ...] = ()

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> ImportArguments:
        return cls(
            paths=tuple(params["paths"]),
            projects=tuple(params["projects"]),
            options=options_of(params),
            out=params["out"],
            patterns=tuple(params["patterns"]),
            assume_priority=params["assume_priority"],
            take_ownership=params["take_ownership"],
            from_state=params["from_state"],
            force=params["force"],
            explicit=tuple(explicit),
        )


class InitArguments(NamedTuple):
    """``batchplan init [FOLDER]``."""

    folder: str
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> InitArguments:
        return cls(params["folder"], use_color(params["no_color"]))


class SchemaArguments(NamedTuple):
    """``batchplan schema NAME``: the name given and the file it names."""

    name: str
    filename: str

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> SchemaArguments:
        return cls(params["name"], SCHEMAS[params["name"]])


class StateListArguments(NamedTuple):
    """``batchplan state list``."""

    place: StatePlace
    format: str
    verbose: bool
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StateListArguments:
        return cls(
            StatePlace.build(params, explicit),
            params["fmt"],
            params["verbose"],
            use_color(params["no_color"]),
        )


class StateShowArguments(NamedTuple):
    """``batchplan state show NAME``."""

    place: StatePlace
    name: str
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StateShowArguments:
        place = StatePlace.build(params, explicit)
        return cls(place, params["name"], use_color(params["no_color"]))


class StateRmArguments(NamedTuple):
    """``batchplan state rm NAME...``."""

    place: StatePlace
    names: tuple[str, ...]
    lock_timeout: float
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StateRmArguments:
        return cls(
            StatePlace.build(params, explicit),
            tuple(params["names"]),
            params["lock_timeout"],
            use_color(params["no_color"]),
        )


class StatePullArguments(NamedTuple):
    """``batchplan state pull``."""

    place: StatePlace
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StatePullArguments:
        return cls(StatePlace.build(params, explicit), use_color(params["no_color"]))


class StatePushArguments(NamedTuple):
    """``batchplan state push FILE``."""

    place: StatePlace
    path: str
    force: bool
    lock_timeout: float
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StatePushArguments:
        return cls(
            StatePlace.build(params, explicit),
            params["path"],
            params["force"],
            params["lock_timeout"],
            use_color(params["no_color"]),
        )


class StateUnlockArguments(NamedTuple):
    """``batchplan state unlock LOCK_ID``."""

    place: StatePlace
    lock_id: str
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> StateUnlockArguments:
        place = StatePlace.build(params, explicit)
        return cls(place, params["lock_id"], use_color(params["no_color"]))


class SandboxServeArguments(NamedTuple):
    """``batchplan sandbox serve``."""

    options: SandboxOptions
    color: bool

    @classmethod
    def build(cls, params: Params, explicit: Sequence[str] = ()) -> SandboxServeArguments:
        from batchplan.sandbox import SandboxOptions

        if params["burst"] is not None and params["rate_limit"] is None:
            raise click.UsageError("--burst needs --rate-limit")
        options = SandboxOptions(
            host=params["host"],
            port=params["port"],
            db_path=params["db_path"],
            api_key=params["api_key"],
            latency_ms=params["latency_ms"],
            fault_rate=params["fault_rate"],
            rate_limit=params["rate_limit"],
            burst=params["burst"],
            seed=params["seed"],
            strict_projects=params["strict_projects"],
            max_connections=params["max_connections"],
        )
        return cls(options, use_color(params["no_color"]))
