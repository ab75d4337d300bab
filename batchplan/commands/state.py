"""``batchplan state ...``: inspect and repair state without touching the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from batchplan.commands.arguments import (
    StateListArguments,
    StatePlace,
    StatePullArguments,
    StatePushArguments,
    StateRmArguments,
    StateShowArguments,
    StateUnlockArguments,
)
from batchplan.errors import EXIT_OK, StateError, UsageError, os_reason
from batchplan.escaping import escaped
from batchplan.options import DEFAULT_SANDBOX_STATE, DEFAULT_STATE, Options
from batchplan.state import State, StateBackend, dumps, iter_sorted, loads
from batchplan.state.location import repair_hint
from batchplan.views.state import (
    DamagedRecord,
    StateListing,
    StateView,
    state_list_view,
    state_view,
)
from batchplan.views.terminal import make_echo, tell


def _stored(backend: StateBackend) -> State:
    # Damaged records are kept apart, not fatal: these commands repair a state.
    state = backend.read(keep_damaged=True)
    if state is None:
        raise StateError(f"no state at {backend.location} yet")
    return state


def state_list(
    backend: StateBackend,
    echo: Callable[[str], None],
    output_format: str = "text",
    *,
    verbose: bool = False,
) -> int:
    """The managed batches as a table, or as JSON (``--format json``) for scripts.

    ``verbose`` adds where the state is, its serial and lineage, and the
    create-time flags batchplan recorded (``-`` for adopted batches, whose
    flags it never saw).
    """
    state = backend.read(keep_damaged=True)
    state_list_view(output_format, echo, verbose=verbose).show(listing_of(backend, state))
    return EXIT_OK


def listing_of(backend: StateBackend, state: State | None) -> StateListing:
    """The plain values ``state list`` shows of ``state`` (None: nothing stored yet)."""
    if state is None:
        return StateListing(backend.location)
    damaged = tuple(
        DamagedRecord(name, state.damaged[name].problem, repair_hint(backend.location, name))
        for name in sorted(state.damaged)
    )
    return StateListing(
        backend.location,
        tuple(iter_sorted(state)),
        damaged,
        state.serial,
        state.lineage,
        state.endpoint,
    )


def state_show(backend: StateBackend, name: str, view: StateView) -> int:
    """One record as JSON; a damaged one is refused with the way to remove it."""
    state = _stored(backend)
    record = state.batches.get(name)
    bad = _damaged_name(state, name)
    if record is None and bad is not None:
        raise StateError(f"{state.damaged[bad].problem}; {repair_hint(backend.location, bad)}")
    if record is None:
        raise StateError(f"batch {name!r} is not in state {backend.location}")
    view.record(record)
    return EXIT_OK


def state_rm(
    backend: StateBackend, names: tuple[str, ...], lock_timeout: float, view: StateView
) -> int:
    """Drop records from state (the batches themselves stay): the next plan adopts them."""
    with backend.lock("state rm", lock_timeout):
        state = _stored(backend)
        keys = [name if name in state.batches else _damaged_name(state, name) for name in names]
        missing = [name for name, key in zip(names, keys, strict=True) if key is None]
        if missing:
            raise StateError(
                "not in state: " + ", ".join(repr(name) for name in missing) + "; nothing removed"
            )
        removed = [key for key in keys if key is not None]
        backend.write(state.successor(dict.fromkeys(removed)))
    view.removed(removed)
    return EXIT_OK


def _damaged_name(state: State, given: str) -> str | None:
    """The damaged record ``given`` names: its name, or its escaped form as listed.

    A name holding a line break is hard to type; ``state list`` shows it
    JSON-escaped, and that form (with or without the quotes) is accepted too.
    """
    for name in state.damaged:
        shown = escaped(name)
        if given in (name, shown, shown[1:-1]):
            return name
    return None


def state_pull(backend: StateBackend, view: StateView) -> int:
    """The stored document, damaged records included, as the store holds it."""
    view.document(dumps(_stored(backend)))
    return EXIT_OK


def state_push(
    backend: StateBackend,
    path: str,
    force: bool,
    lock_timeout: float,
    view: StateView,
    *,
    endpoint: str | None,
) -> int:
    """Replace the stored state with a file; the store refuses another lineage, an older
    serial or another endpoint's state (``endpoint`` is this run's endpoint identity,
    None for a sandbox whose database does not exist yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read state {path}: {os_reason(exc)}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read state {path}: not UTF-8 text ({exc})") from None
    pushed = loads(text, path)
    with backend.lock("state push", lock_timeout):
        serial = backend.push(pushed, path, endpoint=endpoint, force=force)
    if serial is None:
        view.already_held(backend.location)
    else:
        view.pushed(path, backend.location, serial)
    return EXIT_OK


def state_unlock(backend: StateBackend, lock_id: str, view: StateView) -> int:
    """Break the lock ``lock_id`` (refused when another one is held) and say whose it was."""
    view.broke_lock(backend.unlock(lock_id))
    return EXIT_OK


# --- the commands with their parsed arguments ---------------------------------------


def place_of(place: StatePlace) -> tuple[str, str | None]:
    """(endpoint, ``--state``) of a ``state`` command: ``--env``'s when given."""
    endpoint, location = place.endpoint, place.state
    if place.environment:
        from batchplan.commands.arguments import default_paths
        from batchplan.config.environments import settle

        settled = settle(
            default_paths(()),
            Options(endpoint=endpoint, state=location, environment=place.environment),
            explicit=place.explicit,
            tell=tell,
        )
        endpoint, location = settled.endpoint, settled.state
    return endpoint, location


def backend_of(endpoint: str, location: str | None) -> StateBackend:
    """``--state``, or the default state for this kind of endpoint."""
    from batchplan.api.endpoint import Endpoint
    from batchplan.state.location import backend_at

    sandbox = Endpoint.parse(endpoint).sandbox
    location = location or (DEFAULT_SANDBOX_STATE if sandbox else DEFAULT_STATE)
    return backend_at(location)


def backend_for(place: StatePlace) -> StateBackend:
    """The state of the current folder's configuration, or of ``--env``'s environment."""
    return backend_of(*place_of(place))


def run_list(args: StateListArguments) -> int:
    """``batchplan state list``."""
    backend = backend_for(args.place)
    return state_list(backend, make_echo(args.color), args.format, verbose=args.verbose)


def run_show(args: StateShowArguments) -> int:
    """``batchplan state show``."""
    return state_show(backend_for(args.place), args.name, state_view(args.color))


def run_rm(args: StateRmArguments) -> int:
    """``batchplan state rm``."""
    backend = backend_for(args.place)
    return state_rm(backend, args.names, args.lock_timeout, state_view(args.color))


def run_pull(args: StatePullArguments) -> int:
    """``batchplan state pull``."""
    return state_pull(backend_for(args.place), state_view(args.color))


def run_push(args: StatePushArguments) -> int:
    """``batchplan state push``: the endpoint's identity is read, not served."""
    from batchplan.api.endpoint import Endpoint

    endpoint, location = place_of(args.place)
    # Read, not served: pushing a state starts no sandbox.
    identity = Endpoint.parse(endpoint).read_identity()
    backend = backend_of(endpoint, location)
    view = state_view(args.color)
    return state_push(backend, args.path, args.force, args.lock_timeout, view, endpoint=identity)


def run_unlock(args: StateUnlockArguments) -> int:
    """``batchplan state unlock``."""
    return state_unlock(backend_for(args.place), args.lock_id, state_view(args.color))
