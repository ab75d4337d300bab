"""``batchplan import``: bring an existing account under batchplan in one command.

Without ``--out`` it only previews: the YAML goes to standard output and
nothing is written, state included. With ``--out FILE`` (or ``--out -`` for
standard output) it writes the YAML for the live batches of the given
projects that batchplan does not manage yet and records them in state
without any mutating call (with ``settings: {ownership: true}``, one
``setMetadata`` per batch writes the ownership key), so that a plan right
after shows no changes. A batch already in state or in the config is
"already managed": it is skipped, and its state record is never touched.
A name no config can hold, or a batch another state owns, is skipped with
a note. ``--from-state`` goes the other way: YAML for the batches the state
manages that no config declares.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from batchplan import threads
from batchplan.api.client import ScaleClient
from batchplan.api.session import Session
from batchplan.apply.engine import utc_now
from batchplan.commands.arguments import ImportArguments
from batchplan.config.environments import settle
from batchplan.config.load import load_names
from batchplan.config.yamlload import _core_value as core_value
from batchplan.errors import EXIT_OK, PlanError, UsageError
from batchplan.model import (
    COMPLETED,
    IN_PROGRESS,
    LINEAGE_KEY,
    BatchRecord,
    Config,
    LiveBatch,
    name_problem,
)
from batchplan.options import Options
from batchplan.plan.planning import first_lineage
from batchplan.state import State, StateBackend
from batchplan.state.location import read_state
from batchplan.state.location import state_backend as open_state
from batchplan.views.importing import STDOUT, ImportTally, ImportView, import_view
from batchplan.views.terminal import make_echo, tell

CALLBACK_VARIABLE = "BATCHPLAN_CALLBACK_{}"

# A query parameter whose name holds one of these words carries a credential
# (``token``, ``api_key``, ``X-Amz-Signature``, ``sig``, ``client_secret``...).
_SECRET_PARAMETER = re.compile(r"token|key|secret|signature|sig|password|auth", re.IGNORECASE)


def carries_credentials(url: str) -> bool:
    """True when a callback URL holds user info or a credential-like query parameter."""
    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            return True
    except ValueError:
        # Not parsable as a URL: keep it out of the file, to be safe.
        return True
    return any(
        _SECRET_PARAMETER.search(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True)
    )


# Characters PyYAML may write raw outside double quotes although YAML folds
# them (NEL, line and paragraph separators) or forbids them (controls, BOM):
# inside double quotes it escapes them.
_ESCAPED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


class _Verbatim(str):
    """Written as is: mapping keys (the reader takes keys raw) and ``${NAME}`` references."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, with strings quoted for the reader's YAML 1.2 typing."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """A string the reader gives back unchanged.

    PyYAML quotes by YAML 1.1, so ``0o17`` or ``1e9`` would go out plain and
    come back as numbers under the reader's YAML 1.2 core schema: every
    string the reader would type as something else is double-quoted. ``${``
    is written ``$${`` in values, which the reader expands.
    """
    text = value if isinstance(value, _Verbatim) else value.replace("${", "$${")
    typed = core_value(value)
    needs_quotes = not isinstance(typed, str) or typed != value or _ESCAPED.search(value)
    style = '"' if needs_quotes else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Verbatim, _represent_str)


