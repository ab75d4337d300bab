"""The view of ``batchplan schema NAME``: the schema file exactly as shipped.

May import: the core. A schema is never coloured: it is meant for a file or
a pipe into an editor or a linter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchplan.views.terminal import make_echo

Echo = Callable[[str], None]


@dataclass(frozen=True)
class SchemaView:
    """Prints one schema document."""

    echo: Echo

    def schema(self, text: str) -> None:
        """The file's text, ending in exactly one line break however it was saved."""
        self.echo(text.rstrip("\n"))


def schema_view() -> SchemaView:
    """The view on standard output, never coloured."""
    return SchemaView(make_echo(False))
