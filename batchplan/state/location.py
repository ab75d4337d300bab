"""Where the state lives: ``--state``, or the default for the endpoint, and reading it.

The default lives under the config root (the folder of the configuration),
so a run from a sub-folder, ``batchplan plan ../batchplan.yaml``, uses the
same state as a run beside the configuration.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from batchplan.api.endpoint import Endpoint
from batchplan.errors import StateError
from batchplan.escaping import shell_word
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


def default_state(root: str, sandbox: bool) -> str:
    """The default state file under the config root ``root``."""
    name = DEFAULT_SANDBOX_STATE if sandbox else DEFAULT_STATE
    return name if root == "." else os.path.normpath(os.path.join(root, name))


def state_location(options: Options, endpoint: Endpoint) -> str:
    """``--state`` (or the environment's), or the default for this kind of endpoint."""
    return options.state or default_state(options.root, endpoint.sandbox)


def state_backend(options: Options, endpoint: Endpoint) -> StateBackend:
    return backend_at(state_location(options, endpoint))


def repair_hint(location: str, name: str) -> str:
    """How to get rid of a damaged record: the commands that still work on such a state."""
    return (
        f"`batchplan state rm --state {shell_word(location)} {shell_word(name)}` drops the "
        "record (the batch itself stays), or fix it in the output of `batchplan state pull` "
        "and `batchplan state push --force` it"
    )


def read_state(backend: StateBackend, endpoint: Endpoint, environment: str | None = None) -> State:
    """The stored state, or a new one; a state made for another endpoint or environment
    is refused. A state written before environments existed is taken over by this one.

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
        return State.new(endpoint.identity, environment)
    if state.endpoint != endpoint.identity:
        raise StateError(
            f"state {backend.location} belongs to endpoint {state.endpoint}, "
            f"but this run talks to {endpoint.identity}; pass --state for this endpoint's state"
        )
    if state.environment is not None and state.environment != environment:
        raise StateError(
            f"state {backend.location} belongs to environment {state.environment}, but this "
            f"run is for {'environment ' + environment if environment else 'no environment'}; "
            "check --env, or pass --state for this environment's state"
        )
    if state.environment is None and environment is not None:
        return replace(state, environment=environment)
    return state
