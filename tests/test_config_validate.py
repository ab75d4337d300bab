"""validate's rules and formats, variables from --var / --var-file, and the never-shown rule."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import requests

from batchplan.config.load import check_config, load_config, read_variables
from batchplan.errors import ConfigError
from tests.helpers import CLI

SECRET = "s3cr3t-t0ken-value"


def write(folder: Path, text: str, name: str = "c.yaml") -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


# (batches written under "defaults: {project: p}", the problem expected or None)
RULES = [
    ("- {name: a}", None),
    ("- {name: 'a b/c #1'}", None),
    ("- {name: a, project: null}", "batches[0].project: null means no project here"),
    ("- {name: ''}", "batches[0].name: must not be empty"),
    ("- {name: '.'}", "batches[0].name: must not be '.' or '..'"),
    ("- {name: '..'}", "batches[0].name: must not be '.' or '..'"),
    ("- {name: '...'}", None),
    ('- {name: "a\\nb"}', "batches[0].name: must not be '.' or '..' or hold a control character"),
    ('- {name: "a\\tb"}', "a zero-width character, got 'a\\tb' (U+0009 at character 2)"),
    ('- {name: "a\\0b"}', "hold a control character"),
    ('- {name: "a\\eb"}', "hold a control character"),
    ('- {name: "a\\x7fb"}', "hold a control character"),
    ('- {name: "a\\x9fb"}', "hold a control character"),
    ('- {name: "a\\xa0b"}', None),
    ("- {name: a, priority: '${P}'}", "batches[0].priority: expected an integer, got '${P}'"),
    ("- {name: a, priority: [1]}", "batches[0].priority: expected an integer, got a list"),
    ("- {name: a, priority: '$${P}'}", "batches[0].priority: expected an integer, got '${P}'"),
    ("- {name: a, finalized: 'yes'}", "batches[0].finalized: expected true or false, got 'yes'"),
    ("- {name: a, metadata: {team: x, n: 1, d: {k: [1, null]}}}", None),
    ("- {name: a, metadata: {x: .nan}}", "batches[0].metadata.x: nan is not a JSON value"),
    ("- {name: a, metadata: [1]}", "batches[0].metadata: expected a mapping, got a list"),
]


@pytest.mark.parametrize(("batches", "expected"), RULES)
def test_validate_rules(tmp_path: Path, batches: str, expected: str | None) -> None:
    path = write(tmp_path, f"version: 1\ndefaults: {{project: p}}\nbatches:\n  {batches}\n")
    check = check_config([path], {"P": "25"})
    messages = [str(problem) for problem in check.errors]
    if expected is None:
        assert messages == [] and check.config is not None
    else:
        assert any(expected in message for message in messages), messages
        assert check.config is None


def test_project_null_over_a_default_fails_validate_not_plan(cli: CLI) -> None:
    cli.write(
        "batchplan.yaml",
        "version: 1\ndefaults: {project: p}\nbatches:\n  - {name: a, project: null}\n",
    )
    for command in (["validate"], ["plan"]):
        result = cli(*command)
        assert result.code == 1
        assert "batchplan.yaml:4:24: batches[0].project: null means no project" in result.err
        assert "bug" not in result.err


def test_each_missing_field_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config([path], {})
    assert caught.value.problems == (
        f"{path}:1:1: missing required field 'batches'",
        f"{path}:1:1: missing required field 'version'",
    )


def test_unreadable_config_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "version: 1\nbatches: []\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(ConfigError) as caught:
        load_config([path], {})
    assert caught.value.problems == (f"cannot read config {path}: Permission denied",)


def test_too_long_a_path_is_one_line(cli: CLI) -> None:
    result = cli("validate", "x" * 300 + ".yaml")
    assert result.code == 1
    assert result.err.startswith("Error: cannot read config xxx")
    assert result.err.rstrip().endswith(": File name too long")


# --- variables ------------------------------------------------------------------

HOOKED = "version: 1\nbatches:\n  - {name: a, project: p, callback: '${HOOK}/scale'}\n"


def test_validate_notes_an_unset_variable_and_passes(cli: CLI) -> None:
    cli.write("batchplan.yaml", HOOKED)
    result = cli("validate")
    assert result.code == 0, result.err
    assert result.out.startswith("note: batchplan.yaml:3:37: batches[0].callback: variable 'HOOK'")
    assert "Configuration is valid: 1 batch" in result.out
    planned = cli("plan")
    assert planned.code == 1 and "variable 'HOOK' is not set" in planned.err


def test_a_missing_var_file_is_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as caught:
        read_variables([], [missing])
    assert caught.value.problems == (
        f"cannot read variables file {missing}: No such file or directory",
    )


def test_var_beats_var_file_beats_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK", "https://env.example")
    monkeypatch.setenv("OTHER", "from-env")
    var_file = write(tmp_path, "HOOK: https://file.example\nN: 7\n", "vars.yaml")
    assert read_variables([], [var_file]) == {"HOOK": "https://file.example", "N": "7"}
    variables = read_variables(["HOOK=https://flag.example"], [var_file])
    config = load_config([write(tmp_path, HOOKED)], variables=variables)
    assert config.batches[0].callback == "https://flag.example/scale"
    assert config.batches[0].callback_shown == "${HOOK}/scale"
    assert load_config([write(tmp_path, HOOKED)]).batches[0].callback == "https://env.example/scale"


@pytest.mark.parametrize(
    ("assignments", "file_text", "expected"),
    [
        (["NOEQUALS"], None, "the 1st --var: expected NAME=VALUE, and it has no '='"),
        (["A=1", f"1X={SECRET}"], None, "the 2nd --var: expected NAME=VALUE, and in NAME a"),
        (["A=1", "B=2", f"HOOK:{SECRET}"], None, "the 3rd --var: expected NAME=VALUE"),
        ([f"HOOK:{SECRET}?a=b"], None, "the 1st --var: expected NAME=VALUE, and in NAME a"),
        ([], f"K: [{SECRET}]\n", "vars.yaml:1:4: K: expected a string; quote the value"),
        ([], f"K: {{a: {SECRET}}}\n", "expected a string"),
        ([], f"bad-name: {SECRET}\n", "vars.yaml:1:1: a variable name"),
        ([], f"'{SECRET}': x\n", "vars.yaml:1:1: a variable name"),
        ([], f"K: 1\nK: {SECRET}\n", "vars.yaml:2:1:"),
        ([], f"K: '{SECRET}\n", "invalid YAML"),
        ([], "- a\n", "vars.yaml:1:1: the top level must be a mapping of variable names to"),
        ([], "", "vars.yaml:1:1: the file is empty; it needs a mapping of variable names"),
    ],
)
def test_bad_variables_never_print_the_value(
    tmp_path: Path, assignments: list[str], file_text: str | None, expected: str
) -> None:
    files = [write(tmp_path, file_text, "vars.yaml")] if file_text is not None else []
    with pytest.raises(ConfigError) as caught:
        read_variables(assignments, files)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
    assert SECRET not in str(caught.value)


def test_a_var_value_appears_in_no_output_plan_or_state(cli: CLI, tmp_path: Path) -> None:
    cli.write(
        "batchplan.yaml",
        "version: 1\nbatches:\n"
        "  - {name: a, project: p, callback: 'https://h.example/${TOKEN}',"
        " metadata: {token: '${TOKEN}', team: x}}\n"
        "  - {name: b, project: p, callback: '${TOKEN}'}\n",
    )
    bad = cli("validate", "--var", f"TOKEN={SECRET}")
    assert bad.code == 1 and SECRET not in bad.out + bad.err
    assert "batches[1].callback: must be an http:// or https:// URL" in bad.err
    assert "got '${TOKEN}'" in bad.err
    cli.write(
        "batchplan.yaml",
        (tmp_path / "batchplan.yaml").read_text().replace("'${TOKEN}'}", "'https://h/${TOKEN}'}"),
    )
    outputs = [
        cli("validate", "--var", f"TOKEN={SECRET}", "--format", fmt)
        for fmt in ("text", "json", "github")
    ]
    outputs.append(cli("plan", "--var", f"TOKEN={SECRET}", "--out", "p.plan"))
    outputs.append(cli("plan", "--var", f"TOKEN={SECRET}", "--format", "json"))
    outputs.append(cli("apply", "--var", f"TOKEN={SECRET}", "--auto-approve"))
    assert [result.code for result in outputs] == [0, 0, 0, 0, 0, 0], outputs
    for result in outputs:
        assert SECRET not in result.out + result.err
    # The sandbox's own database is the API side: it must hold the real value.
    written = [
        path
        for path in tmp_path.rglob("*")
        if path.is_file() and not path.name.startswith("sandbox-")
    ]
    assert {"p.plan", "state.json"} <= {path.name for path in written}
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


# --- formats --------------------------------------------------------------------


def test_json_format_lists_errors_and_notes(cli: CLI) -> None:
    cli.write(
        "batchplan.yaml",
        "version: 1\nbatches:\n  - {name: a, project: p, callback: '${HOOK}'}\n"
        "  - {name: b, project: p, priority: 42}\n",
    )
    result = cli("validate", "--format", "json")
    assert result.code == 1
    document = json.loads(result.out)
    assert document["valid"] is False and document["summary"] is None
    assert document["problems"] == [
        {
            "severity": "note",
            "code": "variable_unset",
            "file": "batchplan.yaml",
            "line": 3,
            "column": 37,
            "path": "batches[0].callback",
            "message": document["problems"][0]["message"],
        },
        {
            "severity": "error",
            "code": "out_of_range",
            "file": "batchplan.yaml",
            "line": 4,
            "column": 37,
            "path": "batches[1].priority",
            "message": "42 is greater than the maximum of 30",
        },
    ]
    assert "variable 'HOOK' is not set" in document["problems"][0]["message"]


def test_github_format_annotates_lines(cli: CLI) -> None:
    cli.write(
        "batchplan.yaml",
        "version: 1\nbatches:\n  - {name: a, project: p, callback: '${HOOK}'}\n"
        "  - {name: 'b,c', project: p, priority: 42}\n",
    )
    result = cli("validate", "--format", "github")
    assert result.code == 1
    assert result.out.splitlines() == [
        "::notice file=batchplan.yaml,line=3,col=37::batches[0].callback:"
        " variable 'HOOK' is not set (set it in the environment or give --var HOOK=VALUE,"
        " or write ${HOOK:-fallback} to give a default)",
        "::error file=batchplan.yaml,line=4,col=41::batches[1].priority:"
        " 42 is greater than the maximum of 30",
    ]
    assert cli("validate", "--format", "github", "--var", "HOOK=https://x.example").code == 1


def test_text_format_valid(cli: CLI) -> None:
    cli.write("batchplan.yaml", "version: 1\nbatches: [{name: a, project: p}]\n")
    result = run_ok(cli)
    assert result == "Configuration is valid: 1 batch in 1 file, 1 project."


def run_ok(cli: CLI) -> str:
    result = cli("validate")
    assert result.code == 0, result.err
    return result.out.strip()


def test_metadata_merges_key_by_key_and_null_leaves_it_unmanaged(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        defaults:
          project: p
          metadata: {team: a, cost: "1", gone: x}
        batches:
          - name: merged
            metadata: {team: b, gone: null, owner: '${OWNER}'}
          - name: inherited
          - name: unmanaged
            metadata: null
        """,
    )
    other = write(tmp_path, "version: 1\nbatches: [{name: plain, project: p}]\n", "d.yaml")
    batches = {b.name: b for b in load_config([path, other], {"OWNER": SECRET}).batches}
    assert batches["merged"].metadata == {"team": "b", "cost": "1", "gone": None, "owner": SECRET}
    assert batches["merged"].metadata_shown == {
        "team": "b",
        "cost": "1",
        "gone": None,
        "owner": "${OWNER}",
    }
    assert batches["inherited"].metadata == {"team": "a", "cost": "1", "gone": "x"}
    assert batches["unmanaged"].metadata is None and batches["unmanaged"].metadata_shown is None
    assert batches["plain"].metadata is None


