"""The API client over real loopback HTTP: retries, timeouts, hostile answers."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from batchplan.api.client import Attempt, CallCancelled, DuplicateBatchError, ScaleClient
from batchplan.errors import ApiError, ApiUnreachableError, BatchplanError
from batchplan.model import DesiredBatch
from batchplan.options import ClientOptions
from tests.scripted import Answer, Seen, scripted, sequence

BATCH = {
    "project": "p",
    "name": "b",
    "callback": "",
    "status": "staging",
    "created_at": "2024-01-01T00:00:00.000Z",
    "metadata": {},
}
LISTING = Answer(body={"docs": [], "totalDocs": 0, "limit": 1, "offset": 0, "has_more": False})
FAST = ClientOptions(max_attempts=4, backoff_base=0.001, backoff_cap=0.01, read_timeout=2)


def client(url: str, key: str | None = "live_secret", **options: float | bool) -> ScaleClient:
    base = FAST if not options else ClientOptions(**{**FAST.__dict__, **options})
    return ScaleClient(url, key, base)


def test_basic_auth_with_key_as_user_and_percent_encoded_names() -> None:
    with scripted(sequence(Answer(body=BATCH))) as server:
        client(server.url).get_batch("a bc/def#ü")
    seen = server.seen[0]
    assert seen.path == "/v1/batches/a%20bc%2Fdef%23%C3%BC"
    assert seen.auth == "Basic " + base64.b64encode(b"live_secret:").decode()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    answers = sequence(Answer(status, {"status_code": status, "error": "busy"}), Answer(body=BATCH))
    with scripted(answers) as server:
        batch = client(server.url).get_batch("b")
    assert batch is not None and batch.name == "b"
    assert len(server.seen) == 2


@pytest.mark.parametrize("status", [400, 401, 402, 404, 409])
def test_client_errors_are_not_retried(status: int) -> None:
    # A 404 is believed once GET /batches proves the endpoint: the probe is answered.
    with scripted(
        sequence(Answer(status, {"status_code": status, "error": "nope here"}), LISTING)
    ) as server:
        with pytest.raises(ApiError) as caught:
            client(server.url).prioritize_batch("b", 20)
    assert server.paths()[0] == "POST /v1/batches/b/prioritize"
    assert server.paths()[1:] == (["GET /v1/batches?limit=1"] if status == 404 else [])
    assert caught.value.status == status
    assert "nope here" in str(caught.value)
    assert "POST /batches/b/prioritize" in str(caught.value)


def test_retry_after_is_honoured() -> None:
    slept: list[float] = []
    answers = sequence(
        Answer(429, {"error": "slow down"}, headers={"Retry-After": "2"}), Answer(body=BATCH)
    )
    with scripted(answers) as server:
        api = ScaleClient(server.url, None, FAST, wait=slept.append)
        api.get_batch("b")
    assert slept == [2.0]


def test_retries_are_bounded_in_attempts() -> None:
    with scripted(sequence(Answer(503, {"error": "down"}))) as server:
        with pytest.raises(ApiError) as caught:
            client(server.url).get_batch("b")
    assert len(server.seen) == FAST.max_attempts
    assert caught.value.status == 503


def test_retries_are_bounded_in_total_time() -> None:
    slept: list[float] = []
    answers = sequence(Answer(429, {"error": "later"}, headers={"Retry-After": "3600"}))
    with scripted(answers) as server:
        api = ScaleClient(server.url, None, FAST, wait=slept.append)
        with pytest.raises(ApiError):
            api.get_batch("b")
    assert slept == []  # an hour's wait exceeds max_retry_time: give up now


def test_timeout_is_retried_then_reported() -> None:
    with scripted(sequence(Answer(body=BATCH, delay=1.0))) as server:
        api = client(server.url, read_timeout=0.2, max_attempts=2)
        with pytest.raises(ApiUnreachableError) as caught:
            api.get_batch("b")
    assert "timed out" in str(caught.value)


def test_unreachable_endpoint() -> None:
    api = ScaleClient("http://127.0.0.1:9/v1", None, ClientOptions(max_attempts=1))
    with pytest.raises(ApiUnreachableError) as caught:
        api.project_exists("p")
    assert "GET /projects/p" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "needle"),
    [
        (
            Answer(
                raw=b"<html><body>Bad gateway</body></html>", headers={"Content-Type": "text/html"}
            ),
            "not JSON",
        ),
        (Answer(body={"name": "b"}), "'project' missing"),
        (Answer(body={**BATCH, "status": ""}), "'status' is empty"),
        (Answer(body=["not", "an", "object"]), "expected a batch object"),
        (Answer(body={**BATCH, "callback": 12}), "'callback' is not a string"),
    ],
)
def test_malformed_batch_answers_are_clear_errors(answer: Answer, needle: str) -> None:
    def script(seen: Seen) -> Answer:
        # The listing answers like the API: the endpoint is right, this answer is not.
        return LISTING if seen.path.startswith("/v1/batches?") else answer

    with scripted(script) as server, pytest.raises(ApiError) as caught:
        client(server.url).get_batch("b")
    assert needle in str(caught.value)
    assert "GET /batches/b" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        # Not even the account's listing has a 'docs' list: not the API at all.
        ({"items": []}, "does not look like the Scale API"),
        ({"docs": [], "has_more": "yes"}, "'has_more' is not a boolean"),
        ({"docs": [{"name": 1}], "has_more": False}, "unexpected batch object"),
        ({"docs": [], "has_more": True, "limit": 100, "totalDocs": 5}, "empty page"),
    ],
)
def test_malformed_listing_envelopes_are_clear_errors(body: object, needle: str) -> None:
    with scripted(sequence(Answer(body=body))) as server, pytest.raises(BatchplanError) as caught:
        list(client(server.url).list_batches("p"))
    assert needle in str(caught.value)


def test_listing_pages_by_echoed_limit_until_has_more_is_false() -> None:
    def script(seen: Seen) -> Answer:
        offset = int(seen.path.split("offset=")[1].split("&")[0])
        docs = [{**BATCH, "name": f"b{offset + i}"} for i in range(2 if offset < 4 else 1)]
        return Answer(body={"docs": docs, "limit": 2, "offset": offset, "has_more": offset < 4})

    with scripted(script) as server:
        names = [b.name for b in client(server.url).list_batches("p")]
    assert names == ["b0", "b1", "b2", "b3", "b4"]


def test_create_sends_reference_body_and_no_empty_callback() -> None:
    with scripted(sequence(Answer(body=BATCH))) as server:
        client(server.url).create_batch(DesiredBatch(name="b", project="p", self_label_batch=True))
    body = json.loads(server.seen[0].body)
    assert body == {
        "project": "p",
        "name": "b",
        "calibration_batch": False,
        "self_label_batch": True,
    }


def test_create_409_after_unanswered_attempt_is_flagged_maybe_ours() -> None:
    answers = sequence(
        Answer(500, {"error": "internal"}), Answer(409, {"status_code": 409, "error": "exists"})
    )
    with scripted(answers) as server, pytest.raises(DuplicateBatchError) as caught:
        client(server.url).create_batch(DesiredBatch(name="b", project="p"))
    assert caught.value.after_unknown_attempt is True


def test_create_409_first_time_is_not_ours() -> None:
    with scripted(sequence(Answer(409, {"error": "exists"}))) as server:
        with pytest.raises(DuplicateBatchError) as caught:
            client(server.url).create_batch(DesiredBatch(name="b", project="p"))
    assert caught.value.after_unknown_attempt is False


def test_the_api_key_never_appears_in_errors() -> None:
    with scripted(sequence(Answer(401, {"error": "bad key"}))) as server:
        with pytest.raises(ApiError) as caught:
            client(server.url, key="live_supersecret").get_batch("b")
    assert "supersecret" not in str(caught.value)
    assert "supersecret" not in repr(caught.value.args)


# -- the limiter in the client -------------------------------------------------


def test_attempts_in_flight_never_exceed_the_ceiling() -> None:
    lock = threading.Lock()
    now_in = [0, 0]  # current, highest

    def script(seen: Seen) -> Answer:
        with lock:
            now_in[0] += 1
            now_in[1] = max(now_in[1], now_in[0])
        time.sleep(0.05)
        with lock:
            now_in[0] -= 1
        return Answer(body=BATCH)

    with scripted(script) as server:
        api = client(server.url, concurrency=2)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda _: api.get_batch("b"), range(12)))
    assert len(server.seen) == 12
    assert now_in[1] <= 2


def test_a_429_caps_the_send_rate_and_a_503_halves_the_window() -> None:
    answers = sequence(
        Answer(503, {"error": "busy"}),
        Answer(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
        Answer(body=BATCH),
    )
    with scripted(answers) as server:
        api = client(server.url)
        assert api.limiter.window == 4 and api.limiter.rate is None
        api.get_batch("b")
    # 4, halved by the 503 to 2, by the 429 to 1; the success is a whole window of 1: 2.
    assert api.limiter.window == 2
    assert api.limiter.rate is not None


def test_fixed_parallelism_does_not_adapt() -> None:
    answers = sequence(
        Answer(429, {"error": "slow"}, headers={"Retry-After": "0"}), Answer(body=BATCH)
    )
    with scripted(answers) as server:
        api = client(server.url, adaptive=False, concurrency=16)
        api.get_batch("b")
    assert api.limiter.window == 16 and api.limiter.rate is None


def test_cancel_abandons_a_call_waiting_for_the_limiter() -> None:
    with scripted(sequence(Answer(body=BATCH, delay=1.0))) as server:
        api = client(server.url, concurrency=1)
        first = threading.Thread(target=api.get_batch, args=("b",), daemon=True)
        first.start()
        while not server.seen:  # the only slot is taken, its answer 1 s away
            time.sleep(0.01)
        failed: list[BaseException] = []

        def second() -> None:
            try:
                api.get_batch("b")
            except CallCancelled as exc:
                failed.append(exc)

        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        waiter.join(timeout=0.2)
        assert waiter.is_alive()  # waiting for the slot
        api.cancel()
        waiter.join(timeout=10)
        first.join(timeout=10)
    assert len(failed) == 1
    assert len(server.seen) == 1  # the waiting call was never sent


def test_a_refused_connection_halves_the_window() -> None:
    api = ScaleClient("http://127.0.0.1:9/v1", None, ClientOptions(max_attempts=1))
    assert api.limiter.window == 4
    with pytest.raises(ApiUnreachableError):
        api.project_exists("p")
    assert api.limiter.window == 2


def test_parallelism_is_the_limiters_ceiling() -> None:
    from batchplan.api.endpoint import Endpoint
    from batchplan.api.session import make_client
    from batchplan.options import Options

    endpoint = Endpoint(url="http://127.0.0.1:9/v1", identity="x", sandbox=False)
    assert make_client(endpoint, Options()).options.concurrency == 16
    small = make_client(endpoint, Options(parallelism=2))
    assert small.options.concurrency == 2
    assert small.limiter.window == 2  # min(4, ceiling)


def test_bodies_reach_only_the_listeners_that_asked_for_them() -> None:
    with scripted(sequence(Answer(body=BATCH))) as server:
        api = client(server.url)
        plain: list[Attempt] = []
        full: list[Attempt] = []
        api.add_listener(plain.append)
        api.add_listener(full.append, bodies=True)
        api.create_batch(DesiredBatch(name="b", project="p", callback="https://h.example/?t=x"))
    assert plain[0].sent is None and plain[0].answer is None
    assert full[0].sent is not None and full[0].sent["callback"] == "https://h.example/?t=x"
    assert full[0].answer is not None and '"name": "b"' in full[0].answer
    assert plain[0].status == full[0].status == 200
