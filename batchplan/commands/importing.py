"""``batchplan import``: bring an existing account under batchplan in one command.

Writes YAML for the live batches of the given projects (valid under the
schema) and records them in state without any mutating call, so that a plan
right after shows no changes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from batchplan.apply import utc_now
from batchplan.context import Options, make_client, open_endpoint, read_state
from batchplan.context import state_backend as open_state
from batchplan.errors import EXIT_OK, PlanError, StateError, UsageError
from batchplan.model import COMPLETED, IN_PROGRESS, BatchRecord, LiveBatch
from batchplan.state import State


def _literal(text: str) -> str:
    """Escape ``${`` so the loader does not read a live value as a variable."""
    return text.replace("${", "$${")


def config_yaml(batches: Sequence[LiveBatch], projects: Sequence[str], priority: int | None) -> str:
    """The YAML document for ``batches``; one project goes into ``defaults``."""
    single = len(projects) == 1
    defaults: dict[str, Any] = {}
    if single:
        defaults["project"] = _literal(projects[0])
    if priority is not None:
        defaults["priority"] = priority
    entries = []
    for batch in batches:
        entry: dict[str, Any] = {"name": _literal(batch.name)}
        if not single:
            entry["project"] = _literal(batch.project)
        if batch.callback:
            entry["callback"] = _literal(batch.callback)
        if batch.status in (IN_PROGRESS, COMPLETED):
            entry["finalized"] = True
        entries.append(entry)
    document: dict[str, Any] = {"version": 1}
    if defaults:
        document["defaults"] = defaults
    document["batches"] = entries
    # Names stay out of the comment: a name may hold a line break.
    header = "# Imported by batchplan from the live account; `batchplan validate` checks it.\n"
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)
    return header + body


def import_batches(
    projects: Sequence[str],
    options: Options,
    echo: Callable[[str], None],
    *,
    out: str | None,
    assume_priority: int | None,
    force: bool = False,
) -> int:
    """List the projects, write their YAML, adopt every batch into state."""
    if out is not None and Path(out).exists() and not force:
        raise UsageError(f"{out} exists; choose another --out or pass --force to overwrite it")
    endpoint = open_endpoint(options.endpoint)
    client = make_client(endpoint, options)
    backend = open_state(options, endpoint)
    with backend.lock("import", options.lock_timeout):
        state = read_state(backend, endpoint)
        missing = [p for p in projects if not client.project_exists(p)]
        if missing:
            raise PlanError("project does not exist: " + ", ".join(map(repr, missing)))
        found: dict[str, LiveBatch] = {}
        with ThreadPoolExecutor(max_workers=options.parallelism) as pages:
            for project in projects:
                for batch in client.list_batches(project, pages):
                    found.setdefault(batch.name, batch)
        batches = sorted(found.values(), key=lambda b: (b.project, b.name))
        others = sorted(
            name
            for name in found
            if name in state.batches and state.batches[name].project != found[name].project
        )
        if others:
            raise StateError("state records these batches in another project: " + ", ".join(others))
        text = config_yaml(batches, list(projects), assume_priority)
        if out is None:
            sys.stdout.write(text)
        else:
            try:
                Path(out).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"{out}: cannot write: {exc}") from None
        now = utc_now()
        updates: dict[str, BatchRecord | None] = {}
        for batch in batches:
            known = state.batches.get(batch.name)
            updates[batch.name] = BatchRecord(
                name=batch.name,
                project=batch.project,
                priority=assume_priority
                if assume_priority is not None
                else (known.priority if known else None),
                calibration_batch=known.calibration_batch if known else None,
                self_label_batch=known.self_label_batch if known else None,
                updated_at=now,
            )
        new: State = state.merged(updates)
        backend.write(replace(new, serial=state.serial + 1))
    where = out or "standard output"
    message = (
        f"Imported {len(batches)} batch{'es' if len(batches) != 1 else ''} from "
        f"{len(projects)} project{'s' if len(projects) != 1 else ''} into {where} and state "
        f"{backend.location}."
    )
    if out is None:
        print(message, file=sys.stderr)
    else:
        echo(message)
    return EXIT_OK
