"""The sandbox over real loopback HTTP: the API contract, the test endpoints, storage, faults."""

from __future__ import annotations

import http.client
import re
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from batchplan.sandbox import SandboxOptions, SandboxServer

SandboxFactory = Callable[..., SandboxServer]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BATCH_KEYS = {"project", "name", "callback", "status", "created_at", "metadata"}


def admin(sandbox: SandboxServer) -> str:
    return sandbox.url.removesuffix("/v1") + "/_sandbox"


def path(name: str) -> str:
    return quote(name, safe="")


def call(
    sandbox: SandboxServer, method: str, route: str, body: Any = None, **kw: Any
) -> requests.Response:
    return requests.request(method, sandbox.url + route, json=body, timeout=10, **kw)


def create(sandbox: SandboxServer, name: str, project: str = "p", **fields: Any) -> dict[str, Any]:
    response = call(sandbox, "POST", "/batches", {"project": project, "name": name, **fields})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def record(sandbox: SandboxServer, name: str) -> dict[str, Any]:
    response = requests.get(f"{admin(sandbox)}/batches/{path(name)}", timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(response: requests.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"status_code", "error"}
    assert body["status_code"] == status
    for word in words:
        assert word in body["error"], body


def requests_log(sandbox: SandboxServer) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = requests.get(f"{admin(sandbox)}/requests", timeout=10).json()[
        "requests"
    ]
    return result


def events(sandbox: SandboxServer) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = requests.get(f"{admin(sandbox)}/events", timeout=10).json()[
        "events"
    ]
    return result


def listing(sandbox: SandboxServer, **params: Any) -> dict[str, Any]:
    response = call(sandbox, "GET", "/batches", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# -- create and read ----------------------------------------------------------


def test_create_returns_the_batch_object_without_priority(sandbox: SandboxServer) -> None:
    batch = create(sandbox, "b1", callback="https://hooks.example.com/x", metadata={"k": [1]})
    assert set(batch) == BATCH_KEYS
    assert batch["project"] == "p" and batch["name"] == "b1"
    assert batch["callback"] == "https://hooks.example.com/x"
    assert batch["status"] == "staging"
    assert batch["metadata"] == {"k": [1]}
    assert TIMESTAMP.match(batch["created_at"])
    assert call(sandbox, "GET", "/batches/b1").json() == batch


def test_official_client_defaults_and_email_callback_are_accepted(sandbox: SandboxServer) -> None:
    batch = create(
        sandbox,
        "b1",
        callback="",
        calibration_batch=False,
        self_label_batch=True,
        metadata={},
    )
    assert batch["callback"] == ""
    assert create(sandbox, "b2", callback="ops@example.com")["callback"] == "ops@example.com"
    assert record(sandbox, "b1")["self_label_batch"] is True
    assert record(sandbox, "b1")["calibration_batch"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "JSON"),
        (b"", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'{"project": "p"}', "name"),
        (b'{"project": "p", "name": ""}', "name"),
        (b'{"project": "p", "name": 5}', "name"),
        (b'{"name": "b"}', "project"),
        (b'{"name": "b", "project": ["p"]}', "project"),
        (b'{"name": "b", "project": "p", "calibration_batch": "yes"}', "calibration_batch"),
        (b'{"name": "b", "project": "p", "self_label_batch": 1}', "self_label_batch"),
        (b'{"name": "b", "project": "p", "callback": "ftp://x.example"}', "callback"),
        (b'{"name": "b", "project": "p", "callback": "not a url"}', "callback"),
        (b'{"name": "b", "project": "p", "callback": 7}', "callback"),
        (b'{"name": "b", "project": "p", "callback": "https://[::1"}', "callback"),
        (b'{"name": "b", "project": "p", "callback": "https://x]/"}', "callback"),
        (b'{"name": "b", "project": "p", "callback": "https://x:port/"}', "callback"),
        (b'{"name": "b", "project": "p", "callback": "https://:443/"}', "callback"),
        (b'{"name": "b", "project": "p", "metadata": [1]}', "metadata"),
    ],
)
def test_bad_create_bodies_are_400_naming_the_field(
    sandbox: SandboxServer, body: bytes, field: str
) -> None:
    response = requests.post(
        f"{sandbox.url}/batches",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert_error(response, 400, field)
    assert listing(sandbox)["totalDocs"] == 0


def test_names_are_unique_across_the_account(sandbox: SandboxServer) -> None:
    create(sandbox, "taken", project="one")
    for project in ("one", "two"):
        response = call(sandbox, "POST", "/batches", {"project": project, "name": "taken"})
        assert_error(response, 409, "taken")
    assert record(sandbox, "taken")["project"] == "one"


def test_missing_batch_is_404_on_every_batch_endpoint(sandbox: SandboxServer) -> None:
    for method, route, body in [
        ("GET", "/batches/ghost", None),
        ("GET", "/batches/ghost/status", None),
        ("POST", "/batches/ghost/finalize", None),
        ("POST", "/batches/ghost/prioritize", {"priority": 20}),
        ("POST", "/batches/ghost/setMetadata", {"a": 1}),
    ]:
        assert_error(call(sandbox, method, route, body), 404, "ghost")
    assert_error(requests.get(f"{admin(sandbox)}/batches/ghost", timeout=10), 404, "ghost")


def test_status_has_the_reference_and_client_counters(sandbox: SandboxServer) -> None:
    create(sandbox, "b1")
    assert call(sandbox, "GET", "/batches/b1/status").json() == {
        "status": "staging",
        "tasks_pending": 0,
        "tasks_completed": 0,
        "pending": 0,
        "completed": 0,
        "error": 0,
        "canceled": 0,
    }


def set_tasks(sandbox: SandboxServer, name: str, body: Any) -> requests.Response:
    return requests.post(f"{admin(sandbox)}/batches/{path(name)}/tasks", json=body, timeout=10)


def test_task_counts_set_through_the_test_endpoint_show_in_status(
    sandbox: SandboxServer,
) -> None:
    create(sandbox, "b 1")
    answer = set_tasks(sandbox, "b 1", {"pending": 7, "completed": 3})
    assert answer.status_code == 200, answer.text
    expected = {
        "status": "staging",
        "tasks_pending": 7,
        "tasks_completed": 3,
        "pending": 7,
        "completed": 3,
        "error": 0,
        "canceled": 0,
    }
    assert answer.json() == expected
    assert call(sandbox, "GET", f"/batches/{path('b 1')}/status").json() == expected
    # Counts not given are kept.
    set_tasks(sandbox, "b 1", {"error": 1, "canceled": 2, "pending": 4}).raise_for_status()
    status = call(sandbox, "GET", f"/batches/{path('b 1')}/status").json()
    assert (status["tasks_pending"], status["tasks_completed"]) == (4, 3)
    assert (status["pending"], status["completed"], status["error"], status["canceled"]) == (
        4,
        3,
        1,
        2,
    )
    assert [(e["kind"], e["detail"]) for e in events(sandbox)][-2:] == [
        ("tasks", {"pending": 7, "completed": 3}),
        ("tasks", {"error": 1, "canceled": 2, "pending": 4}),
    ]
    # The status follows the batch; the counts stay.
    call(sandbox, "POST", f"/batches/{path('b 1')}/finalize").raise_for_status()
    status = call(sandbox, "GET", f"/batches/{path('b 1')}/status").json()
    assert (status["status"], status["tasks_pending"]) == ("in_progress", 4)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, ("pending, completed, error, canceled",)),
        ({"pending": 1, "done": 2}, ("unknown: done",)),
        ({"pending": -1}, ("pending", ">= 0", "-1")),
        ({"completed": 1.5}, ("completed", "a number")),
        ({"pending": True}, ("pending", "a boolean")),
        ([1], ("JSON object",)),
    ],
)
def test_bad_task_counts_are_400_and_change_nothing(
    sandbox: SandboxServer, body: Any, words: tuple[str, ...]
) -> None:
    create(sandbox, "b1")
    assert_error(set_tasks(sandbox, "b1", body), 400, *words)
    status = call(sandbox, "GET", "/batches/b1/status").json()
    assert status["tasks_pending"] == status["tasks_completed"] == 0


