"""Where the state lives: ``--state``, or the default for the endpoint, and reading it."""

from __future__ import annotations

from pathlib import Path

from batchplan.api.endpoint import Endpoint
from batchplan.errors import StateError
from batchplan.model import shell_word
from batchplan.options import DEFAULT_SANDBOX_STATE, DEFAULT_STATE, Options
from batchplan.state import State, StateBackend, first_damaged
from batchplan.state.local import LocalState

__all__ = [
    "DEFAULT_SANDBOX_STATE",
    "DEFAULT_STATE",
    "backend_at",
    "read_state",
    "state_backend",
    "state_location",
]


def backend_at(location: str) -> StateBackend:
    """A local path, or ``s3://bucket/key`` for the S3 backend."""
    if location.startswith("s3://"):
        from batchplan.state.s3 import S3State

        return S3State.from_url(location)
    return LocalState(Path(location))


def state_location(options: Options, endpoint: Endpoint) -> str:
    """``--state``, or the default for this kind of endpoint."""
    return options.state or (DEFAULT_SANDBOX_STATE if endpoint.sandbox else DEFAULT_STATE)


def state_backend(options: Options, endpoint: Endpoint) -> StateBackend:
    return backend_at(state_location(options, endpoint))


def repair_hint(location: str, name: str) -> str:
    """How to get rid of a damaged record: the commands that still work on such a state."""
    return (
        f"`batchplan state rm --state {shell_word(location)} {shell_word(name)}` drops the "
        "record (the batch itself stays), or fix it in the output of `batchplan state pull` "
        "and `batchplan state push --force` it"
    )


def read_state(backend: StateBackend, endpoint: Endpoint) -> State:
    """The stored state, or a new one; a state made for another endpoint is refused.

    A damaged record is refused naming the record and how to remove it.
    """
    try:
        state = backend.read()
    except StateError as exc:
        kept = backend.read(keep_damaged=True)
        bad = None if kept is None else first_damaged(kept)
        if bad is None:
            raise
        raise StateError(f"{exc}; {repair_hint(backend.location, bad[0])}") from None
    if state is None:
        return State.new(endpoint.identity)
    if state.endpoint != endpoint.identity:
        raise StateError(
            f"state {backend.location} belongs to endpoint {state.endpoint}, "
            f"but this run talks to {endpoint.identity}; pass --state for this endpoint's state"
        )
    return state
