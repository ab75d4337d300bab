"""The views of ``batchplan state``: list's table or JSON, and what the other subcommands did.

May import: the core. The command reads the state and hands over plain values
(its records, where it is, its damaged records with the way to remove each,
what was removed or pushed, whose lock was broken); every line is worded here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from batchplan.escaping import escaped
from batchplan.model import BatchRecord, name_problem
from batchplan.views.terminal import make_echo

Echo = Callable[[str], None]

#: ``--format`` of state list, in the order the help lists them.
STATE_LIST_FORMATS = ("text", "json")


@dataclass(frozen=True)
class DamagedRecord:
    """A record the state could not read: its name, what is wrong, how to remove it."""

    name: str
    problem: str
    repair: str


@dataclass(frozen=True)
class StateListing:
    """What ``state list`` shows; ``serial`` etc. are None when there is no state yet."""

    location: str
    records: tuple[BatchRecord, ...] = ()
    damaged: tuple[DamagedRecord, ...] = ()
    serial: int | None = None
    lineage: str | None = None
    endpoint: str | None = None


class StateListView(Protocol):
    def show(self, listing: StateListing) -> None: ...


def record_json(record: BatchRecord) -> dict[str, Any]:
    """One record as ``state list --format json`` writes it."""
    return {
        "name": record.name,
        "project": record.project,
        "priority": record.priority,
        "calibration_batch": record.calibration_batch,
        "self_label_batch": record.self_label_batch,
        "updated_at": record.updated_at,
    }


@dataclass(frozen=True)
class StateListJSON:
    """``{"state": LOCATION, "batches": [...]}``, plus ``damaged`` when there are any."""

    echo: Echo

    def show(self, listing: StateListing) -> None:
        document: dict[str, Any] = {
            "state": listing.location,
            "batches": [record_json(record) for record in listing.records],
        }
        if listing.damaged:
            document["damaged"] = [
                {"name": damaged.name, "problem": damaged.problem} for damaged in listing.damaged
            ]
        self.echo(json.dumps(document, ensure_ascii=False))


def _flag(value: bool | None) -> str:
    return "-" if value is None else str(value).lower()


@dataclass(frozen=True)
class StateListText:
    """A table; ``verbose`` adds the state's serial, lineage and the create-time flags."""

    echo: Echo
    verbose: bool = False

    def show(self, listing: StateListing) -> None:
        if not (listing.records or listing.damaged):
            self.echo(f"No batches in state {listing.location}.")
            return
        if self.verbose:
            self.echo(
                f"State {listing.location}: serial {listing.serial}, "
                f"lineage {listing.lineage}, endpoint {listing.endpoint}"
            )
            self.echo("")
        header = ["NAME", "PROJECT", "PRIORITY"]
        if self.verbose:
            header += ["CALIBRATION", "SELF_LABEL"]
        rows = []
        for r in listing.records:
            row = [r.name, r.project, "(unknown)" if r.priority is None else str(r.priority)]
            if self.verbose:
                row += [_flag(r.calibration_batch), _flag(r.self_label_batch)]
            rows.append((row, r.updated_at or ""))
        widths = [
            max(len(row[i]) for row in [header, *(r for r, _ in rows)]) for i in range(len(header))
        ]

        def line(cells: list[str], last: str) -> str:
            padded = (f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True))
            return "  ".join(padded) + f"  {last}"

        self.echo(line(header, "UPDATED"))
        for row, updated in rows:
            self.echo(line(row, updated))
        self._damaged(listing.damaged)

    def _damaged(self, damaged: tuple[DamagedRecord, ...]) -> None:
        """Each damaged record, named escaped (it may hold a line break), and the way out."""
        if not damaged:
            return
        count = len(damaged)
        self.echo("")
        self.echo(
            f"{count} damaged record{'s' if count != 1 else ''} (every other command refuses "
            "this state until it is removed or fixed):"
        )
        for record in damaged:
            self.echo(f"  {escaped(record.name)}: {record.problem}")
            self.echo(f"    remove it: {record.repair}")


def state_list_view(output_format: str, echo: Echo, *, verbose: bool = False) -> StateListView:
    """The view ``--format`` chose (``verbose`` only shapes text)."""
    if output_format == "json":
        return StateListJSON(echo)
    return StateListText(echo, verbose)


class LockHolder(Protocol):
    """The lock a run held, as the state store read it back."""

    @property
    def id(self) -> str: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class StateView:
    """What ``state show``, ``rm``, ``pull``, ``push`` and ``unlock`` report."""

    echo: Echo

    def record(self, record: BatchRecord) -> None:
        """``state show``: one record, as indented JSON (the fields ``state list`` gives)."""
        self.echo(json.dumps(record_json(record), indent=2, ensure_ascii=False))

    def document(self, text: str) -> None:
        """``state pull``: the stored document as it is serialized, for a file or a pipe."""
        self.echo(text.rstrip("\n"))

    def removed(self, names: Iterable[str]) -> None:
        """``state rm``: one line per record removed; the batches themselves stay."""
        for name in names:
            # Escaped: a damaged record's name may hold a line break.
            shown = name if name_problem(name) is None else escaped(name)
            self.echo(f"Removed {shown} from state (the batch itself is not deleted).")

    def pushed(self, path: str, location: str, serial: int) -> None:
        """``state push``: ``path`` now is the state at ``location``, with a new serial."""
        self.echo(f"Pushed {path} to {location} (serial {serial}).")

    def already_held(self, location: str) -> None:
        """``state push`` of what ``location`` already holds: nothing was written."""
        self.echo(f"{location} already holds this state; nothing pushed.")

    def broke_lock(self, holder: LockHolder) -> None:
        """``state unlock``: the lock removed, and who held it."""
        self.echo(f"Lock {holder.id} broken (it was {holder.describe()}).")


def state_view(color: bool) -> StateView:
    """The view of the state subcommands on standard output, coloured or not as decided."""
    return StateView(make_echo(color))