def test_task_counts_of_a_missing_batch_are_404(sandbox: SandboxServer) -> None:
    assert_error(set_tasks(sandbox, "ghost", {"pending": 1}), 404, "ghost")


def test_a_database_from_before_task_counts_is_brought_up_to_date(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:
        # The batches table as sandboxes without task counts wrote it.
        old.executescript(
            """
            CREATE TABLE batches (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, project TEXT NOT NULL,
                callback TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
                completed_at TEXT, metadata TEXT NOT NULL, priority INTEGER,
                calibration_batch INTEGER NOT NULL, self_label_batch INTEGER NOT NULL
            );
            INSERT INTO batches VALUES
                (1, 'old', 'p', '', 'in_progress', '2026-01-01T00:00:00.000Z', NULL, '{}',
                 20, 0, 0);
            """
        )
    old.close()
    with SandboxServer(SandboxOptions(db_path=str(db))) as sandbox:
        status = call(sandbox, "GET", "/batches/old/status").json()
        assert (status["status"], status["tasks_pending"]) == ("in_progress", 0)
        set_tasks(sandbox, "old", {"pending": 2}).raise_for_status()
        assert call(sandbox, "GET", "/batches/old/status").json()["pending"] == 2
        assert record(sandbox, "old")["priority"] == 20


# -- finalize, prioritize, metadata, complete ---------------------------------


def test_finalize_moves_staging_to_in_progress_once(sandbox: SandboxServer) -> None:
    create(sandbox, "b1")
    first = call(sandbox, "POST", "/batches/b1/finalize")
    again = call(sandbox, "POST", "/batches/b1/finalize", {"batchName": "b1"})
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "in_progress"
    assert [e["kind"] for e in events(sandbox)] == ["create", "finalize"]
    finalizes = [r for r in requests_log(sandbox) if r["route"].endswith("/finalize")]
    assert [(r["status"], r["committed"]) for r in finalizes] == [(200, True), (200, False)]


def test_finalize_of_a_completed_batch_is_a_no_op(sandbox: SandboxServer) -> None:
    create(sandbox, "b1")
    completed = requests.post(f"{admin(sandbox)}/batches/b1/complete", timeout=10).json()
    assert completed["status"] == "completed" and TIMESTAMP.match(completed["completed_at"])
    answer = call(sandbox, "POST", "/batches/b1/finalize").json()
    assert answer == completed == call(sandbox, "GET", "/batches/b1").json()
    assert [e["kind"] for e in events(sandbox)] == ["create", "complete"]


def test_priority_is_kept_but_only_shown_under_sandbox(sandbox: SandboxServer) -> None:
    create(sandbox, "b1")
    assert record(sandbox, "b1")["priority"] is None
    answer = call(sandbox, "POST", "/batches/b1/prioritize", {"priority": 25})
    assert answer.status_code == 200 and answer.json() == {"result": "success"}
    assert record(sandbox, "b1")["priority"] == 25
    assert "priority" not in call(sandbox, "GET", "/batches/b1").json()
    assert all("priority" not in doc for doc in listing(sandbox)["docs"])
    assert events(sandbox)[-1]["kind"] == "prioritize" and events(sandbox)[-1]["detail"] == 25


@pytest.mark.parametrize(
    "body",
    [
        {"priority": 9},
        {"priority": 31},
        {"priority": "20"},
        {"priority": True},
        {"priority": 20.0},
        {"batchName": 20},
        [],
    ],
)
def test_bad_priorities_are_400(sandbox: SandboxServer, body: Any) -> None:
    create(sandbox, "b1")
    response = call(sandbox, "POST", "/batches/b1/prioritize", body)
    assert_error(response, 400, "JSON object" if body == [] else "priority")
    assert record(sandbox, "b1")["priority"] is None


@pytest.mark.parametrize("priority", [10, 30])
def test_priority_bounds_are_inclusive(sandbox: SandboxServer, priority: int) -> None:
    create(sandbox, "b1")
    assert call(sandbox, "POST", "/batches/b1/prioritize", {"priority": priority}).ok
    assert record(sandbox, "b1")["priority"] == priority


def test_set_metadata_replaces_the_metadata(sandbox: SandboxServer) -> None:
    create(sandbox, "b1", metadata={"old": 1})
    answer = call(sandbox, "POST", "/batches/b1/setMetadata", {"new": {"x": "y"}})
    assert answer.status_code == 200 and answer.json()["metadata"] == {"new": {"x": "y"}}
    assert call(sandbox, "GET", "/batches/b1").json()["metadata"] == {"new": {"x": "y"}}
    assert_error(call(sandbox, "POST", "/batches/b1/setMetadata", [1]), 400, "object")
    assert_error(call(sandbox, "POST", "/batches/b1/setMetadata", data=b"{bad"), 400, "JSON")
    assert [d["metadata"] for d in listing(sandbox)["docs"]] == [{"new": {"x": "y"}}]
    assert [(e["kind"], e["detail"]) for e in events(sandbox)][-1] == (
        "set_metadata",
        {"new": {"x": "y"}},
    )


def test_metadata_defaults_to_an_empty_object(sandbox: SandboxServer) -> None:
    assert create(sandbox, "b1")["metadata"] == {}
    assert create(sandbox, "b2", metadata=None)["metadata"] == {}
    assert [d["metadata"] for d in listing(sandbox)["docs"]] == [{}, {}]


# -- listing --------------------------------------------------------------------


def test_250_batches_page_newest_first_with_has_more(sandbox: SandboxServer) -> None:
    sandbox.store.seed("big", "s-", 200)
    for i in range(50):
        create(sandbox, f"late-{i:02d}", project="big")
    create(sandbox, "elsewhere", project="other")
    names: list[str] = []
    pages = []
    offset = 0
    while True:
        page = listing(sandbox, project="big", offset=offset)
        pages.append((page["offset"], page["limit"], len(page["docs"]), page["has_more"]))
        assert page["totalDocs"] == 250
        names += [doc["name"] for doc in page["docs"]]
        if not page["has_more"]:
            break
        offset += page["limit"]
    assert pages == [(0, 100, 100, True), (100, 100, 100, True), (200, 100, 50, False)]
    # Newest first; the seeded batches share one timestamp, so insertion order decides.
    assert names == [f"late-{i:02d}" for i in range(49, -1, -1)] + [
        f"s-{i:06d}" for i in range(199, -1, -1)
    ]
    created = [doc["created_at"] for doc in listing(sandbox, project="big", limit=50)["docs"]]
    assert created == sorted(created, reverse=True)


def test_small_pages_and_offsets_past_the_end(sandbox: SandboxServer) -> None:
    sandbox.store.seed("p", "b", 7)
    page = listing(sandbox, limit=3, offset=5)
    assert [d["name"] for d in page["docs"]] == ["b000001", "b000000"]
    assert (page["limit"], page["offset"], page["has_more"], page["totalDocs"]) == (3, 5, False, 7)
    assert listing(sandbox, limit=3, offset=3)["has_more"] is True
    assert listing(sandbox, offset=50)["docs"] == []


def test_a_write_between_pages_shifts_later_pages(sandbox: SandboxServer) -> None:
    # As in the real API, offset paging over newest-first moves when a batch
    # is created mid-listing: the last name of page one shows up again.
    sandbox.store.seed("p", "b", 4)
    first = [d["name"] for d in listing(sandbox, limit=2)["docs"]]
    create(sandbox, "newest")
    second = [d["name"] for d in listing(sandbox, limit=2, offset=2)["docs"]]
    assert first == ["b000003", "b000002"] and second == ["b000002", "b000001"]
    assert listing(sandbox, limit=2, offset=4)["docs"][0]["name"] == "b000000"


def test_status_and_project_filters(sandbox: SandboxServer) -> None:
    sandbox.store.seed("a", "st-", 3, status="staging")
    sandbox.store.seed("a", "ip-", 2, status="in_progress")
    sandbox.store.seed("b", "done-", 4, status="completed")
    assert listing(sandbox, status="in_progress")["totalDocs"] == 2
    assert listing(sandbox, project="a", status="completed")["totalDocs"] == 0
    done = listing(sandbox, project="b", status="completed")["docs"]
    assert len(done) == 4 and all("completed_at" in d for d in done)
    accepted = listing(sandbox, project="a", exclude_archived="true", detailed="false")
    assert accepted["totalDocs"] == 5


def test_time_filters_are_inclusive_bounds_on_created_at(sandbox: SandboxServer) -> None:
    first = create(sandbox, "first")
    time.sleep(0.01)
    second = create(sandbox, "second")

    def names(**params: str) -> list[str]:
        return [doc["name"] for doc in listing(sandbox, **params)["docs"]]

    assert names(start_time=second["created_at"]) == ["second"]
    assert names(end_time=first["created_at"]) == ["first"]
    assert names(start_time="2000-01-01", end_time="2999-12-31 23:59:59.000000") == [
        "second",
        "first",
    ]
    assert names(start_time="2999-01-01T00:00:00+02:00") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "1.5"}, "offset"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"end_time": "2020-13-45"}, "end_time"),
        ({"exclude_archived": "maybe"}, "exclude_archived"),
    ],
)
def test_bad_list_parameters_are_400(
    sandbox: SandboxServer, params: dict[str, Any], field: str
) -> None:
    assert_error(call(sandbox, "GET", "/batches", params=params), 400, field)


