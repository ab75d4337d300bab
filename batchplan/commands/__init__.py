"""One module per command; each public function takes plain values and returns an exit code.

May import every layer; ``batchplan.cli`` (click) parses the command line and calls these.
"""

from __future__ import annotations

#: ``batchplan schema NAME``: the file of each schema batchplan ships (the CLI's choices).
SCHEMAS = {
    "config": "batchplan.schema.json",
    "plan": "plan.schema.json",
    "apply-events": "apply-events.schema.json",
}
