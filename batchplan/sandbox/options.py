"""The sandbox's settings, shared by the in-process server and ``batchplan sandbox serve``."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxOptions:
    """How a sandbox server stores its data, listens and misbehaves.

    ``latency_ms``, ``fault_rate`` and ``rate_limit`` apply to ``/v1`` only;
    ``rate_limit`` requests a second, in bursts of up to ``burst`` (default:
    one second's worth); ``seed`` makes the fault draws reproducible.

    Under attack: at most ``max_connections`` connections are served at once
    (a new one closes the one waiting longest for a request when all are
    taken); a request head must arrive whole within ``head_timeout`` seconds
    of its first byte (a new connection's first byte too), and a kept-alive
    connection may wait ``idle_timeout`` seconds for its next request.
    """

    db_path: str = ".batchplan/sandbox.db"
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    rate_limit: float | None = None
    burst: int | None = None
    seed: int | None = None
    strict_projects: bool = False
    max_connections: int = 128
    head_timeout: float = 10.0
    idle_timeout: float = 120.0

    def __post_init__(self) -> None:
        if type(self.max_connections) is not int or self.max_connections < 1:
            raise ValueError("max_connections must be an integer >= 1")
        for name in ("head_timeout", "idle_timeout"):
            seconds = getattr(self, name)
            if not (isinstance(seconds, int | float) and 0 < seconds < math.inf):
                raise ValueError(f"{name} must be a number of seconds > 0")