def _plain(value: Any) -> Any:
    """Live metadata as plain YAML data, with keys marked as keys."""
    if isinstance(value, Mapping):
        return {_Verbatim(str(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True)
class ImportedYaml:
    """The YAML text, and which variable stands for which batch's secret callback."""

    text: str
    variables: tuple[tuple[str, str], ...]  # (variable, batch name)


def config_yaml(
    batches: Sequence[LiveBatch],
    projects: Sequence[str],
    priority: int | None,
    priorities: Mapping[str, int | None] | None = None,
) -> ImportedYaml:
    """The YAML document for ``batches``; one project goes into ``defaults``.

    ``priorities`` gives batches their own priority (``--from-state`` knows
    the priorities batchplan sent). The ownership key is never written: it
    is batchplan's own, not configuration.
    """
    single = len(projects) == 1
    defaults: dict[str, Any] = {}
    if single:
        defaults["project"] = projects[0]
    if priority is not None:
        defaults["priority"] = priority
    entries = []
    variables: list[tuple[str, str]] = []
    for batch in batches:
        entry: dict[str, Any] = {"name": batch.name}
        if not single:
            entry["project"] = batch.project
        if batch.callback:
            if carries_credentials(batch.callback):
                variable = CALLBACK_VARIABLE.format(len(variables) + 1)
                variables.append((variable, batch.name))
                # Written as is: a reference the reader expands, not a literal.
                entry["callback"] = _Verbatim("${" + variable + "}")
            else:
                entry["callback"] = batch.callback
        if batch.status in (IN_PROGRESS, COMPLETED):
            entry["finalized"] = True
        own = (priorities or {}).get(batch.name)
        if own is not None and own != priority:
            entry["priority"] = own
        metadata = {k: v for k, v in (batch.metadata or {}).items() if k != LINEAGE_KEY}
        if metadata:
            entry["metadata"] = _plain(metadata)
        entries.append(entry)
    document: dict[str, Any] = {"version": 1}
    if defaults:
        document["defaults"] = defaults
    document["batches"] = entries
    # Names go into comments JSON-quoted: a name may hold a line break.
    header = ["# Imported by batchplan from the live account; `batchplan validate` checks it."]
    for variable, name in variables:
        header.append(
            f"# Set {variable} to the live callback of batch {json.dumps(name)}: "
            "it carries credentials, which are not written here."
        )
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    return ImportedYaml("\n".join(header) + "\n" + body, tuple(variables))


@dataclass(frozen=True)
class ImportRequest:
    """What ``batchplan import`` was asked: the command line, as values."""

    projects: tuple[str, ...] = ()
    out: str | None = None
    assume_priority: int | None = None
    force: bool = False
    paths: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    take_ownership: bool = False
    from_state: bool = False

    @property
    def adopts(self) -> bool:
        """Only ``--out`` adopts; without it import is a preview."""
        return self.out is not None and not self.from_state

    @property
    def to_stdout(self) -> bool:
        return self.out is None or self.out == STDOUT

    def wanted(self, name: str) -> bool:
        """``--name`` patterns: shell-style globs, case-sensitive; none given: every name."""
        return not self.patterns or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def adopt_command(self, suggested_out: str) -> str:
        """The command that writes and adopts what this preview showed."""
        words = ["batchplan", "import", *self.paths]
        for project in self.projects:
            words += ["--project", project]
        for pattern in self.patterns:
            words += ["--name", pattern]
        if self.assume_priority is not None:
            words += ["--assume-priority", str(self.assume_priority)]
        if self.take_ownership:
            words.append("--take-ownership")
        words += ["--out", suggested_out]
        return " ".join(shlex.quote(word) for word in words)


def _config_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """The config files import reads: ``PATHS``, or ``batchplan.yaml`` if present."""
    if paths:
        return tuple(paths)
    return ("batchplan.yaml",) if Path("batchplan.yaml").is_file() else ()


def _stdout_file() -> os.stat_result | None:
    """What standard output is, when it is a regular file (a shell redirect)."""
    try:
        found = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return None  # captured, closed, or not a real file
    return found if stat.S_ISREG(found.st_mode) else None


def _refuse_redirect_into_config(request: ImportRequest) -> None:
    """``import > batchplan.yaml`` empties the config before import reads it: say so.

    The shell truncates the file first, so the reader would only find it
    empty; the way to write a file is ``--out``.
    """
    if not request.to_stdout:
        return
    out = _stdout_file()
    if out is None:
        return
    for path in _config_paths(request.paths):
        try:
            same = os.path.samestat(out, os.stat(path))
        except OSError:
            continue
        if same:
            raise UsageError(
                f"standard output is redirected into {path}, a config file import reads "
                "(the shell emptied it before import ran); write the YAML with "
                f"`--out FILE` instead, to a file beside {path}"
            )


def _read_config(request: ImportRequest, variables: Mapping[str, str]) -> Config | None:
    """The config import reads to skip what it manages, or None when there is none.

    ``--out`` may not be one of its files: the batches skipped because the
    file configures them would vanish from it.
    """
    paths = _config_paths(request.paths)
    if not paths:
        return None
    # Only the names matter here: an unset ${NAME} in a callback must not block
    # import, but one in a name would skip the wrong batch.
    config = load_names(paths, variables)
    out = request.out
    if out not in (None, STDOUT) and os.path.realpath(str(out)) in {
        os.path.realpath(f) for f in config.files
    }:
        raise UsageError(
            f"--out {out} is a config file import reads to skip the batches it manages; "
            "write the imported batches to another file beside it"
        )
    return config


@dataclass
class _Sorted:
    """The listed batches, by what import does with them."""

    imported: list[LiveBatch]
    managed: list[str]
    unmanageable: list[tuple[str, str]]  # (name, problem)
    owned: list[tuple[str, str]]  # (name, other lineage)
    taken: list[LiveBatch]  # another lineage's, adopted with --take-ownership


def _sort_batches(
    request: ImportRequest,
    found: Mapping[str, LiveBatch],
    state: State,
    in_config: frozenset[str],
    lineage: str,
) -> _Sorted:
    result = _Sorted([], [], [], [], [])
    for name in sorted(found):
        batch = found[name]
        if not request.wanted(name):
            continue
        if name in state.batches or name in in_config:
            result.managed.append(name)
            continue
        problem = name_problem(name)
        if problem is not None:
            result.unmanageable.append((name, problem))
            continue
        owner = (batch.metadata or {}).get(LINEAGE_KEY)
        if isinstance(owner, str) and owner != lineage:
            if not request.take_ownership:
                result.owned.append((name, owner))
                continue
            result.taken.append(batch)
        result.imported.append(batch)
    result.imported.sort(key=lambda b: (b.project, b.name))
    return result


def import_batches(
    projects: Sequence[str],
    options: Options,
    echo: Callable[[str], None],
    *,
    out: str | None,
    assume_priority: int | None,
    force: bool = False,
    paths: Sequence[str] = (),
    patterns: Sequence[str] = (),
    take_ownership: bool = False,
    from_state: bool = False,
) -> int:
    """Preview, or (``--out``) write YAML for the batches not yet managed and adopt them."""
    request = ImportRequest(
        tuple(projects),
        out,
        assume_priority,
        force,
        tuple(paths),
        tuple(patterns),
        take_ownership,
        from_state,
    )
    if not request.projects and not request.from_state:
        raise UsageError("give the projects to import with --project (or use --from-state)")
    if not request.to_stdout and Path(str(out)).exists() and not force:
        raise UsageError(f"{out} exists; choose another --out or pass --force to overwrite it")
    _refuse_redirect_into_config(request)

    view = import_view(out, echo)
    config = _read_config(request, dict(options.variables))
    in_config = frozenset(b.name for b in config.batches) if config is not None else frozenset()
    ownership = config is not None and config.settings.ownership
    with Session(options) as session:
        return _import_through(request, session, in_config, ownership, options, view)


def _import_through(
    request: ImportRequest,
    session: Session,
    in_config: frozenset[str],
    ownership: bool,
    options: Options,
    view: ImportView,
) -> int:
    """Import over one session, closed by the caller however this ends."""
    endpoint, client = session.endpoint, session.client
    backend = open_state(options, endpoint)

    def current_state() -> State:
        state = read_state(backend, endpoint, options.environment)
        if state.serial == 0 and (ownership or request.take_ownership):
            # The lineage the first write keeps, the one plans use too.
            state = replace(state, lineage=first_lineage(backend.location, endpoint.identity))
        return state

    if request.from_state:
        return _from_state(request, client, current_state(), in_config, options, view)
    if not request.adopts:
        # A preview takes no lock: it writes nothing.
        return _import(
            request, client, backend, current_state(), in_config, ownership, options, view
        )
    with backend.lock("import", options.lock_timeout):
        return _import(
            request, client, backend, current_state(), in_config, ownership, options, view
        )


def _import(
    request: ImportRequest,
    client: ScaleClient,
    backend: StateBackend,
    state: State,
    in_config: frozenset[str],
    ownership: bool,
    options: Options,
    view: ImportView,
) -> int:
    projects = request.projects
    missing = [p for p in projects if not client.project_exists(p)]
    if missing:
        raise PlanError("project does not exist: " + ", ".join(map(repr, missing)))
    found: dict[str, LiveBatch] = {}
    with threads.Pool(max_workers=options.parallelism) as pages:
        for project in projects:
            for batch in client.list_batches(project, pages):
                found.setdefault(batch.name, batch)
    sorted_ = _sort_batches(request, found, state, in_config, state.lineage)
    batches = sorted_.imported
    imported = config_yaml(batches, list(projects), request.assume_priority)
    if request.adopts:
        claimed = _claim(client, batches, state.lineage, ownership, request.take_ownership)
        view.write_yaml(imported.text)
        now = utc_now()
        backend.write(
            state.successor(
                {
                    batch.name: BatchRecord(
                        name=batch.name,
                        project=batch.project,
                        priority=request.assume_priority,
                        updated_at=now,
                    )
                    for batch in batches
                }
            )
        )
    else:
        claimed = 0
        view.write_yaml(imported.text)
    for name in sorted_.managed:
        view.skipped_managed(name)
    for name, problem in sorted_.unmanageable:
        view.skipped_unmanageable(name, problem)
    for name, owner in sorted_.owned:
        view.skipped_owned(name, owner)
    for variable, name in imported.variables:
        view.credentials(name, variable)
    skipped = len(sorted_.managed) + len(sorted_.unmanageable) + len(sorted_.owned)
    tally = ImportTally(len(batches), len(projects), skipped)
    if not request.adopts:
        suggested = "batchplan.yaml" if not _config_paths(request.paths) else "imported.yaml"
        view.previewed(tally, request.adopt_command(suggested))
        return EXIT_OK
    view.imported(tally, claimed, request.out, backend.location)
    return EXIT_OK


def _claim(
    client: ScaleClient,
    batches: Sequence[LiveBatch],
    lineage: str,
    ownership: bool,
    take_ownership: bool,
) -> int:
    """Write this state's lineage into adopted batches: one ``setMetadata`` each.

    With ownership every adopted batch gets it; with ``--take-ownership``
    the batches another lineage marked get it too, or the next plan would
    find them managed elsewhere. Other metadata keys are kept as they are.
    """
    count = 0
    for batch in batches:
        current = dict(batch.metadata or {})
        marked = LINEAGE_KEY in current
        if current.get(LINEAGE_KEY) == lineage or not (ownership or (take_ownership and marked)):
            continue
        current[LINEAGE_KEY] = lineage
        client.set_batch_metadata(batch.name, current)
        count += 1
    return count


def _from_state(
    request: ImportRequest,
    client: ScaleClient,
    state: State,
    in_config: frozenset[str],
    options: Options,
    view: ImportView,
) -> int:
    """YAML for the batches the state manages that no config declares; nothing changes.

    The way back after a lost config file: the state knows the names,
    projects and the priorities batchplan sent; the API gives the rest.
    """
    records = [
        record
        for name, record in sorted(state.batches.items())
        if name not in in_config
        and request.wanted(name)
        and (not request.projects or record.project in request.projects)
    ]
    with threads.Pool(max_workers=options.parallelism) as pool:
        live = list(pool.map(lambda record: client.get_batch(record.name), records))
    batches: list[LiveBatch] = []
    for record, batch in zip(records, live, strict=True):
        if batch is None:
            view.not_live(record.name)
        else:
            batches.append(batch)
    batches.sort(key=lambda b: (b.project, b.name))
    projects = sorted({b.project for b in batches})
    priorities = {r.name: r.priority for r in records}
    imported = config_yaml(batches, projects, None, priorities)
    view.write_yaml(imported.text)
    for variable, name in imported.variables:
        view.credentials(name, variable)
    view.wrote_from_state(len(batches), request.out)
    return EXIT_OK


def run(args: ImportArguments) -> int:
    """``batchplan import`` with its parsed arguments (``--env`` settled first)."""
    options = settle(args.paths, args.options, explicit=args.explicit, tell=tell)
    return import_batches(
        args.projects,
        options,
        make_echo(options.color),
        out=args.out,
        assume_priority=args.assume_priority,
        force=args.force,
        paths=args.paths,
        patterns=args.patterns,
        take_ownership=args.take_ownership,
        from_state=args.from_state,
    )
