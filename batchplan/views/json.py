"""The plan for machines: versioned JSON, stable key order (``schemas/plan.schema.json``).

The document itself is built by ``batchplan.plan.document``, which also reads it
back, so ``show PLANFILE --format json`` prints what ``plan --format json``
printed. Callbacks and metadata appear only in their shown form.
"""

from __future__ import annotations

import json

from batchplan.plan.changes import Plan
from batchplan.plan.document import plan_document


def render_json(plan: Plan) -> str:
    """The plan document as indented JSON."""
    return json.dumps(plan_document(plan), indent=2, ensure_ascii=False) + "\n"
