"""Where the state lives: ``--state``, or the default for the endpoint, and reading it."""

from __future__ import annotations

from pathlib import Path

from batchplan.api.endpoint import Endpoint
from batchplan.errors import StateError
from batchplan.options import DEFAULT_SANDBOX_STATE, DEFAULT_STATE, Options
from batchplan.state import State, StateBackend
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


def read_state(backend: StateBackend, endpoint: Endpoint) -> State:
    """The stored state, or a new one; a state made for another endpoint is refused."""
    state = backend.read()
    if state is None:
        return State.new(endpoint.identity)
    if state.endpoint != endpoint.identity:
        raise StateError(
            f"state {backend.location} belongs to endpoint {state.endpoint}, "
            f"but this run talks to {endpoint.identity}; pass --state for this endpoint's state"
        )
    return state
