"""A compiled yes/no check of a document against ``schemas/plan.schema.json``.

Reading a saved plan of 5,000 changes through jsonschema took three times as
long as making the plan. The schema file stays the one definition of a valid
plan: this module compiles the keywords that schema uses into plain Python
predicates once per process, and any keyword it does not know is checked by
jsonschema for that part only. The wording of an invalid file always comes
from jsonschema, which is imported only then.

Values the schema leaves free (``{}``: a metadata value) are checked for
nesting depth, so nothing later walks a value deep enough to overflow the stack.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from batchplan.files import nested_deeper_than

Check = Callable[[Any], bool]

#: How deep a free-form value (metadata) may nest in a saved plan.
MAX_FREE_DEPTH = 64

_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "$comment",
        "examples",
        "default",
        "$schema",
        "$id",
        "$defs",
        "patternErrorMessage",
    }
)
_KNOWN = _ANNOTATIONS | {
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "dependentRequired",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "oneOf",
    "anyOf",
    "$ref",
}


def compile_check(schema: Any, root: dict[str, Any] | None = None) -> Check:
    """A predicate equal to jsonschema's ``is_valid`` for ``schema`` (draft 2020-12).

    ``root`` holds the ``$defs`` a ``#/$defs/NAME`` reference points into.
    """
    root = schema if root is None else root
    if schema is True:
        return _free
    if schema is False:
        return lambda value: False
    if not isinstance(schema, dict) or not schema.keys() <= _KNOWN:
        return _jsonschema_check(schema, root)
    keys = schema.keys()
    checks = [make(schema, root) for group, make in _GROUPS if keys & group]
    if not checks:
        # Annotations only: any value, as long as it is not absurdly deep.
        return _free
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _free(value: Any) -> bool:
    return not nested_deeper_than(value, MAX_FREE_DEPTH)


def _jsonschema_check(schema: Any, root: dict[str, Any]) -> Check:
    from jsonschema import Draft202012Validator

    if isinstance(schema, dict) and "$defs" in root and schema is not root:
        schema = {**schema, "$defs": root["$defs"]}
    return Draft202012Validator(schema).is_valid


def _is_local_ref(ref: Any) -> bool:
    return isinstance(ref, str) and ref.startswith("#/$defs/")


def _ref(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    ref = schema["$ref"]
    name = ref.removeprefix("#/$defs/") if _is_local_ref(ref) else None
    defs = root.get("$defs", {})
    if name is None or name not in defs:
        return _jsonschema_check(schema, root)
    # Compiled when first used, so a recursive definition cannot loop here.
    compiled: list[Check] = []

    def check(value: Any) -> bool:
        if not compiled:
            compiled.append(compile_check(defs[name], root))
        return compiled[0](value)

    return check


_TYPES: dict[str, Check] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _type(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    names = schema["type"]
    wanted = [_TYPES[names]] if isinstance(names, str) else [_TYPES[n] for n in names]
    if len(wanted) == 1:
        return wanted[0]
    return lambda value: any(check(value) for check in wanted)


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON has it: ``true`` is not ``1``, ``1`` is ``1.0``, deep."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


def _enum(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    options = list(schema["enum"])
    if all(isinstance(option, str) for option in options):
        strings = frozenset(options)
        return lambda value: isinstance(value, str) and value in strings
    return lambda value: any(json_equal(value, option) for option in options)


def _const(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    const = schema["const"]
    return lambda value: json_equal(value, const)


def _object(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    properties = {
        key: compile_check(sub, root) for key, sub in schema.get("properties", {}).items()
    }
    extra = schema.get("additionalProperties", True)
    other = None if extra is True else compile_check(extra, root)
    required = frozenset(schema.get("required", ()))
    dependent = {
        key: frozenset(needed) for key, needed in schema.get("dependentRequired", {}).items()
    }

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if not required <= value.keys():
            return False
        for key, needed in dependent.items():
            if key in value and not needed <= value.keys():
                return False
        for key, item in value.items():
            sub = properties.get(key, other)
            if sub is not None and not sub(item):
                return False
        return True

    return check


def _array(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    items = compile_check(schema["items"], root) if "items" in schema else None
    low = schema.get("minItems")
    high = schema.get("maxItems")
    unique = schema.get("uniqueItems", False)

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        if low is not None and len(value) < low:
            return False
        if high is not None and len(value) > high:
            return False
        if items is not None and not all(map(items, value)):
            return False
        return not unique or _all_different(value)

    return check


def _all_different(values: list[Any]) -> bool:
    if all(isinstance(v, str) for v in values):
        return len(set(values)) == len(values)
    return not any(
        json_equal(values[i], values[j])
        for i in range(len(values))
        for j in range(i + 1, len(values))
    )


def _string(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    low = schema.get("minLength")
    high = schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None

    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        if low is not None and len(value) < low:
            return False
        if high is not None and len(value) > high:
            return False
        return pattern is None or pattern.search(value) is not None

    return check


def _number(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    low = schema.get("minimum")
    high = schema.get("maximum")

    def check(value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return True
        if low is not None and value < low:
            return False
        return high is None or value <= high

    return check


def _one_of(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    options = [compile_check(sub, root) for sub in schema["oneOf"]]
    return lambda value: sum(1 for option in options if option(value)) == 1


def _any_of(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    options = [compile_check(sub, root) for sub in schema["anyOf"]]
    return lambda value: any(option(value) for option in options)


# Keyword groups, each compiled into one check when any of its keywords is present.
_GROUPS: list[tuple[frozenset[str], Callable[[dict[str, Any], dict[str, Any]], Check]]] = [
    (frozenset({"type"}), _type),
    (frozenset({"enum"}), _enum),
    (frozenset({"const"}), _const),
    (frozenset({"$ref"}), _ref),
    (frozenset({"properties", "required", "additionalProperties", "dependentRequired"}), _object),
    (frozenset({"items", "minItems", "maxItems", "uniqueItems"}), _array),
    (frozenset({"minLength", "maxLength", "pattern"}), _string),
    (frozenset({"minimum", "maximum"}), _number),
    (frozenset({"oneOf"}), _one_of),
    (frozenset({"anyOf"}), _any_of),
]


@functools.cache
def plan_check() -> Check:
    """The compiled check of ``plan.schema.json``, built once per process."""
    from batchplan.config.schema import load_schema

    schema = load_schema("plan.schema.json")
    return compile_check(schema)
