"""Configuration loading: files and folders -> one validated :class:`Config`.

The steps, each reporting every problem it finds rather than the first:

1. :func:`resolve_paths` turns the command line's files and folders into a
   list of files, each read once.
2. Each file is read by :mod:`batchplan.config.yamlload` (positions, limits,
   ``${NAME}``) and validated against ``schemas/batchplan.schema.json``,
   the only definition of a valid file.
3. The rules a per-file schema cannot express are checked across files: a
   project for every batch, each batch name declared once, ``settings`` in at
   most one file.

Only then are ``defaults`` applied and the batches built. Every problem is one
line, ``file:line:col: field.path: message``, sorted by file and position.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, cast
from urllib.parse import urlsplit

from batchplan.config.environments import (
    VARIABLE_NAME,
    Declarations,
    GivenValues,
    Variable,
    read_declarations,
    shown_text,
    undeclared_values,
)
from batchplan.config.foreach import (
    MAX_GENERATED,
    FieldTemplate,
    Loop,
    LoopPath,
    compile_template,
    loop_of,
)
from batchplan.config.schema import (
    JsonPath,
    SchemaCheck,
    config_validator,
    describe_value,
    schema_problems,
)
from batchplan.config.yamlload import (
    MAX_EXPANDED_BYTES,
    MAX_PROBLEMS,
    Mark,
    Template,
    YamlList,
    YamlMap,
    YamlRoot,
    load_yaml,
    problem_at,
)
from batchplan.diagnostics import Diagnostic, FieldPath, LoopValues, Severity
from batchplan.errors import ConfigError, os_reason
from batchplan.model import Config, DesiredBatch, Position, Settings

CONFIG_SUFFIXES: Final = (".yaml", ".yml")

#: A batch's metadata as compact UTF-8 JSON; it travels in every create and
#: plan, so a bigger one is data that belongs elsewhere.
MAX_METADATA_BYTES: Final = 64 * 1024
# Metadata this small as read (see YamlMap.expanded_bytes) cannot reach the
# limit as JSON even if every character needs a 6-byte escape: not measured.
_METADATA_MEASURED_FROM: Final = MAX_METADATA_BYTES // 8

_BATCH_FIELDS: Final = (
    "project",
    "callback",
    "priority",
    "finalized",
    "calibration_batch",
    "self_label_batch",
)


class ConfigCheck(NamedTuple):
    """What :func:`check_config` found: the config (``None`` if invalid) and every problem."""

    config: Config | None
    #: Sorted by file (in resolve order), then position.
    problems: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(p for p in self.problems if p.is_error)

    @property
    def notes(self) -> tuple[Diagnostic, ...]:
        """Warnings and notes: worth telling, and the configuration is still valid."""
        return tuple(p for p in self.problems if not p.is_error)


class _File(NamedTuple):
    order: int
    name: str
    root: YamlRoot
    #: Field paths of this file's errors: the parts not to build.
    broken: frozenset[FieldPath]
    #: ``broken`` and every path above each of them (see :func:`_is_broken`).
    broken_under: frozenset[FieldPath]
    #: Field paths whose value is unknown: an unset variable, only a note.
    unknown: frozenset[FieldPath] = frozenset()


def resolve_paths(paths: Sequence[str]) -> list[Path]:
    """The config files named by ``paths``, in order, each once.

    A folder stands for every ``*.yaml`` / ``*.yml`` file directly in it (not
    in sub-folders; names starting with ``.`` are skipped, as editors leave
    such files behind), sorted by name. A file named twice, whether through its
    folder or through another spelling or symlink of the same path, is kept
    where it first appeared. A missing path or a folder without config files
    is a :class:`ConfigError`; all of them are reported together.
    """
    files, problems = _resolve(paths)
    if problems:
        raise ConfigError(
            [Diagnostic(Severity.ERROR, "path_problem", message) for _, message in problems]
        )
    return files


def _resolve(paths: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The files, and each problem as (the path given, a sentence naming it)."""
    if not paths:
        return [], [("", "no configuration files or folders given")]
    problems: list[tuple[str, str]] = []
    files: list[Path] = []
    seen: set[str] = set()
    for given in paths:
        path = Path(given)
        try:
            if path.is_dir():
                found = _folder_files(path)
                _note_skipped_folders(path)
                if not found:
                    problems.append((given, f"{given}: folder holds no *.yaml or *.yml files"))
            elif path.exists():
                found = [path]
            else:
                problems.append((given, f"{given}: no such file or folder"))
                found = []
        except OSError as exc:
            problems.append((given, f"cannot read config {given}: {os_reason(exc)}"))
            continue
        for file in found:
            # realpath, unlike Path.resolve, never raises (symlink loops, races).
            identity = os.path.realpath(file)
            if identity not in seen:
                seen.add(identity)
                files.append(file)
    return files, problems


#: Folders whose skipped sub-folders were already named in this process.
_SKIPS_TOLD: set[str] = set()


def _note_skipped_folders(folder: Path) -> None:
    """Name, once on stderr, the sub-folders a folder's reading leaves out (hidden ones aside)."""
    key = os.path.realpath(folder)
    if key in _SKIPS_TOLD:
        return
    _SKIPS_TOLD.add(key)
    skipped = sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))
    if skipped:
        names = ", ".join(f"{name}/" for name in skipped)
        sys.stderr.write(
            f"Note: {folder}: sub-folders not read: {names} "
            "(only the folder's own *.yaml and *.yml files are; name a sub-folder to read it)\n"
        )


def _folder_files(folder: Path) -> list[Path]:
    return sorted(
        (
            entry
            for entry in folder.iterdir()
            if entry.name.endswith(CONFIG_SUFFIXES)
            and not entry.name.startswith(".")
            and entry.is_file()
        ),
        key=lambda entry: entry.name,
    )


def load_config(
    paths: Sequence[str],
    environ: Mapping[str, str] | None = None,
    *,
    variables: Mapping[str, str] | None = None,
    require_variables: bool = True,
) -> Config:
    """Read, validate and merge the config files named by ``paths``.

    ``variables`` (from ``--var`` / ``--var-file``) and then ``environ``
    (default ``os.environ``) supply ``${NAME}`` values. Raises
    :class:`ConfigError` carrying every error found in every file; no other
    exception escapes, whatever the files hold. Notes (an unset variable when
    ``require_variables`` is false) are dropped: :func:`check_config` has them.
    """
    check = check_config(paths, environ, variables=variables, require_variables=require_variables)
    if check.config is None:
        raise ConfigError(check.errors)
    return check.config


