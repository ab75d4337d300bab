"""The plan's serialised form: ``Plan`` to JSON data and back, in one place.

``plan --format json`` prints this document, ``plan --out`` saves it with
the saved-plan fields, ``show`` and ``apply PLANFILE`` read it back. Every
value the renderers show is here, so a plan read back renders exactly like
the plan that was written. Expanded ``${NAME}`` values are not in ``Plan``'s
rendered fields, so they cannot reach the document either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchplan.model import LiveBatch, Position
from batchplan.plan.changes import (
    Action,
    BatchSide,
    Change,
    ChangeReason,
    Finding,
    FindingCode,
    Limit,
    LimitBreach,
    MetadataEdit,
    Origin,
    Plan,
    Severity,
)
from batchplan.plan.words import finding_diagnostic, reason_text

FORMAT_VERSION = "1"


def _side(side: BatchSide | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {"status": side.status, "priority": side.priority, "callback": side.callback}


def _edit(edit: MetadataEdit) -> dict[str, Any]:
    return {
        "key": edit.key,
        "before": edit.before,
        "after": edit.after,
        "before_present": edit.before_present,
        "after_present": edit.after_present,
        "before_hidden": edit.before_hidden,
    }


def change_json(change: Change) -> dict[str, Any]:
    """One change as JSON data, keys in a fixed order."""
    creates = Action.CREATE in change.actions
    return {
        "batch": change.batch,
        "project": change.project,
        "actions": [action.value for action in change.actions],
        "finalize_if_staging": change.finalize_if_staging,
        "before": _side(change.before),
        "after": _side(change.after),
        "create_flags": (
            {
                "calibration_batch": change.calibration_batch,
                "self_label_batch": change.self_label_batch,
            }
            if creates
            else None
        ),
        "metadata": [_edit(edit) for edit in change.metadata],
        "reasons": [reason.value for reason in change.reasons],
        "reason": reason_text(change.reasons),
        "origin": (
            None
            if change.origin is None
            else {
                "file": change.origin.file,
                "line": change.origin.line,
                "each": dict(change.origin.each),
            }
        ),
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    """One conflict or warning as JSON data: its diagnostic, and what the plan adds."""
    diagnostic = finding_diagnostic(finding)
    kind = "conflict_outside_targets" if finding.outside_targets else diagnostic.code
    return {
        "kind": kind,
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "batch": finding.batch,
        "project": finding.project,
        "message": diagnostic.message,
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
        # The same place as one string, as plans had it before file, line and column.
        "where": finding.where,
        "outside_targets": finding.outside_targets,
        "facts": dict(finding.facts),
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON data, keys in a fixed order."""
    summary = plan.summary
    return {
        "format_version": FORMAT_VERSION,
        "summary": {
            "create": summary.create,
            "set_metadata": summary.set_metadata,
            "finalize": summary.finalize,
            "prioritize": summary.prioritize,
            "prioritize_from_unknown": summary.prioritize_from_unknown,
            "adopt": summary.adopt,
            "forget": summary.forget,
            "api_calls": summary.api_calls,
            "conflicts": len(plan.conflicts),
            "warnings": len(plan.warnings),
            "has_changes": summary.has_changes,
            "unsafe": bool(plan.unsafe),
        },
        "targets": list(plan.targets),
        "reassert_priority": plan.reassert_priority,
        "unsafe": [
            {"limit": breach.limit.value, "planned": breach.planned, "max": breach.max}
            for breach in plan.unsafe
        ],
        "changes": [change_json(change) for change in plan.changes],
        "conflicts": [finding_json(finding) for finding in plan.conflicts],
        "warnings": [finding_json(finding) for finding in plan.warnings],
        "completed_with_priority": list(plan.completed_with_priority),
        "unmanaged": [
            {"batch": batch.name, "project": batch.project, "status": batch.status}
            for batch in plan.unmanaged
        ],
    }


def _read_side(data: Mapping[str, Any] | None) -> BatchSide | None:
    if data is None:
        return None
    return BatchSide(status=data["status"], priority=data["priority"], callback=data["callback"])


def _read_change(data: Mapping[str, Any]) -> Change:
    flags = data["create_flags"] or {}
    origin = data["origin"]
    return Change(
        batch=data["batch"],
        project=data["project"],
        actions=tuple(Action(a) for a in data["actions"]),
        before=_read_side(data["before"]),
        after=_read_side(data["after"]),
        reasons=tuple(ChangeReason(r) for r in data["reasons"]),
        calibration_batch=bool(flags.get("calibration_batch", False)),
        self_label_batch=bool(flags.get("self_label_batch", False)),
        metadata=tuple(
            MetadataEdit(
                key=e["key"],
                before=e["before"],
                after=e["after"],
                before_present=e["before_present"],
                after_present=e["after_present"],
                before_hidden=e["before_hidden"],
            )
            for e in data["metadata"]
        ),
        origin=(
            None
            if origin is None
            else Origin(origin["file"], origin["line"], tuple(origin["each"].items()))
        ),
    )


def _read_finding(data: Mapping[str, Any]) -> Finding:
    return Finding(
        severity=Severity(data["severity"]),
        code=FindingCode(data["code"]),
        batch=data["batch"],
        project=data["project"],
        facts=tuple((str(k), str(v)) for k, v in data["facts"].items()),
        position=_read_position(data),
        outside_targets=data["outside_targets"],
    )


def _read_position(data: Mapping[str, Any]) -> Position | None:
    """Where a finding's batch is declared: ``file``, ``line`` and ``column``.

    Plans saved before those fields existed have only ``where``
    (``file:line:column``), read from its end, since a file name may hold ``:``.
    """
    if "file" in data:
        file, line, column = data["file"], data.get("line"), data.get("column")
        if file is None or line is None or column is None:
            return None
        return Position(file, line, column)
    where = data.get("where")
    if not where:
        return None
    head, _, column_text = where.rpartition(":")
    file, _, line_text = head.rpartition(":")
    if not (file and line_text.isdigit() and column_text.isdigit()):
        return None
    return Position(file, int(line_text), int(column_text))


def plan_from_document(document: Mapping[str, Any]) -> Plan:
    """Rebuild a Plan from its JSON data (already checked against the schema)."""
    return Plan(
        changes=tuple(_read_change(c) for c in document["changes"]),
        findings=tuple(_read_finding(f) for f in [*document["conflicts"], *document["warnings"]]),
        unmanaged=tuple(
            LiveBatch(name=u["batch"], project=u["project"], status=u["status"])
            for u in document["unmanaged"]
        ),
        completed_with_priority=tuple(document["completed_with_priority"]),
        targets=tuple(document["targets"]),
        reassert_priority=document["reassert_priority"],
        unsafe=tuple(
            LimitBreach(Limit(u["limit"]), u["planned"], u["max"]) for u in document["unsafe"]
        ),
    )