# -- statuses beyond the three ---------------------------------------------------


def set_status(sandbox: SandboxServer, name: str, status: Any) -> requests.Response:
    return requests.post(
        f"{admin(sandbox)}/batches/{path(name)}/status", json={"status": status}, timeout=10
    )


def test_any_status_set_through_sandbox_is_listed_got_and_filtered(
    sandbox: SandboxServer,
) -> None:
    for name, status in (("p1", "paused"), ("c1", "cancelled"), ("w1", "weird_new_status")):
        create(sandbox, name)
        answer = set_status(sandbox, name, status)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == status
    create(sandbox, "s1")

    listed = call(sandbox, "GET", "/batches", params={"project": "p"}).json()["docs"]
    assert {b["name"]: b["status"] for b in listed} == {
        "p1": "paused",
        "c1": "cancelled",
        "w1": "weird_new_status",
        "s1": "staging",
    }
    assert call(sandbox, "GET", f"/batches/{path('w1')}").json()["status"] == "weird_new_status"
    assert call(sandbox, "GET", f"/batches/{path('p1')}/status").json()["status"] == "paused"
    paused = call(sandbox, "GET", "/batches", params={"status": "paused"}).json()["docs"]
    assert [b["name"] for b in paused] == ["p1"]


def test_setting_a_status_refuses_a_non_string_and_an_unknown_batch(
    sandbox: SandboxServer,
) -> None:
    create(sandbox, "b")
    assert_error(set_status(sandbox, "b", ""), 400, "status")
    assert_error(set_status(sandbox, "b", 7), 400, "status")
    assert set_status(sandbox, "nope", "paused").status_code == 404


