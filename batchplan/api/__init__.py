"""Reaching the Scale API: the endpoint, the HTTP client, its limiter and request log.

May import: the core (``errors``, ``model``, ``options``, ``redact``) and ``batchplan.sandbox``
(``--endpoint sandbox`` starts one in this process).
"""

from __future__ import annotations
