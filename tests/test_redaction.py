"""Secrets never reach an output: apply's text and JSON, errors, the request log, --debug."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest

from batchplan.cli import run
from tests.scripted import Answer, Seen, scripted

HOOK_TOKEN = "tok/en+s3cr3t=42&x"
META_SECRET = "meta s3cr3t:value/7"
API_KEY = "sk-live-0123456789abcdef"

CONFIG = """\
version: 1
defaults:
  project: p
  callback: https://hooks.example.com/scale?token=${HOOK_TOKEN}
batches:
  - name: b-one
    metadata:
      team: ${META_SECRET}
"""


def every_form(secret: str) -> list[str]:
    return [
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
    ]


def leaks(text: str) -> list[str]:
    return [
        form for s in (HOOK_TOKEN, META_SECRET, API_KEY) for form in every_form(s) if form in text
    ]


def echoing_api(seen: Seen) -> Answer:
    """An API whose 400 on create repeats the request body, raw and percent-encoded."""
    path = urlsplit(seen.path).path
    if seen.method == "GET" and path == "/v1/batches":
        return Answer(
            body={"docs": [], "totalDocs": 0, "limit": 100, "offset": 0, "has_more": False}
        )
    if seen.method == "GET" and path.startswith("/v1/batches/"):
        return Answer(404, {"status_code": 404, "error": "no such batch"})
    if seen.method == "GET":
        return Answer(body={"name": "p"})
    body = seen.body.decode()
    callback = json.loads(body).get("callback", "")
    echoed = (
        f"invalid request {body}; callback {quote(callback, safe='')}; q={quote_plus(callback)}"
    )
    return Answer(400, {"status_code": 400, "error": echoed})


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "batchplan.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALE_API_KEY", API_KEY)
    monkeypatch.setenv("HOOK_TOKEN", HOOK_TOKEN)
    monkeypatch.setenv("META_SECRET", META_SECRET)
    yield tmp_path
    from batchplan.redact import forget_all

    forget_all()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_error_echoing_the_body_is_redacted_in_apply_output_and_the_log(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # Found: apply's text lines, its "Failed:" summary and the JSON call.error
    # printed the expanded callback token and metadata value in full, and the
    # debug log let a percent-encoded callback through.
    log = folder / "requests.log"
    monkeypatch.setenv("BATCHPLAN_LOG", "debug")
    monkeypatch.setenv("BATCHPLAN_LOG_PATH", str(log))
    with scripted(echoing_api) as server:
        code = run(["apply", "--auto-approve", "--format", fmt, "--endpoint", server.url])
    posts = [s for s in server.seen if s.method == "POST"]
    # The API itself did receive the secrets: only the outputs hide them.
    assert posts and HOOK_TOKEN in json.loads(posts[0].body)["callback"]
    out, err = capsys.readouterr()
    assert code == 1
    assert "invalid request" in out
    assert "<redacted>" in out
    assert leaks(out) == []
    assert leaks(err) == []
    text = log.read_text(encoding="utf-8")
    assert "response body: " in text
    assert leaks(text) == []


def test_an_endpoint_with_a_key_in_its_query_is_never_echoed(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found: `--endpoint "https://host/v1?key=SECRET"` echoed the key in the error.
    code = run(["plan", "--endpoint", "https://host.example/v1?key=SECRET-KEY-VALUE#frag"])
    err = capsys.readouterr().err
    assert code == 1
    assert "SECRET-KEY-VALUE" not in err
    assert "https://host.example/v1" in err
    assert "query" in err


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://user:hunter2secret@host.example/v1?token=SECRET-KEY-VALUE",
        "https://host.example:80x/v1?token=SECRET-KEY-VALUE",
        "https://host.example/v1/sk_live_SECRET0KEY0VALUE0123456789",
    ],
)
def test_an_endpoint_error_never_echoes_user_info_query_or_key(
    folder: Path, capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    code = run(["plan", "--endpoint", endpoint])
    err = capsys.readouterr().err
    if "sk_live" in endpoint:
        # A well-formed URL: the error is the connection's, still without the key.
        assert code == 1
    assert code == 1
    assert "SECRET" not in err
    assert "hunter2secret" not in err


def test_debug_traceback_and_message_of_a_bug_are_redacted(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import batchplan.commands.plan as plan_command

    def broken(*_args: object, **_kwargs: object) -> None:
        # A bug whose message carries a variable's value.
        raise RuntimeError(f"cannot render callback {HOOK_TOKEN} / {quote(HOOK_TOKEN, safe='')}")

    monkeypatch.setattr(plan_command, "make_plan", broken)
    with scripted(echoing_api) as server:
        code = run(["--debug", "plan", "--endpoint", server.url])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err
    assert "a bug in batchplan" in err
    assert leaks(err) == []


def test_redact_masks_every_form_of_a_remembered_secret() -> None:
    from batchplan import redact as redaction

    secret = 'a/b c+d=e&f"g'
    redaction.remember(secret)
    try:
        for form in [*every_form(secret), quote(secret, safe="").lower()]:
            assert redaction.redact(f"before {form} after") == "before <redacted> after", form
        assert redaction.redact("short abc stays") == "short abc stays"
    finally:
        redaction.forget_all()


def test_a_secret_inside_a_longer_one_is_masked_whole() -> None:
    from batchplan import redact as redaction

    redaction.remember("inner-secret")
    try:
        masked = redaction.redact("x outer-inner-secret-tail y", {"outer-inner-secret-tail"})
        assert masked == "x <redacted> y"
    finally:
        redaction.forget_all()