# -- projects -------------------------------------------------------------------


def test_every_project_exists_by_default_as_rapid(sandbox: SandboxServer) -> None:
    project = call(sandbox, "GET", f"/projects/{path('any one')}").json()
    assert project["name"] == "any one" and project["rapid"] is True
    assert project["param_history"] == [] and "type" in project
    create(sandbox, "b1", project="kittens")
    assert [p["name"] for p in call(sandbox, "GET", "/projects").json()] == ["kittens"]


def test_strict_projects_exist_only_once_created(strict_sandbox: SandboxServer) -> None:
    assert_error(call(strict_sandbox, "GET", "/projects/nope"), 404, "nope")
    response = call(strict_sandbox, "POST", "/batches", {"project": "nope", "name": "b"})
    assert_error(response, 404, "nope")
    assert call(strict_sandbox, "GET", "/projects").json() == []
    created = call(
        strict_sandbox,
        "POST",
        "/projects",
        {"type": "imageannotation", "name": "classic", "params": {"instruction": "hi"}},
    ).json()
    assert created["name"] == "classic" and created["type"] == "imageannotation"
    assert created["rapid"] is False and created["studio"] is False
    assert created["param_history"][-1]["instruction"] == "hi"
    assert call(strict_sandbox, "GET", "/projects/classic").json() == created
    assert call(strict_sandbox, "GET", "/projects").json() == [created]


