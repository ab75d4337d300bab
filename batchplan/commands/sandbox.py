"""``batchplan sandbox serve``: the embedded Scale-compatible API, until Ctrl-C or SIGTERM."""

from __future__ import annotations

from batchplan.commands.arguments import SandboxServeArguments
from batchplan.sandbox import serve
from batchplan.views.terminal import make_echo


def run(args: SandboxServeArguments) -> int:
    """Serve the sandbox with its parsed options."""
    return serve(args.options, echo=make_echo(args.color))
