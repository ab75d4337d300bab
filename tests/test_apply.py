"""apply.py over real HTTP with a scripted server: order, partial failure, 409s, state."""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path
from typing import Any

from batchplan.api.client import ScaleClient
from batchplan.apply.engine import ApplyResult, apply_plan
from batchplan.apply.events import (
    ApplyEvent,
    CallEvent,
    InterruptedEvent,
    NotStartedEvent,
    RetryEvent,
)
from batchplan.model import STAGING, Config, DesiredBatch, LiveBatch, LiveView
from batchplan.options import ClientOptions
from batchplan.plan.changes import Action, BatchSide, Change, Plan
from batchplan.plan.diff import diff
from batchplan.sandbox import SandboxServer
from batchplan.state import State
from batchplan.state.local import LocalState
from batchplan.state.writer import StateWriter
from batchplan.views.apply import TextView
from tests.helpers import batch_record, events
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


class Run:
    """One apply's result, its events, the text view's output and the stored state."""

    def __init__(self, result: ApplyResult, events: list[ApplyEvent], text: str, stored: Any):
        self.result = result
        self.events = events
        self.text = text
        self.stored = stored


def run_apply(url: str, plan: Plan, tmp_path: Path, **kwargs: Any) -> Run:
    backend = LocalState(tmp_path / "state.json")
    state = State.new(url)
    writer = StateWriter(backend, state)
    client = ScaleClient(url, None, FAST)
    events: list[ApplyEvent] = []
    out, err = io.StringIO(), io.StringIO()
    view = TextView(out, err, live=False, heartbeat=0)

    def emit(event: ApplyEvent) -> None:
        events.append(event)
        view(event)

    result = apply_plan(plan, client, writer, {}, emit=emit, **kwargs)
    writer.close()
    stored = (
        json.loads((tmp_path / "state.json").read_text())
        if (tmp_path / "state.json").exists()
        else {}
    )
    return Run(result, events, out.getvalue(), stored)


