"""The schema file itself, and every shipped or test config that must satisfy it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from batchplan.config.load import CONFIG_SUFFIXES, load_config
from batchplan.config.schema import (
    config_schema,
    fast_check,
    inline_local_refs,
    load_schema,
    schema_dir,
)
from batchplan.config.yamlload import load_yaml

ROOT = Path(__file__).parent.parent
CONFIG_DIRS = [ROOT / "examples", Path(__file__).parent / "data" / "good"]


class EveryVariableSet(dict[str, str]):
    """An environment in which every ``${NAME}`` is set, to a valid URL.

    Files are checked as batchplan reads them: ``${HOOK_URL}/scale`` is only
    a valid callback once expanded.
    """

    def get(self, key: str, default: object = None) -> str:
        return "https://hooks.example.com"


# examples/ci holds CI pipelines, not batchplan configs.
# Not configurations: CI pipelines, and the var files of the environments example.
NOT_CONFIGS = (ROOT / "examples" / "ci", ROOT / "examples" / "environments" / "vars")


def config_files() -> Iterator[Path]:
    for folder in CONFIG_DIRS:
        for path in sorted(folder.rglob("*")):
            if any(path.is_relative_to(skip) for skip in NOT_CONFIGS):
                continue
            if path.name.endswith(CONFIG_SUFFIXES) and not path.name.startswith("."):
                yield path


def test_schema_file_is_valid_draft_2020_12() -> None:
    schema = config_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema_dir() == ROOT / "schemas"


def test_every_property_has_a_title_and_description() -> None:
    def walk(node: object, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "$ref" not in sub and not ("title" in sub and "description" in sub):
                    yield f"{where}.{name}"
            for key, sub in node.items():
                yield from walk(sub, f"{where}.{key}")

    schema = config_schema()
    assert list(walk(schema, "")) == []
    for name, definition in schema["$defs"].items():
        assert definition.get("title") and definition.get("description"), name


def test_unknown_keys_are_refused_everywhere() -> None:
    def objects(node: object) -> Iterator[tuple[str, dict[str, object]]]:
        if isinstance(node, dict):
            kinds = node.get("type")
            if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
                yield str(node.get("title")), node
            for sub in node.values():
                yield from objects(sub)

    found = dict(objects(config_schema()))
    # Free-form on purpose: metadata holds any JSON; for_each maps loop names
    # (checked by propertyNames) to loops.
    assert found.pop("Metadata").get("additionalProperties") is not False
    assert found.pop("Generate batches")["propertyNames"]  # type: ignore[index]
    # Maps keyed by a name the user picks (a variable, an environment), each name checked.
    for keyed in ("Declared variables", "Environments", "Variable values"):
        assert found.pop(keyed)["propertyNames"]  # type: ignore[index]
    assert sorted(found) == [
        "Batch",
        "Defaults for this file's batches",
        "Loop",
        "One environment",
        "One variable",
        "Safety limits",
        "batchplan configuration",
    ]
    assert all(node.get("additionalProperties") is False for node in found.values())


def test_inlined_schema_means_the_same() -> None:
    inlined = inline_local_refs(config_schema())
    Draft202012Validator.check_schema(inlined)
    assert "$ref" not in str(inlined["properties"])
    assert inlined["properties"]["batches"]["items"]["properties"]["priority"]["maximum"] == 30


def test_plan_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(load_schema("plan.schema.json"))


@pytest.mark.parametrize("path", list(config_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_config_file_satisfies_the_schema(path: Path) -> None:
    root, problems = load_yaml(path, EveryVariableSet())
    assert problems == []
    errors = [e.message for e in Draft202012Validator(config_schema()).iter_errors(root)]
    assert errors == []


@pytest.mark.parametrize(
    "folder",
    [p for p in sorted((ROOT / "examples").glob("*")) if p.is_dir() and p not in NOT_CONFIGS],
)
def test_example_folder_loads(folder: Path) -> None:
    assert load_config([str(folder)], EveryVariableSet()).batches


class _EditorLoader(yaml.SafeLoader):
    """YAML as an editor reads it: no timestamps (``2024-01-31`` stays a string)."""


_EditorLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def schema_lined_files() -> list[Path]:
    return [
        path
        for path in config_files()
        if path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")
    ]


@pytest.mark.parametrize("path", schema_lined_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_file_with_a_schema_line_passes_the_schema_as_written(path: Path) -> None:
    """What an editor sees: the file as written, no variables, only PyYAML and jsonschema."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    schema_path = (path.parent / first.split("$schema=", 1)[1].strip()).resolve()
    assert schema_path == ROOT / "schemas" / "batchplan.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_EditorLoader)
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(document)
    ]
    assert errors == []


