"""``batchplan sandbox serve``: the embedded Scale-compatible API, until Ctrl-C or SIGTERM."""

from __future__ import annotations

from batchplan.commands.arguments import SandboxServeArguments
from batchplan.sandbox import serve
from batchplan.views.sandbox import sandbox_view


def run(args: SandboxServeArguments) -> int:
    """Serve the sandbox with its parsed options; its view says where it listens."""
    return serve(args.options, sandbox_view(args.color))
