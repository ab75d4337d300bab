"""The view of ``batchplan sandbox serve``: its address once it listens, or why it cannot.

May import: the core. Scripts and the docs read the address line, so its
wording is fixed: ``Sandbox listening on URL (instance ID)``, and nothing
more is printed while serving or on stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchplan.views.terminal import make_echo

Echo = Callable[[str], None]


@dataclass(frozen=True)
class SandboxView:
    """What ``sandbox serve`` says, both on standard output."""

    echo: Echo

    def listening(self, url: str, instance_id: str) -> None:
        """The one line a script waits for: the API's URL and the database's instance."""
        self.echo(f"Sandbox listening on {url} (instance {instance_id})")

    def cannot_start(self, problem: str) -> None:
        """Why the sandbox did not start (a taken port, an unusable database)."""
        # On stdout, beside where the address line would have been.
        self.echo(f"Error: {problem}")


def sandbox_view(color: bool) -> SandboxView:
    """The view on standard output, coloured or not as decided."""
    return SandboxView(make_echo(color))
