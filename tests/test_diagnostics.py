"""One Diagnostic for every problem: each kind has a stable code, listed in the docs."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import requests

from batchplan.config.load import check_config, load_config, read_variables
from batchplan.config.yamlload import MAX_PROBLEMS
from batchplan.diagnostics import CODES, Diagnostic, LoopValues, Severity, path_text
from batchplan.errors import ConfigError
from batchplan.model import Position
from batchplan.plan.changes import Finding, FindingCode, Plan
from batchplan.plan.document import finding_json, plan_document, plan_from_document
from batchplan.plan.planfile import _digest
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


# (config text, (code, line, column, path) of its one problem): the checks the
# loader makes past the schema, each with its own code instead of invalid_config.
CHECKS = [
    (
        HEAD + "  - name: a\n    project: p\n    callback: 'https://[::1/hook'\n",
        ("bad_callback", 5, 15, "batches[0].callback"),
    ),
    (
        HEAD + "  - name: a\n    project: p\n    priority: '$${P}'\n",
        ("wrong_type", 5, 15, "batches[0].priority"),
    ),
    (
        HEAD + "  - name: 'a${each.n}'\n    project: p\n    for_each: {n: [1]}\n"
        "    finalized: '${each.n}'\n",
        ("each_misuse", 6, 16, "batches[0].finalized"),
    ),
    (
        HEAD + "  - name: a\n    project: p\n    metadata: {blob: '" + "x" * 70_000 + "'}\n",
        ("metadata_too_large", 5, 15, "batches[0].metadata"),
    ),
    (
        HEAD + '  - {name: "cafe\\u0301", project: p}\n',
        ("name_not_nfc", 3, 12, "batches[0].name"),
    ),
    (
        HEAD + "  - name: 'g_${each.n}'\n    project: p\n    for_each: {n: ['[::1']}\n"
        "    callback: 'https://${each.n}/h'\n",
        ("bad_callback", 6, 15, "batches[0] (n=[::1).callback"),
    ),
    (
        "version: 1\nvariables: {A: {}}\nbatches:\n  - {name: a, project: '${B:-p}'}\n",
        ("variable_undeclared", 4, 25, None),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CHECKS, ids=[c[1][0] for c in CHECKS])
def test_validate_json_gives_each_config_check_its_own_code_and_place(
    cli: CLI, text: str, expected: tuple[str, int, int, str | None]
) -> None:
    cli.write("batchplan.yaml", text)
    result = cli("validate", "--format", "json")
    assert result.code == 1, result.out
    problems = json.loads(result.out)["problems"]
    found = [(p["code"], p["line"], p["column"], p["path"]) for p in problems]
    assert found == [expected]
    assert problems[0]["file"] == "batchplan.yaml"


def test_the_yaml_readers_own_problems_have_their_codes(tmp_path: Path) -> None:
    path = tmp_path / "batchplan.yaml"
    keys = "".join(f"    k: {i}\n" for i in range(MAX_PROBLEMS + 5))
    path.write_text(
        HEAD + "  - name: a\n    project: p\n    priority: " + "1" * 4_400 + "\n"
        "    metadata:\n" + keys,
        encoding="utf-8",
    )
    found = [(d.code, d.line, d.path_text) for d in check_config([str(path)], {}).errors]
    assert found[0] == ("integer_too_long", 5, "batches[0].priority")
    assert [code for code, _, _ in found[1:-1]] == ["duplicate_key"] * (MAX_PROBLEMS - 1)
    # The count of the rest, at the last one hidden.
    assert found[-1] == ("more_problems", 7 + MAX_PROBLEMS + 4, "")


def test_a_second_variables_block_has_its_own_code(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(
            "version: 1\nvariables: {A: {}}\nbatches: []\n", encoding="utf-8"
        )
    check = check_config([str(tmp_path)], {})
    found = [(d.code, d.file, d.line, d.column, d.path_text) for d in check.errors]
    assert found == [("declared_twice", str(tmp_path / "b.yaml"), 2, 1, "variables")]


def test_var_file_and_var_problems_have_their_own_codes(tmp_path: Path) -> None:
    var_file = tmp_path / "vars.yaml"
    var_file.write_text("GOOD: x\n1bad: x\nLIST: [1]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        read_variables(["oops", "2X=1"], [str(var_file)])
    found = [(d.code, d.file, d.line, d.column, d.path) for d in raised.value.diagnostics]
    assert found == [
        ("variable_name_invalid", str(var_file), 2, 1, ()),
        ("variable_not_text", str(var_file), 3, 7, ("LIST",)),
        ("var_malformed", None, None, None, ()),
        ("variable_name_invalid", None, None, None, ()),
    ]
    # Printed as before: the key that is no name is not repeated (it may be a value).
    assert raised.value.problems[0] == (
        f"{var_file}:2:1: a variable name is letters, digits and '_', not starting with a digit"
    )


def test_a_bad_var_file_fails_validate_without_a_traceback(cli: CLI) -> None:
    cli.write("batchplan.yaml", HEAD + "  - {name: a, project: p}\n")
    cli.write("vars.yaml", "LIST: [1]\n")
    result = cli("validate", "--var-file", "vars.yaml")
    assert result.code == 1
    assert "vars.yaml:1:7: LIST: expected a string; quote the value" in result.err
    assert "Traceback" not in result.err


def test_validate_json_reports_a_bad_var_file_in_its_document(cli: CLI) -> None:
    # Found: the problems went to stderr as text and stdout stayed empty, so
    # a tool reading the JSON got nothing to parse.
    cli.write("batchplan.yaml", HEAD + "  - {name: a, project: p}\n")
    cli.write("vars.yaml", "LIST: [1]\n")
    result = cli("validate", "--format", "json", "--var-file", "vars.yaml", "--var", "oops")
    assert result.code == 1
    document = json.loads(result.out)
    assert document["valid"] is False
    found = [(p["code"], p["file"], p["line"], p["column"]) for p in document["problems"]]
    assert found == [("variable_not_text", "vars.yaml", 1, 7), ("var_malformed", None, None, None)]


DECLARING = "version: 1\nvariables: {HOOK: {}}\nbatches:\n  - {name: a, project: p}\n"


def test_validate_warns_of_values_for_names_variables_does_not_declare(cli: CLI) -> None:
    # Found: a var-file key or a --var name with a typo (HOKK for HOOK) passed
    # validate silently, though no ${NAME} could ever use its value.
    cli.write("batchplan.yaml", DECLARING)
    cli.write("vars.yaml", "HOOK: x\nHOKK: y\n")
    args = ("validate", "--var-file", "vars.yaml", "--var", "EXTRA=z")
    text = cli(*args)
    assert text.code == 0, text.err
    assert text.out.splitlines()[:2] == [
        "warning: --var EXTRA: EXTRA is not declared in variables: no ${EXTRA} can use it"
        " (a typo?)",
        "warning: vars.yaml:2:1: HOKK is not declared in variables: no ${HOKK} can use it"
        " (a typo?)",
    ]
    document = json.loads(cli(*args, "--format", "json").out)
    assert document["valid"] is True
    found = [(p["severity"], p["code"], p["file"], p["line"]) for p in document["problems"]]
    assert found == [
        ("warning", "value_undeclared", None, None),
        ("warning", "value_undeclared", "vars.yaml", 2),
    ]
    github = cli(*args, "--format", "github").out.splitlines()
    assert github[1].startswith("::warning file=vars.yaml,line=2,col=1::HOKK is not declared")


def test_paths_are_data_rendered_once(tmp_path: Path) -> None:
    path = tmp_path / "batchplan.yaml"
    path.write_text(
        HEAD + "  - {name: a, project: p}\n  - {name: b, project: p, priority: 42}\n"
        "  - name: 'c${each.n}'\n    project: p\n    for_each: {n: {range: [3, 1]}}\n",
        encoding="utf-8",
    )
    check = check_config([str(path)], {})
    assert [d.path for d in check.errors] == [
        ("batches", 1, "priority"),
        ("batches", 2, "for_each", "n", "range"),
    ]
    assert path_text(("batches", 0, LoopValues((("n", "x" * 50),)), "name")) == (
        "batches[0] (n=" + "x" * 37 + "...).name"
    )


def test_no_problem_type_but_diagnostic_remains_in_config() -> None:
    """YamlProblem, SchemaProblem, LoopProblem and ConfigProblem must not come back."""
    found = [
        f"{path.name}:{node.name}"
        for path in sorted((ROOT / "batchplan" / "config").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name.endswith("Problem")
    ]
    assert found == []


def test_no_field_path_is_parsed_back_from_text() -> None:
    source = (ROOT / "batchplan" / "config" / "load.py").read_text(encoding="utf-8")
    assert "batches\\[" not in source, "paths are tuples: index them, do not parse their text"


def test_no_config_check_falls_back_to_invalid_config() -> None:
    """invalid_config is left for a plain sentence handed to ConfigError, nothing else."""
    for path in sorted((ROOT / "batchplan").rglob("*.py")):
        if path.name != "diagnostics.py" and path.name != "errors.py":
            assert "invalid_config" not in path.read_text(encoding="utf-8"), path


CONFLICTED = "version: 1\nbatches:\n  - {name: a, project: p}\n  - name: x\n    project: p\n"


def _callback_conflict(cli: CLI) -> None:
    """Batch x live with one callback, configured (line 4, column 5) with another."""
    requests.post(
        f"{cli.sandbox.url}/batches",
        json={"project": "p", "name": "x", "callback": "https://old.example.com/"},
        timeout=10,
    ).raise_for_status()
    cli.write("batchplan.yaml", CONFLICTED + "    callback: https://new.example.com/\n")


def test_plan_json_gives_each_conflict_its_file_line_and_column(cli: CLI) -> None:
    _callback_conflict(cli)
    result = cli("plan", "--format", "json")
    assert result.code == 1
    (conflict,) = json.loads(result.out)["conflicts"]
    assert conflict["code"] == "callback_changed"
    place = (conflict["file"], conflict["line"], conflict["column"])
    assert place == ("batchplan.yaml", 4, 5)
    assert conflict["where"] == "batchplan.yaml:4:5"


def test_a_saved_plan_without_file_line_column_still_shows_its_conflicts(cli: CLI) -> None:
    _callback_conflict(cli)
    assert cli("plan", "--out", "x.plan").code == 1
    path = cli.folder / "x.plan"
    document = json.loads(path.read_text(encoding="utf-8"))
    fresh = cli("show", "x.plan")
    # As a plan saved before the fields existed: only "where", resealed.
    for finding in document["conflicts"]:
        for key in ("file", "line", "column"):
            del finding[key]
    document["digest"] = _digest(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    shown = cli("show", "x.plan")
    assert "[batchplan.yaml:4:5]" in shown.out
    assert shown.out == fresh.out
    as_json = json.loads(cli("show", "x.plan", "--format", "json").out)
    (conflict,) = as_json["conflicts"]
    assert (conflict["file"], conflict["line"], conflict["column"]) == ("batchplan.yaml", 4, 5)


def test_reading_a_finding_takes_the_place_from_the_fields_or_from_where() -> None:
    finding = Finding(
        Severity.ERROR,
        FindingCode.PROJECT_CHANGED,
        "b",
        "p",
        (("live_project", "q"),),
        Position("c:/teams/a.yaml", 7, 5),
    )
    data = finding_json(finding)
    assert (data["file"], data["line"], data["column"]) == ("c:/teams/a.yaml", 7, 5)
    document = {**plan_document(Plan(findings=(finding,)))}
    assert plan_from_document(document).findings == (finding,)
    older = {key: value for key, value in data.items() if key not in ("file", "line", "column")}
    document["conflicts"] = [older]
    assert plan_from_document(document).findings == (finding,)
    unplaced = Finding(Severity.ERROR, FindingCode.PROJECT_MISSING, None, "p", (("used_by", "b"),))
    data = finding_json(unplaced)
    assert (data["file"], data["line"], data["column"], data["where"]) == (None, None, None, None)
    document["conflicts"] = [data]
    assert plan_from_document(document).findings == (unplaced,)
