"""Starting fast: commands import only what they use.

Which modules a command imports is a behaviour, not a timing, so it is
tested here; the times themselves are measured by benchmarks/bench_startup.py.
Each check runs the CLI in a fresh interpreter, where ``sys.modules`` starts
empty (a process is the point: this test process has imported everything).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("requests", "jsonschema", "urllib3", "boto3")
VALID = """\
version: 1
defaults: {project: p, priority: 20}
batches:
  - {name: a, metadata: {team: x}}
  - {name: b, finalized: true}
  - {name: "c_${each.n}", for_each: {n: [1, 2]}}
"""
INVALID = "version: 1\nbatches:\n  - {name: a, project: p, priority: 99}\n"

PROBE = """
import json, sys
from batchplan.cli import run
code = run(sys.argv[2:])
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1].split(",")))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def imported_of(cwd: Path, modules: tuple[str, ...], *args: str) -> tuple[int, list[str]]:
    """The exit code of ``batchplan ARGS`` and which of ``modules`` it imported."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], result["heavy"]


def test_version_imports_no_client_and_no_schema_library(tmp_path: Path) -> None:
    assert imported_of(tmp_path, HEAVY, "--version") == (0, [])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_validate_of_a_valid_config_imports_no_client_and_no_schema_library(
    tmp_path: Path, fmt: str
) -> None:
    (tmp_path / "batchplan.yaml").write_text(VALID, encoding="utf-8")
    assert imported_of(tmp_path, HEAVY, "validate", "--format", fmt) == (0, [])


def test_validate_of_an_invalid_config_words_it_through_jsonschema(tmp_path: Path) -> None:
    # The control: the probe does see jsonschema when it is imported.
    (tmp_path / "batchplan.yaml").write_text(INVALID, encoding="utf-8")
    assert imported_of(tmp_path, HEAVY, "validate") == (1, ["jsonschema"])


# Standard modules only some runs need: writing a file, wording a typo, a month loop.
ONLY_WHEN_USED = ("tempfile", "difflib", "calendar")


def test_validate_imports_no_module_only_writing_a_typo_or_a_month_loop_needs(
    tmp_path: Path,
) -> None:
    (tmp_path / "batchplan.yaml").write_text(VALID, encoding="utf-8")
    assert imported_of(tmp_path, ONLY_WHEN_USED, "validate") == (0, [])


@pytest.mark.parametrize(
    ("batch", "code", "needed"),
    [
        ("{name: a, project: p, priorty: 20}", 1, "difflib"),
        (
            "{name: 'd_${each.d}', project: p,"
            " for_each: {d: {range: [2020-01-31, 2020-03-31], step: month}}}",
            0,
            "calendar",
        ),
    ],
    ids=["typo", "month-steps-from-a-day"],
)
def test_a_typo_and_a_month_loop_import_what_they_need(
    tmp_path: Path, batch: str, code: int, needed: str
) -> None:
    # The control: the probe sees these modules when a run does use them (a
    # config with a mistake also imports jsonschema, which brings others).
    (tmp_path / "batchplan.yaml").write_text(f"version: 1\nbatches:\n  - {batch}\n", "utf-8")
    exit_code, imported = imported_of(tmp_path, ONLY_WHEN_USED, "validate")
    assert exit_code == code
    assert needed in imported