def check_config(
    paths: Sequence[str],
    environ: Mapping[str, str] | None = None,
    *,
    variables: Mapping[str, str] | None = None,
    require_variables: bool = True,
    given: GivenValues | None = None,
) -> ConfigCheck:
    """Everything :func:`load_config` finds, errors and notes, without raising.

    ``require_variables=False`` is for ``validate``, which must pass without
    the secrets a real run needs: an unset ``${NAME}`` is then a note, and
    the value it stands in is not checked. ``given`` names the var files and
    ``--var`` names the values came from: with ``variables:``, a value for a
    name it does not declare is a warning.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    declarations = read_declarations(paths)
    # --var / --var-file, then the environment, then the declared defaults.
    env = _Recording((dict(variables or {}), env, declarations.defaults()))
    # Declared non-sensitive values are shown in plans, so they are not secrets.
    env.shown_names = frozenset(
        name for name, variable in (declarations.variables or {}).items() if not variable.sensitive
    )
    files, path_problems = _resolve(paths)
    problems = [
        Diagnostic(Severity.ERROR, "path_problem", message, given or None)
        for given, message in path_problems
    ]
    loaded: list[_File] = []
    # The YAML reader's problems: it caps them itself (see _capped).
    read: set[Diagnostic] = set()
    for index, path in enumerate(files):
        name = str(path)
        root, yaml_problems = load_yaml(path, env, require_variables=require_variables, name=name)
        problems.extend(yaml_problems)
        read.update(yaml_problems)
        if root is None:
            continue
        # A value already reported (an unset variable) would only be
        # reported again, less clearly, by the schema.
        reported = {p.path for p in yaml_problems if p.path}
        found = [
            problem for problem in _schema_problems(name, root) if problem.path not in reported
        ]
        problems.extend(found)
        broken = frozenset(p.path for p in (*yaml_problems, *found) if not p.is_note)
        unknown = frozenset(p.path for p in yaml_problems if p.is_note)
        loaded.append(_File(index, name, root, broken, _with_prefixes(broken), unknown))
    builder = _Builder(env, require_variables)
    batches = builder.build(loaded)
    problems.extend(builder.problems)
    problems.extend(_declaration_problems(loaded, declarations, env))
    if declarations.variables is not None and given is not None:
        problems.extend(undeclared_values(given, declarations.variables))
    batches = [_reshow(batch, env, declarations) for batch in batches]
    problems.sort(key=_in_order({str(path): index for index, path in enumerate(files)}))
    if any(problem.is_error for problem in problems) or path_problems:
        return ConfigCheck(None, tuple(_capped(problems, read)))
    config = Config(
        batches=tuple(batches),
        settings=_settings(loaded),
        files=tuple(str(path) for path in files),
    )
    return ConfigCheck(config, tuple(_capped(problems, read)))


def _capped(problems: Sequence[Diagnostic], read: Collection[Diagnostic]) -> Iterator[Diagnostic]:
    """About ``MAX_PROBLEMS`` problems of each file, then one that counts the rest.

    The YAML reader stops wording its own (``read``) at that many and counts
    the rest itself: those all stay. What the schema and the builder find
    fills what is left of the file's hundred, so a file of 50,000 broken
    entries prints 101 lines, not 50,000. ``problems`` are sorted by file.
    """
    for file, group in itertools.groupby(problems, key=lambda problem: problem.file):
        hidden: list[Diagnostic] = []
        shown = 0
        for problem in group:
            if file is None or problem in read or shown < MAX_PROBLEMS:
                shown += problem.code != "more_problems"
                yield problem
            else:
                hidden.append(problem)
        if hidden:
            last = hidden[-1]
            severity = Severity.ERROR if any(p.is_error for p in hidden) else last.severity
            yield Diagnostic(
                severity,
                "more_problems",
                f"and {len(hidden):,} more problems in this file"
                f" (the first {MAX_PROBLEMS} are shown)",
                last.file,
                last.line,
                last.column,
            )


def _in_order(
    order: Mapping[str, int],
) -> Callable[[Diagnostic], tuple[int, int, int, str, str, str, bool, str]]:
    """The sort key of problems: by file in resolve order (a path problem first), then place."""

    def key(problem: Diagnostic) -> tuple[int, int, int, str, str, str, bool, str]:
        return (
            order.get(problem.file or "", -1),
            problem.line or 0,
            problem.column or 0,
            problem.file or "",
            problem.path_text,
            problem.message,
            problem.is_note,
            problem.code,
        )

    return key


class _Recording(Mapping[str, str]):
    """The values of ``${NAME}`` from layers (the first that has a name wins),
    remembering every name looked up (to check declarations)."""

    def __init__(self, layers: Sequence[Mapping[str, str]]) -> None:
        self.layers = layers
        self.used: set[str] = set()
        #: Names whose values plans show (declared, not sensitive): never masked.
        self.shown_names: frozenset[str] = frozenset()

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        for layer in self.layers:
            # ``get``, not ``[]``: a caller's mapping may answer only that.
            value = layer.get(name)
            if value is not None:
                return value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter({name for layer in self.layers for name in layer})

    def __len__(self) -> int:
        return len(set(self))


def _declaration_problems(
    files: Sequence[_File], declarations: Declarations, env: _Recording
) -> Iterator[Diagnostic]:
    """``variables:`` and ``environments:`` in one file each; with ``variables:``, every
    ``${NAME}`` used must be declared there."""
    for block in ("variables", "environments"):
        holders = [file for file in files if block in file.root]
        for file in holders[1:]:
            first = holders[0]
            line, column = first.root.key_marks[block]
            yield problem_at(
                file.name,
                file.root.key_marks[block],
                (block,),
                f"only one file may hold '{block}'; first at {first.name}:{line}:{column}",
                "declared_twice",
            )
    declared = declarations.variables
    if declared is None:
        return
    for name in sorted(env.used - set(declared)):
        where, mark = _first_use(files, name)
        yield problem_at(
            where,
            mark,
            (),
            f"variable '{name}' is not declared: add it to the variables: block"
            + (f" (declared: {', '.join(sorted(declared))})" if declared else ""),
            "variable_undeclared",
        )


def _first_use(files: Sequence[_File], name: str) -> tuple[str, Mark]:
    """Where ``${NAME`` is first written, to point an undeclared variable out."""
    # Not "$${NAME" (an escape), not "${NAMEX" (another name).
    written = re.compile(r"(?<!\$)\$\{" + re.escape(name) + r"(?=[}:])")
    for file in files:
        try:
            text = Path(file.name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found = written.search(text)
        if found is not None:
            at = found.start()
            line = text.count("\n", 0, at) + 1
            return file.name, (line, at - (text.rfind("\n", 0, at) + 1) + 1)
    return (files[0].name, (1, 1)) if files else ("", (1, 1))


def _reshow(
    batch: DesiredBatch, env: Mapping[str, str], declarations: Declarations
) -> DesiredBatch:
    """The batch with its shown values following the declared variables' sensitivity."""
    declared = declarations.variables
    changes: dict[str, Any] = {}
    if batch.callback_shown is not None and batch.callback_shown != batch.callback:
        changes["callback_shown"] = shown_text(batch.callback_shown, env, declared)
    if batch.metadata_shown is not None and batch.metadata_shown != batch.metadata:
        changes["metadata_shown"] = _reshow_value(
            batch.metadata_shown, batch.metadata, env, declared
        )
    return replace(batch, **changes) if changes else batch


def _reshow_value(
    shown: Any, value: Any, env: Mapping[str, str], declared: Mapping[str, Variable] | None
) -> Any:
    if isinstance(shown, str):
        return shown_text(shown, env, declared) if shown != value else shown
    if isinstance(shown, dict) and isinstance(value, dict):
        return {k: _reshow_value(v, value.get(k), env, declared) for k, v in shown.items()}
    if isinstance(shown, list) and isinstance(value, list) and len(shown) == len(value):
        return [_reshow_value(a, b, env, declared) for a, b in zip(shown, value, strict=True)]
    return shown


def read_variables(assignments: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    """The variables of ``--var NAME=VALUE`` (repeatable) and ``--var-file FILE``.

    Files are read in order, then the ``--var`` assignments, each later one
    winning. A file is a YAML mapping of names to strings (an integer is taken
    as its digits). No message ever holds a value: they may be secrets.
    """
    problems: list[Diagnostic] = []
    found: dict[str, str] = {}
    for file in files:
        root, yaml_problems = load_yaml(Path(file), None, variables_file=True, name=file)
        problems.extend(yaml_problems)
        if root is None:
            continue
        reported = {p.path for p in yaml_problems}
        for key, value in root.items():
            if (key,) in reported:
                continue  # its value was refused while reading (a huge integer)
            if not VARIABLE_NAME.fullmatch(key):
                # A key that is no name may be a value typed in its place:
                # the problem has no path, which would show it.
                mark = root.key_marks[key]
                problems.append(problem_at(file, mark, (), _BAD_NAME, "variable_name_invalid"))
            elif isinstance(value, str):
                found[key] = value
            elif isinstance(value, int) and not isinstance(value, bool):
                found[key] = str(value)
            else:
                message = "expected a string; quote the value"
                mark = root.value_marks[key]
                problems.append(problem_at(file, mark, (key,), message, "variable_not_text"))
    for number, assignment in enumerate(assignments, 1):
        # A malformed entry is named by its position only: its text may be a
        # secret typed with ':' for '=' (NAME:https://user:token@host).
        key, equals, value = assignment.partition("=")
        which = f"the {_ordinal(number)} --var"
        if not equals:
            message = f"{which}: expected NAME=VALUE, and it has no '='"
            problems.append(Diagnostic(Severity.ERROR, "var_malformed", message))
        elif not VARIABLE_NAME.fullmatch(key):
            message = f"{which}: expected NAME=VALUE, and in NAME {_BAD_NAME}"
            problems.append(Diagnostic(Severity.ERROR, "variable_name_invalid", message))
        else:
            found[key] = value
    if problems:
        raise ConfigError(problems)
    return found


def _ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st."""
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


_BAD_NAME: Final = "a variable name is letters, digits and '_', not starting with a digit"


def _schema_problems(name: str, root: YamlMap) -> list[Diagnostic]:
    """Every schema problem of one file, each batch checked on its own.

    The file without its batches goes through jsonschema; each batch first
    through the schema's compiled yes/no check (see :func:`fast_check`), and
    through jsonschema only when it fails, for the wording.
    """

    def shown(path: JsonPath) -> str | None:
        return _written(root, path)

    def locate(path: JsonPath, at_key: bool) -> Mark:
        return _locate(root, path, at_key)

    entries = root.get("batches")
    if not isinstance(entries, list):
        return schema_problems(root, shown, file=name, locate=locate)
    top = {**root, "batches": []}
    found = schema_problems(top, shown, file=name, locate=locate)
    valid, validator = _batch_checks()
    for number, entry in enumerate(entries):
        if not valid(entry):
            found.extend(
                schema_problems(
                    entry, shown, validator, file=name, locate=locate, prefix=("batches", number)
                )
            )
    return found


@functools.cache
def _batch_checks() -> tuple[Callable[[Any], bool], SchemaCheck]:
    """The schema of one batch: a fast yes/no check, and a validator for wording."""
    schema = cast(dict[str, Any], config_validator().schema)["properties"]["batches"]["items"]
    check = SchemaCheck(schema)
    return check.is_valid, check


def _locate(root: YamlMap, path: JsonPath, at_key: bool) -> Mark:
    """Where the value at ``path`` (or, ``at_key``, its key) was written."""
    node: Any = root
    mark = root.mark
    for depth, part in enumerate(path):
        if isinstance(node, YamlMap) and isinstance(part, str) and part in node:
            last = depth == len(path) - 1
            mark = node.key_marks[part] if last and at_key else node.value_marks[part]
        elif isinstance(node, YamlList) and isinstance(part, int) and 0 <= part < len(node):
            mark = node.item_marks[part]
        else:
            break
        node = node[part]
    return mark


def _written(root: YamlMap, path: JsonPath) -> str | None:
    """The as-written text of a value that came from ``${NAME}``, else None."""
    node: Any = root
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if path and isinstance(node, YamlMap | YamlList):
        return node.written.get(path[-1])  # type: ignore[arg-type]
    return None


_TYPED_FIELDS: Final = frozenset({"priority", "finalized", "calibration_batch", "self_label_batch"})
_EACH_ONLY_IN_STRINGS: Final = (
    "'${each.NAME}' works only in string fields (name, project, callback, metadata values)"
)


def _typed_code(value: str) -> str:
    """A typed field holding text: a loop value in the wrong place, or a wrong type."""
    return "each_misuse" if isinstance(value, Template) else "wrong_type"


def _typed_message(field: str, value: str) -> str:
    if isinstance(value, Template):
        return _EACH_ONLY_IN_STRINGS
    return f"expected {'an integer' if field == 'priority' else 'true or false'}, got {value!r}"


def _is_broken(file: _File, prefix: FieldPath) -> bool:
    """Whether some error path of ``file`` is ``prefix`` or lies below it."""
    return prefix in file.broken_under


def _with_prefixes(paths: frozenset[FieldPath]) -> frozenset[FieldPath]:
    """Every path and every path above it: one lookup says whether an error lies below.

    Scanning the errors for each batch instead made a config of N broken
    entries cost N squared: 50,000 of them took minutes.
    """
    return frozenset(path[:end] for path in paths for end in range(len(path) + 1))


def _broken_entries(broken: frozenset[FieldPath]) -> set[int]:
    """The indices of the batch entries with an error at or below them."""
    return {
        path[1]
        for path in broken
        if len(path) > 1 and path[0] == "batches" and isinstance(path[1], int)
    }


class _Builder:
    """Turns schema-checked files into batches, checking what the schema cannot.

    A project for every batch, each name declared once across all files,
    ``settings`` in one file, ``for_each`` expanded within the cap. Parts of a
    file that already have errors are skipped, not built.
    """

    def __init__(self, environ: Mapping[str, str], require_variables: bool) -> None:
        self.environ = environ
        self.require_variables = require_variables
        self.problems: list[Diagnostic] = []
        self.names: dict[str, tuple[_File, YamlMap, DesiredBatch]] = {}
        self.generated = 0
        #: Bytes the batches built so far stand for (see _charge).
        self.expanded = 0
        self.over_budget = False
        #: Per defaults mapping (by id, alive as long as the builder): its metadata's JSON size.
        self.defaults_metadata_bytes: dict[int, int] = {}
        #: Problems of generated batches shown and hidden, per (file, entry).
        self.shown: dict[tuple[int, int], int] = {}
        self.hidden: dict[tuple[int, int], int] = {}
        self.last_shown: dict[tuple[int, int], Mark] = {}
        #: The fields of the file being built, from its defaults.
        self.base: dict[str, Any] = {}
        #: Field paths whose value stays unknown (an unset variable, in validate).
        self.unknown: set[FieldPath] = set()
        properties = cast(dict[str, Any], config_validator().schema)["properties"]
        batch = properties["batches"]["items"]["properties"]
        self.checks = {field: SchemaCheck(batch[field]) for field in _CHECKED_FIELDS}
        self.valid = {field: check.is_valid for field, check in self.checks.items()}

    def build(self, files: Sequence[_File]) -> list[DesiredBatch]:
        batches: list[DesiredBatch] = []
        settings_at: tuple[str, Mark] | None = None
        for file in files:
            root = file.root
            if "settings" in root:
                mark = root.key_marks["settings"]
                if settings_at is None:
                    settings_at = (file.name, mark)
                else:
                    first = f"{settings_at[0]}:{settings_at[1][0]}:{settings_at[1][1]}"
                    self._problem(
                        file,
                        mark,
                        ("settings",),
                        f"only one file may hold 'settings'; first at {first}",
                        code="settings_twice",
                    )
            if file.root.templates and self._refuse_templates(file):
                continue
            entries = root.get("batches")
            if not isinstance(entries, YamlList) or _is_broken(file, ("defaults",)):
                continue
            if file.broken & {(), ("batches",)}:
                continue
            defaults = root.get("defaults")
            if not isinstance(defaults, YamlMap):
                defaults = YamlMap(root.mark)
            if not self._defaults(file, defaults):
                continue
            broken_entries = _broken_entries(file.broken)
            for index, entry in enumerate(entries):
                if self.over_budget:
                    break
                if not isinstance(entry, YamlMap):
                    continue
                if index in broken_entries:
                    # Its schema problems do not hide an independent one.
                    self._no_project(file, ("batches", index), entry)
                    continue
                if "for_each" in entry:
                    batches.extend(self._expand(file, index, entry, defaults))
                elif self._charge(
                    file, index, entry, 1, entry.expanded_bytes + defaults.expanded_bytes
                ):
                    batch = self._batch(file, index, entry, defaults)
                    if batch is not None and self._declare(file, index, entry, batch):
                        batches.append(batch)
        return batches

    def _problem(self, file: _File, mark: Mark, path: FieldPath, message: str, code: str) -> None:
        self.problems.append(problem_at(file.name, mark, path, message, code))

    def _charge(self, file: _File, index: int, entry: YamlMap, count: int, each: int) -> bool:
        """Count ``count`` batches of ``each`` bytes against the budget, before building them.

        Every batch carries its own copy of its file's defaults and of what its
        aliases stand for into the plan, its checksum and its state record, so
        the budget counts them per batch. Past the budget: one problem, and no
        more batches are built (False).
        """
        self.expanded += count * each
        if self.expanded <= MAX_EXPANDED_BYTES:
            return True
        mib = MAX_EXPANDED_BYTES // (1024 * 1024)
        what = f"its {count:,} batches stand" if count > 1 else "it stands"
        self._problem(
            file,
            entry.mark,
            ("batches", index),
            f"the configuration stands for more than {mib} MiB once defaults, aliases and"
            f" for_each are expanded ({what} for {count * each:,} bytes);"
            " split it and plan it in parts",
            "config_too_large",
        )
        self.over_budget = True
        return False

    def _metadata_problem(
        self, file: _File, where: FieldPath, entry: YamlMap, defaults: YamlMap, metadata: Any
    ) -> bool:
        """Report metadata past MAX_METADATA_BYTES as JSON; True if so."""
        if "metadata" in entry:
            size = _json_bytes(metadata)
            if size <= MAX_METADATA_BYTES:
                return False
            mark = entry.value_marks["metadata"]
            path = (*where, "metadata")
            self._problem(file, mark, path, _metadata_message(size), "metadata_too_large")
            return True
        # The defaults' metadata alone, the same for every batch of the file:
        # measured and reported once, at the defaults.
        key = id(defaults)
        if key not in self.defaults_metadata_bytes:
            size = self.defaults_metadata_bytes[key] = _json_bytes(metadata)
            if size > MAX_METADATA_BYTES:
                mark = defaults.value_marks["metadata"]
                path = ("defaults", "metadata")
                self._problem(file, mark, path, _metadata_message(size), "metadata_too_large")
        return self.defaults_metadata_bytes[key] > MAX_METADATA_BYTES

    def _refuse_templates(self, file: _File) -> bool:
        """``${each.NAME}`` outside a batch entry (in defaults or settings): True if found."""
        found = False
        for section in ("defaults", "settings"):
            values = file.root.get(section)
            if isinstance(values, YamlMap):
                for path, mark in _templates_in(values, (section,)):
                    self._problem(
                        file,
                        mark,
                        path,
                        "'${each.NAME}' works only in a batch with for_each",
                        code="each_misuse",
                    )
                    found = True
        return found

    def _defaults(self, file: _File, defaults: YamlMap) -> bool:
        """Take the file's defaults for every batch; False (after a problem) if unusable."""
        base: dict[str, Any] = {}
        ok = True
        for field in _BATCH_FIELDS:
            value = defaults.get(field)
            if ("defaults", field) in file.unknown:
                # An unset variable, told as a note: nothing more is known.
                value = "" if field == "project" else None
            elif field in _TYPED_FIELDS and isinstance(value, str):
                self._problem(
                    file,
                    defaults.value_marks[field],
                    ("defaults", field),
                    _typed_message(field, value),
                    _typed_code(value),
                )
                ok = False
            elif field == "callback" and not self._callback_ok(file, defaults, ("defaults",)):
                ok = False
            base[field] = value
        self.base = base
        return ok

    def _fields(
        self, file: _File, where: FieldPath, entry: YamlMap, defaults: YamlMap
    ) -> dict[str, Any] | None:
        """The entry's fields over the file's defaults, or None after a problem."""
        # Presence, not truth: an explicit null on the batch clears a default.
        values = {**self.base, **entry}
        ok = True
        if file.unknown:
            for field in entry:
                if (*where, field) in file.unknown and not isinstance(entry[field], Template):
                    # An unset variable, told as a note: nothing more is known.
                    values[field] = "" if field == "project" else None
        if "callback" in entry and not self._callback_ok(file, entry, where):
            ok = False
        for field in entry:
            if field in _TYPED_FIELDS and isinstance(values[field], str):
                # The schema lets "${NAME}" through for editors; after expansion
                # only an escaped "$${" or a loop value can be left.
                message = _typed_message(field, values[field])
                code = _typed_code(values[field])
                self._problem(file, entry.value_marks[field], (*where, field), message, code)
                ok = False
        if self._no_project(file, where, entry):
            ok = False
        return values if ok else None

    def _no_project(self, file: _File, where: FieldPath, entry: YamlMap) -> bool:
        """Report a batch that has no project, on it or in the defaults; True if so."""
        path = (*where, "project")
        if path in file.unknown or _is_broken(file, path):
            # An unset variable, or a value the schema already refused.
            return False
        if "project" in entry:
            if entry["project"] is not None:
                return False
            message = "null means no project here, but a batch needs one"
            self._problem(file, entry.value_marks["project"], path, message, code="no_project")
        elif self.base.get("project") is None:
            message = "no project: set 'project' on the batch or in this file's 'defaults'"
            self._problem(file, entry.mark, where, message, code="no_project")
        else:
            return False
        return True

    def _callback_ok(self, file: _File, source: YamlMap, where: FieldPath) -> bool:
        """Check ``source``'s callback as the API will parse it; False after a problem.

        A value with ``${each.NAME}`` is checked per generated batch instead,
        and one whose variable is unset (in validate) cannot be checked.
        """
        value = source.get("callback")
        path = (*where, "callback")
        if not isinstance(value, str) or isinstance(value, Template) or path in file.unknown:
            return True
        message = callback_message(value, source.written.get("callback"))
        if message is None:
            return True
        self._problem(file, source.value_marks["callback"], path, message, "bad_callback")
        return False

    def _batch(
        self, file: _File, index: int, entry: YamlMap, defaults: YamlMap
    ) -> DesiredBatch | None:
        where: FieldPath = ("batches", index)
        templates = (
            [
                found
                for field in _STRING_FIELDS
                if field in entry
                for found in _templates_at(entry, field, (*where, field))
            ]
            if file.root.templates
            else []
        )
        for path, mark in templates:
            self._problem(
                file,
                mark,
                path,
                "'${each.NAME}' needs for_each on this batch to give NAME its values",
                code="each_misuse",
            )
        values = self._fields(file, where, entry, defaults)
        metadata = self._metadata(file, where, entry, defaults)
        if values is None or templates or metadata is False:
            return None
        name = entry["name"]
        if not name.isascii() and (*where, "name") not in file.unknown:
            message = nfc_problem(name, entry.written.get("name"))
            if message is not None:
                mark = entry.value_marks["name"]
                self._problem(file, mark, (*where, "name"), message, "name_not_nfc")
                return None
        if (
            metadata
            and _metadata_sources_bytes(entry, defaults) >= _METADATA_MEASURED_FROM
            and self._metadata_problem(file, where, entry, defaults, metadata[0])
        ):
            return None
        callback = values["callback"] or None
        return DesiredBatch(
            name=name,
            project=values["project"],
            callback=callback,
            callback_shown=_shown_callback(entry, defaults, callback),
            priority=_priority(values["priority"]),
            finalized=_flag(values["finalized"]),
            calibration_batch=bool(_flag(values["calibration_batch"])),
            self_label_batch=bool(_flag(values["self_label_batch"])),
            metadata=metadata[0] if metadata else None,
            metadata_shown=metadata[1] if metadata else None,
            position=Position(file.name, *entry.mark),
        )

    def _metadata(
        self, file: _File, where: FieldPath, entry: YamlMap, defaults: YamlMap
    ) -> tuple[dict[str, Any], dict[str, Any]] | Literal[False] | None:
        """(metadata, metadata as shown), None when unmanaged, False after a problem.

        The batch's keys win over the defaults' keys, key by key; ``metadata:
        null`` on the batch leaves its metadata unmanaged despite the defaults.
        """
        if "metadata" not in entry and "metadata" not in defaults:
            return None
        if "metadata" in entry and entry["metadata"] is None:
            return None
        sources: list[tuple[YamlMap, FieldPath]] = [
            (source["metadata"], prefix)
            for source, prefix in ((defaults, ("defaults",)), (entry, where))
            if isinstance(source.get("metadata"), YamlMap)
        ]
        if not sources:
            return None
        value: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        ok = True
        for values, prefix in sources:
            for key, item in values.items():
                try:
                    value[key] = _plain(item, shown=False)
                    shown[key] = values.written.get(key) or _plain(item, shown=True)
                except _NotJson as bad:
                    self._problem(
                        file,
                        bad.mark or values.value_marks[key],
                        (*prefix, "metadata", key),
                        f"{bad} is not a JSON value",
                        code="not_json",
                    )
                    ok = False
        return (value, shown) if ok else False

    def _expand(
        self, file: _File, index: int, entry: YamlMap, defaults: YamlMap
    ) -> list[DesiredBatch]:
        """The batches a ``for_each`` entry stands for, each checked like a written one."""
        where: FieldPath = ("batches", index)
        for_each: YamlMap = entry["for_each"]
        ok = True
        for path, mark in _templates_in(for_each, (*where, "for_each")):
            self._problem(
                file, mark, path, "loop values cannot use '${each.NAME}'", code="each_misuse"
            )
            ok = False
        loops: list[Loop] = []
        for key, spec in for_each.items():

            def bad_loop(at: LoopPath, message: str, key: str = key) -> None:
                mark = _locate(for_each, (key, *at), False)
                self._problem(file, mark, (*where, "for_each", key, *at), message, "bad_loop")

            loop = loop_of(key, spec, bad_loop)
            if loop is None:
                ok = False
            else:
                loops.append(loop)
        values = self._fields(file, where, entry, defaults)
        metadata = self._metadata(file, where, entry, defaults)
        if not ok or values is None or metadata is False:
            return []
        count = math.prod(loop.size for loop in loops)
        if self.generated + count > MAX_GENERATED:
            before = f" after the {self.generated:,} generated before it" if self.generated else ""
            self._problem(
                file,
                entry.key_marks["for_each"],
                (*where, "for_each"),
                f"makes {count:,} batches{before}, more than the {MAX_GENERATED:,} a run may"
                " generate; split the configuration and plan it in parts",
                code="too_many_batches",
            )
            return []
        self.generated += count
        # Each generated batch holds the entry (less its loops), the defaults,
        # and a loop value wherever the entry says ${each.NAME}: counted
        # before a single batch is made.
        width = max((loop.width for loop in loops), default=0)
        each = (
            entry.expanded_bytes
            - for_each.expanded_bytes
            + defaults.expanded_bytes
            + width * _placeholders(entry)
        )
        if not self._charge(file, index, entry, count, each):
            return []
        names = [loop.name for loop in loops]
        fields: dict[str, FieldTemplate | None] = {}
        for field in ("name", "project", "callback"):
            fields[field] = None
            value = values[field]
            if isinstance(value, Template):
                source = entry if field in entry else defaults
                fields[field] = self._compile(
                    file, source.value_marks[field], (*where, field), value, names
                )
                if fields[field] is None:
                    ok = False
        name_template = fields["name"]
        unused = [
            loop.name
            for loop in loops
            if loop.size > 1 and (name_template is None or loop.name not in name_template.names)
        ]
        if unused and (name_template is not None or not isinstance(values["name"], Template)):
            self._problem(
                file,
                entry.value_marks["name"],
                (*where, "name"),
                f"the name does not use '${{each.{unused[0]}}}', so generated batches would"
                " share names; every loop with more than one value must appear in the name",
                code="duplicate_name",
            )
            ok = False
        dynamic_metadata = self._compile_metadata(file, where, entry, metadata, names)
        if not ok or dynamic_metadata is None:
            return []
        callback = values["callback"] or None
        values["callback_shown"] = _shown_callback(entry, defaults, callback)
        values["measure_metadata"] = metadata is not None and (
            _metadata_sources_bytes(entry, defaults) + width * _placeholders(entry.get("metadata"))
            >= _METADATA_MEASURED_FROM
        )
        batches = list(
            self._generate(file, index, entry, values, fields, metadata, dynamic_metadata, loops)
        )
        hidden = self.hidden.pop((file.order, index), 0)
        if hidden:
            # At the last problem shown, so that the count sorts after them.
            self._problem(
                file,
                self.last_shown[(file.order, index)],
                (*where, "for_each"),
                f"and {hidden:,} more problems with the batches it generates, like those above",
                code="more_problems",
            )
        return batches

    def _generated_problem(
        self,
        file: _File,
        index: int,
        mark: Mark,
        path: FieldPath,
        message: str,
        code: str,
    ) -> None:
        """A problem of one generated batch; past a few per entry, only counted.

        One mistake in a template repeats in every batch it generates: the
        first few show it, a count says how far it goes.
        """
        key = (file.order, index)
        shown = self.shown.get(key, 0)
        if shown < _SHOWN_PER_ENTRY:
            self.shown[key] = shown + 1
            self.last_shown[key] = max(mark, self.last_shown.get(key, mark))
            self._problem(file, mark, path, message, code=code)
        else:
            self.hidden[key] = self.hidden.get(key, 0) + 1

    def _compile(
        self, file: _File, mark: Mark, path: FieldPath, raw: str, names: Sequence[str]
    ) -> FieldTemplate | None:
        def report(message: str) -> None:
            self.problems.append(problem_at(file.name, mark, path, message, "variable_invalid"))

        def note(message: str) -> None:
            self.unknown.add(path)
            self.problems.append(
                problem_at(file.name, mark, path, message, "variable_unset", Severity.NOTE)
            )

        return compile_template(
            raw, names, self.environ, report, None if self.require_variables else note
        )

    def _compile_metadata(
        self,
        file: _File,
        where: FieldPath,
        entry: YamlMap,
        metadata: tuple[dict[str, Any], dict[str, Any]] | None,
        names: Sequence[str],
    ) -> dict[str, Any] | None:
        """The metadata keys whose values use a loop, compiled; None after a problem."""
        compiled: dict[str, Any] = {}
        if metadata is None:
            return compiled
        ok = True
        values = entry.get("metadata")
        for key, value in metadata[0].items():
            if not _has_template(value):
                continue
            mark = (
                values.value_marks[key]
                if isinstance(values, YamlMap) and key in values
                else entry.mark
            )

            def compile_one(raw: str, key: str = key, mark: Mark = mark) -> FieldTemplate | None:
                nonlocal ok
                template = self._compile(file, mark, (*where, "metadata", key), raw, names)
                ok = ok and template is not None
                return template

            compiled[key] = _map_templates(value, compile_one)
        return compiled if ok else None

    def _generate(
        self,
        file: _File,
        index: int,
        entry: YamlMap,
        values: dict[str, Any],
        fields: dict[str, FieldTemplate | None],
        metadata: tuple[dict[str, Any], dict[str, Any]] | None,
        dynamic: dict[str, Any],
        loops: Sequence[Loop],
    ) -> Iterator[DesiredBatch]:
        where: FieldPath = ("batches", index)
        names = tuple(loop.name for loop in loops)
        position = Position(file.name, *entry.mark)
        name_t, project_t, callback_t = fields["name"], fields["project"], fields["callback"]
        name_check, project_check, callback_check = (
            self.checks["name"],
            self.checks["project"],
            self.checks["callback"],
        )
        name_ok, project_ok, callback_ok = (
            self.valid["name"],
            self.valid["project"],
            self.valid["callback"],
        )
        callback = values["callback"] or None
        callback_shown = values["callback_shown"]
        measure_metadata = values["measure_metadata"]
        project = values["project"]
        name = values["name"]
        priority = _priority(values["priority"])
        finalized = _flag(values["finalized"])
        calibration = bool(_flag(values["calibration_batch"]))
        self_label = bool(_flag(values["self_label_batch"]))
        name_known, project_known, callback_known = (
            (*where, field) not in self.unknown for field in ("name", "project", "callback")
        )
        for combo in itertools.product(*(loop.values() for loop in loops)):
            each = tuple(zip(names, combo, strict=True))
            bad: list[tuple[str, str, str]] = []
            if name_t is not None:
                name = name_t.render(combo)
                if name_known:
                    if not name_ok(name):
                        bad.extend(_field_problems("name", name, None, name_check))
                    elif not name.isascii():
                        shown = name_t.render_shown(combo) if name_t.shown else None
                        nfc = nfc_problem(name, shown)
                        if nfc is not None:
                            bad.append(("name", nfc, "name_not_nfc"))
            if project_t is not None:
                project = project_t.render(combo)
                if project_known and not project_ok(project):
                    bad.extend(_field_problems("project", project, None, project_check))
            if callback_t is not None:
                callback = callback_t.render(combo) or None
                callback_shown = callback_t.render_shown(combo) if callback else None
                if callback and callback_known:
                    if not callback_ok(callback):
                        bad.extend(
                            _field_problems("callback", callback, callback_shown, callback_check)
                        )
                    else:
                        message = callback_message(callback, callback_shown)
                        if message is not None:
                            bad.append(("callback", message, "bad_callback"))
            if bad:
                label = (*where, LoopValues(each))
                for field, message, code in bad:
                    source = entry if field in entry else None
                    mark = source.value_marks[field] if source is not None else entry.mark
                    self._generated_problem(file, index, mark, (*label, field), message, code)
                continue
            batch_metadata = batch_shown = None
            if metadata is not None:
                batch_metadata, batch_shown = metadata
                if dynamic:
                    batch_metadata = {**batch_metadata}
                    batch_shown = {**batch_shown}
                    for key, template in dynamic.items():
                        batch_metadata[key] = _render(template, combo, shown=False)
                        batch_shown[key] = _render(template, combo, shown=True)
                if measure_metadata:
                    size = _json_bytes(batch_metadata)
                    if size > MAX_METADATA_BYTES:
                        mark = entry.value_marks["metadata"] if "metadata" in entry else entry.mark
                        label = (*where, LoopValues(each), "metadata")
                        message = _metadata_message(size)
                        self._generated_problem(
                            file, index, mark, label, message, "metadata_too_large"
                        )
                        continue
            batch = DesiredBatch(
                name=name,
                project=project,
                callback=callback,
                callback_shown=callback_shown,
                priority=priority,
                finalized=finalized,
                calibration_batch=calibration,
                self_label_batch=self_label,
                metadata=batch_metadata,
                metadata_shown=batch_shown,
                position=position,
                each=each,
            )
            if self._declare(file, index, entry, batch):
                yield batch

    def _declare(self, file: _File, index: int, entry: YamlMap, batch: DesiredBatch) -> bool:
        """Record ``batch``'s name; False (and a problem naming both places) if taken."""
        first = self.names.get(batch.name)
        if first is None:
            self.names[batch.name] = (file, entry, batch)
            return True
        label: FieldPath = (
            ("batches", index, LoopValues(batch.each))
            if batch.each
            else (
                "batches",
                index,
            )
        )
        first_file, first_entry, first_batch = first
        line, column = first_entry.value_marks["name"]
        also = f" ({LoopValues(first_batch.each)})" if first_batch.each else ""
        shown = batch.name if batch.each else entry.written.get("name", batch.name)
        message = (
            f"batch {shown!r} is declared twice; first at {first_file.name}:{line}:{column}{also}"
        )
        mark = entry.value_marks["name"]
        if batch.each:
            self._generated_problem(file, index, mark, (*label, "name"), message, "duplicate_name")
        else:
            self._problem(file, mark, (*label, "name"), message, "duplicate_name")
        return False


_STRING_FIELDS: Final = ("name", "project", "callback", "metadata")
_CALLBACK_RULE: Final = 'must be an http:// or https:// URL, an e-mail address, or ""'
_EMAIL: Final = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")


def callback_problem(value: str) -> str | None:
    """Why ``value`` is not a callback the API accepts, or None when it is one.

    The schema's pattern is what editors can check; this parses a URL as the
    API's side does (``urllib.parse.urlsplit``), which no pattern can: an
    unclosed ``[`` around the host, a port that is no number. The reasons
    never repeat the value, which may hold a token.
    """
    if value == "":
        return None
    if any(char.isspace() for char in value):
        return "it holds whitespace"
    if not value.startswith(("http://", "https://")):
        return None if _EMAIL.fullmatch(value) else "it is neither a URL nor an e-mail address"
    try:
        url = urlsplit(value)
    except ValueError:
        # urlsplit's own wording may quote the host: keep the value out of it.
        return (
            "it is not a well-formed URL (a '[' or ']' around the host is unmatched or misplaced)"
        )
    try:
        # .port raises for a port that is no number or out of range.
        url.port  # noqa: B018
    except ValueError:
        return "its port must be a number from 0 to 65535"
    if not url.hostname:
        return "it has no host"
    return None


def callback_message(value: str, written: str | None) -> str | None:
    """The message for a callback :func:`callback_problem` refuses, showing it as written."""
    reason = callback_problem(value)
    if reason is None:
        return None
    return f"{_CALLBACK_RULE}, got {describe_value(value, written)}: {reason}"


#: Problems shown per for_each entry; the rest are counted in one more line.
_SHOWN_PER_ENTRY: Final = 10
_CHECKED_FIELDS: Final = ("name", "project", "callback")


class _NotJson(Exception):
    def __init__(self, value: Any, mark: Mark | None) -> None:
        super().__init__(repr(value))
        self.mark = mark


def _plain(value: Any, *, shown: bool, mark: Mark | None = None) -> Any:
    """A metadata value as plain JSON data; ``shown`` keeps ``${NAME}`` as written."""
    if isinstance(value, YamlMap):
        return {
            key: value.written[key]
            if shown and key in value.written
            else _plain(item, shown=shown, mark=value.value_marks[key])
            for key, item in value.items()
        }
    if isinstance(value, YamlList):
        return [
            value.written[index]
            if shown and index in value.written
            else _plain(item, shown=shown, mark=value.item_marks[index])
            for index, item in enumerate(value)
        ]
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotJson(value, mark)
    return value


def _templates_in(node: Any, path: FieldPath) -> Iterator[tuple[FieldPath, Mark]]:
    """Every ``${each.NAME}`` string below ``node``: its field path and position."""
    if isinstance(node, YamlMap):
        for key, value in node.items():
            if isinstance(value, Template):
                yield (*path, key), node.value_marks[key]
            elif isinstance(value, YamlMap | YamlList):
                yield from _templates_in(value, (*path, key))
    elif isinstance(node, YamlList):
        for index, value in enumerate(node):
            if isinstance(value, Template):
                yield (*path, index), node.item_marks[index]
            elif isinstance(value, YamlMap | YamlList):
                yield from _templates_in(value, (*path, index))


def _templates_at(node: YamlMap, key: str, path: FieldPath) -> Iterator[tuple[FieldPath, Mark]]:
    """Every ``${each.NAME}`` string in ``node[key]``, itself included."""
    value = node[key]
    if isinstance(value, Template):
        yield path, node.value_marks[key]
    else:
        yield from _templates_in(value, path)


def _has_template(value: Any) -> bool:
    if isinstance(value, Template):
        return True
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    return False


def _map_templates(value: Any, compile_one: Callable[[str], FieldTemplate | None]) -> Any:
    if isinstance(value, Template):
        return compile_one(value)
    if isinstance(value, dict):
        return {key: _map_templates(item, compile_one) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_templates(item, compile_one) for item in value]
    return value


def _render(value: Any, combo: Sequence[str], *, shown: bool) -> Any:
    if isinstance(value, FieldTemplate):
        return value.render_shown(combo) if shown else value.render(combo)
    if isinstance(value, dict):
        return {key: _render(item, combo, shown=shown) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, combo, shown=shown) for item in value]
    return value


def _field_problems(
    field: str, value: str, shown: str | None, validator: SchemaCheck
) -> list[tuple[str, str, str]]:
    """(field, message, code) of each way a generated value breaks its field's schema."""
    written = shown if shown != value else None
    return [
        (field, problem.message, problem.code)
        for problem in schema_problems(value, lambda _: written, validator)
    ]


def nfc_problem(name: str, written: str | None = None) -> str | None:
    """Why ``name`` is not in Unicode NFC, or None when it is.

    Two spellings of one word (é as one code point, or as e and a combining
    accent) look the same in a review but are different batches: only the
    composed form is accepted. The message names the code points, escaped,
    unless the name came from ``${NAME}`` (``written``): then only that.
    """
    if name.isascii() or unicodedata.is_normalized("NFC", name):
        return None
    if written is not None:
        return f"must be in Unicode NFC form, and {written!r} is not"
    nfc = unicodedata.normalize("NFC", name)
    start = next(
        (i for i, (a, b) in enumerate(zip(name, nfc, strict=False)) if a != b),
        min(len(name), len(nfc)),
    )
    # Back to the character the marks combine with, then over all its marks.
    while start > 0 and unicodedata.combining(name[start]):
        start -= 1
    end = start + 1
    while end < len(name) and unicodedata.combining(name[end]):
        end += 1
    written = name[start:end]
    composed = unicodedata.normalize("NFC", written)
    return (
        f"must be in Unicode NFC form, so that names that look alike are alike:"
        f" {_code_points(written)} at character {start + 1} is written"
        f" {_code_points(composed)} in NFC"
    )


def _code_points(text: str) -> str:
    return " ".join(f"U+{ord(char):04X}" for char in text)


def _json_bytes(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON, as it is sent to the API."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def _metadata_message(size: int) -> str:
    return (
        f"is {size:,} bytes as JSON, more than the {MAX_METADATA_BYTES // 1024} KiB a batch's"
        " metadata may hold; keep large data elsewhere and store a reference to it"
    )


def _metadata_sources_bytes(entry: YamlMap, defaults: YamlMap) -> int:
    """What the metadata of ``entry`` and of its defaults were read as, in bytes."""
    return sum(
        source["metadata"].expanded_bytes
        for source in (entry, defaults)
        if isinstance(source.get("metadata"), YamlMap)
    )


def _placeholders(node: Any) -> int:
    """How many ``${each.NAME}`` a value holds, outside its for_each."""
    if isinstance(node, Template):
        return node.count("${each.")
    if isinstance(node, dict):
        return sum(_placeholders(item) for key, item in node.items() if key != "for_each")
    if isinstance(node, list):
        return sum(_placeholders(item) for item in node)
    return 0


def _shown_callback(entry: YamlMap, defaults: YamlMap, callback: str | None) -> str | None:
    if not callback:
        return None
    source = entry if "callback" in entry else defaults
    return source.written.get("callback") or callback


def _priority(value: Any) -> int | None:
    # The schema accepts 20.0 as an integer; the API wants 20.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _settings(files: Sequence[_File]) -> Settings:
    for file in files:
        settings = file.root.get("settings")
        if isinstance(settings, YamlMap):
            return Settings(
                **{
                    key: int(value)
                    for key, value in settings.items()
                    if isinstance(value, int | float) and not isinstance(value, bool)
                },
                ownership=settings.get("ownership") is True,
            )
    return Settings()


def _identifies_a_batch(path: FieldPath) -> bool:
    """Whether a config field at ``path`` goes into a batch's name or project."""
    return (bool(path) and path[-1] in ("name", "project")) or "for_each" in path


def load_names(paths: Sequence[str], variables: Mapping[str, str]) -> Config:
    """The config for commands that only need to know which batches it manages.

    ``status`` and ``import`` only read, so an unset ``${NAME}`` in a callback
    or in metadata is no error there (CI can watch progress without the
    secrets apply needs). One in a name, a project or a for_each loop is: the
    batch could not be identified.
    """
    check = check_config(paths, variables=dict(variables), require_variables=False)
    unknown = [note for note in check.notes if _identifies_a_batch(note.path)]
    if check.config is None or unknown:
        raise ConfigError((*check.errors, *unknown))
    return check.config
