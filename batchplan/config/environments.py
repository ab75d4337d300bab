"""The config root, ``environments:`` and ``variables:``: what a run needs before the batches.

A run first settles *where* it works: the config root (the folder of the
configuration, where the default state lives), the environment chosen with
``--env`` (its endpoint, state, API key variable and variable values) and
the declared variables (which ``${NAME}`` exist, which may be shown). Only
then is the configuration read with those values.

The two top-level blocks are found by a quick pre-read of the files that
mention them (the others are not parsed twice); their schema errors are
reported by the full read, with every other problem, so a pre-read that
finds something malformed simply ignores it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, NamedTuple

import yaml

from batchplan.config.yamlload import MAX_FILE_BYTES, load_yaml, problem_at
from batchplan.diagnostics import Diagnostic, Severity
from batchplan.errors import ConfigError, UsageError
from batchplan.options import Options

DEFAULT_API_KEY_ENV: Final = "SCALE_API_KEY"
#: The config read when no PATHS are given (as the CLI reads it).
DEFAULT_CONFIGS: Final = ("batchplan.yaml", "batchplan.yml")
#: The sandbox's own files, under the config root.
SANDBOX_DB: Final = ".batchplan/sandbox.db"

# A file mentioning neither word cannot hold either block: it is not pre-read.
_MENTIONS: Final = re.compile(rb"(variables|environments)['\"]?\s*:")
# Declarations are short; longer blocks go through the full reader and its limits.
_MAX_BLOCK_CHARS: Final = 1 << 20
_BLOCK_START: Final = re.compile(r"^(?:variables|environments)[ \t]*:", re.MULTILINE)
_TOP_LEVEL_LINE: Final = re.compile(r"^[^\s#]", re.MULTILINE)
_VARIABLE: Final = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_VARIABLE_BODY: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Variable:
    """One declared ``${NAME}``: shown in plans unless ``sensitive``."""

    name: str
    description: str = ""
    default: str | None = None
    sensitive: bool = False


@dataclass(frozen=True)
class Environment:
    """One account the configuration is applied to (``environments: NAME: ...``)."""

    name: str
    endpoint: str | None = None
    state: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    var_files: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Declarations:
    """The ``variables:`` and ``environments:`` blocks; ``None`` when a block is absent."""

    variables: Mapping[str, Variable] | None = None
    environments: Mapping[str, Environment] | None = None

    def defaults(self) -> dict[str, str]:
        """The declared defaults, the lowest-precedence values of ``${NAME}``."""
        return {
            name: variable.default
            for name, variable in (self.variables or {}).items()
            if variable.default is not None
        }


def config_root(paths: Sequence[str]) -> str:
    """The folder the configuration lives in, as a path relative to here when given so.

    With PATHS: the folder given, or the folder of the first file; without,
    the current folder (``.``). The default state and the sandbox's files
    live under it, so a run from a sub-folder finds the same state.
    """
    if not paths:
        return "."
    first = paths[0]
    folder = first if os.path.isdir(first) else os.path.dirname(first)
    return os.path.normpath(folder) if folder else "."


def under_root(root: str, path: str) -> str:
    """``path`` from the configuration (relative to the root) as a path from here."""
    if "://" in path or os.path.isabs(path) or root == ".":
        return path
    return os.path.normpath(os.path.join(root, path))


def _files(paths: Sequence[str]) -> Iterator[tuple[Path, bytes]]:
    from batchplan.config.load import resolve_paths

    try:
        files = resolve_paths(paths)
    except ConfigError:
        return  # reported, with every other problem, when the config is read
    for file in files:
        try:
            with file.open("rb") as handle:
                # One byte past the limit is enough: the full read refuses a bigger file.
                head = handle.read(MAX_FILE_BYTES + 1)
        except OSError:
            continue
        if len(head) > MAX_FILE_BYTES:
            continue
        if _MENTIONS.search(head):
            yield file, head


def read_declarations(paths: Sequence[str]) -> Declarations:
    """The ``variables:`` and ``environments:`` blocks of the files ``paths`` name.

    Read literally (no ``${NAME}`` expanded). Malformed parts are skipped
    here: the full read of the configuration reports them, located.
    """
    variables: dict[str, Variable] | None = None
    environments: dict[str, Environment] | None = None
    for file, data in _files(paths):
        root = _blocks(data)
        if root is None:
            root, _ = load_yaml(file, None)
        if root is None:
            continue
        block = root.get("variables")
        if isinstance(block, Mapping) and variables is None:
            variables = {str(name): _variable(str(name), spec) for name, spec in block.items()}
        block = root.get("environments")
        if isinstance(block, Mapping) and environments is None:
            environments = {
                str(name): _environment(str(name), spec)
                for name, spec in block.items()
                if isinstance(spec, Mapping)
            }
    return Declarations(variables, environments)


def _blocks(data: bytes) -> Mapping[str, Any] | None:
    """Only the top-level ``variables:`` / ``environments:`` blocks, read from their lines.

    A config of 100,000 batches with its declarations on top is not parsed
    whole twice. None when the blocks cannot be cut out that way (flow or
    JSON style, an alias into the rest of the file, bad text): the caller
    then reads the whole file.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    chunks = []
    for start in _BLOCK_START.finditer(text):
        # A block ends at the next line that starts at column 0 (another key, "---").
        end = _TOP_LEVEL_LINE.search(text, start.end())
        chunks.append(text[start.start() : end.start() if end else len(text)])
    if not chunks or sum(map(len, chunks)) > _MAX_BLOCK_CHARS:
        return None
    try:
        root = yaml.safe_load("\n".join(chunks))
    except yaml.YAMLError:
        return None
    return root if isinstance(root, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _variable(name: str, spec: Any) -> Variable:
    if not isinstance(spec, Mapping):
        return Variable(name)
    return Variable(
        name,
        description=_text(spec.get("description")) or "",
        default=_text(spec.get("default")),
        sensitive=spec.get("sensitive") is True,
    )


def _environment(name: str, spec: Mapping[str, Any]) -> Environment:
    files = spec.get("var_files")
    values = spec.get("variables")
    return Environment(
        name,
        endpoint=_text(spec.get("endpoint")),
        state=_text(spec.get("state")),
        api_key_env=_text(spec.get("api_key_env")) or DEFAULT_API_KEY_ENV,
        var_files=tuple(f for f in files if isinstance(f, str)) if isinstance(files, list) else (),
        variables=(
            {k: v for k, v in values.items() if isinstance(v, str)}
            if isinstance(values, Mapping)
            else {}
        ),
    )


# --- settling a run's options ---------------------------------------------------


def settle(
    paths: Sequence[str],
    options: Options,
    *,
    explicit: Collection[str] = (),
    tell: Callable[[str], None] = lambda _line: None,
) -> Options:
    """The options of a run that reads the configuration ``paths``, its environment applied.

    ``options.environment`` is ``--env`` (or BATCHPLAN_ENV). When the
    configuration declares ``environments:``, one must be chosen; its
    endpoint, state, API key variable, var files and variables are used,
    except where ``explicit`` (``endpoint``, ``state``) says the command line
    gave its own, which wins and is told through ``tell``. ``--var`` and
    ``--var-file`` values win over the environment's. The default state and
    the sandbox's database are placed under the config root.
    """
    root = config_root(paths)
    # Without PATHS (``import``), the environments are those of the default config here.
    lookup = paths or [name for name in DEFAULT_CONFIGS if os.path.isfile(name)][:1]
    declarations = read_declarations(lookup) if lookup else Declarations()
    if options.environment is not None and declarations.environments is None and lookup:
        _raise_config_errors(lookup)
    environment = choose_environment(declarations, options.environment)
    endpoint, state = options.endpoint, options.state
    api_key_env = options.api_key_env
    variables = dict(options.variables)
    if environment is not None:
        api_key_env = environment.api_key_env
        endpoint = (
            _pick("endpoint", environment, environment.endpoint, endpoint, explicit, tell, root)
            or endpoint
        )
        state = _pick("state", environment, environment.state, state, explicit, tell, root)
        from batchplan.config.load import read_variables

        files = [under_root(root, file) for file in environment.var_files]
        given = variables
        variables = {**read_variables((), files), **environment.variables}
        overridden = sorted(name for name in given if name in variables)
        variables.update(given)
        if overridden:
            tell(
                f"environment {environment.name}: "
                + ", ".join(overridden)
                + " given on the command line, instead of the environment's value"
            )
    if declarations.variables is not None:
        files = [*options.var_files]
        if environment is not None:
            files += [under_root(root, file) for file in environment.var_files]
        sources = GivenValues(tuple(files), options.var_names)
        for warning in undeclared_values(sources, declarations.variables):
            tell(f"warning: {warning}")
    if endpoint == "sandbox" and root != ".":
        endpoint = "sandbox:" + under_root(root, SANDBOX_DB)
    return replace(
        options,
        root=root,
        endpoint=endpoint,
        state=state,
        api_key_env=api_key_env,
        variables=tuple(variables.items()),
    )


#: What a variable's name may be: letters, digits and ``_``, not starting with a digit.
VARIABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GivenValues(NamedTuple):
    """Where variable values came from: var files, and the names of ``--var``."""

    files: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


def undeclared_values(given: GivenValues, declared: Mapping[str, Variable]) -> Iterator[Diagnostic]:
    """A warning per var-file key or ``--var`` name that declares nothing.

    A typo there gives no value anywhere: the ``${NAME}`` it was meant for
    keeps its default, or stays unset.
    """
    for file in given.files:
        root, _ = load_yaml(Path(file), None, variables_file=True, name=file)
        if root is None:
            continue  # its problems are reported where the values are read
        for key in root:
            # A key that is no name is refused where the values are read.
            if key not in declared and VARIABLE_NAME.fullmatch(key):
                mark = root.key_marks[key]
                yield problem_at(file, mark, (), _undeclared(key), _UNDECLARED, Severity.WARNING)
    for name in given.names:
        if name not in declared and VARIABLE_NAME.fullmatch(name):
            message = f"--var {name}: {_undeclared(name)}"
            yield Diagnostic(Severity.WARNING, _UNDECLARED, message)


_UNDECLARED: Final = "value_undeclared"


def _undeclared(name: str) -> str:
    return f"{name} is not declared in variables: no ${{{name}}} can use it (a typo?)"


def _raise_config_errors(paths: Sequence[str]) -> None:
    """A configuration that could not be pre-read: its own errors say more than
    "no environments" would."""
    from batchplan.config.load import check_config

    errors = check_config(paths, require_variables=False).errors
    if errors:
        raise ConfigError(errors)


def choose_environment(declarations: Declarations, name: str | None) -> Environment | None:
    """The environment ``--env`` names; an error when it must be given and is not."""
    environments = declarations.environments
    if not environments:
        if name is not None:
            raise UsageError(
                f"--env {name}: the configuration declares no environments "
                "(add an `environments:` block, or leave --env out)"
            )
        return None
    names = ", ".join(sorted(environments))
    if name is None:
        raise UsageError(
            f"the configuration declares environments ({names}): choose one with --env NAME "
            "(or BATCHPLAN_ENV)"
        )
    if name not in environments:
        raise UsageError(f"--env {name}: no such environment; the configuration declares {names}")
    return environments[name]


def _pick(
    what: str,
    environment: Environment,
    configured: str | None,
    given: str | None,
    explicit: Collection[str],
    tell: Callable[[str], None],
    root: str,
) -> str | None:
    """The environment's ``endpoint`` / ``state`` unless the command line gave its own."""
    if configured is None:
        return given
    if configured.startswith("sandbox:"):
        configured = "sandbox:" + under_root(root, configured.removeprefix("sandbox:"))
    elif what == "state":
        configured = under_root(root, configured)
    if what in explicit and given is not None:
        if given != configured:
            tell(f"environment {environment.name}: --{what} {given}, instead of its {configured}")
        return given
    return configured


# --- what plans may show -------------------------------------------------------


def shown_text(
    written: str, environ: Mapping[str, str], declared: Mapping[str, Variable] | None
) -> str:
    """A value written with ``${NAME}`` as plans show it.

    A declared, non-sensitive variable shows its value (its fallback when
    unset), so a reviewer sees what the change targets. Any other variable
    stays ``${NAME}``; an unset one with a fallback shows as written (the
    fallback is configuration, and is the value used). The fallback text is
    never shown for a variable that is set.
    """

    def show(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "$${"
        parsed = _VARIABLE_BODY.fullmatch(match.group(1))
        if parsed is None or not match.group(2):
            return match.group(0)
        name, fallback = parsed.group(1), parsed.group(2)
        value = environ.get(name)
        if declared is not None and name in declared and not declared[name].sensitive:
            return (value or "") if value or fallback is None else fallback
        if fallback is not None and not value:
            return match.group(0)
        return "${" + name + "}"

    return _VARIABLE.sub(show, written)


def names_used(written: str) -> Iterator[str]:
    """The variable names a value written with ``${NAME}`` refers to."""
    for match in _VARIABLE.finditer(written):
        if match.group(0) == "$${" or not match.group(2):
            continue
        parsed = _VARIABLE_BODY.fullmatch(match.group(1))
        if parsed is not None:
            yield parsed.group(1)