def test_the_examples_use_variables_and_for_each() -> None:
    # The test above must cover the forms an editor used to refuse.
    texts = [path.read_text(encoding="utf-8") for path in schema_lined_files()]
    assert any("callback: ${" in text for text in texts)
    assert any("for_each:" in text and "${each." in text for text in texts)
    assert len(schema_lined_files()) >= 6


SAMPLES = [
    None, True, False, 0, 9, 10, 20, 20.0, 20.5, 30, 31, -1, 1e400, "", ".", "..", "...",
    "a", "a\tb", "a\x85b", "${P}", "$${P}", "https://h.example/x", "ops@example.com",
    "https://h.example/ x", "mailto x", "20", "true", [], [1], {}, {"a": 1},
    {"name": "a"}, {"name": "a", "priority": 20}, {"name": "a", "priority": 40},
    {"name": "..", "project": "p"}, {"project": "p"}, {"name": "a", "prioritty": 1},
    {"name": "a", "metadata": {"x": [1]}}, {"name": "a", "metadata": [1]},
    {"name": "a", "for_each": {"n": [1]}}, {"name": "a", "for_each": {"n": {"range": [1]}}},
    {"name": "a", "callback": "${HOOK}"}, {"name": "a", "finalized": "yes"}, {"n": [1, 2]},
]  # fmt: skip


def batch_schemas() -> list[tuple[str, object]]:
    batch = inline_local_refs(config_schema())["properties"]["batches"]["items"]
    return [("batch", batch), *batch["properties"].items()]


@pytest.mark.parametrize(("field", "schema"), batch_schemas(), ids=lambda x: str(x)[:20])
def test_fast_check_agrees_with_jsonschema(field: str, schema: object) -> None:
    check = fast_check(schema)
    validator = Draft202012Validator(schema)
    assert [check(value) for value in SAMPLES] == [validator.is_valid(v) for v in SAMPLES]
    assert any(check(value) for value in SAMPLES) and not all(check(v) for v in SAMPLES)


LOOPS = [
    {}, {"n": []}, {"n": [1, "a", 2.5, True]}, {"n": [None]}, {"n": [[1]]}, {"1n": [1]},
    {"n-x": [1]}, {"_n": ["a"]}, {"n": {"range": [1, 3]}}, {"n": {"range": [1, 3, 5]}},
    {"n": {"range": ["2024-01", "2024-03"], "step": "month"}}, {"n": {"range": ["2024", 1]}},
    {"n": {"range": [1, 2], "step": 0}}, {"n": {"range": [1, 2], "step": "fortnight"}},
    {"n": {"range": [1, 2], "format": ""}}, {"n": {"range": [1, 2], "extra": 1}},
    {"n": {"step": 1}}, {"n": "abc"}, {"n": 1}, [["n", 1]], None,
]  # fmt: skip
ROOTS = [
    {"version": 1}, {"version": 1, "batches": []}, {"version": 2, "batches": []}, {},
    {"version": 1, "batches": [], "defaults": {"project": "p", "priority": 20}},
    {"version": 1, "batches": [], "defaults": {"name": "a"}},
    {"version": 1, "batches": [], "settings": {"max_finalize": 3}},
    {"version": 1, "batches": [], "settings": {"max_finalize": -3}},
    {"version": 1, "batches": [], "unknown": 1}, {"version": 1, "batches": {}},
    {"version": 1, "batches": [{"name": "a", "project": "p"}]},
    {"version": 1, "batches": [{"name": "a", "priority": 50}]},
]  # fmt: skip


def test_fast_check_agrees_with_jsonschema_on_loops_and_whole_files() -> None:
    # The loop schema and the file's top level use the keywords the general
    # compiled check handles (items, propertyNames, additionalProperties as a schema).
    schema = inline_local_refs(config_schema())
    loops = schema["properties"]["batches"]["items"]["properties"]["for_each"]
    for sub, samples in ((loops, LOOPS), (schema, ROOTS)):
        check = fast_check(sub)
        validator = Draft202012Validator(sub)
        assert [check(value) for value in samples] == [validator.is_valid(v) for v in samples]
        assert any(check(v) for v in samples) and not all(check(v) for v in samples)