def test_a_bad_default_is_reported_once_not_per_batch(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\ndefaults: {project: p, priority: '$${P}'}\n"
        "batches: [{name: a}, {name: b}, {name: c}]\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config([path], {})
    assert caught.value.problems == (
        f"{path}:2:34: defaults.priority: expected an integer, got '${{P}}'",
    )


def test_json_format_for_a_missing_file_has_no_position(cli: CLI) -> None:
    result = cli("validate", "--format", "json", "missing.yaml")
    assert result.code == 1
    assert json.loads(result.out)["problems"] == [
        {
            "severity": "error",
            "code": "path_problem",
            "file": "missing.yaml",
            "line": None,
            "column": None,
            "path": None,
            "message": "missing.yaml: no such file or folder",
        }
    ]
    github = cli("validate", "--format", "github", "missing.yaml")
    assert github.out.splitlines() == [
        "::error file=missing.yaml::missing.yaml: no such file or folder"
    ]


def test_a_callback_the_api_cannot_parse_fails_validate_and_apply_before_any_call(
    cli: CLI,
) -> None:
    cli.write(
        "batchplan.yaml",
        'version: 1\nbatches:\n  - {name: a, project: p, callback: "https://[::1"}\n',
    )
    checked = cli("validate")
    assert checked.code == 1
    assert "batchplan.yaml:3:37: batches[0].callback: must be an http:// or https://" in checked.err
    applied = cli("apply", "--auto-approve", "--max-retries", "0")
    assert applied.code == 1 and "batches[0].callback" in applied.err
    assert "Traceback" not in applied.err and "HTTP 500" not in applied.err
    assert requests.get(f"{cli.sandbox.url}/batches", timeout=10).json()["totalDocs"] == 0


def test_a_var_typed_with_a_colon_is_named_by_position_not_echoed(cli: CLI) -> None:
    cli.write("leak.yaml", HOOKED)
    result = cli("validate", "leak.yaml", "--var", "A=1", "--var", "HOOK:https://user:SECRET7@x")
    assert result.code == 1
    assert "the 2nd --var: expected NAME=VALUE" in result.err
    assert "SECRET7" not in result.out + result.err and "HOOK" not in result.err
