"""One Diagnostic for every problem: each kind has a stable code, listed in the docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchplan.config.load import check_config, load_config
from batchplan.diagnostics import CODES, Diagnostic, Severity
from batchplan.errors import ConfigError
from batchplan.model import Position
from batchplan.plan.changes import Finding, FindingCode
from batchplan.plan.words import finding_diagnostic
from tests.helpers import CLI

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "data" / "bad"
HEAD = "version: 1\nbatches:\n"

# (config text, the codes of its problems, in order)
CASES = [
    (HEAD + "  - {name: a, project: p, priority: 42}\n", ["out_of_range"]),
    (HEAD + "  - {name: a, project: p, prioritty: 20}\n", ["unknown_field"]),
    (HEAD + "  - {project: p}\n", ["missing_field"]),
    (HEAD + "  - {name: a, project: p, finalized: 3}\n", ["wrong_type"]),
    (HEAD + "  - {name: a, project: ''}\n", ["empty_value"]),
    (HEAD + "  - {name: a, project: p, callback: 'not a url'}\n", ["bad_format"]),
    ("version: 2\nbatches: []\n", ["wrong_value"]),
    (HEAD + "  - {name: a, project: p}\n  - {name: a, project: p}\n", ["duplicate_name"]),
    (HEAD + "  - {name: a}\n", ["no_project"]),
    (HEAD + "  - {name: a, project: p}\n  - {name: a, name: b, project: p}\n", ["duplicate_key"]),
    (HEAD + "  - {name: a, project: p\n", ["yaml_syntax"]),
    ("", ["file_empty"]),
    (HEAD + "  - {name: 'a${each.n}', project: p, for_each: {n: {range: [3, 1]}}}\n", ["bad_loop"]),
    (HEAD + "  - {name: 'a_${each.n}', project: p}\n", ["each_misuse"]),
    (HEAD + "  - {name: 'a${each.n}', project: p, for_each: {n: {range: [1, 2, 3]}}}\n",
     ["wrong_count"]),
    (HEAD + "  - {name: a, project: p, metadata: {k: !!int x}}\n", ["yaml_bad_value"]),
    (HEAD + "  - {name: a, project: '${MISSING}'}\n", ["variable_unset"]),
    (HEAD + "  - {name: a, project: '${1BAD}'}\n", ["variable_invalid"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "codes"), CASES, ids=[c[1][0] for c in CASES])
def test_every_kind_of_config_problem_has_its_code(
    tmp_path: Path, text: str, codes: list[str]
) -> None:
    path = tmp_path / "batchplan.yaml"
    path.write_text(text, encoding="utf-8")
    check = check_config([str(path)], {}, require_variables=False)
    found = list(check.problems)
    assert [d.code for d in found] == codes, [str(d) for d in found]
    assert all(d.code in CODES for d in found)
    assert all(d.file == str(path) and d.line and d.column for d in found)


def test_a_missing_path_is_a_path_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config([str(tmp_path / "missing.yaml")], {})
    assert [d.code for d in raised.value.diagnostics] == ["path_problem"]
    assert raised.value.diagnostics[0].line is None


def test_config_error_carries_diagnostics_and_prints_as_before(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + "  - {name: a, project: p, priority: 42}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config([str(path)], {})
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic == Diagnostic(
        Severity.ERROR,
        "out_of_range",
        "42 is greater than the maximum of 30",
        str(path),
        3,
        37,
        ("batches", 0, "priority"),
    )
    assert raised.value.problems == (f"{path}:3:37: batches[0].priority: {diagnostic.message}",)
    # A plain sentence still makes a ConfigError, coded as a configuration problem.
    assert ConfigError(["odd"]).diagnostics[0].code == "invalid_config"


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()))
def test_every_bad_example_gives_known_codes(name: str) -> None:
    check = check_config([str(BAD / name)], {}, require_variables=False)
    codes = [problem.code for problem in check.errors]
    assert codes, name
    assert set(codes) <= CODES.keys()


def test_validate_json_carries_the_codes(cli: CLI) -> None:
    cli.write("batchplan.yaml", HEAD + "  - {name: a, project: p, priority: 42}\n  - {name: b}\n")
    result = cli("validate", "--format", "json")
    assert result.code == 1
    problems = json.loads(result.out)["problems"]
    assert [p["code"] for p in problems] == ["out_of_range", "no_project"]


def test_a_finding_is_a_diagnostic_with_its_plan_code() -> None:
    finding = Finding(
        Severity.ERROR,
        FindingCode.CALLBACK_CHANGED,
        "b1",
        "p",
        (("configured", "https://a.example"), ("live", "https://b.example")),
        position=Position("teams/a.yaml", 7, 5),
    )
    diagnostic = finding_diagnostic(finding)
    assert (diagnostic.severity, diagnostic.code) == (Severity.ERROR, "callback_changed")
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == ("teams/a.yaml", 7, 5)
    assert "callback" in diagnostic.message


def test_every_finding_code_is_a_diagnostic_code() -> None:
    assert {code.value for code in FindingCode} <= CODES.keys()


def test_the_docs_list_every_code_and_no_other() -> None:
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    assert listed == CODES.keys()