def test_calls_per_batch_are_in_order_create_prioritize_finalize(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(body=batch_json(json.loads(seen.body)["name"]))
        return Answer(body={"result": "success"})

    plan = plan_for(
        *(DesiredBatch(name=f"b{i}", project="p", priority=20, finalized=True) for i in range(6))
    )
    with scripted(script) as server:
        run = run_apply(server.url, plan, tmp_path, parallelism=4)
    assert run.result.ok
    order = [
        f"create {json.loads(s.body)['name']}" if s.path == "/v1/batches" else s.path
        for s in server.seen
    ]
    for i in range(6):
        create = order.index(f"create b{i}")
        prioritize = order.index(f"/v1/batches/b{i}/prioritize")
        finalize = order.index(f"/v1/batches/b{i}/finalize")
        assert create < prioritize < finalize
    assert sorted(run.stored["batches"]) == [f"b{i}" for i in range(6)]
    assert all(r["priority"] == 20 for r in run.stored["batches"].values())


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
        run = run_apply(server.url, plan, tmp_path)
    assert "POST /v1/batches/bad/finalize" not in server.paths()
    assert "POST /v1/batches/good/finalize" in server.paths()
    report = run.text
    assert "Apply failed" in report
    assert (
        "bad: prioritize failed after 1 attempt: "
        "POST /batches/bad/prioritize: HTTP 400: priority rejected" in report
    )
    assert "not attempted after it: finalize" in report
    # The create that succeeded is in state, with no priority (it was never set).
    assert run.stored["batches"]["bad"]["priority"] is None
    assert run.stored["batches"]["good"]["priority"] == 20


def test_fail_fast_starts_no_new_batch(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        return Answer(400, {"error": "no"})

    plan = plan_for(*(DesiredBatch(name=f"b{i}", project="p") for i in range(20)))
    with scripted(script) as server:
        run = run_apply(server.url, plan, tmp_path, parallelism=1, fail_fast=True)
    assert len(server.seen) == 1
    assert len(run.result.unfinished) == 19


def test_stop_event_starts_no_call(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    plan = plan_for(DesiredBatch(name="b", project="p"))
    with scripted(lambda seen: Answer(body=batch_json("b"))) as server:
        run = run_apply(server.url, plan, tmp_path, stop=stop)
    assert server.seen == []
    assert run.result.interrupted


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
        run = run_apply(server.url, plan_for(want), tmp_path)
    assert run.result.ok, run.text
    assert "POST /v1/batches/b/prioritize" in server.paths()
    assert "POST /v1/batches/b/finalize" in server.paths()
    assert run.stored["batches"]["b"]["priority"] == 25


def test_409_without_lost_answer_is_someone_elses_batch(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(409, {"status_code": 409, "error": "exists"})
        return Answer(body={"result": "success"})

    want = DesiredBatch(name="b", project="p", priority=25, finalized=True)
    with scripted(script) as server:
        run = run_apply(server.url, plan_for(want), tmp_path)
    assert server.paths() == ["POST /v1/batches"]
    assert not run.result.ok
    assert "no further call" in run.text
    assert run.stored == {}


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
        run = run_apply(server.url, plan_for(want), tmp_path)
    assert not run.result.ok
    assert "POST /v1/batches/b/prioritize" not in server.paths()


def test_created_in_progress_batch_is_not_finalized(tmp_path: Path) -> None:
    def script(seen: Seen) -> Answer:
        if seen.path == "/v1/batches":
            return Answer(body=batch_json("b", status="in_progress"))
        return Answer(body={"result": "success"})

    with scripted(script) as server:
        run = run_apply(
            server.url, plan_for(DesiredBatch(name="b", project="p", finalized=True)), tmp_path
        )
    assert run.result.ok
    assert server.paths() == ["POST /v1/batches"]
    assert run.result.count(Action.FINALIZE) == 0


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


def test_retries_are_events_and_a_failure_names_its_attempts(tmp_path: Path) -> None:
    tries: dict[str, int] = {}

    def script(seen: Seen) -> Answer:
        name = json.loads(seen.body)["name"]
        tries[name] = tries.get(name, 0) + 1
        if name == "bad" or tries[name] < 3:
            return Answer(503, {"error": "unavailable"})
        return Answer(body=batch_json(name))

    plan = plan_for(DesiredBatch(name="flaky", project="p"), DesiredBatch(name="bad", project="p"))
    with scripted(script) as server:
        run = run_apply(server.url, plan, tmp_path)
    retries = [e for e in run.events if isinstance(e, RetryEvent)]
    assert sorted((e.batch, e.attempt) for e in retries) == [
        ("bad", 1),
        ("bad", 2),
        ("flaky", 1),
        ("flaky", 2),
    ]
    assert all(e.action == "create" and e.reason == "HTTP 503: unavailable" for e in retries)
    calls = {e.batch: e for e in run.events if isinstance(e, CallEvent)}
    assert (calls["flaky"].outcome, calls["flaky"].attempts) == ("done", 3)
    assert (calls["bad"].outcome, calls["bad"].attempts) == ("failed", 3)
    summary = run.result.summary
    assert (summary.created, summary.failed, summary.calls, summary.retries) == (1, 1, 2, 4)
    assert "bad: create failed after 3 attempts: POST /batches: HTTP 503: unavailable" in run.text
    assert "flaky: create attempt 1 failed (HTTP 503: unavailable); retrying in" in run.text
    assert "1 created. 2 calls (1 failed), 4 retries," in run.text


def test_a_stop_cancels_a_call_waiting_to_retry_and_counts_it_not_started(
    tmp_path: Path,
) -> None:
    stop = threading.Event()
    patient = ClientOptions(max_attempts=3, backoff_base=20, backoff_cap=20, read_timeout=2)
    plan = plan_for(DesiredBatch(name="b", project="p", priority=20))
    backend = LocalState(tmp_path / "state.json")
    writer = StateWriter(backend, State.new("x"))
    events: list[ApplyEvent] = []

    def emit(event: ApplyEvent) -> None:
        events.append(event)
        if isinstance(event, RetryEvent):
            stop.set()  # as the signal handler does, while the call sleeps before its retry

    # A Retry-After makes the wait long and certain (backoff is jittered).
    always_busy = Answer(503, {"error": "busy"}, headers={"Retry-After": "30"})
    with scripted(lambda seen: always_busy) as server:
        client = ScaleClient(server.url, None, patient)
        result = apply_plan(plan, client, writer, {}, stop=stop, emit=emit)
    writer.close()
    assert len(server.seen) == 1, "no attempt may start after the stop"
    summary = result.summary
    assert (summary.result, summary.failed, summary.not_started) == ("interrupted", 0, 2)
    assert [e.in_flight for e in events if isinstance(e, InterruptedEvent)] == [0]
    left = [e for e in events if isinstance(e, NotStartedEvent)]
    assert [(e.batch, e.actions, e.reason) for e in left] == [
        ("b", ("create", "prioritize"), "stopped")
    ]
    assert not any(isinstance(e, CallEvent) for e in events)


def test_set_metadata_sends_the_planned_object_before_prioritize(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    client = ScaleClient(sandbox.url, None, FAST)
    client.create_batch(
        DesiredBatch(name="m", project="p", metadata={"team": "a", "keep": 1, "old": "x"})
    )
    desired = DesiredBatch(
        name="m",
        project="p",
        priority=15,
        metadata={"team": "b", "old": None},
        metadata_shown={"team": "b", "old": None},
    )
    change = Change(
        batch="m",
        project="p",
        actions=(Action.SET_METADATA, Action.PRIORITIZE),
        before=BatchSide(status=STAGING),
        after=BatchSide(status=STAGING, priority=15),
        desired=desired,
        # What the diff computes: the live object with the configured keys applied.
        metadata_to_send={"team": "b", "keep": 1},
    )
    run = run_apply(sandbox.url, Plan(changes=(change,)), tmp_path)
    assert run.result.ok, run.text
    assert batch_record(sandbox, "m")["metadata"] == {"team": "b", "keep": 1}
    kinds = [e["kind"] for e in events(sandbox) if e["batch"] == "m"]
    assert kinds.index("set_metadata") < kinds.index("prioritize")
    assert "m: metadata set" in run.text
    assert run.result.summary.metadata_set == 1
    record = run.stored["batches"]["m"]
    assert "metadata" not in record and "team" not in json.dumps(record)


def test_a_failed_state_write_stops_new_calls_and_is_in_the_summary(tmp_path: Path) -> None:
    # The state's folder is a symlink, so it can be swapped in one atomic step.
    (tmp_path / "real").mkdir()
    (tmp_path / "a_file").write_text("not a folder", encoding="utf-8")
    folder = tmp_path / "state"
    folder.symlink_to(tmp_path / "real")
    writer = StateWriter(LocalState(folder / "state.json"), State.new("x"))
    events: list[ApplyEvent] = []

    def emit(event: ApplyEvent) -> None:
        events.append(event)
        if isinstance(event, CallEvent) and len(events) == 2:
            # The next state write cannot happen: the folder now names a file,
            # which the writer cannot replace by a folder, whether it has
            # written yet or is writing now (deleting the folder raced both).
            (tmp_path / "swap").symlink_to(tmp_path / "a_file")
            os.replace(tmp_path / "swap", folder)

    plan = plan_for(*(DesiredBatch(name=f"b{i}", project="p", priority=20) for i in range(20)))
    with scripted(lambda seen: Answer(body=batch_json("x"))) as server:
        client = ScaleClient(server.url, None, FAST)
        result = apply_plan(plan, client, writer, {}, parallelism=1, emit=emit)
    summary = result.summary
    assert summary.result == "failed" and summary.state_error is not None
    assert summary.not_started > 0
    assert len(server.seen) < 40
    out = io.StringIO()
    view = TextView(out, io.StringIO(), live=False, heartbeat=0)
    for event in events:
        view(event)
    assert "State could not be saved: " in out.getvalue()
