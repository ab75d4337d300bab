"""apply.py over real HTTP with a scripted server: order, partial failure, 409s, state."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from batchplan.apply import apply_plan, describe_result
from batchplan.diff import diff
from batchplan.model import STAGING, Config, DesiredBatch, LiveBatch, LiveView
from batchplan.plan import Action, Plan
from batchplan.scale import ClientOptions, ScaleClient
from batchplan.state import State
from batchplan.state.local import LocalState
from batchplan.state.writer import StateWriter
from tests.scripted import Answer, Seen, scripted

FAST = ClientOptions(max_attempts=3, backoff_base=0.001, backoff_cap=0.01, read_timeout=2)


def batch_json(
    name: str, project: str = "p", status: str = STAGING, callback: str = ""
) -> dict[str, object]:
    return {
        "project": project,
        "name": name,
        "callback": callback,
        "status": status,
        "created_at": "2024-01-01T00:00:00.000Z",
        "metadata": {},
    }


def plan_for(*batches: DesiredBatch) -> Plan:
    view = LiveView(batches={}, absent=frozenset(b.name for b in batches))
    return diff(Config(batches=batches), view, {})


def run_apply(
    url: str, plan: Plan, tmp_path: Path, **kwargs: object
) -> tuple[object, dict[str, object]]:
    backend = LocalState(tmp_path / "state.json")
    state = State.new(url)
    writer = StateWriter(backend, state)
    client = ScaleClient(url, None, FAST)
    lines: list[str] = []
    result = apply_plan(plan, client, writer, {}, report=lines.append, **kwargs)  # type: ignore[arg-type]
    writer.close()
    stored = (
        json.loads((tmp_path / "state.json").read_text())
        if (tmp_path / "state.json").exists()
        else {}
    )
    return result, stored


def test_calls_per_batch_are_in_order_create_prioritize_finalize(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(body=batch_json(json.loads(seen.body)["name"]))
        return Answer(body={"result": "success"})

    plan = plan_for(
        *(DesiredBatch(name=f"b{i}", project="p", priority=20, finalized=True) for i in range(6))
    )
    with scripted(script) as server:
        result, stored = run_apply(server.url, plan, tmp_path, parallelism=4)
    assert result.ok  # type: ignore[attr-defined]
    order = [
        f"create {json.loads(s.body)['name']}" if s.path == "/v1/batches" else s.path
        for s in server.seen
    ]
    for i in range(6):
        create = order.index(f"create b{i}")
        prioritize = order.index(f"/v1/batches/b{i}/prioritize")
        finalize = order.index(f"/v1/batches/b{i}/finalize")
        assert create < prioritize < finalize
    assert sorted(stored["batches"]) == [f"b{i}" for i in range(6)]  # type: ignore[index]
    assert all(r["priority"] == 20 for r in stored["batches"].values())  # type: ignore[attr-defined]


def test_failed_prioritize_means_no_finalize_and_others_carry_on(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(body=batch_json(json.loads(seen.body)["name"]))
        if seen.path == "/v1/batches/bad/prioritize":
            return Answer(400, {"status_code": 400, "error": "priority rejected"})
        return Answer(body={"result": "success"})

    plan = plan_for(
        DesiredBatch(name="bad", project="p", priority=20, finalized=True),
        DesiredBatch(name="good", project="p", priority=20, finalized=True),
    )
    with scripted(script) as server:
        result, stored = run_apply(server.url, plan, tmp_path)
    assert "POST /v1/batches/bad/finalize" not in server.paths()
    assert "POST /v1/batches/good/finalize" in server.paths()
    report = describe_result(result)  # type: ignore[arg-type]
    assert "Apply failed" in report
    assert "bad: prioritize: POST /batches/bad/prioritize: HTTP 400: priority rejected" in report
    assert "not attempted after it: finalize" in report
    # The create that succeeded is in state, with no priority (it was never set).
    assert stored["batches"]["bad"]["priority"] is None  # type: ignore[index]
    assert stored["batches"]["good"]["priority"] == 20  # type: ignore[index]


def test_fail_fast_starts_no_new_batch(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        return Answer(400, {"error": "no"})

    plan = plan_for(*(DesiredBatch(name=f"b{i}", project="p") for i in range(20)))
    with scripted(script) as server:
        result, _ = run_apply(server.url, plan, tmp_path, parallelism=1, fail_fast=True)
    assert len(server.seen) == 1
    assert len(result.unfinished) == 19  # type: ignore[attr-defined]


def test_stop_event_starts_no_call(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    plan = plan_for(DesiredBatch(name="b", project="p"))
    with scripted(lambda seen: Answer(body=batch_json("b"))) as server:
        result, _ = run_apply(server.url, plan, tmp_path, stop=stop)
    assert server.seen == []
    assert result.interrupted  # type: ignore[attr-defined]


def test_409_after_lost_answer_with_matching_batch_is_adopted_and_continues(tmp_path: Path) -> None:
    created = threading.Event()

    def script(seen: Seen) -> Answer:
        if seen.method == "POST" and seen.path == "/v1/batches":
            if not created.is_set():
                created.set()  # the change is made, but the answer is lost
                return Answer(503, {"error": "unavailable"})
            return Answer(409, {"status_code": 409, "error": "exists"})
        if seen.method == "GET":
            return Answer(body=batch_json("b", callback="https://h.example/"))
        return Answer(body={"result": "success"})

    want = DesiredBatch(
        name="b",
        project="p",
        callback="https://h.example/",
        callback_shown="https://h.example/",
        priority=25,
        finalized=True,
    )
    with scripted(script) as server:
        result, stored = run_apply(server.url, plan_for(want), tmp_path)
    assert result.ok, describe_result(result)  # type: ignore[attr-defined,arg-type]
    assert "POST /v1/batches/b/prioritize" in server.paths()
    assert "POST /v1/batches/b/finalize" in server.paths()
    assert stored["batches"]["b"]["priority"] == 25  # type: ignore[index]


def test_409_without_lost_answer_is_someone_elses_batch(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(409, {"status_code": 409, "error": "exists"})
        return Answer(body={"result": "success"})

    want = DesiredBatch(name="b", project="p", priority=25, finalized=True)
    with scripted(script) as server:
        result, stored = run_apply(server.url, plan_for(want), tmp_path)
    assert server.paths() == ["POST /v1/batches"]
    assert not result.ok  # type: ignore[attr-defined]
    assert "no further call" in describe_result(result)  # type: ignore[arg-type]
    assert stored == {}


def test_409_after_lost_answer_but_different_callback_is_a_conflict(tmp_path: Path) -> None:
    attempts = []

    def script(seen: Seen) -> Answer:
        if seen.method == "POST" and seen.path == "/v1/batches":
            attempts.append(1)
            if len(attempts) == 1:
                return Answer(500, {"error": "internal"})
            return Answer(409, {"error": "exists"})
        if seen.method == "GET":
            return Answer(body=batch_json("b", callback="https://someone.else/"))
        return Answer(body={"result": "success"})

    want = DesiredBatch(name="b", project="p", priority=25)
    with scripted(script) as server:
        result, _ = run_apply(server.url, plan_for(want), tmp_path)
    assert not result.ok  # type: ignore[attr-defined]
    assert "POST /v1/batches/b/prioritize" not in server.paths()


def test_created_in_progress_batch_is_not_finalized(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(body=batch_json("b", status="in_progress"))
        return Answer(body={"result": "success"})

    with scripted(script) as server:
        result, _ = run_apply(
            server.url, plan_for(DesiredBatch(name="b", project="p", finalized=True)), tmp_path
        )
    assert result.ok  # type: ignore[attr-defined]
    assert server.paths() == ["POST /v1/batches"]
    assert result.count(Action.FINALIZE) == 0  # type: ignore[attr-defined]


def test_adopt_and_forget_need_no_server(tmp_path: Path) -> None:
    view = LiveView(batches={"a": LiveBatch(name="a", project="p", status="in_progress")})
    from batchplan.model import BatchRecord

    plan = diff(
        Config(batches=(DesiredBatch(name="a", project="p"),)),
        view,
        {"gone": BatchRecord(name="gone", project="p", priority=10)},
    )
    backend = LocalState(tmp_path / "state.json")
    state = State.new("x").merged({"gone": BatchRecord(name="gone", project="p", priority=10)})
    writer = StateWriter(backend, state)
    client = ScaleClient("http://127.0.0.1:9/v1", None, ClientOptions(max_attempts=1))
    result = apply_plan(plan, client, writer, state.batches)
    writer.close()
    assert result.ok
    stored = json.loads((tmp_path / "state.json").read_text())
    assert list(stored["batches"]) == ["a"]
    assert stored["batches"]["a"]["priority"] is None
