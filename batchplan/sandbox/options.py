"""The sandbox's settings, shared by the in-process server and ``batchplan sandbox serve``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxOptions:
    """How a sandbox server stores its data, listens and misbehaves.

    ``latency_ms``, ``fault_rate`` and ``rate_limit`` apply to ``/v1`` only;
    ``rate_limit`` requests a second, in bursts of up to ``burst`` (default:
    one second's worth); ``seed`` makes the fault draws reproducible.
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
