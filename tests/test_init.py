"""``batchplan init``: starter config with a working schema line, .gitignore, never overwriting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchplan.commands.init import STARTER
from batchplan.config.load import load_config
from tests.helpers import CLI


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    return CLI(None, tmp_path, capsys)  # type: ignore[arg-type]  # no API involved


def test_init_writes_a_valid_config_whose_schema_line_resolves(cli: CLI) -> None:
    result = cli("init")
    assert result.code == 0, result.err
    config = cli.folder / "batchplan.yaml"
    first = config.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match is not None
    schema = json.loads((cli.folder / match.group(1)).read_text(encoding="utf-8"))
    assert schema == json.loads(cli("schema", "config").out)
    assert (cli.folder / ".gitignore").read_text(encoding="utf-8") == ".batchplan/\n"
    assert "Wrote batchplan.yaml" in result.out and ".gitignore" in result.out
    assert cli("validate").code == 0


def test_the_commented_examples_of_the_starter_are_valid(tmp_path: Path) -> None:
    text = STARTER.replace("batches: []", "batches:").replace("\n#   - ", "\n  - ")
    text = re.sub(r"\n#     ", "\n    ", text)
    text = re.sub(r"\n#       ", "\n      ", text)
    path = tmp_path / "batchplan.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config([str(path)], {})
    assert [b.name for b in config.batches] == [
        "my_project_2024-01",
        "my_project_2024-02",
        "my_project_2024-03",
    ]


def test_init_never_overwrites_and_appends_to_gitignore_once(cli: CLI) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches: []  # mine\n")
    cli.write(".gitignore", "*.pyc")  # no newline at the end
    first = cli("init")
    second = cli("init")
    assert first.code == second.code == 0
    assert cli.folder.joinpath("batchplan.yaml").read_text() == "version: 1\nbatches: []  # mine\n"
    assert "batchplan.yaml already exists: left as it is." in first.out
    assert cli.folder.joinpath(".gitignore").read_text() == "*.pyc\n.batchplan/\n"
    assert "already ignores .batchplan/" in second.out


def test_init_beside_a_batchplan_yml_writes_no_second_config(cli: CLI) -> None:
    cli.write("batchplan.yml", "version: 1\nbatches: []\n")
    result = cli("init")
    assert result.code == 0
    assert not (cli.folder / "batchplan.yaml").exists()
    assert "batchplan.yml already exists" in result.out
    assert cli("validate").code == 0


def test_init_into_a_missing_folder_is_an_error(cli: CLI) -> None:
    result = cli("init", "nowhere")
    assert result.code == 1
    assert "nowhere" in result.err and "Traceback" not in result.err
