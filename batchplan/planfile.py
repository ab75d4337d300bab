"""Saved plans (``plan --out``): the checksum, writing, reading, staleness.

A saved plan is the JSON plan document plus what is needed to prove, at
apply time, that nothing moved: ``apply FILE`` re-reads the config from the
recorded paths, re-lists, re-plans and compares checksums (DESIGN.md
section 3). The checksum covers every input that could change what apply
would do, and nothing that could not (unmanaged batches, timestamps), so an
unrelated batch created in the same project does not make a plan stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchplan import __version__
from batchplan.errors import PlanError, StalePlanError
from batchplan.model import Config, LiveView
from batchplan.plan import (
    Action,
    BatchSide,
    Change,
    Conflict,
    ConflictKind,
    Plan,
    PlanOptions,
    Warning,
    WarningKind,
)
from batchplan.render.json import change_json, conflict_json, render_json, warning_json

KIND = "batchplan-plan"


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    document: Mapping[str, Any]
    config_paths: tuple[str, ...]
    endpoint: str
    options: PlanOptions
    lineage: str | None
    serial: int
    checksum: str


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum(
    *,
    endpoint: str,
    options: PlanOptions,
    config: Config,
    lineage: str | None,
    serial: int,
    live: LiveView,
    state_names: Sequence[str],
    plan: Plan,
) -> str:
    """sha256 over the canonical JSON of everything a plan depends on.

    Covered: the endpoint; flags and targets; the merged, interpolated desired
    batches (sorted, without file positions); state lineage and serial; for
    each batch examined, (name, project, status, callback) or absent; and the
    changes, conflicts and warnings. Not covered: unmanaged batches and time.
    """
    digest = hashlib.sha256()

    def feed(section: str, items: Iterable[Any]) -> None:
        # Item by item, so a plan over 100,000 batches never holds one huge
        # JSON text; the section names and separators keep it unambiguous.
        digest.update(_canonical(section))
        for item in items:
            digest.update(b"\n" + _canonical(item))
        digest.update(b"\n;")

    feed("endpoint", [endpoint])
    # --force may be added at apply time; it changes no call.
    feed("options", [{k: v for k, v in options.to_json().items() if k != "force"}])
    feed(
        "desired",
        (
            [
                b.name,
                b.project,
                b.callback,
                b.priority,
                b.finalized,
                b.calibration_batch,
                b.self_label_batch,
            ]
            for b in sorted(config.batches, key=lambda b: b.name)
        ),
    )
    feed("state", [[lineage, serial]])
    feed(
        "examined",
        (
            _examined(name, live)
            for name in sorted({b.name for b in config.batches} | set(state_names))
        ),
    )
    feed("missing_projects", sorted(live.missing_projects))
    feed("changes", (change_json(change) for change in plan.changes))
    feed("conflicts", (conflict_json(conflict) for conflict in plan.conflicts))
    feed("warnings", (warning_json(warning) for warning in plan.warnings))
    return "sha256:" + digest.hexdigest()


def _examined(name: str, live: LiveView) -> list[str]:
    seen = live.batches.get(name)
    return [name, seen.project, seen.status, seen.callback or ""] if seen else [name, "absent"]


def write_plan_file(
    path: str,
    plan: Plan,
    *,
    config_paths: Sequence[str],
    endpoint: str,
    options: PlanOptions,
    lineage: str | None,
    serial: int,
    digest: str,
) -> None:
    extra = {
        "kind": KIND,
        "batchplan_version": __version__,
        "config_paths": list(config_paths),
        "endpoint": endpoint,
        "state": {"lineage": lineage, "serial": serial},
        "options": options.to_json(),
        "checksum": digest,
    }
    try:
        Path(path).write_text(render_json(plan, extra), encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: cannot write the plan: {exc}") from None


def looks_like_plan_file(path: str) -> bool:
    """True for a file that holds a saved plan (JSON with our ``kind``)."""
    candidate = Path(path)
    if not candidate.is_file():
        return False
    try:
        with candidate.open("rb") as handle:
            head = handle.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"{") and KIND.encode() in head


def _side(data: Mapping[str, Any] | None) -> BatchSide | None:
    if data is None:
        return None
    return BatchSide(status=data["status"], priority=data["priority"], callback=data["callback"])


def plan_from_document(document: Mapping[str, Any]) -> Plan:
    """Rebuild a Plan from its JSON document (for ``show``)."""
    from batchplan.model import LiveBatch

    changes = tuple(
        Change(
            batch=c["batch"],
            project=c["project"],
            actions=tuple(Action(a) for a in c["actions"]),
            before=_side(c["before"]),
            after=_side(c["after"]),
            reason=c["reason"],
        )
        for c in document["changes"]
    )
    return Plan(
        changes=changes,
        conflicts=tuple(
            Conflict(ConflictKind(c["kind"]), c["batch"], c["project"], c["message"], c["where"])
            for c in document["conflicts"]
        ),
        warnings=tuple(
            Warning(WarningKind(w["kind"]), w["batch"], w["project"], w["message"])
            for w in document["warnings"]
        ),
        unmanaged=tuple(
            LiveBatch(name=u["batch"], project=u["project"], status=u["status"])
            for u in document["unmanaged"]
        ),
        completed_with_priority=tuple(document["completed_with_priority"]),
        targets=tuple(document["targets"]),
        reassert_priority=document["reassert_priority"],
    )


def read_plan_file(path: str) -> SavedPlan:
    """Read and check a saved plan; another batchplan version's plan is stale (exit 4)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read the plan: {exc}") from None
    except ValueError as exc:
        raise PlanError(f"{path}: not a saved plan (invalid JSON: {exc})") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise PlanError(f'{path}: not a saved plan (no "kind": "{KIND}")')
    version = document.get("batchplan_version")
    if version != __version__:
        raise StalePlanError(
            f"{path} was made by batchplan {version}, this is {__version__}: make a new plan"
        )
    from jsonschema import Draft202012Validator

    from batchplan.schema import load_schema

    errors = sorted(
        Draft202012Validator(load_schema("plan.schema.json")).iter_errors(document),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.absolute_path)) or "(top)"
        raise PlanError(f"{path}: damaged plan file at {where}: {first.message}")
    options = document["options"]
    return SavedPlan(
        plan=plan_from_document(document),
        document=document,
        config_paths=tuple(document["config_paths"]),
        endpoint=document["endpoint"],
        options=PlanOptions(
            targets=tuple(options["targets"]),
            reassert_priority=options["reassert_priority"],
            max_finalize=options["max_finalize"],
            max_changes=options["max_changes"],
            max_forget=options["max_forget"],
            force=options["force"],
        ),
        lineage=document["state"]["lineage"],
        serial=document["state"]["serial"],
        checksum=document["checksum"],
    )
