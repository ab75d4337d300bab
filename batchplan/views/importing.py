"""The views of ``batchplan import``: where its YAML and its notes go.

May import: the core. With the YAML on standard output (a preview, or
``--out -``) the notes go to standard error, so the output can be piped into
a file as it is; with ``--out FILE`` the YAML goes to the file and the notes
to standard output. Notes name live batches, so they are escaped first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from batchplan.errors import UsageError, os_reason
from batchplan.escaping import escape_controls

Echo = Callable[[str], None]


class ImportView(Protocol):
    """Prints import's notes and writes its YAML."""

    def note(self, message: str) -> None: ...

    def write_yaml(self, text: str) -> None: ...


@dataclass(frozen=True)
class ImportToStdout:
    """The YAML on standard output, the notes on standard error."""

    def note(self, message: str) -> None:
        # Live names reach these messages: never let them drive the terminal.
        print(escape_controls(message), file=sys.stderr)

    def write_yaml(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


@dataclass(frozen=True)
class ImportToFile:
    """The YAML in ``path``, the notes on standard output."""

    path: str
    echo: Echo

    def note(self, message: str) -> None:
        self.echo(escape_controls(message))

    def write_yaml(self, text: str) -> None:
        try:
            Path(self.path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write import output {self.path}: {os_reason(exc)}") from None


#: ``--out`` meaning standard output.
STDOUT = "-"


def import_view(out: str | None, echo: Echo) -> ImportView:
    """The view ``--out`` chose: standard output for a preview or ``-``, else the file."""
    if out is None or out == STDOUT:
        return ImportToStdout()
    return ImportToFile(out, echo)
