"""A Scale-compatible API server for local use, demos and tests (stdlib only).

``start_sandbox`` runs one inside this process; ``serve`` runs one in the
foreground for ``batchplan sandbox serve``. See ``docs/sandbox.md``.

May import: the core (``errors``, ``model``) only; it is a server of its own.
"""

from __future__ import annotations

from batchplan.sandbox.options import SandboxOptions
from batchplan.sandbox.server import SandboxError, SandboxServer, serve, start_sandbox

__all__ = ["SandboxError", "SandboxOptions", "SandboxServer", "serve", "start_sandbox"]
