"""``batchplan import``: bring an existing account under batchplan in one command.

Writes YAML for the live batches of the given projects that batchplan does
not manage yet, and records them in state without any mutating call, so
that a plan right after shows no changes. A batch already in state or in
the config is "already managed": it is skipped, and its state record is
never touched.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from batchplan.api.endpoint import open_endpoint
from batchplan.api.session import make_client
from batchplan.apply.engine import utc_now
from batchplan.config.load import load_names
from batchplan.config.yamlload import _core_value as core_value
from batchplan.errors import EXIT_OK, PlanError, UsageError, os_reason
from batchplan.model import COMPLETED, IN_PROGRESS, BatchRecord, LiveBatch
from batchplan.options import Options
from batchplan.state.location import read_state
from batchplan.state.location import state_backend as open_state

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
    batches: Sequence[LiveBatch], projects: Sequence[str], priority: int | None
) -> ImportedYaml:
    """The YAML document for ``batches``; one project goes into ``defaults``."""
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
        if batch.metadata:
            entry["metadata"] = _plain(batch.metadata)
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


def _managed_by_config(
    paths: Sequence[str], out: str | None, variables: Mapping[str, str]
) -> frozenset[str]:
    """The batch names of the config at ``paths`` (none given: ``batchplan.yaml`` if present).

    ``--out`` may not be one of those files: the batches skipped because the
    file configures them would vanish from it.
    """
    if not paths:
        if not Path("batchplan.yaml").is_file():
            return frozenset()
        paths = ("batchplan.yaml",)
    # Only the names matter here: an unset ${NAME} in a callback must not block
    # import, but one in a name would skip the wrong batch.
    config = load_names(paths, variables)
    if out is not None and os.path.realpath(out) in {os.path.realpath(f) for f in config.files}:
        raise UsageError(
            f"--out {out} is a config file import reads to skip the batches it manages; "
            "write the imported batches to another file beside it"
        )
    return frozenset(batch.name for batch in config.batches)


def import_batches(
    projects: Sequence[str],
    options: Options,
    echo: Callable[[str], None],
    *,
    out: str | None,
    assume_priority: int | None,
    force: bool = False,
    paths: Sequence[str] = (),
) -> int:
    """List the projects, write YAML for the batches not yet managed, adopt those into state."""
    if out is not None and Path(out).exists() and not force:
        raise UsageError(f"{out} exists; choose another --out or pass --force to overwrite it")

    def note(message: str) -> None:
        # With the YAML on standard output, messages go to standard error.
        if out is None:
            print(message, file=sys.stderr)
        else:
            echo(message)

    in_config = _managed_by_config(paths, out, dict(options.variables))
    endpoint = open_endpoint(options.endpoint)
    client = make_client(endpoint, options)
    backend = open_state(options, endpoint)
    with backend.lock("import", options.lock_timeout):
        state = read_state(backend, endpoint, options.environment)
        missing = [p for p in projects if not client.project_exists(p)]
        if missing:
            raise PlanError("project does not exist: " + ", ".join(map(repr, missing)))
        found: dict[str, LiveBatch] = {}
        with ThreadPoolExecutor(max_workers=options.parallelism) as pages:
            for project in projects:
                for batch in client.list_batches(project, pages):
                    found.setdefault(batch.name, batch)
        managed = sorted(name for name in found if name in state.batches or name in in_config)
        batches = sorted(
            (batch for name, batch in found.items() if name not in managed),
            key=lambda b: (b.project, b.name),
        )
        imported = config_yaml(batches, list(projects), assume_priority)
        if out is None:
            sys.stdout.write(imported.text)
        else:
            try:
                Path(out).write_text(imported.text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write import output {out}: {os_reason(exc)}") from None
        now = utc_now()
        backend.write(
            state.successor(
                {
                    batch.name: BatchRecord(
                        name=batch.name,
                        project=batch.project,
                        priority=assume_priority,
                        updated_at=now,
                    )
                    for batch in batches
                }
            )
        )
    for name in managed:
        note(f"{json.dumps(name, ensure_ascii=False)}: already managed, skipped")
    for variable, name in imported.variables:
        note(
            f"{json.dumps(name, ensure_ascii=False)}: its callback carries credentials; "
            f"set {variable} to its live value"
        )
    note(
        f"Imported {len(batches)} batch{'es' if len(batches) != 1 else ''} from "
        f"{len(projects)} project{'s' if len(projects) != 1 else ''} into "
        f"{out or 'standard output'} and state {backend.location}"
        + (f"; {len(managed)} already managed, skipped." if managed else ".")
    )
    return EXIT_OK
