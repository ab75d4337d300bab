"""The plan for machines: versioned JSON, stable key order (``schemas/plan.schema.json``).

The same document, with a few fields more, is what ``plan --out`` saves.
Callbacks appear only in their shown form (``${NAME}`` never expanded).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from batchplan.plan import BatchSide, Change, Conflict, Plan, Warning

FORMAT_VERSION = "1"


def _side(side: BatchSide | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {"status": side.status, "priority": side.priority, "callback": side.callback}


def change_json(change: Change) -> dict[str, Any]:
    return {
        "batch": change.batch,
        "project": change.project,
        "actions": [action.value for action in change.actions],
        "finalize_if_staging": change.finalize_if_staging,
        "before": _side(change.before),
        "after": _side(change.after),
        "reason": change.reason,
    }


def conflict_json(conflict: Conflict) -> dict[str, Any]:
    return {
        "kind": conflict.kind.value,
        "batch": conflict.batch,
        "project": conflict.project,
        "message": conflict.message,
        "where": conflict.where,
    }


def warning_json(warning: Warning) -> dict[str, Any]:
    return {
        "kind": warning.kind.value,
        "batch": warning.batch,
        "project": warning.project,
        "message": warning.message,
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON data, keys in a fixed order."""
    summary = plan.summary
    return {
        "format_version": FORMAT_VERSION,
        "summary": {
            "create": summary.create,
            "finalize": summary.finalize,
            "prioritize": summary.prioritize,
            "prioritize_from_unknown": summary.prioritize_from_unknown,
            "adopt": summary.adopt,
            "forget": summary.forget,
            "api_calls": summary.api_calls,
            "conflicts": len(plan.conflicts),
            "warnings": len(plan.warnings),
            "has_changes": summary.has_changes,
        },
        "targets": list(plan.targets),
        "reassert_priority": plan.reassert_priority,
        "changes": [change_json(change) for change in plan.changes],
        "conflicts": [conflict_json(conflict) for conflict in plan.conflicts],
        "warnings": [warning_json(warning) for warning in plan.warnings],
        "completed_with_priority": list(plan.completed_with_priority),
        "unmanaged": [
            {"batch": batch.name, "project": batch.project, "status": batch.status}
            for batch in plan.unmanaged
        ],
    }


def render_json(plan: Plan, extra: Mapping[str, Any] | None = None) -> str:
    """``plan_document`` as indented JSON; ``extra`` fields follow ``format_version``."""
    document = plan_document(plan)
    if extra:
        document = {"format_version": FORMAT_VERSION, **extra, **document}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
