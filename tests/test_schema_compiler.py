"""The one compiled schema check shared by configuration files and saved plans.

Every keyword the compiler knows is held to jsonschema's answer on a table of
values; the ones it does not know go to jsonschema, which is imported only
when such a part is first used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from batchplan.config.schema import MAX_FREE_DEPTH, fast_check, load_schema, plan_check

VALUES: list[Any] = [
    None, True, False, 0, 1, 1.0, 2.5, -3, 20, 101, "", "a", "abc", "ab c", "1x", "x" * 12,
    [], [1], [1, 1], [1, True], ["a", "a"], ["a", "b"], [{"a": 1}, {"a": 1.0}], [[1], [True]],
    {}, {"a": 1}, {"a": True}, {"a": 1, "b": 2}, {"a": "x", "b": "y", "c": "z"}, {"1": 1},
    {"b": 1}, {"a": {"a": {"a": 1}}}, {"a": [1, 2]}, {"kids": [{"kids": []}]},
    {"kids": [{"kids": [1]}]}, {"kind": "n", "n": 1}, {"kind": "s", "s": "x"},
]  # fmt: skip

DEFS = {
    "name": {"type": "string", "pattern": "^[a-z]+$"},
    "node": {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
    },
}
SCHEMAS: list[Any] = [
    True, False, {}, {"description": "only a note"},
    {"type": "integer"}, {"type": ["integer", "string"]}, {"type": ["null", "boolean"]},
    {"type": "number", "minimum": 1, "maximum": 100}, {"minimum": 0},
    {"type": "string", "minLength": 1, "maxLength": 3}, {"pattern": "^[a-z]+$"},
    {"const": 1}, {"const": True}, {"const": {"a": True}}, {"const": {"a": 1}},
    {"const": [1, True]}, {"enum": ["a", "abc"]}, {"enum": [1, None, {"a": 1}]},
    {"enum": [[1], "a"]},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
    {"type": "object", "required": ["a"], "properties": {"a": {}}, "additionalProperties": False},
    {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
    {"required": ["a"]}, {"minProperties": 2}, {"maxProperties": 1},
    {"propertyNames": {"pattern": "^[a-z]"}}, {"dependentRequired": {"a": ["b"]}},
    {"items": {"type": "integer"}}, {"minItems": 1, "maxItems": 1}, {"uniqueItems": True},
    {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    {"anyOf": [{"type": "string"}, {"minimum": 10}]},
    {"oneOf": [{"type": "integer"}, {"minimum": 2}]},
    {"allOf": [{"type": "integer"}, {"maximum": 5}]},
    {"$defs": DEFS, "$ref": "#/$defs/name"},
    {"$defs": DEFS, "$ref": "#/$defs/node"},
    {"$defs": DEFS, "type": "object", "additionalProperties": {"$ref": "#/$defs/name"}},
    {"$defs": DEFS, "oneOf": [
        {"properties": {"kind": {"const": "n"}, "n": {"type": "integer"}}, "required": ["n"]},
        {"properties": {"kind": {"const": "s"}, "s": {"$ref": "#/$defs/name"}}},
    ]},
    # Keywords the compiler leaves to jsonschema.
    {"not": {"type": "string"}}, {"patternProperties": {"^a": {"type": "string"}}},
    {"type": "object", "properties": {"a": {"multipleOf": 2}}},
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: json.dumps(s)[:40])
def test_the_compiled_check_agrees_with_jsonschema(schema: Any) -> None:
    check = fast_check(schema)
    validator = Draft202012Validator(schema)
    expected = [validator.is_valid(value) for value in VALUES]
    assert [check(value) for value in VALUES] == expected
    # With a depth limit on free values, only values deeper than it change answer.
    deep = fast_check(schema, free_depth=MAX_FREE_DEPTH)
    assert [deep(value) for value in VALUES] == expected


def test_a_constant_mapping_is_compared_as_json_all_the_way_down() -> None:
    # Python says {"a": 1} == {"a": True}; JSON says they differ.
    check = fast_check({"const": {"a": True}})
    assert check({"a": True})
    assert not check({"a": 1})
    assert not fast_check({"enum": [[1]]})([True])


def test_free_values_are_bounded_in_depth_only_when_asked() -> None:
    schema = {"type": "object", "properties": {"metadata": {"description": "free"}}}
    shallow: Any = "leaf"
    for _ in range(MAX_FREE_DEPTH):
        shallow = {"k": shallow}
    too_deep = {"k": shallow}
    bounded = fast_check(schema, free_depth=MAX_FREE_DEPTH)
    assert bounded({"metadata": shallow})
    assert not bounded({"metadata": too_deep})
    assert not fast_check(True, free_depth=MAX_FREE_DEPTH)(too_deep)
    # The configuration's free values are bounded by the YAML reader instead.
    assert fast_check(schema)({"metadata": too_deep})


def test_a_part_jsonschema_checks_still_resolves_references_into_the_whole() -> None:
    schema = {
        "$defs": DEFS,
        "type": "object",
        "properties": {"a": {"not": {"$ref": "#/$defs/name"}}},
    }
    check = fast_check(schema)
    assert check({"a": 1}) and check({"a": "A"})
    assert not check({"a": "abc"})


PROBE = """
import json, sys
from batchplan.config.schema import fast_check
schema = json.loads(sys.argv[1])
check = fast_check(schema)
compiled = "jsonschema" in sys.modules
answers = [check(value) for value in json.loads(sys.argv[2])]
print(json.dumps([compiled, "jsonschema" in sys.modules, answers]))
"""
KNOWN_KEYWORDS = {
    "$defs": DEFS,
    "type": "object",
    "required": ["a"],
    "minProperties": 1,
    "propertyNames": {"pattern": "^[a-z]"},
    "dependentRequired": {"b": ["a"]},
    "properties": {
        "a": {"$ref": "#/$defs/name"},
        "b": {"enum": ["x", 1]},
        "c": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        "d": {"anyOf": [{"type": "null"}, {"const": 3}]},
        "e": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    },
}


def probe(schema: Any, values: list[Any]) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(schema), json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: list[Any] = json.loads(done.stdout)
    return result


def test_every_keyword_of_both_schemas_is_checked_without_jsonschema() -> None:
    values = [{"a": "ab", "b": 1, "c": 1, "d": 3, "e": ["x"]}, {"a": "ab", "e": ["x", "x"]}, {}]
    assert probe(KNOWN_KEYWORDS, values) == [False, False, [True, False, False]]


def test_an_unknown_keyword_imports_jsonschema_only_when_first_used() -> None:
    schema = {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}
    assert probe(schema, [{"b": "x"}, {"a": 1}, {"a": "x"}]) == [False, True, [True, True, False]]


def test_a_valid_config_document_is_checked_without_jsonschema() -> None:
    # The whole file's schema, references and all (saved plans: test_saved_plan_trust).
    values = [{"version": 1, "batches": [{"name": "a", "project": "p"}]}, {"version": 1}]
    assert probe(load_schema("batchplan.schema.json"), values) == [False, False, [True, False]]
    assert plan_check() is plan_check()
