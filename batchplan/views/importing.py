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
from batchplan.escaping import escape_controls, escaped

Echo = Callable[[str], None]

#: ``--out`` meaning standard output.
STDOUT = "-"


class ImportView(Protocol):
    """Prints import's notes and writes its YAML."""

    def write_yaml(self, text: str) -> None: ...

    def skipped_managed(self, name: str) -> None: ...

    def skipped_unmanageable(self, name: str, problem: str) -> None: ...

    def skipped_owned(self, name: str, owner: str) -> None: ...

    def credentials(self, name: str, variable: str) -> None: ...

    def not_live(self, name: str) -> None: ...

    def previewed(self, tally: ImportTally, adopt_command: str) -> None: ...

    def imported(self, tally: ImportTally, claimed: int, out: str | None, state: str) -> None: ...

    def wrote_from_state(self, count: int, out: str | None) -> None: ...


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass(frozen=True)
class ImportTally:
    """What an import found: batches written, projects read, batches skipped."""

    batches: int
    projects: int
    skipped: int

    def words(self) -> tuple[str, str, str]:
        """``3 batches``, ``1 project``, and ``; 2 skipped.`` (or ``.``)."""
        tail = f"; {self.skipped} skipped." if self.skipped else "."
        return (
            _plural(self.batches, "batch", "batches"),
            _plural(self.projects, "project", "projects"),
            tail,
        )


def _destination(out: str | None) -> str:
    return "standard output" if out is None or out == STDOUT else out


class _Notes:
    """Import's notes, worded here; ``note`` says where a note goes."""

    def note(self, message: str) -> None:
        raise NotImplementedError

    def skipped_managed(self, name: str) -> None:
        self.note(f"{escaped(name)}: already managed, skipped")

    def skipped_unmanageable(self, name: str, problem: str) -> None:
        self.note(f"{escaped(name)}: {problem}, which batchplan cannot manage; skipped")

    def skipped_owned(self, name: str, owner: str) -> None:
        self.note(
            f"{escaped(name)}: managed by another state, lineage {owner}; skipped "
            "(--take-ownership adopts it)"
        )

    def credentials(self, name: str, variable: str) -> None:
        self.note(
            f"{escaped(name)}: its callback carries credentials; set {variable} to its live value"
        )

    def not_live(self, name: str) -> None:
        self.note(f"{escaped(name)}: in state but not live, not written")

    def previewed(self, tally: ImportTally, adopt_command: str) -> None:
        counted, sources, tail = tally.words()
        self.note(
            f"Preview: {counted} from {sources} not managed yet{tail} Nothing was written, "
            f"state included. To write this YAML and adopt them: {adopt_command}"
        )

    def imported(self, tally: ImportTally, claimed: int, out: str | None, state: str) -> None:
        counted, sources, tail = tally.words()
        where = _destination(out)
        owned = f" ({claimed} marked with this state's lineage)" if claimed else ""
        self.note(f"Imported {counted}{owned} from {sources} into {where} and state {state}{tail}")

    def wrote_from_state(self, count: int, out: str | None) -> None:
        where = _destination(out)
        self.note(
            f"Wrote {_plural(count, 'batch', 'batches')} the state manages and no config "
            f"declares to {where}; nothing else was changed."
        )


@dataclass(frozen=True)
class ImportToStdout(_Notes):
    """The YAML on standard output, the notes on standard error."""

    def note(self, message: str) -> None:
        # Live names reach these messages: never let them drive the terminal.
        print(escape_controls(message), file=sys.stderr)

    def write_yaml(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


@dataclass(frozen=True)
class ImportToFile(_Notes):
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


def import_view(out: str | None, echo: Echo) -> ImportView:
    """The view ``--out`` chose: standard output for a preview or ``-``, else the file."""
    if out is None or out == STDOUT:
        return ImportToStdout()
    return ImportToFile(out, echo)
