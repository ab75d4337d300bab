"""Reading the configuration: YAML with positions, the schema, variables, for_each, the Config.

May import: ``batchplan.errors``, ``batchplan.model``, ``batchplan.options``, ``batchplan.redact``.
Nothing here touches the network.
"""

from __future__ import annotations
