"""The official ``scaleapi`` client (2.18.4), unchanged, against the sandbox."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from scaleapi import ScaleClient
from scaleapi.batches import BatchStatus
from scaleapi.exceptions import (
    ScaleDuplicateResource,
    ScaleInvalidRequest,
    ScaleResourceNotFound,
    ScaleUnauthorized,
)
from scaleapi.tasks import TaskType

from batchplan.sandbox import SandboxServer

SandboxFactory = Callable[..., SandboxServer]


def client_for(sandbox: SandboxServer, key: str = "test-key") -> ScaleClient:
    # api_instance_url is the base including /v1: the client appends "/batches" etc.
    return ScaleClient(key, api_instance_url=sandbox.url)


def test_create_get_finalize_and_status(sandbox: SandboxServer) -> None:
    client = client_for(sandbox)
    batch = client.create_batch(
        "kittens", "kitten_labeling_2020-07", callback="https://hooks.example.com/x"
    )
    assert (batch.name, batch.project, batch.status) == (
        "kitten_labeling_2020-07",
        "kittens",
        "staging",
    )
    assert batch.metadata == {}
    fetched = client.get_batch("kitten_labeling_2020-07")
    assert fetched.as_dict() == batch.as_dict()
    assert client.finalize_batch("kitten_labeling_2020-07").status == "in_progress"
    status = client.batch_status("kitten_labeling_2020-07")
    assert status["status"] == "in_progress" and status["pending"] == 0
    fetched.get_status()
    assert fetched.tasks_pending == 0 and fetched.status == "in_progress"


def test_names_the_client_quotes_round_trip(sandbox: SandboxServer) -> None:
    client = client_for(sandbox)
    name = "a bc/def #1 ✓"
    client.create_batch("p", name)
    assert client.get_batch(name).name == name
    assert client.finalize_batch(name).status == "in_progress"
    assert client.set_batch_metadata(name, {"team": "vision"}).metadata == {"team": "vision"}


def test_get_batches_pages_over_250(sandbox: SandboxServer) -> None:
    sandbox.store.seed("big", "b-", 250, status="in_progress")
    sandbox.store.seed("other", "o-", 5)
    client = client_for(sandbox)
    names = [batch.name for batch in client.get_batches(project_name="big")]
    assert len(names) == len(set(names)) == 250
    assert names[0] == "b-000249" and names[-1] == "b-000000"
    staging = list(client.get_batches(batch_status=BatchStatus.Staging))
    assert {batch.name for batch in staging} == {f"o-{i:06d}" for i in range(5)}
    assert list(client.get_batches(created_after="2999-01-01 00:00:00.000000")) == []
    page = client.batches(project="big", limit=10, offset=245)
    assert (len(page.docs), page.total, page.limit, page.offset, page.has_more) == (
        5,
        250,
        10,
        245,
        False,
    )


def test_the_official_client_reads_statuses_beyond_the_three(sandbox: SandboxServer) -> None:
    client = client_for(sandbox)
    statuses = ("paused", "cancelled", "weird_new_status")
    for status in statuses:
        client.create_batch("newer", f"b_{status}")
        answer = requests.post(
            f"{sandbox.url.removesuffix('/v1')}/_sandbox/batches/b_{status}/status",
            json={"status": status},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    listed = {batch.name: batch.status for batch in client.get_batches(project_name="newer")}
    assert listed == {f"b_{status}": status for status in statuses}
    for status in statuses:
        assert client.get_batch(f"b_{status}").status == status
        assert client.batch_status(f"b_{status}")["status"] == status


def test_projects(strict_sandbox: SandboxServer) -> None:
    client = client_for(strict_sandbox)
    assert client.get_projects() == []
    created = client.create_project(
        "kittens", TaskType.ImageAnnotation, params={"instruction": "Label the kittens"}
    )
    assert (created.name, created.type) == ("kittens", "imageannotation")
    assert created.instruction == "Label the kittens"
    assert client.get_project("kittens").name == "kittens"
    assert [project.name for project in client.get_projects()] == ["kittens"]
    # A non-Rapid project: batches start in progress, finalize is a no-op.
    assert client.create_batch("kittens", "k1").status == "in_progress"
    with pytest.raises(ScaleResourceNotFound):
        client.get_project("puppies")
    with pytest.raises(ScaleDuplicateResource):
        client.create_project("kittens", TaskType.ImageAnnotation)


def test_error_classes(sandbox_factory: SandboxFactory) -> None:
    sandbox = sandbox_factory(api_key="live_right")
    client = client_for(sandbox, "live_right")
    client.create_batch("p", "once")
    with pytest.raises(ScaleDuplicateResource) as duplicate:
        client.create_batch("p", "once")
    assert "once" in duplicate.value.message
    with pytest.raises(ScaleResourceNotFound):
        client.get_batch("never")
    with pytest.raises(ScaleInvalidRequest) as invalid:
        client.create_batch("p", "bad", callback="not-a-callback")
    assert "callback" in invalid.value.message
    with pytest.raises(ScaleUnauthorized):
        client_for(sandbox, "live_wrong").get_batch("once")
    log = requests.get(
        sandbox.url.removesuffix("/v1") + "/_sandbox/requests", auth=("live_right", ""), timeout=10
    ).json()["requests"]
    assert [entry["status"] for entry in log] == [200, 409, 404, 400, 401]


def test_metadata_on_create_and_set_batch_metadata(sandbox: SandboxServer) -> None:
    client = client_for(sandbox)
    metadata = {"team": "vision", "budget": {"usd": 1200, "tags": ["a", None]}}
    created = client.create_batch("kittens", "with-metadata", metadata=metadata)
    assert created.metadata == metadata
    assert client.get_batch("with-metadata").metadata == metadata
    listed = {batch.name: batch.metadata for batch in client.get_batches(project_name="kittens")}
    assert listed == {"with-metadata": metadata}
    # setMetadata replaces the whole object: the old keys are gone.
    replaced = client.set_batch_metadata("with-metadata", {"owner": "ops"})
    assert (replaced.name, replaced.metadata) == ("with-metadata", {"owner": "ops"})
    assert client.get_batch("with-metadata").metadata == {"owner": "ops"}
    # The client sends no body at all for an empty object; that clears it.
    assert client.set_batch_metadata("with-metadata", {}).metadata == {}
    assert client.get_batch("with-metadata").metadata == {}
    with pytest.raises(ScaleResourceNotFound):
        client.set_batch_metadata("never", {"a": 1})


def test_batch_status_reads_the_task_counts(sandbox: SandboxServer) -> None:
    client = client_for(sandbox)
    batch = client.create_batch("kittens", "counted")
    counts = {"pending": 5, "completed": 12, "error": 1, "canceled": 2}
    response = requests.post(
        sandbox.url.removesuffix("/v1") + "/_sandbox/batches/counted/tasks",
        json=counts,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    status = client.batch_status("counted")
    assert status["status"] == "staging"
    assert {key: status[key] for key in counts} == counts
    assert (status["tasks_pending"], status["tasks_completed"]) == (5, 12)
    batch.get_status()
    assert (
        batch.tasks_pending,
        batch.tasks_completed,
        batch.tasks_error,
        batch.tasks_canceled,
    ) == (
        5,
        12,
        1,
        2,
    )