@pytest.mark.parametrize(
    ("flags", "status"),
    [({}, "in_progress"), ({"rapid": True}, "staging"), ({"studio": True}, "staging")],
)
def test_start_status_follows_the_project_kind(
    strict_sandbox: SandboxServer, flags: dict[str, bool], status: str
) -> None:
    body = {"type": "imageannotation", "name": "proj", **flags}
    assert call(strict_sandbox, "POST", "/projects", body).status_code == 200
    assert create(strict_sandbox, "b1", project="proj")["status"] == status
    finalized = call(strict_sandbox, "POST", "/batches/b1/finalize").json()
    assert finalized["status"] == "in_progress"


def test_project_errors(sandbox: SandboxServer) -> None:
    body = {"type": "imageannotation", "name": "dup"}
    assert call(sandbox, "POST", "/projects", body).status_code == 200
    assert_error(call(sandbox, "POST", "/projects", body), 409, "dup")
    assert_error(call(sandbox, "POST", "/projects", {"name": "x"}), 400, "type")
    assert_error(call(sandbox, "POST", "/projects", {"type": "t"}), 400, "name")
    assert_error(call(sandbox, "POST", "/projects", {**body, "rapid": "no"}), 400, "rapid")
    assert_error(call(sandbox, "POST", "/projects", {**body, "params": 3}), 400, "params")


# -- paths, routing, HTTP ------------------------------------------------------------


@pytest.mark.parametrize("name", ["a bc/def", "hash#tag", "q?x=1&y", "100% ünïcødé ✓", "a+b"])
def test_names_are_percent_decoded_per_segment(sandbox: SandboxServer, name: str) -> None:
    create(sandbox, name)
    assert call(sandbox, "GET", f"/batches/{path(name)}").json()["name"] == name
    call(sandbox, "POST", f"/batches/{path(name)}/prioritize", {"priority": 12})
    assert call(sandbox, "POST", f"/batches/{path(name)}/finalize").json()["status"] == (
        "in_progress"
    )
    assert record(sandbox, name)["priority"] == 12


