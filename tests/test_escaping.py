"""Names from the API or a file never drive the terminal: plan --verbose, status, import."""

from __future__ import annotations

import requests

from batchplan.sandbox import SandboxServer
from tests.helpers import CLI

# OSC 52: "write this to the clipboard"; then a right-to-left override.
OSC = "\x1b]52;c;ZXZpbA==\x07"
RLO = "\u202e"
# Every character the views must never print raw (kept here on purpose: the
# test must not trust the code under test to define them).
FORBIDDEN = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + [
    "\u061c",
    *(chr(c) for c in range(0x200B, 0x2010)),
    *(chr(c) for c in range(0x2028, 0x202F)),
    *(chr(c) for c in range(0x2060, 0x2065)),
    *(chr(c) for c in range(0x2066, 0x206A)),
    "\ufeff",
]


def create_live(sandbox: SandboxServer, name: str, project: str, **fields: str) -> None:
    answer = requests.post(
        f"{sandbox.url}/batches", json={"project": project, "name": name, **fields}, timeout=10
    )
    assert answer.status_code == 200, answer.text


def raw(text: str) -> list[str]:
    """The forbidden characters in ``text``, line breaks between lines aside."""
    return sorted({c for line in text.split("\n") for c in line if c in FORBIDDEN})


def test_plan_verbose_escapes_live_names_of_unmanaged_batches(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: mine, project: esc}\n")
    create_live(sandbox, f"evil{OSC}", "esc")
    create_live(sandbox, f"report{RLO}fdp.exe", "esc")

    result = cli("plan", "--verbose")

    assert result.code == 0, result.err
    assert raw(result.out) == [] and raw(result.err) == []
    assert "evil\\x1b]52;c;ZXZpbA==\\x07" in result.out
    assert "report\\u202efdp.exe" in result.out


def test_status_escapes_names_from_state(cli: CLI) -> None:
    from batchplan.commands.status import BatchProgress, status_text

    rows = [
        BatchProgress(f"b{OSC}", f"p{RLO}", "in_progress", 1, 1),
        BatchProgress("zero\u200bwidth", "p", "not_created"),
    ]

    shown = status_text(rows)

    assert raw(shown) == []
    assert "b\\x1b]52;c;ZXZpbA==\\x07" in shown and "p\\u202e" in shown


def test_import_messages_escape_live_names(cli: CLI, sandbox: SandboxServer) -> None:
    create_live(
        sandbox, f"cb{OSC}{RLO}\x9b", "imp", callback="https://hooks.example/x?token=abc123&x=1"
    )

    result = cli("import", "--project", "imp", "--out", "imported.yaml")

    assert result.code == 0, result.err
    assert raw(result.out) == [] and raw(result.err) == []
    # A name holding control characters is never imported: the note naming it is escaped.
    assert "cannot manage; skipped" in result.out
    assert "\\u001b]52" in result.out
