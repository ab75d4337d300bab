"""Random HTTP answers fed to ``plan``: only clean errors, never a bug.

A scripted loopback server answers every call of a plan (the project check,
the listing, the look-ups) with what hypothesis draws: random JSON, envelopes
with wrong types, random bytes, any status. Whatever comes back, ``plan``
must end with its own exit code and a message, never "a bug in batchplan".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchplan.cli import run
from tests.scripted import Answer, Seen, scripted

CONFIG = """\
version: 1
defaults: {project: fuzz, priority: 20}
batches:
  - name: a
    finalized: true
  - name: b
    metadata: {team: x}
"""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
statuses = st.one_of(st.text(max_size=10), st.sampled_from(["staging", "paused", ""]), scalars)
batches = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["a", "b", "c", "a\n"]), scalars),
        "project": st.one_of(st.just("fuzz"), scalars),
        "status": statuses,
        "callback": st.one_of(st.just("https://x.example/h"), scalars),
        "metadata": json_values,
        "created_at": st.one_of(st.just("2024-01-01T00:00:00.000Z"), scalars),
    },
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "docs": st.one_of(st.lists(batches, max_size=4), json_values),
        "has_more": st.one_of(st.booleans(), scalars),
        "next_token": st.one_of(st.text(max_size=6), scalars),
        "total": scalars,
        "limit": scalars,
    },
)
bodies = st.one_of(
    envelopes.map(lambda v: json.dumps(v).encode()),
    batches.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    # Nested deeper than any parser's recursion: a clean error, not a RecursionError.
    st.integers(min_value=500, max_value=50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=500, max_value=50_000).map(lambda n: b'{"docs":' * n + b"}" * n),
)
headers = st.sampled_from(
    [
        {},
        {"Content-Encoding": "gzip"},
        {"Content-Type": "text/html"},
        {"Location": "http://elsewhere.invalid/v1/batches"},
        {"Retry-After": "nonsense"},
    ]
)
answers = st.builds(
    lambda status, raw, extra: Answer(status=status, raw=raw, headers=extra),
    st.sampled_from([200, 200, 200, 201, 204, 302, 307, 400, 401, 404, 409, 429, 500, 503]),
    bodies,
    headers,
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=st.lists(answers, min_size=1, max_size=6))
def test_random_answers_give_plan_only_clean_errors(
    script: list[Answer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("batchplan.yaml").write_text(CONFIG, encoding="utf-8")
    state = Path(".batchplan/state.json")
    state.unlink(missing_ok=True)
    queue = list(script)

    def answer(seen: Seen) -> Answer:
        # Each call takes the next drawn answer; the last one repeats.
        return queue.pop(0) if len(queue) > 1 else queue[0]

    capsys.readouterr()
    with scripted(answer) as server:
        # The scripted server's own errors (a client gone mid-answer) are not batchplan's.
        server.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        code = run(
            [
                "plan",
                "--endpoint",
                server.url,
                "--max-retries",
                "0",
                "--request-timeout",
                "5",
                "--no-color",
            ]
        )
    out, err = capsys.readouterr()
    assert code in (0, 1), (code, out, err)
    assert "a bug in batchplan" not in err, err
    assert "Traceback" not in err + out
    if code == 1:
        assert err.startswith("Error: ") or "conflict" in out, (out, err)
