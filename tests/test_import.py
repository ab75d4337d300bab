"""``batchplan import`` against the sandbox, and its YAML read back by the project's own reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchplan.commands.importing import carries_credentials, config_yaml
from batchplan.config.yamlload import load_yaml
from batchplan.model import LiveBatch
from batchplan.sandbox import SandboxServer
from tests.helpers import CLI, clear_calls, mutating_calls

# Strings the YAML 1.2 core schema reads as another type, or that need quotes.
TRICKY = ["1e9", "0o17", "0x1F", ".inf", "-.INF", ".nan", "null", "~", "true", "False", "12", "+3"]


def create_live(sandbox: SandboxServer, name: str, project: str = "imp", **fields: Any) -> None:
    answer = requests.post(
        f"{sandbox.url}/batches",
        json={"project": project, "name": name, **fields},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def state_records(cli: CLI) -> dict[str, Any]:
    document = json.loads((cli.folder / ".batchplan" / "state.json").read_text())
    records: dict[str, Any] = document["batches"]
    return records


def test_import_skips_batches_in_state_and_never_changes_their_records(
    cli: CLI, sandbox: SandboxServer
) -> None:
    cli.write(
        "batchplan.yaml", "version: 1\nbatches:\n  - {name: kept, project: imp, priority: 27}\n"
    )
    assert cli("apply", "--auto-approve").code == 0
    before = state_records(cli)["kept"]
    create_live(sandbox, "fresh")

    result = cli("import", "--project", "imp", "--assume-priority", "15", "--out", "imported.yaml")

    assert result.code == 0, result.err
    assert '"kept": already managed, skipped' in result.out
    assert state_records(cli)["kept"] == before
    assert state_records(cli)["fresh"]["priority"] == 15
    text = (cli.folder / "imported.yaml").read_text()
    assert "kept" not in text and "fresh" in text
    # The config and the imported file together are one valid config.
    assert cli("validate", "batchplan.yaml", "imported.yaml").code == 0
    plan = cli("plan", "--detailed-exitcode", "batchplan.yaml", "imported.yaml")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes." in plan.out


def test_import_skips_batches_of_the_config_not_yet_in_state(
    cli: CLI, sandbox: SandboxServer
) -> None:
    create_live(sandbox, "configured")
    create_live(sandbox, "fresh")
    cli.write("teams.yaml", "version: 1\nbatches:\n  - {name: configured, project: imp}\n")

    result = cli("import", "teams.yaml", "--project", "imp", "--out", "imported.yaml")

    assert result.code == 0, result.err
    assert '"configured": already managed, skipped' in result.out
    assert set(state_records(cli)) == {"fresh"}
    assert cli("validate", "teams.yaml", "imported.yaml").code == 0


def test_an_unset_variable_in_a_configured_name_is_an_error_not_a_wrong_skip(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEAM", raising=False)
    create_live(sandbox, "configured_a")
    cli.write(
        "teams.yaml",
        "version: 1\nbatches:\n  - name: configured_${TEAM}\n    project: imp\n"
        "    callback: ${HOOK_URL}\n",
    )
    result = cli("import", "teams.yaml", "--project", "imp", "--out", "imported.yaml")
    assert result.code == 1
    assert "TEAM" in result.err and "HOOK_URL" not in result.err
    assert not (cli.folder / "imported.yaml").exists()
    assert not (cli.folder / ".batchplan" / "state.json").exists()


def test_import_writes_yaml_the_reader_types_as_strings(cli: CLI, sandbox: SandboxServer) -> None:
    for name in TRICKY:
        create_live(sandbox, name, callback=f"https://h.example/{name}?${{x}}")

    assert cli("import", "--project", "imp", "--out", "imported.yaml").code == 0

    assert cli("validate", "imported.yaml").code == 0
    clear_calls(sandbox)
    plan = cli("plan", "--detailed-exitcode", "imported.yaml")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes." in plan.out
    assert cli("apply", "--auto-approve", "imported.yaml").code == 0
    assert not mutating_calls(sandbox)


def test_import_keeps_credentials_out_of_the_file(
    cli: CLI, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    userinfo = "https://ana:hunter2@h.example/cb"
    token = "https://h.example/cb?batch=1&access_token=s3cr3t"
    create_live(sandbox, "a", callback=userinfo)
    create_live(sandbox, "b", callback=token)
    create_live(sandbox, "c", callback="https://h.example/cb?batch=1")

    result = cli("import", "--project", "imp", "--out", "imported.yaml")

    assert result.code == 0, result.err
    text = (cli.folder / "imported.yaml").read_text()
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "${BATCHPLAN_CALLBACK_1}" in text and "${BATCHPLAN_CALLBACK_2}" in text
    assert "https://h.example/cb?batch=1" in text
    assert '"a": its callback carries credentials; set BATCHPLAN_CALLBACK_1' in result.out
    assert "hunter2" not in result.out + result.err

    unset = cli("plan", "imported.yaml")
    assert unset.code == 1 and "BATCHPLAN_CALLBACK_1" in unset.err
    monkeypatch.setenv("BATCHPLAN_CALLBACK_1", userinfo)
    monkeypatch.setenv("BATCHPLAN_CALLBACK_2", token)
    plan = cli("plan", "--detailed-exitcode", "imported.yaml")
    assert plan.code == 0, plan.out + plan.err


def test_import_writes_live_metadata_as_a_mapping(cli: CLI, sandbox: SandboxServer) -> None:
    metadata = {"team": "vision", "true": "0o17", "cost": 12, "tags": ["a", "null"]}
    create_live(sandbox, "m", metadata=metadata)

    assert cli("import", "--project", "imp", "--out", "imported.yaml").code == 0

    root, problems = load_yaml(cli.folder / "imported.yaml", {})
    assert not problems and root is not None
    assert root["batches"][0]["metadata"] == metadata


def test_import_refuses_to_overwrite_the_config_it_reads(cli: CLI, sandbox: SandboxServer) -> None:
    create_live(sandbox, "fresh")
    config = cli.write("batchplan.yaml", "version: 1\nbatches:\n  - {name: kept, project: imp}\n")
    before = config.read_text()

    result = cli("import", "--project", "imp", "--out", "batchplan.yaml", "--force")

    assert result.code == 1
    assert "--out batchplan.yaml is a config file import reads" in result.err
    assert config.read_text() == before
    assert not (cli.folder / ".batchplan" / "state.json").exists()


@pytest.mark.parametrize(
    ("out", "reason"),
    [
        ("batchplan.yaml/imported.yaml", "Not a directory"),
        ("no/such/folder.yaml", "No such file or directory"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_one_line(
    cli: CLI, sandbox: SandboxServer, out: str, reason: str
) -> None:
    create_live(sandbox, "a")
    cli.write("batchplan.yaml", "version: 1\nbatches: []\n")

    result = cli("import", "--project", "imp", "--out", out, "--force")

    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines == [f"Error: cannot write import output {out}: {reason}"]
    assert not (cli.folder / ".batchplan" / "state.json").exists()


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://u:p@h/x", True),
        ("https://u@h/x", True),
        ("https://h/x?sig=1", True),
        ("https://h/x?X-Amz-Signature=1", True),
        ("https://h/x?api_key=1", True),
        ("https://h/x?client_secret=1", True),
        ("https://h/x?batch=1&page=2", False),
        ("https://h/token/x", False),
    ],
)
def test_credentials_are_recognised(url: str, secret: bool) -> None:
    assert carries_credentials(url) is secret


# -- the property: what import writes, the reader gives back ------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
scalars = st.one_of(st.sampled_from(TRICKY), text)
metadata = st.dictionaries(
    scalars,
    st.one_of(scalars, st.integers(), st.booleans(), st.none(), st.lists(scalars, max_size=3)),
    max_size=4,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.tuples(scalars, scalars, st.one_of(st.none(), scalars), metadata), max_size=5
    )
)
def test_imported_yaml_reads_back_to_the_same_values(
    tmp_path: Path, batches: list[tuple[str, str, str | None, dict[str, Any]]]
) -> None:
    live = [
        LiveBatch(
            name=name,
            project=project,
            status="staging",
            callback=callback or None,
            metadata=meta or None,
        )
        for name, project, callback, meta in batches
    ]
    imported = config_yaml(live, ["p", "q"], None)
    path = tmp_path / "imported.yaml"
    path.write_text(imported.text, encoding="utf-8")

    root, problems = load_yaml(path, {})

    assert not problems, imported.text
    assert root is not None
    secret = {name for _, name in imported.variables}
    for batch, entry in zip(live, root["batches"], strict=True):
        assert entry["name"] == batch.name
        assert entry["project"] == batch.project
        if batch.callback and batch.name not in secret:
            assert entry["callback"] == batch.callback
        if batch.metadata:
            assert entry["metadata"] == batch.metadata


def test_an_endpoint_without_v1_is_named_not_a_missing_project(
    cli: CLI, sandbox: SandboxServer
) -> None:
    create_live(sandbox, "imp_a")
    base = sandbox.url.removesuffix("/v1")
    result = cli("import", "--project", "imp", "--endpoint", base, endpoint=False)
    assert result.code == 1
    assert f"{base} does not look like the Scale API" in result.err
    assert "should end in /v1" in result.err
    assert "does not exist" not in result.out + result.err
    assert not (cli.folder / ".batchplan" / "state.json").exists()


def test_a_missing_project_on_the_right_endpoint_is_still_named_missing(
    strict_sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = CLI(strict_sandbox, tmp_path, capsys)("import", "--project", "nope")
    assert result.code == 1
    assert "project does not exist: 'nope'" in result.err
    assert "does not look like the Scale API" not in result.err