def test_an_encoded_slash_stays_inside_the_name(sandbox: SandboxServer) -> None:
    create(sandbox, "a bc/def")
    create(sandbox, "a bc")
    answer = requests.get(f"{sandbox.url}/batches/a%20bc%2Fdef/status", timeout=10)
    assert answer.json()["status"] == "staging"
    assert_error(requests.get(f"{sandbox.url}/batches/a%20bc/def", timeout=10), 404)
    log = requests_log(sandbox)
    assert log[-2]["route"] == "GET /batches/{name}/status"
    assert log[-2]["path"] == "/v1/batches/a%20bc%2Fdef/status"


def test_unknown_routes_are_404_and_wrong_methods_405(sandbox: SandboxServer) -> None:
    assert_error(call(sandbox, "GET", "/tasks"), 404, "/tasks")
    assert_error(requests.get(sandbox.url.removesuffix("/v1") + "/", timeout=10), 404)
    assert_error(requests.get(f"{admin(sandbox)}/nothing", timeout=10), 404)
    assert_error(call(sandbox, "DELETE", "/batches/b1"), 405, "GET")
    assert_error(call(sandbox, "GET", "/batches/b1/finalize"), 405, "POST")
    assert_error(call(sandbox, "PUT", "/projects"), 405)
    routes = [r["route"] for r in requests_log(sandbox)]
    assert routes == [
        "GET <unknown>",
        "DELETE /batches/{name}",
        "GET /batches/{name}/finalize",
        "PUT /projects",
    ]


