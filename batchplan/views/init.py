"""The view of ``batchplan init``: one line per file it wrote, kept or appended to.

May import: the core. The command decides what to write and hands over the
paths; every sentence is worded here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from batchplan.views.terminal import make_echo

Echo = Callable[[str], None]


@dataclass(frozen=True)
class InitView:
    """Says, line by line, what ``init`` did with each file."""

    echo: Echo

    def wrote_config(self, path: Path) -> None:
        """A starter config was written at ``path``."""
        self.echo(f"Wrote {path}: a starter config; edit it, then `batchplan validate`.")

    def left_alone(self, path: Path) -> None:
        """A config already at ``path`` was not touched."""
        self.echo(f"{path} already exists: left as it is.")

    def wrote_schema(self, path: Path) -> None:
        """The config schema was copied to ``path`` for editors."""
        self.echo(
            f"Wrote {path}: the config schema, for editors "
            f"(after an upgrade: {_refresh_schema(path)})."
        )

    def kept_schema(self, path: Path) -> None:
        """A schema copy already at ``path`` was kept (it may be an older one)."""
        self.echo(f"{path} already exists: kept (after an upgrade: {_refresh_schema(path)}).")

    def created_ignore(self, path: Path, entry: str) -> None:
        """``path`` (a ``.gitignore``) was created holding ``entry``."""
        self.echo(f"Created {path} ignoring {entry} (local state, locks and sandbox data).")

    def already_ignored(self, path: Path, entry: str) -> None:
        """``path`` already ignores ``entry``: nothing was added."""
        self.echo(f"{path} already ignores {entry}.")

    def added_ignore(self, path: Path, entry: str) -> None:
        """``entry`` was appended to the existing ``path``."""
        self.echo(f"Added {entry} to {path} (local state, locks and sandbox data).")


def _refresh_schema(path: Path) -> str:
    # Run in the folder init wrote to, so the copy is named by its file name alone.
    return f"batchplan schema config > {path.name}"


def init_view(color: bool) -> InitView:
    """The view on standard output, coloured or not as decided."""
    return InitView(make_echo(color))
