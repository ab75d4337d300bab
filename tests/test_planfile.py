"""Saved plans: what a stale plan says moved, and the session that owns the client."""

from __future__ import annotations

import pytest

from batchplan.api.session import Session
from batchplan.model import Config, DesiredBatch, LiveBatch, LiveView
from batchplan.options import Options
from batchplan.plan.planfile import Inputs, gather_inputs, what_moved
from batchplan.sandbox import SandboxServer


def inputs(
    desired: dict[str, int | None],
    live: dict[str, tuple[str, str, str | None]],
    *,
    serial: int = 1,
    lineage: str | None = "L",
    missing: frozenset[str] = frozenset(),
) -> Inputs:
    config = Config(
        batches=tuple(DesiredBatch(name=n, project="p", priority=v) for n, v in desired.items())
    )
    view = LiveView(
        batches={n: LiveBatch(n, p, s, callback=c) for n, (p, s, c) in live.items()},
        missing_projects=missing,
    )
    return gather_inputs(
        config=config, live=view, state_names=(), lineage=lineage, serial=serial, salt="00"
    )


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (
            inputs({"a": 21, "b": None}, {"a": ("p", "staging", None)}),
            "config: desired values changed for a",
        ),
        (inputs({"a": 20, "b": None, "c": None}, {"a": ("p", "staging", None)}), "added: c"),
        (inputs({"a": 20}, {"a": ("p", "staging", None)}), "removed: b"),
        (
            inputs({"a": 20, "b": None}, {"a": ("p", "in_progress", None)}),
            "live: status changed: a",
        ),
        (
            inputs({"a": 20, "b": None}, {"a": ("q", "staging", None)}),
            "live: project changed: a",
        ),
        (
            inputs({"a": 20, "b": None}, {"a": ("p", "staging", "https://x")}),
            "live: callback or metadata changed: a",
        ),
        (inputs({"a": 20, "b": None}, {}), "live: batches disappeared: a"),
        (
            inputs(
                {"a": 20, "b": None}, {"a": ("p", "staging", None), "b": ("p", "staging", None)}
            ),
            "live: batches appeared: b",
        ),
        (
            inputs({"a": 20, "b": None}, {"a": ("p", "staging", None)}, serial=2),
            "serial 1 -> 2",
        ),
        (
            inputs({"a": 20, "b": None}, {"a": ("p", "staging", None)}, lineage="M"),
            "lineage L -> M",
        ),
        (
            inputs({"a": 20, "b": None}, {"a": ("p", "staging", None)}, missing=frozenset("p")),
            "missing projects were none, now p",
        ),
    ],
)
def test_what_moved_names_each_kind(after: Inputs, expected: str) -> None:
    before = inputs({"a": 20, "b": None}, {"a": ("p", "staging", None)})
    moved = what_moved(before, after)
    assert any(expected in line for line in moved), moved


def test_what_moved_lists_ten_names_then_counts() -> None:
    names = [f"ff{i}" for i in range(1, 13)]
    before = inputs(dict.fromkeys(names, 10), {})
    after = inputs(dict.fromkeys(names, 11), {})
    (line,) = what_moved(before, after)
    assert line.endswith("ff1, ff2, ff3, ff4, ff5, ff6, ff7, ff8, ff9, ff10 and 2 more")


def test_nothing_moved_says_nothing() -> None:
    same = inputs({"a": 20}, {"a": ("p", "staging", None)})
    assert what_moved(same, same) == []


def test_session_closes_its_client(sandbox: SandboxServer) -> None:
    with Session(Options(endpoint=sandbox.url)) as session:
        client = session.client
        closed = []
        original = client.close
        client.close = lambda: (closed.append(True), original())[1]  # type: ignore[method-assign]
    assert closed == [True]


def test_session_stops_the_sandbox_it_started(tmp_path: object) -> None:
    import requests

    with Session(Options(endpoint=f"sandbox:{tmp_path}/s.db")) as session:
        url = session.endpoint.url
        assert requests.get(f"{url}/projects", timeout=5).status_code in (200, 401)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/projects", timeout=5)
