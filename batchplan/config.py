"""Configuration loading: files and folders -> one validated :class:`Config`.

The steps, each reporting every problem it finds rather than the first:

1. :func:`resolve_paths` turns the command line's files and folders into a
   list of files, each read once.
2. Each file is read by :mod:`batchplan.yamlload` (positions, limits,
   ``${NAME}``) and validated against ``schemas/batchplan.schema.json``,
   the only definition of a valid file.
3. The rules a per-file schema cannot express are checked across files: a
   project for every batch, each batch name declared once, ``settings`` in at
   most one file.

Only then are ``defaults`` applied and the batches built. Every problem is one
line, ``file:line:col: field.path: message``, sorted by file and position.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

from batchplan.errors import ConfigError
from batchplan.model import Config, DesiredBatch, Position, Settings
from batchplan.schema import JsonPath, schema_problems
from batchplan.yamlload import Mark, YamlList, YamlMap, load_yaml

CONFIG_SUFFIXES: Final = (".yaml", ".yml")

_BATCH_FIELDS: Final = (
    "project",
    "callback",
    "priority",
    "finalized",
    "calibration_batch",
    "self_label_batch",
)


class _Problem(NamedTuple):
    """A problem that sorts by file (in resolve order), then line and column."""

    file_index: int
    line: int
    column: int
    field: str
    text: str


class _File(NamedTuple):
    order: int
    name: str
    root: YamlMap


def resolve_paths(paths: Sequence[str]) -> list[Path]:
    """The config files named by ``paths``, in order, each once.

    A folder stands for every ``*.yaml`` / ``*.yml`` file directly in it (not
    in sub-folders; names starting with ``.`` are skipped, as editors leave
    such files behind), sorted by name. A file named twice, whether through its
    folder or through another spelling or symlink of the same path, is kept
    where it first appeared. A missing path or a folder without config files
    is a :class:`ConfigError`; all of them are reported together.
    """
    if not paths:
        raise ConfigError(["no configuration files or folders given"])
    problems: list[str] = []
    files: list[Path] = []
    seen: set[str] = set()
    for given in paths:
        path = Path(given)
        try:
            if path.is_dir():
                found = _folder_files(path)
                if not found:
                    problems.append(f"{given}: folder holds no *.yaml or *.yml files")
            elif path.exists():
                found = [path]
            else:
                problems.append(f"{given}: no such file or folder")
                found = []
        except OSError as exc:
            problems.append(f"{given}: cannot read: {exc.strerror or exc}")
            continue
        for file in found:
            # realpath, unlike Path.resolve, never raises (symlink loops, races).
            identity = os.path.realpath(file)
            if identity not in seen:
                seen.add(identity)
                files.append(file)
    if problems:
        raise ConfigError(problems)
    return files


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


def load_config(paths: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and merge the config files named by ``paths``.

    ``environ`` (default ``os.environ``) supplies ``${NAME}`` values. Raises
    :class:`ConfigError` carrying every problem found in every file; no other
    exception escapes, whatever the files hold.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    files = resolve_paths(paths)
    problems: list[_Problem] = []
    loaded: list[_File] = []
    for index, path in enumerate(files):
        name = str(path)
        root, yaml_problems = load_yaml(path, env)
        problems.extend(
            _Problem(index, p.line, p.column, p.path, _format(name, *p)) for p in yaml_problems
        )
        if root is None:
            continue
        loaded.append(_File(index, name, root))
        # A value already reported (an unset variable) would only be
        # reported again, less clearly, by the schema.
        reported = {p.path for p in yaml_problems if p.path}
        problems.extend(
            problem
            for problem in _schema_problems(index, name, root)
            if problem.field not in reported
        )
    problems.extend(_cross_file_problems(loaded))
    if problems:
        raise ConfigError([p.text for p in sorted(problems)])
    return Config(
        batches=tuple(batch for file in loaded for batch in _batches(file)),
        settings=_settings(loaded),
        files=tuple(str(path) for path in files),
    )


def _format(file: str, line: int, column: int, path: str, message: str) -> str:
    where = f"{file}:{line}:{column}"
    return f"{where}: {path}: {message}" if path else f"{where}: {message}"


def _path_text(path: JsonPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _schema_problems(index: int, name: str, root: YamlMap) -> Iterable[_Problem]:
    for problem in schema_problems(root, lambda path: _written(root, path)):
        line, column = _locate(root, problem.path, problem.at_key)
        field = _path_text(problem.path)
        yield _Problem(
            index, line, column, field, _format(name, line, column, field, problem.message)
        )


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


def _cross_file_problems(files: Sequence[_File]) -> Iterable[_Problem]:
    """Rules across batches and files, checked on whatever is well-formed enough."""
    settings_at: tuple[str, Mark] | None = None
    names: dict[str, str] = {}
    for file in files:
        root = file.root
        if "settings" in root:
            mark = root.key_marks["settings"]
            if settings_at is None:
                settings_at = (file.name, mark)
            else:
                first = f"{settings_at[0]}:{settings_at[1][0]}:{settings_at[1][1]}"
                yield _problem(
                    file, mark, "settings", f"only one file may hold 'settings'; first at {first}"
                )
        batches = root.get("batches")
        if not isinstance(batches, YamlList):
            continue
        defaults = root.get("defaults")
        default_project = defaults.get("project") if isinstance(defaults, YamlMap) else None
        for i, batch in enumerate(batches):
            if not isinstance(batch, YamlMap):
                continue
            name = batch.get("name")
            if isinstance(name, str) and name:
                mark = batch.value_marks["name"]
                here = f"{file.name}:{mark[0]}:{mark[1]}"
                if name in names:
                    shown = batch.written.get("name", name)
                    yield _problem(
                        file,
                        mark,
                        f"batches[{i}].name",
                        f"batch {shown!r} is declared twice; first at {names[name]}",
                    )
                else:
                    names[name] = here
            if batch.get("project") is None and default_project is None:
                yield _problem(
                    file,
                    batch.mark,
                    f"batches[{i}]",
                    "no project: set 'project' on the batch or in this file's 'defaults'",
                )


def _problem(file: _File, mark: Mark, path: str, message: str) -> _Problem:
    return _Problem(file.order, *mark, path, _format(file.name, *mark, path, message))


def _batches(file: _File) -> Iterable[DesiredBatch]:
    defaults = file.root.get("defaults") or {}
    for batch in file.root["batches"]:
        values: dict[str, Any] = {}
        written: dict[str, str] = {}
        for field in _BATCH_FIELDS:
            # Presence, not truth: an explicit null on the batch clears a default.
            source = batch if field in batch else defaults
            values[field] = source.get(field)
            if isinstance(source, YamlMap) and field in source.written:
                written[field] = source.written[field]
        callback = values["callback"] or None
        priority = values["priority"]
        yield DesiredBatch(
            name=batch["name"],
            project=values["project"],
            callback=callback,
            callback_shown=written.get("callback", callback) if callback else None,
            # The schema accepts 20.0 as an integer; the API wants 20.
            priority=int(priority) if priority is not None else None,
            finalized=values["finalized"],
            calibration_batch=bool(values["calibration_batch"]),
            self_label_batch=bool(values["self_label_batch"]),
            position=Position(file.name, *batch.mark),
        )


def _settings(files: Sequence[_File]) -> Settings:
    for file in files:
        settings = file.root.get("settings")
        if isinstance(settings, YamlMap):
            return Settings(**{key: int(value) for key, value in settings.items()})
    return Settings()
