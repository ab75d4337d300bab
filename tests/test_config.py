"""Config loading: good configs load as intended, every bad one is a clear ConfigError."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from batchplan.config.load import load_config, resolve_paths
from batchplan.config.yamlload import MAX_DEPTH, MAX_FILE_BYTES
from batchplan.errors import ConfigError
from batchplan.model import Config, DesiredBatch, Position, Settings

DATA = Path(__file__).parent / "data"
GOOD = DATA / "good"
BAD = DATA / "bad"


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems_of(paths: list[str], environ: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_config(paths, environ or {})
    return caught.value.problems


def by_name(config: Config) -> dict[str, DesiredBatch]:
    return {batch.name: batch for batch in config.batches}


# --- good configs ------------------------------------------------------------


def test_design_example_loads_with_defaults_settings_and_positions() -> None:
    path = str(GOOD / "design_example.yaml")
    config = load_config([path], {})
    assert config.files == (path,)
    assert config.settings == Settings(max_finalize=50, max_changes=500, max_forget=10)
    assert config.batches == (
        DesiredBatch(
            name="kitten_labeling_2020-07",
            project="kitten_labeling",
            callback="https://hooks.example.com/scale",
            callback_shown="https://hooks.example.com/scale",
            priority=30,
            finalized=True,
        ),
        DesiredBatch(
            name="kitten_labeling_2020-08",
            project="dog_labeling",
            callback="ops@example.com",
            callback_shown="ops@example.com",
            priority=20,
        ),
    )
    assert [b.position for b in config.batches] == [
        Position(path, 13, 5),
        Position(path, 16, 5),
    ]


def test_explicit_null_clears_a_default_and_a_batch_value_wins() -> None:
    batches = by_name(load_config([str(GOOD / "defaults_and_null.yaml")], {}))
    assert batches["inherits_everything"] == DesiredBatch(
        name="inherits_everything",
        project="kitten_labeling",
        callback="https://hooks.example.com/scale",
        callback_shown="https://hooks.example.com/scale",
        priority=20,
        finalized=True,
        calibration_batch=True,
        self_label_batch=True,
    )
    assert batches["clears_everything"] == DesiredBatch(
        name="clears_everything", project="kitten_labeling"
    )
    assert batches["overrides_everything"] == DesiredBatch(
        name="overrides_everything", project="dog_labeling", priority=10, finalized=False
    )


def test_defaults_apply_to_their_own_file_only(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        "version: 1\ndefaults: {project: p, priority: 25}\nbatches:\n  - name: a\n",
    )
    b = write(tmp_path, "b.yaml", "version: 1\nbatches:\n  - name: b\n    project: q\n")
    batches = by_name(load_config([a, b], {}))
    assert batches["a"].priority == 25
    assert batches["b"] == DesiredBatch(name="b", project="q")


def test_folder_is_sorted_non_recursive_yaml_and_yml_only() -> None:
    folder = GOOD / "folder"
    config = load_config([str(folder)], {})
    assert config.files == (str(folder / "10-cats.yaml"), str(folder / "20-dogs.yml"))
    assert [b.name for b in config.batches] == ["cats_1", "cats_2", "dogs_1"]
    assert [b.priority for b in config.batches] == [25, 12, None]
    assert config.settings == Settings(max_forget=3)


def test_multi_file_merge_keeps_file_order_then_batch_order(tmp_path: Path) -> None:
    second = write(
        tmp_path,
        "z.yaml",
        "version: 1\nbatches: [{name: z1, project: p}, {name: z2, project: p}]\n",
    )
    first = write(tmp_path, "a.yaml", "version: 1\nbatches: [{name: a1, project: p}]\n")
    config = load_config([second, first], {})
    assert [b.name for b in config.batches] == ["z1", "z2", "a1"]
    assert config.files == (second, first)


def test_a_file_named_twice_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "conf/a.yaml", "version: 1\nbatches: [{name: a, project: p}]\n")
    write(tmp_path, "conf/b.yaml", "version: 1\nbatches: [{name: b, project: p}]\n")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "conf" / "a.yaml")
    monkeypatch.chdir(tmp_path)
    paths = ["conf/a.yaml", "conf", "./conf/a.yaml", "conf/../conf/b.yaml", "link.yaml"]
    assert resolve_paths(paths) == [Path("conf/a.yaml"), Path("conf/b.yaml")]
    config = load_config(paths, {})
    assert [b.name for b in config.batches] == ["a", "b"]
    assert config.files == ("conf/a.yaml", "conf/b.yaml")


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["missing.yaml"], "missing.yaml: no such file or folder"),
        (["empty_folder"], "empty_folder: folder holds no *.yaml or *.yml files"),
        ([], "no configuration files or folders given"),
    ],
)
def test_path_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paths: list[str], expected: str
) -> None:
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "empty_folder" / "notes.txt").write_text("not yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        resolve_paths(paths)
    assert caught.value.problems == (expected,)


def test_every_missing_path_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_paths([str(tmp_path / "x.yaml"), str(tmp_path / "y")])
    assert len(caught.value.problems) == 2


def test_interpolation_with_and_without_fallback_and_escape() -> None:
    path = str(GOOD / "interpolation.yaml")
    unset = by_name(load_config([path], {}))
    assert set(unset) == {"dev_batch", "literal_${NOT_A_VARIABLE}"}
    assert unset["dev_batch"].project == "kitten_labeling"
    assert unset["dev_batch"].callback == "https://hooks.example.com/scale"
    assert unset["literal_${NOT_A_VARIABLE}"].callback == "https://hooks.example.com/${kept}"

    env = {"PROJECT": "dog_labeling", "ENV": "prod", "HOOK_URL": "https://secret.example.com/t0k3n"}
    batch = by_name(load_config([path], env))["prod_batch"]
    assert batch.project == "dog_labeling"
    assert batch.callback == "https://secret.example.com/t0k3n/scale"
    # Set, the variable stays hidden and its fallback text is not shown (it is not used).
    assert batch.callback_shown == "${HOOK_URL}/scale"
    unset_batch = unset["dev_batch"]
    assert unset_batch.callback_shown in (None, "${HOOK_URL:-https://hooks.example.com}/scale")


@pytest.mark.parametrize(
    ("written", "env", "callback", "shown"),
    [
        (
            "${HOOK_URL}/scale",
            {"HOOK_URL": "https://h.example.com"},
            "https://h.example.com/scale",
            "${HOOK_URL}/scale",
        ),
        ("${HOOK_URL}", {"HOOK_URL": ""}, None, None),
        (
            "${HOOK_URL:-https://f.example.com}",
            {"HOOK_URL": ""},
            "https://f.example.com",
            "${HOOK_URL:-https://f.example.com}",
        ),
        (
            "'https://x.example.com/$${a}'",
            {},
            "https://x.example.com/${a}",
            "https://x.example.com/${a}",
        ),
        ("ops@example.com", {"ops": "x"}, "ops@example.com", "ops@example.com"),
        ("$HOOK_URL", {"HOOK_URL": "x"}, None, None),
        ("''", {}, None, None),
        ("null", {}, None, None),
    ],
)
def test_callback_and_callback_shown(
    tmp_path: Path, written: str, env: dict[str, str], callback: str | None, shown: str | None
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"version: 1\nbatches:\n  - name: a\n    project: p\n    callback: {written}\n",
    )
    if written == "$HOOK_URL":  # no braces: not a variable, and not a URL either
        assert "callback" in problems_of([path], env)[0]
        return
    batch = load_config([path], env).batches[0]
    assert (batch.callback, batch.callback_shown) == (callback, shown)


def test_an_interpolated_plain_scalar_is_typed_as_if_written_there(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "version: 1\nbatches:\n  - name: a\n    project: p\n"
        "    priority: ${P}\n    finalized: '${F}'\n",
    )
    problems = problems_of([path], {"P": "25", "F": "true"})
    assert problems == (f"{path}:6:16: batches[0].finalized: expected true or false, got '${{F}}'",)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("name: 2020-07-01", "2020-07-01"),  # YAML 1.2: dates are strings
        ("name: yes", "yes"),  # YAML 1.2: only true/false are booleans
        ("name: '0x14'", "0x14"),
        ("name: !!str 20", "20"),
        ("name: café ☕", "café ☕"),
    ],
)
def test_scalars_follow_yaml_1_2(tmp_path: Path, text: str, name: str) -> None:
    path = write(tmp_path, "s.yaml", f"version: 1\nbatches:\n  - {text}\n    project: p\n")
    assert load_config([path], {}).batches[0].name == name


def test_priority_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "version: 1\nbatches:\n"
        "  - {name: a, project: p, priority: 0x14}\n  - {name: b, project: p, priority: 20.0}\n",
    )
    config = load_config([path], {})
    assert [b.priority for b in config.batches] == [20, 20]
    assert all(type(b.priority) is int for b in config.batches)


def test_utf8_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\r\nbatches:\r\n  - name: a\r\n    project: p\r\n")
    assert load_config([str(path)], {}).batches[0].position == Position(str(path), 3, 5)


def test_aliases_within_limits_are_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        "version: 1\nx-hook: &hook https://h.example.com\n"
        "batches:\n  - {name: a, project: p, callback: *hook}\n",
    )
    assert any("unknown field 'x-hook'" in p for p in problems_of([path]))
    path = write(
        tmp_path,
        "b.yaml",
        "version: 1\nbatches:\n"
        "  - &a {name: a, project: p}\n  - {name: b, project: &p q}\n  - {name: c, project: *p}\n",
    )
    assert [b.project for b in load_config([path], {}).batches] == ["p", "q", "q"]


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHPLAN_TEST_PROJECT", "from_env")
    path = write(
        tmp_path,
        "e.yaml",
        "version: 1\nbatches: [{name: a, project: '${BATCHPLAN_TEST_PROJECT}'}]\n",
    )
    assert load_config([path]).batches[0].project == "from_env"


# --- bad configs ---------------------------------------------------------------

# (file in tests/data/bad, substrings that must all appear in one problem)
BAD_FILES = [
    ("malformed.yaml", [":5:1:", "invalid YAML", "began at line 4, column 14"]),
    ("tabs.yaml", [":3:1:", "tabs"]),
    ("wrong_types.yaml", [":5:15:", "batches[0].priority: expected an integer, got 'high'"]),
    ("wrong_types.yaml", [":6:11:", "batches[1].name: expected a string, got 7"]),
    ("wrong_types.yaml", [":8:16:", "batches[1].finalized: expected true or false, got 'yes'"]),
    ("unknown_top.yaml", [":2:1:", "batchs: unknown field 'batchs' (did you mean 'batches'?)"]),
    ("unknown_defaults.yaml", [":4:3:", "defaults.name: unknown field 'name'"]),
    (
        "unknown_batch.yaml",
        [":5:5:", "batches[0].prioritty: unknown field 'prioritty' (did you mean 'priority'?)"],
    ),
    ("callback_bad.yaml", [":5:15:", "batches[0].callback: must be an http:// or https:// URL"]),
    ("no_version.yaml", [":1:1:", "missing required field 'version'"]),
    ("version_2.yaml", [":1:10:", "version: must be 1, got 2"]),
    ("missing_project.yaml", [":5:5:", "batches[0]: no project"]),
    (
        "duplicate_name.yaml",
        [
            ":7:11:",
            "batches[2].name: batch 'twice' is declared twice; first at",
            "duplicate_name.yaml:5:11",
        ],
    ),
    (
        "python_tag.yaml",
        [":3:11:", "batches[0].name: YAML tag '!!python/object/apply:os.system' is not allowed"],
    ),
    ("empty.yaml", [":1:1:", "the file is empty"]),
    ("top_list.yaml", [":1:1:", "the top level must be a mapping", "not a list"]),
    ("latin1.yaml", [":3:14:", "not UTF-8"]),
    ("nul.yaml", [":3:1:", "NUL"]),
]


@pytest.mark.parametrize(("name", "expected"), BAD_FILES)
def test_bad_file(name: str, expected: list[str]) -> None:
    path = str(BAD / name)
    problems = problems_of([path])
    matching = [p for p in problems if all(part in p for part in expected)]
    assert matching, problems
    assert all(p.startswith(path + ":") for p in problems)
    assert all(re.match(r".+:\d+:\d+: ", p) for p in problems)


def test_two_independent_errors_in_one_file_are_both_reported() -> None:
    problems = problems_of([str(BAD / "wrong_types.yaml")])
    assert len(problems) == 3
    assert [int(p.split(":")[1]) for p in problems] == [5, 6, 8]  # sorted by line


def test_duplicate_across_files_names_both_places() -> None:
    a, b = BAD / "duplicate_across" / "a.yaml", BAD / "duplicate_across" / "b.yaml"
    assert problems_of([str(BAD / "duplicate_across")]) == (
        f"{b}:5:11: batches[1].name: batch 'shared' is declared twice; first at {a}:3:11",
    )


def test_settings_in_two_files_names_both() -> None:
    a, b = BAD / "settings_twice" / "a.yaml", BAD / "settings_twice" / "b.yaml"
    assert problems_of([str(BAD / "settings_twice")]) == (
        f"{b}:2:1: settings: only one file may hold 'settings'; first at {a}:2:1",
    )


def test_problems_from_several_files_are_all_reported_sorted() -> None:
    paths = [str(BAD / "version_2.yaml"), str(BAD / "unknown_top.yaml"), str(BAD / "empty.yaml")]
    problems = problems_of(paths)
    assert [p.split(":")[0] for p in problems] == paths


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("42", "42 is greater than the maximum of 30"),
        ("9", "9 is less than the minimum of 10"),
        ("20.5", "expected an integer, got 20.5"),
        ("high", "expected an integer, got 'high'"),
        ("true", "expected an integer, got true"),
        ("'20'", "expected an integer, got '20'"),
        ("[20]", "expected an integer, got a list"),
    ],
)
def test_bad_priorities(tmp_path: Path, value: str, message: str) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        f"version: 1\nbatches:\n  - name: a\n    project: p\n    priority: {value}\n",
    )
    assert problems_of([path]) == (f"{path}:5:15: batches[0].priority: {message}",)


@pytest.mark.parametrize(
    "callback",
    [
        "ftp://x.example.com",
        "https://",
        "http//x.example.com",
        "not a url",
        "ops@",
        "@example.com",
        "https://x .com",
        "a b@example.com",
    ],
)
def test_bad_callbacks(tmp_path: Path, callback: str) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"version: 1\nbatches:\n  - name: a\n    project: p\n    callback: '{callback}'\n",
    )
    (problem,) = problems_of([path])
    assert problem.startswith(
        f"{path}:5:15: batches[0].callback: must be an http:// or https:// URL"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("settings: {max_changes: -1}", "settings.max_changes: -1 is less than the minimum of 0"),
        ("settings: {max_forget: null}", "settings.max_forget: expected an integer, got null"),
        (
            "settings: {max_finalise: 3}",
            "unknown field 'max_finalise' (did you mean 'max_finalize'?)",
        ),
        ("defaults: {priority: 31}", "defaults.priority: 31 is greater than the maximum of 30"),
        ("defaults: []", "defaults: expected a mapping, got a list"),
        ("version: '1'", "version: must be 1, got '1'"),
        ("batches: [{project: p}]", "batches[0]: missing required field 'name'"),
        ("batches: [{name: '', project: p}]", "batches[0].name: must not be empty"),
        ("batches: [{name: null, project: p}]", "batches[0].name: expected a string, got null"),
        ("batches: [{name: a, project: ''}]", "batches[0].project: must not be empty"),
        ("batches: [a]", "batches[0]: expected a mapping, got 'a'"),
        ("batches: {name: a}", "batches: expected a list, got a mapping"),
        (
            "batches: [{name: a, project: p, finalized: 1}]",
            "batches[0].finalized: expected true or false, got 1",
        ),
        (
            "settings: {}\nsettings: {}",
            "key 'settings' appears twice in this mapping; first at line 3",
        ),
        ("x: ${1BAD}", "malformed '${1BAD}'"),
        ("x: '${OPEN'", "unclosed '${'"),
        ("x: !custom 1", "YAML tag '!custom' is not allowed"),
        ("x: !!binary aGk=", "YAML tag '!!binary' is not allowed"),
        ("x: !!int nope", "'nope' is not a valid !!int"),
        ("x: *nowhere", "alias *nowhere refers to no anchor"),
        ("x: &a [1, *a]", "alias *a is inside its own anchor"),
        ("? [a, b]\n: 1", "a mapping key must be a plain string"),
        ("---\nversion: 1", "a second YAML document"),
    ],
)
def test_bad_snippets(tmp_path: Path, text: str, message: str) -> None:
    version = "" if text.startswith("version:") else "version: 1\n"
    batches = "" if text.startswith("batches:") else "batches: []\n"
    path = write(tmp_path, "s.yaml", f"{version}{batches}{text}\n")
    problems = problems_of([path])
    assert any(message in p for p in problems), problems
    assert all(re.match(re.escape(path) + r":\d+:\d+: ", p) for p in problems)


def test_an_error_never_prints_an_expanded_variable(tmp_path: Path) -> None:
    secret = "s3cr3t-t0k3n"
    path = write(
        tmp_path,
        "t.yaml",
        "version: 1\nbatches:\n"
        "  - name: a\n    project: p\n    callback: ${TOKEN}\n    priority: ${TOKEN}\n"
        "  - name: ${TOKEN}\n    project: p\n  - name: ${TOKEN}\n    project: p\n",
    )
    problems = problems_of([path], {"TOKEN": secret})
    assert len(problems) == 3
    assert not any(secret in p for p in problems)
    assert "got '${TOKEN}'" in problems[0]


# --- hostile files: each fails fast with file and line ------------------------


def hostile_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "binary": os.urandom(4096),
        "deep_block": ("version: 1\nbatches:\n  " + "- " * 10_000 + "x\n").encode(),
        "deep_flow": ("version: 1\nbatches: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
        "deep_mapping": ("version: 1\nbatches: " + "{a: " * 500 + "1" + "}" * 500 + "\n").encode(),
        "alias_bomb": (
            "version: 1\nbatches: []\n"
            "lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
            + "".join(f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 12))
        ).encode(),
        "alias_depth": (
            "version: 1\nbatches: []\na: &a "
            + "[" * 40
            + "]" * 40
            + "\nb: "
            + "[" * 40
            + "*a"
            + "]" * 40
            + "\n"
        ).encode(),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("binary", "not UTF-8"),
        ("deep_block", f"nested more than {MAX_DEPTH} levels deep"),
        # libyaml 0.2.5+ stops deep flow nesting itself ("exceeded maximum
        # nesting depth"); a libyaml without that limit reaches batchplan's own.
        ("deep_flow", ("nesting depth", f"nested more than {MAX_DEPTH} levels deep")),
        ("deep_mapping", f"nested more than {MAX_DEPTH} levels deep"),
        ("alias_bomb", "once aliases are expanded"),
        ("alias_depth", f"more than {MAX_DEPTH} levels deep"),
    ],
)
@pytest.mark.timeout(30)  # a bound, not a measurement: each takes milliseconds
def test_hostile_file_fails_fast(tmp_path: Path, name: str, message: str | tuple[str, ...]) -> None:
    path = hostile_files(tmp_path)[name]
    problems = problems_of([str(path)])
    (problem,) = problems
    # binary garbage might decode by chance; any clear problem with a position will do
    assert re.match(re.escape(str(path)) + r":\d+:\d+: ", problem)
    if name != "binary" or "UTF-8" in problem:
        messages = (message,) if isinstance(message, str) else message
        assert any(m in problem for m in messages), problem


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:
        fh.write(b"version: 1\nbatches: []\n")
        fh.truncate(50 * 1024 * 1024)  # sparse: 50 MiB without writing them
    assert MAX_FILE_BYTES < 50 * 1024 * 1024
    assert problems_of([str(path)]) == (
        f"{path}:1:1: the file is 50.0 MiB, more than the 32 MiB limit;"
        " split it into several files",
    )


@pytest.mark.parametrize(
    "value", ["https://hooks.example.com/x\n", "ops@example.com\n", "a b@c.de"]
)
def test_a_callback_with_whitespace_is_refused_even_from_a_variable(
    tmp_path: Path, value: str
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\nbatches:\n  - {name: b, project: p, callback: '${HOOK}'}\n",
    )
    (problem,) = problems_of([path], {"HOOK": value})
    assert "batches[0].callback" in problem
    assert "${HOOK}" in problem and value.strip() not in problem


@pytest.mark.parametrize(
    ("callback", "reason"),
    [
        ("https://[::1", "not a well-formed URL"),
        ("https://x]/hook", "not a well-formed URL"),
        ("https://x.example.com:http/hook", "port must be a number"),
        ("https://x.example.com:99999/hook", "port must be a number"),
        ("https://:443/hook", "has no host"),
    ],
)
def test_a_callback_the_api_cannot_parse_is_refused_where_written(
    tmp_path: Path, callback: str, reason: str
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"version: 1\nbatches:\n  - name: a\n    project: p\n    callback: '{callback}'\n",
    )
    (problem,) = problems_of([path])
    assert problem.startswith(f"{path}:5:15: batches[0].callback: must be an http:// or https://")
    assert reason in problem


def test_a_malformed_callback_in_defaults_is_reported_once_at_the_default(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\ndefaults: {project: p, callback: 'https://[::1'}\n"
        "batches:\n  - {name: a}\n  - {name: b}\n",
    )
    (problem,) = problems_of([path])
    assert problem.startswith(f"{path}:2:34: defaults.callback: must be an http:// or https://")


def test_a_malformed_callback_from_a_variable_is_refused_without_its_value(
    tmp_path: Path,
) -> None:
    secret = "https://user:S3CRET@[::1"
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\nbatches:\n  - {name: b, project: p, callback: '${HOOK}'}\n",
    )
    (problem,) = problems_of([path], {"HOOK": secret})
    assert "batches[0].callback" in problem and "got '${HOOK}'" in problem
    assert "S3CRET" not in problem and "::1" not in problem
    # Unset, validate cannot check it: a note, not an error.
    from batchplan.config.load import check_config

    assert check_config([path], {}, require_variables=False).config is not None


def test_a_generated_malformed_callback_is_refused_per_batch(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\nbatches:\n  - for_each: {h: ['x.example', '[::1']}\n"
        "    name: b_${each.h}\n    project: p\n    callback: 'https://${HOOK}${each.h}/x'\n",
    )
    (problem,) = problems_of([path], {"HOOK": "tok3n@"})
    assert "batches[0] (h=[::1).callback: must be an http:// or https://" in problem
    assert "got 'https://${HOOK}[::1/x'" in problem and "tok3n" not in problem


def test_a_missing_project_is_reported_beside_the_batchs_other_problems(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\nbatches:\n  - {}\n  - name: x\n  - {name: y, priority: 99}\n"
        "  - {name: z, priority: 99, project: null}\n  - {name: w, project: 5}\n",
    )
    no_project = "no project: set 'project' on the batch or in this file's 'defaults'"
    assert problems_of([path]) == (
        f"{path}:3:5: batches[0]: missing required field 'name'",
        f"{path}:3:5: batches[0]: {no_project}",
        f"{path}:4:5: batches[1]: {no_project}",
        f"{path}:5:5: batches[2]: {no_project}",
        f"{path}:5:25: batches[2].priority: 99 is greater than the maximum of 30",
        f"{path}:6:25: batches[3].priority: 99 is greater than the maximum of 30",
        f"{path}:6:38: batches[3].project: null means no project here, but a batch needs one",
        f"{path}:7:24: batches[4].project: expected a string, got 5",
    )


def test_a_project_in_defaults_or_an_unset_variable_is_not_missing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\ndefaults: {project: p}\nbatches:\n  - {name: y, priority: 99}\n",
    )
    assert problems_of([path]) == (
        f"{path}:4:25: batches[0].priority: 99 is greater than the maximum of 30",
    )
    path = write(
        tmp_path,
        "d.yaml",
        "version: 1\nbatches:\n  - {name: y, priority: 99, project: '${P}'}\n",
    )
    from batchplan.config.load import check_config

    found = [str(p) for p in check_config([path], {}, require_variables=False).errors]
    assert found == [f"{path}:3:25: batches[0].priority: 99 is greater than the maximum of 30"]


def test_a_variable_set_to_the_empty_string_is_the_empty_string_not_null(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\nbatches:\n  - name: ${N}\n    project: ${P}\n    priority: ${Q}\n",
    )
    empty = "which expands to the empty string"
    assert problems_of([path], {"N": "", "P": "", "Q": ""}) == (
        f"{path}:3:11: batches[0].name: must not be empty, got '${{N}}', {empty}",
        f"{path}:4:14: batches[0].project: must not be empty, got '${{P}}', {empty}",
        f"{path}:5:15: batches[0].priority: expected an integer, got '${{Q}}', {empty}",
    )


def test_an_empty_variable_gives_no_callback_and_an_empty_metadata_value(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "version: 1\nbatches:\n  - name: a\n    project: p\n    callback: ${H}\n"
        "    metadata:\n      team: ${H}\n",
    )
    (batch,) = load_config([path], {"H": ""}).batches
    assert (batch.callback, batch.metadata) == (None, {"team": ""})