def test_connections_are_kept_alive(sandbox: SandboxServer) -> None:
    url = urlsplit(sandbox.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    connection.request("POST", "/v1/batches", body=b'{"project": "p", "name": "k"}')
    first = connection.getresponse()
    assert first.status == 200 and first.getheader("Content-Length")
    first.read()
    opened = connection.sock
    for route in ("/v1/batches/k", "/v1/nope", "/v1/batches?limit=0"):
        connection.request("GET", route)
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        response.read()
    assert connection.sock is opened
    connection.close()


def test_a_malformed_request_gets_a_json_error(sandbox: SandboxServer) -> None:
    url = urlsplit(sandbox.url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=10) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        answer = raw.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400")
    assert '"status_code":400' in answer


# -- auth -------------------------------------------------------------------


def test_a_configured_key_is_required_everywhere(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(api_key="right")
    for auth in (None, ("wrong", ""), ("", "right")):
        assert_error(call(sandbox, "GET", "/batches", auth=auth), 401, "API key")
        response = requests.get(f"{admin(sandbox)}/info", auth=auth, timeout=10)
        assert_error(response, 401)
        assert "right" not in response.text
    assert call(sandbox, "GET", "/batches", auth=("right", "")).status_code == 200
    assert requests.get(f"{admin(sandbox)}/info", auth=("right", ""), timeout=10).ok
    assert [r["status"] for r in requests_log_with(sandbox, ("right", ""))] == [401] * 3 + [200]


def requests_log_with(sandbox: SandboxServer, auth: tuple[str, str]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = requests.get(
        f"{admin(sandbox)}/requests", auth=auth, timeout=10
    ).json()["requests"]
    return result


def test_without_a_configured_key_anything_is_accepted(sandbox: SandboxServer) -> None:
    for auth in (None, ("whatever", ""), ("k", "p")):
        assert call(sandbox, "GET", "/batches", auth=auth).status_code == 200
    response = call(sandbox, "GET", "/batches", headers={"Authorization": "Bearer x"})
    assert response.status_code == 200


# -- storage ------------------------------------------------------------------


def test_data_and_instance_id_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "sb.db"
    with SandboxServer(SandboxOptions(db_path=str(db))) as first:
        create(first, "kept")
        call(first, "POST", "/batches/kept/prioritize", {"priority": 17})
        instance = first.instance_id
        assert re.fullmatch(r"[0-9a-f]{32}", instance)
        first.stop()  # twice: stop is idempotent
    with SandboxServer(SandboxOptions(db_path=str(db))) as second:
        assert second.instance_id == instance
        assert record(second, "kept")["priority"] == 17
        assert [e["kind"] for e in events(second)] == ["create", "prioritize"]
        info = requests.get(f"{admin(second)}/info", timeout=10).json()
        assert info == {"instance_id": instance, "batches": 1}
    with SandboxServer(SandboxOptions(db_path=str(tmp_path / "other.db"))) as third:
        assert third.instance_id != instance


def test_concurrent_creates_from_16_threads(sandbox: SandboxServer) -> None:
    statuses: Counter[int] = Counter()
    contested: Counter[int] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        with requests.Session() as session:
            for i in range(15):
                body = {"project": "p", "name": f"t{n:02d}-{i:02d}"}
                status = session.post(f"{sandbox.url}/batches", json=body, timeout=10).status_code
                with lock:
                    statuses[status] += 1
            body = {"project": "p", "name": "everyone-wants-this"}
            status = session.post(f"{sandbox.url}/batches", json=body, timeout=10).status_code
            with lock:
                contested[status] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == {200: 240}
    assert contested == {200: 1, 409: 15}
    created = Counter(e["batch"] for e in events(sandbox) if e["kind"] == "create")
    assert len(created) == 241 and set(created.values()) == {1}
    assert listing(sandbox, limit=1)["totalDocs"] == 241


def test_seed_is_fast_and_refuses_taken_names(sandbox: SandboxServer) -> None:
    started = time.monotonic()
    response = requests.post(
        f"{admin(sandbox)}/seed",
        json={"project": "big", "prefix": "x", "count": 100_000, "status": "in_progress"},
        timeout=60,
    )
    assert response.json() == {"created": 100_000}
    assert time.monotonic() - started < 10
    last = listing(sandbox, project="big", offset=99_950)
    assert len(last["docs"]) == 50 and last["docs"][-1]["name"] == "x000000"
    assert last["docs"][0]["status"] == "in_progress" and last["has_more"] is False
    clash = requests.post(
        f"{admin(sandbox)}/seed", json={"project": "q", "prefix": "x", "count": 1}, timeout=10
    )
    assert_error(clash, 409)
    bad = requests.post(f"{admin(sandbox)}/seed", json={"project": "q", "count": -1}, timeout=10)
    assert_error(bad, 400, "count")
    assert requests.get(f"{admin(sandbox)}/info", timeout=10).json()["batches"] == 100_000


def test_seeded_callback_and_status(sandbox: SandboxServer) -> None:
    assert sandbox.store.seed("p", "c-", 2, status="completed", callback="a@b.example") == 2
    batch = call(sandbox, "GET", "/batches/c-000001").json()
    assert batch["callback"] == "a@b.example" and batch["status"] == "completed"
    assert batch["completed_at"] == batch["created_at"]


# -- request log ------------------------------------------------------------------


def test_request_log_names_routes_and_can_be_cleared(sandbox: SandboxServer) -> None:
    create(sandbox, "b1")
    call(sandbox, "POST", "/batches/b1/prioritize", {"priority": 20})
    call(sandbox, "GET", "/projects/p")
    call(sandbox, "POST", "/batches", {"project": "p", "name": "b1"})
    log = requests_log(sandbox)
    assert [(r["method"], r["route"], r["status"], r["committed"]) for r in log] == [
        ("POST", "POST /batches", 200, True),
        ("POST", "POST /batches/{name}/prioritize", 200, True),
        ("GET", "GET /projects/{name}", 200, False),
        ("POST", "POST /batches", 409, False),
    ]
    assert [r["seq"] for r in log] == [1, 2, 3, 4]
    assert requests.delete(f"{admin(sandbox)}/requests", timeout=10).ok
    assert requests_log(sandbox) == []
    call(sandbox, "GET", "/batches")
    assert [r["seq"] for r in requests_log(sandbox)] == [5]


# -- faults -------------------------------------------------------------------


def test_latency_delays_the_api_but_not_the_test_endpoints(
    sandbox_factory: SandboxFactory,
) -> None:
    # A latency far above what a loopback call costs even on a loaded machine,
    # so the second bound cannot flake.
    sandbox = sandbox_factory(latency_ms=1500)
    started = time.monotonic()
    call(sandbox, "GET", "/batches")
    assert time.monotonic() - started >= 1.5
    started = time.monotonic()
    requests.get(f"{admin(sandbox)}/info", timeout=10)
    assert time.monotonic() - started < 1.5


def run_creates(sandbox: SandboxServer, count: int) -> list[int]:
    with requests.Session() as session:
        return [
            session.post(
                f"{sandbox.url}/batches", json={"project": "p", "name": f"f{i:03d}"}, timeout=10
            ).status_code
            for i in range(count)
        ]


def test_faults_are_seeded_and_some_commit_before_failing(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory(fault_rate=0.5, seed=11)
    statuses = run_creates(sandbox, 80)
    assert set(statuses) == {200, 500, 503}
    log = requests_log(sandbox)
    lost = [r for r in log if r["status"] >= 500 and r["committed"]]
    refused = [r for r in log if r["status"] >= 500 and not r["committed"]]
    assert lost and refused
    names = {f"f{i:03d}" for i, status in enumerate(statuses) if status == 200}
    names |= {f"f{int(r['seq']) - 1:03d}" for r in lost}
    created = {e["batch"] for e in events(sandbox) if e["kind"] == "create"}
    assert created == names
    # The test endpoints are never faulted.
    assert all(
        requests.get(f"{admin(sandbox)}/info", timeout=10).status_code == 200 for _ in range(20)
    )
    assert run_creates(sandbox_factory(fault_rate=0.5, seed=11), 80) == statuses
    assert run_creates(sandbox_factory(fault_rate=0.5, seed=12), 80) != statuses


def test_faults_can_be_changed_while_running(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory()
    settings = requests.post(f"{admin(sandbox)}/faults", json={"fault_rate": 1}, timeout=10)
    assert settings.json() == {
        "latency_ms": 0.0,
        "fault_rate": 1.0,
        "rate_limit": None,
        "burst": None,
        "fault_reads": True,
    }
    assert all(s in (500, 503) for s in run_creates(sandbox, 10))
    requests.post(f"{admin(sandbox)}/faults", json={"fault_rate": 0}, timeout=10)
    assert call(sandbox, "GET", "/batches").status_code == 200
    bad = requests.post(f"{admin(sandbox)}/faults", json={"fault_rate": 2}, timeout=10)
    assert_error(bad, 400, "fault_rate")
    assert_error(
        requests.post(f"{admin(sandbox)}/faults", json={"faults": 1}, timeout=10), 400, "faults"
    )


def test_faults_can_spare_reads(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(fault_rate=1)
    requests.post(
        f"{admin(sandbox)}/faults", json={"fault_reads": False}, timeout=10
    ).raise_for_status()
    assert all(call(sandbox, "GET", "/batches").status_code == 200 for _ in range(10))
    assert all(s in (500, 503) for s in run_creates(sandbox, 10))
    bad = requests.post(f"{admin(sandbox)}/faults", json={"fault_reads": 1}, timeout=10)
    assert_error(bad, 400, "fault_reads")


def get_batches(sandbox: SandboxServer, count: int) -> list[int]:
    with requests.Session() as session:
        return [session.get(f"{sandbox.url}/batches", timeout=10).status_code for _ in range(count)]


def test_burst_sets_how_many_requests_pass_at_once(sandbox_factory: SandboxFactory) -> None:
    # One token a minute: after the burst nothing refills within the test.
    sandbox = sandbox_factory(rate_limit=1 / 60, burst=3)
    assert get_batches(sandbox, 10) == [200] * 3 + [429] * 7
    answer = call(sandbox, "GET", "/batches")
    assert_error(answer, 429, "bursts of up to 3")
    assert answer.headers["Retry-After"] == "1"


def test_rate_limit_and_burst_can_be_changed_while_running(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory()
    faults = f"{admin(sandbox)}/faults"
    settings = requests.post(faults, json={"rate_limit": 1 / 60, "burst": 2}, timeout=10).json()
    assert (settings["rate_limit"], settings["burst"]) == (1 / 60, 2)
    assert get_batches(sandbox, 5) == [200, 200, 429, 429, 429]
    # A new burst starts a new, full bucket; the rate is kept.
    settings = requests.post(faults, json={"burst": 4}, timeout=10).json()
    assert (settings["rate_limit"], settings["burst"]) == (1 / 60, 4)
    assert get_batches(sandbox, 6) == [200] * 4 + [429] * 2
    # Without a burst of its own, the bucket holds one second's worth of the rate.
    settings = requests.post(faults, json={"rate_limit": 0.01, "burst": None}, timeout=10).json()
    assert settings["burst"] == 1
    assert get_batches(sandbox, 3) == [200, 429, 429]
    requests.post(faults, json={"rate_limit": None}, timeout=10).raise_for_status()
    assert get_batches(sandbox, 20) == [200] * 20
    for bad in (0, 1.5, True, "2"):
        assert_error(requests.post(faults, json={"burst": bad}, timeout=10), 400, "burst")
    for bad in (0, -1, "fast"):
        assert_error(requests.post(faults, json={"rate_limit": bad}, timeout=10), 400, "rate")


def test_rate_limit_answers_429_with_retry_after(sandbox_factory: SandboxFactory) -> None:
    # One token every 100 s and the default burst: only the first request passes.
    sandbox = sandbox_factory(rate_limit=0.01)
    answers = get_batches(sandbox, 20)
    assert answers == [200] + [429] * 19
    limited = call(sandbox, "GET", "/batches")
    assert_error(limited, 429, "too many requests", "0.01 a second", "bursts of up to 1")
    assert limited.headers["Retry-After"] == "1"
    # The test endpoints are never limited, and refused requests were logged.
    assert all(requests.get(f"{admin(sandbox)}/info", timeout=10).ok for _ in range(10))
    assert [r["status"] for r in requests_log(sandbox)] == [200] + [429] * 20
