"""BATCHPLAN_LOG: one line per HTTP attempt, bodies in debug, never a secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from batchplan.api.client import ScaleClient
from batchplan.api.requestlog import attach_request_log, redact_body
from batchplan.cli import run
from batchplan.model import DesiredBatch
from batchplan.options import ClientOptions
from batchplan.sandbox import SandboxServer
from tests.helpers import api_calls, clear_calls

API_KEY = "sk-live-key-0123456789"
HOOK_TOKEN = "hook-token-s3cr3t-4242"
META_SECRET = "meta-s3cr3t-value-777"

CONFIG = """\
version: 1
defaults:
  project: kitten_labeling
  callback: https://hooks.example.com/scale?token=${HOOK_TOKEN}
batches:
  - name: b-one
    priority: 30
    finalized: true
  - name: b-two
"""

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (GET|POST) /v1/\S+ status=\d{3} ms=[\d.]+ attempt=\d+"
)


def apply_with_log(
    sandbox: SandboxServer,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    level: str,
    log: Path,
) -> int:
    (folder / "batchplan.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("SCALE_API_KEY", API_KEY)
    monkeypatch.setenv("HOOK_TOKEN", HOOK_TOKEN)
    monkeypatch.setenv("BATCHPLAN_LOG", level)
    monkeypatch.setenv("BATCHPLAN_LOG_PATH", str(log))
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run(["apply", "--auto-approve", "--endpoint", sandbox.url])
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("level", ["info", "debug"])
def test_one_line_per_attempt_and_no_secret(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    log = tmp_path / "requests.log"
    clear_calls(sandbox)
    assert apply_with_log(sandbox, tmp_path, monkeypatch, level, log) == 0
    text = log.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("    ")]
    assert all(LINE.match(line) for line in lines), lines
    # As many attempt lines as requests the server answered.
    assert len(lines) == sum(api_calls(sandbox).values())
    assert any(
        " POST /v1/batches/b-one/finalize status=200 " in line and "attempt=1" in line
        for line in lines
    )
    assert any(" GET /v1/batches?" in line and "project=kitten_labeling" in line for line in lines)
    assert API_KEY not in text
    assert HOOK_TOKEN not in text
    bodies = [line for line in text.splitlines() if line.startswith("    ")]
    if level == "info":
        assert bodies == []
    else:
        assert any(line.startswith("    request body: ") for line in bodies)
        assert any('"callback": "<redacted>"' in line for line in bodies)
        assert any('"priority": 30' in line for line in bodies)


def test_debug_hides_metadata_values_sent_and_answered(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    log = tmp_path / "requests.log"
    client = ScaleClient(sandbox.url, API_KEY, ClientOptions())
    attach_request_log(client, {"BATCHPLAN_LOG": "debug", "BATCHPLAN_LOG_PATH": str(log)})
    client.create_batch(
        DesiredBatch(
            name="meta-b",
            project="p",
            callback=f"https://hooks.example.com/x?sig={HOOK_TOKEN}",
            metadata={"team": META_SECRET, "nested": {"k": META_SECRET}},
        )
    )
    client.set_batch_metadata("meta-b", {"team": META_SECRET, "cost": 3})
    assert client.get_batch("meta-b") is not None
    list(client.list_batches("p"))
    text = log.read_text(encoding="utf-8")
    assert META_SECRET not in text
    assert HOOK_TOKEN not in text
    assert API_KEY not in text
    # Keys stay visible, so a reader sees what was sent.
    assert '"metadata": {"team": "<redacted>", "nested": "<redacted>"}' in text
    assert '"cost": "<redacted>"' in text
    assert "response body: " in text


@pytest.mark.parametrize("debug", [False, True])
def test_an_error_echoing_a_sent_secret_is_masked(tmp_path: Path, debug: bool) -> None:
    from batchplan.api.client import Attempt
    from batchplan.api.requestlog import format_record

    out = tmp_path / "log"
    with out.open("w", encoding="utf-8") as stream:
        sent = {"name": "b", "callback": f"https://h.example/?t={HOOK_TOKEN}"}
        message = f'callback "https://h.example/?t={HOOK_TOKEN}" is refused'
        line = format_record(
            Attempt(
                "POST",
                "/batches",
                1,
                400,
                3.0,
                message,
                None,
                sent=sent,
                answer='{"status_code": 400, "error": ' + f'"{message.replace(chr(34), "")}"' + "}",
            ),
            debug=debug,
            base_path="/v1",
        )
        stream.write(line + "\n")
    text = out.read_text(encoding="utf-8")
    assert HOOK_TOKEN not in text
    assert 'error="callback \\"<redacted>\\" is refused"' in text
    assert ("response body: " in text) is debug


def test_redaction_rules() -> None:
    assert redact_body({"callback": "", "name": "n"}) == {"callback": "", "name": "n"}
    assert redact_body({"docs": [{"callback": "x", "metadata": {"a": 1}}]}) == {
        "docs": [{"callback": "<redacted>", "metadata": {"a": "<redacted>"}}]
    }
    assert redact_body({"a": "b"}, "/batches/x/setMetadata") == {"a": "<redacted>"}


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"BATCHPLAN_LOG": "trace"}, "expected 'info' or 'debug'"),
        (
            {"BATCHPLAN_LOG": "info", "BATCHPLAN_LOG_PATH": "/nonexistent-dir/x.log"},
            "cannot write request log /nonexistent-dir/x.log",
        ),
    ],
)
def test_bad_settings_are_usage_errors(environ: dict[str, str], needle: str) -> None:
    from batchplan.errors import UsageError

    client = ScaleClient("http://127.0.0.1:9/v1", None)
    with pytest.raises(UsageError) as caught:
        attach_request_log(client, environ)
    assert needle in str(caught.value)


def test_unset_means_no_log(capsys: pytest.CaptureFixture[str], sandbox: SandboxServer) -> None:
    client = ScaleClient(sandbox.url, None)
    attach_request_log(client, {})
    client.project_exists("p")
    assert capsys.readouterr().err == ""
