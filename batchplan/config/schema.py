"""JSON Schema loading, the compiled check, and validation errors as one-line problems.

The schema files in ``schemas/`` are the single definition of a valid file;
this module finds them, compiles them into fast yes/no checks (one compiler
for configuration files and saved plans), and words their errors for
people. It knows nothing about YAML: callers pass a ``locate`` function that
maps a path inside the document to where it was written.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from batchplan.diagnostics import Diagnostic, Severity
from batchplan.errors import ConfigError
from batchplan.files import nested_deeper_than

if TYPE_CHECKING:
    # Imported only to word a failure: a valid config never loads jsonschema
    # (it costs a tenth of a second at start).
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

CONFIG_SCHEMA = "batchplan.schema.json"
PLAN_SCHEMA = "plan.schema.json"
#: How deep a value the plan schema leaves free (a metadata value) may nest in
#: a saved plan.
MAX_FREE_DEPTH = 64

JsonPath = tuple[str | int, ...]


#: Where a path of the document was written: (line, column), 1-based.
Locate = Callable[[JsonPath, bool], tuple[int, int]]


def schema_dir() -> Path:
    """The folder holding the schema files.

    In a source checkout that is the repository's top-level ``schemas/``; an
    installed wheel carries the same files as ``batchplan/_schemas`` (hatch
    ``force-include`` in pyproject.toml).
    """
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "schemas"
    if (checkout / CONFIG_SCHEMA).is_file():
        return checkout
    return package / "_schemas"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Read and parse one schema file from :func:`schema_dir`, once per process."""
    path = schema_dir() / name
    try:
        with path.open(encoding="utf-8") as fh:
            schema: dict[str, Any] = json.load(fh)
    except (OSError, ValueError) as exc:
        # A broken installation, not a user mistake; still say exactly what is wrong.
        problem = Diagnostic(
            Severity.ERROR, "schema_unreadable", f"{path}: cannot read schema: {exc}"
        )
        raise ConfigError([problem]) from exc
    return schema


def config_schema() -> dict[str, Any]:
    """The configuration file schema (``schemas/batchplan.schema.json``)."""
    return load_schema(CONFIG_SCHEMA)


class SchemaCheck:
    """One schema, checked two ways: a compiled yes/no, and jsonschema for the wording.

    :func:`fast_check` answers whether a value is valid; jsonschema is
    imported and its validator built only when a value is not, to say why.
    """

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.is_valid = fast_check(schema)
        self._validator: Draft202012Validator | None = None

    def iter_errors(self, document: Any) -> Iterator[ValidationError]:
        """jsonschema's errors for ``document`` (none for a valid one, without jsonschema)."""
        if self.is_valid(document):
            return iter(())
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.schema)
        return self._validator.iter_errors(document)


@functools.cache
def config_validator() -> SchemaCheck:
    """The check of configuration files, built once (building it is not free)."""
    return SchemaCheck(inline_local_refs(config_schema()))


def inline_local_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with each ``{"$ref": "#/$defs/NAME"}`` replaced by its target.

    Same meaning, but jsonschema then skips a reference lookup per value,
    which made validating 10,000 batches several times slower. References
    that are not to ``#/$defs/`` (or that are recursive) are kept.
    """
    defs = schema.get("$defs", {})

    def inline(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in defs and "/" not in name and name not in seen:
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                target = inline(defs[name], seen | {name})
                return {**target, **inline(siblings, seen)}
        return {key: inline(value, seen) for key, value in node.items()}

    inlined: dict[str, Any] = inline(schema, frozenset())
    return inlined


def schema_problems(
    document: Any,
    shown: Callable[[JsonPath], str | None],
    validator: SchemaCheck | None = None,
    *,
    file: str | None = None,
    locate: Locate | None = None,
    prefix: JsonPath = (),
) -> list[Diagnostic]:
    """Every way ``document`` breaks the schema, each a Diagnostic worded for people.

    ``document`` sits at ``prefix`` in the file ``file``: each problem's path
    is the full path there, ``shown`` and ``locate`` are asked with it.
    ``shown(path)`` returns the text a string value was written as when it
    differs from the value (it came from ``${NAME}``), so a message never
    prints an expanded variable, which may hold a token. ``locate(path,
    at_key)`` gives the (line, column) a value (or, ``at_key``, its key) was
    written at; without it problems have no place.
    """
    validator = validator or config_validator()
    # jsonschema reports a missing field once per field of ``required``, and
    # the wording of each names every missing field: keep each problem once.
    problems: dict[Diagnostic, None] = {}
    for error in validator.iter_errors(document):
        code = _CODES.get(str(error.validator), "schema_rule")
        if code == "empty_value" and error.validator_value != 1:
            code = "schema_rule"
        for path, message, at_key in _explain(error, prefix, shown):
            line, column = locate(path, at_key) if locate is not None else (None, None)
            problem = Diagnostic(Severity.ERROR, code, message, file, line, column, path)
            problems[problem] = None
    return list(problems)


# The diagnostic code of each JSON Schema keyword a failure can come from.
_CODES = {
    "additionalProperties": "unknown_field",
    "required": "missing_field",
    "type": "wrong_type",
    "maximum": "out_of_range",
    "minimum": "out_of_range",
    "minLength": "empty_value",
    "maxLength": "too_long",
    "pattern": "bad_format",
    "minItems": "wrong_count",
    "maxItems": "wrong_count",
    "minProperties": "too_few_entries",
    "const": "wrong_value",
}


def _explain(
    error: ValidationError, prefix: JsonPath, shown: Callable[[JsonPath], str | None]
) -> Iterator[tuple[JsonPath, str, bool]]:
    """(path, message, whether the place is the key's) of each problem ``error`` stands for."""
    path: JsonPath = (*prefix, *error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    written = shown(path)
    got = _describe(instance, written)
    if written is not None and instance == "":
        # The variable is named, as written; its value is known to be empty.
        got = f"{got}, which expands to the empty string"

    if kind == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema.get("properties", {}))
        for key in instance:
            if key not in known:
                yield (*path, key), _unknown_field(key, known), True
        return
    if kind == "required" and isinstance(error.validator_value, list):
        for field in error.validator_value:
            if isinstance(instance, dict) and field not in instance:
                yield path, f"missing required field '{field}'", False
        return
    if kind == "type":
        hint = schema.get("patternErrorMessage")
        if hint and _interpolable(error.validator_value):
            # "integer or string" would mislead: the string is only "${NAME}".
            yield path, f"{hint}, got {got}", False
        else:
            yield path, f"expected {_expected_types(error.validator_value)}, got {got}", False
    elif kind == "maximum":
        yield path, f"{got} is greater than the maximum of {error.validator_value}", False
    elif kind == "minimum":
        yield path, f"{got} is less than the minimum of {error.validator_value}", False
    elif kind == "minLength" and error.validator_value == 1:
        yield path, "must not be empty" + (f", got {got}" if written else ""), False
    elif kind == "maxLength" and isinstance(instance, str):
        # Not the value itself: it is the thing that is too long.
        yield (
            path,
            f"is {len(instance):,} characters long, more than the"
            f" {error.validator_value:,} allowed",
            False,
        )
    elif kind == "pattern":
        hint = schema.get("patternErrorMessage", f"must match {error.validator_value}")
        # Which character is wrong would tell about a ${NAME} value: only for text as written.
        where = _invisible(instance) if written is None else ""
        yield path, f"{hint}, got {got}{where}", False
    elif kind == "minItems" or kind == "maxItems":
        yield path, f"expected a list of {_items(schema)}, got {_count(instance)}", False
    elif kind == "minProperties":
        yield path, f"must hold at least {error.validator_value} entry", False
    elif kind == "const":
        yield path, f"must be {_describe(error.validator_value, None)}, got {got}", False
    else:
        # A keyword this wording table does not know yet: name the keyword
        # rather than print jsonschema's message, which repeats the value.
        yield path, f"{got} fails the schema's '{kind}' rule", False


def _invisible(value: Any) -> str:
    """Name the first character of ``value`` a terminal would not show as itself.

    Control, bidirectional and zero-width characters are invisible or move
    text around, so the message names one by code point: " (U+202E
    RIGHT-TO-LEFT OVERRIDE at character 2)".
    """
    if not isinstance(value, str):
        return ""
    for index, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cf"):
            name = unicodedata.name(char, "")
            label = f"U+{ord(char):04X}" + (f" {name}" if name else "")
            return f" ({label} at character {index + 1})"
    return ""


def _interpolable(types: Any) -> bool:
    """A type list of a field that is not a string but may be written ``${NAME}``."""
    names = [types] if isinstance(types, str) else list(types)
    return "string" in names and any(name not in ("string", "null") for name in names)


def _items(schema: dict[str, Any]) -> str:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if low == high:
        return f"exactly {low} values"
    return f"at least {low} values" if high is None else f"{low} to {high} values"


def _count(instance: Any) -> str:
    if isinstance(instance, list):
        return f"{len(instance)} value{'s' if len(instance) != 1 else ''}"
    return _describe(instance, None)


def _unknown_field(key: str, known: Sequence[str]) -> str:
    import difflib  # here, not at the top: only a config with a typo pays its import

    message = f"unknown field '{key}'"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"{message} (did you mean '{close[0]}'?)"
    if known:
        return f"{message} (allowed: {', '.join(known)})"
    return message


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _expected_types(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    # "or null" is true but noise: null is only ever the way to clear a default.
    if len(names) > 1 and "null" in names:
        names.remove("null")
    return " or ".join(_TYPE_WORDS.get(str(name), str(name)) for name in names)


def describe_value(value: Any, written: str | None) -> str:
    """``value`` as a message shows it: as ``written`` when it came from ``${NAME}``."""
    return _describe(value, written)


def _describe(value: Any, written: str | None) -> str:
    """A short rendering of a value for a message; never a whole mapping or list."""
    if written is not None:
        return repr(written)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# The compiled check.
#
# One compiler serves the configuration and saved plans. It turns a schema
# into plain Python predicates once, from the schema's own keywords, so the
# schema file stays the only definition of a valid value; a part using a
# keyword it does not know is checked by jsonschema (imported on first use).
# Only the yes/no answer comes from here: the wording of a failure always
# comes from jsonschema.

Check = Callable[[Any], bool]

# Keywords that only annotate: they never make a value invalid. ``$defs`` holds
# schemas that only count where referenced.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "patternErrorMessage",
        "$comment",
        "examples",
        "default",
        "$schema",
        "$id",
        "$defs",
    }
)
# Keywords about one value itself, checked by one closure (the common case).
_SCALAR = frozenset(
    {"type", "enum", "const", "minLength", "maxLength", "pattern", "minimum", "maximum"}
)
# A closed mapping with known fields: the shape of a batch, checked by one closure.
_CLOSED = frozenset({"type", "required", "additionalProperties", "properties"})
_OBJECT = frozenset(
    {
        "properties",
        "required",
        "additionalProperties",
        "dependentRequired",
        "propertyNames",
        "minProperties",
        "maxProperties",
    }
)
_ARRAY = frozenset({"items", "minItems", "maxItems", "uniqueItems"})
_COMBINED = frozenset({"$ref", "oneOf", "anyOf", "allOf"})
# Everything the compiler understands; any other keyword means jsonschema.
_KNOWN = _ANNOTATIONS | _SCALAR | _OBJECT | _ARRAY | _COMBINED


class _Context(NamedTuple):
    """What every part of one compiled schema shares."""

    #: The whole schema: ``#/$defs/NAME`` points into its ``$defs``.
    root: Any
    #: What a schema that allows anything (``{}``, ``true``) compiles to.
    free: Check
    #: Each ``$defs`` entry compiled once, when a reference to it is first used.
    defs: dict[str, Check]


def fast_check(schema: Any, *, free_depth: int | None = None, root: Any = None) -> Check:
    """A predicate equal to ``Draft202012Validator(schema).is_valid``, but much faster.

    Compiled once from ``schema`` for the keywords batchplan's schemas use
    (``type``, ``enum``, ``const``, string and number bounds, mapping and
    list keywords, ``oneOf``/``anyOf``/``allOf`` and ``#/$defs/`` references);
    a part using any other keyword is checked by jsonschema, imported only
    when that part is first used. Validating 100,000 batches, or a saved plan
    of 5,000 changes, through jsonschema took most of the time of the command.

    ``free_depth``: when given, a value the schema leaves free (``{}``, a
    metadata value) must not nest deeper than that, so nothing that later
    walks it recursively can overflow the stack; the only way the answer
    may differ from jsonschema's. ``root``: the whole schema, when ``schema``
    is a part of it whose references point into the whole's ``$defs``.
    """
    free = _always if free_depth is None else _shallower_than(free_depth)
    return _compile(schema, _Context(schema if root is None else root, free, {}))


def _compile(schema: Any, context: _Context) -> Check:
    if schema is True:
        return context.free
    if schema is False:
        return _never
    if not isinstance(schema, dict) or not _compilable(schema):
        return _jsonschema_check(schema, context.root)
    keys = schema.keys() - _ANNOTATIONS
    if not keys:
        return context.free
    if keys == {"type"}:
        return _type_check(schema["type"])
    if keys <= _SCALAR:
        return _scalar_check(schema)
    if keys <= _CLOSED and schema.get("type") == "object" and _closed(schema):
        return _object_check(schema, context)
    return _general_check(schema, context)


def _compilable(schema: dict[str, Any]) -> bool:
    """Whether every keyword is known and has the form the compiler expects."""
    if not schema.keys() <= _KNOWN:
        return False
    types = schema.get("type", [])
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list) or not all(_is_type_name(name) for name in names):
        return False
    # Older drafts' list form of ``items`` means something else: leave it to jsonschema.
    return isinstance(schema.get("items", True), dict | bool)


def _is_type_name(name: Any) -> bool:
    return isinstance(name, str) and name in _TYPES


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _shallower_than(limit: int) -> Check:
    def check(value: Any) -> bool:
        return not nested_deeper_than(value, limit)

    return check


def _jsonschema_check(schema: Any, root: Any) -> Check:
    """jsonschema's answer for ``schema``, built when first asked (the import is slow)."""
    is_part = isinstance(schema, dict) and isinstance(root, dict) and schema is not root
    if is_part and "$defs" in root:
        # A part of a larger schema: its references still point into the whole's $defs.
        schema = {**schema, "$defs": root["$defs"]}
    validator: list[Draft202012Validator] = []

    def check(value: Any) -> bool:
        if not validator:
            from jsonschema import Draft202012Validator

            validator.append(Draft202012Validator(schema))
        return bool(validator[0].is_valid(value))

    return check


def _general_check(schema: dict[str, Any], context: _Context) -> Check:
    """Every keyword of :data:`_KNOWN`, each applying only to values of its kind."""
    keys = schema.keys()
    parts: list[Check] = []
    if keys & _SCALAR:
        parts.append(_scalar_check({key: schema[key] for key in keys & _SCALAR}))
    if "$ref" in keys:
        parts.append(_ref_check(schema, context))
    if keys & _OBJECT:
        parts.append(_object_rules(schema, context))
    if keys & _ARRAY:
        parts.append(_array_rules(schema, context))
    if "allOf" in keys:
        parts.extend(_compile(sub, context) for sub in schema["allOf"])
    if "anyOf" in keys:
        parts.append(_any_of([_compile(sub, context) for sub in schema["anyOf"]]))
    if "oneOf" in keys:
        parts.append(_one_of([_compile(sub, context) for sub in schema["oneOf"]]))
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        # The usual case ("type" and the mapping keywords): no loop per value.
        first, second = parts
        return lambda value: first(value) and second(value)

    def check(value: Any) -> bool:
        return all(part(value) for part in parts)

    return check


def _ref_check(schema: dict[str, Any], context: _Context) -> Check:
    ref = schema["$ref"]
    defs = context.root.get("$defs", {}) if isinstance(context.root, dict) else {}
    name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
    # Only plain local names: anything needing JSON Pointer or URI decoding,
    # or pointing elsewhere, is left to jsonschema.
    if name == ref or name not in defs or any(c in name for c in "/~%"):
        return _jsonschema_check({"$ref": ref}, context.root)
    # Compiled when first used, so a recursive definition cannot loop here,
    # and once for every reference to it.
    compiled: list[Check] = []

    def check(value: Any) -> bool:
        if not compiled:
            if name not in context.defs:
                context.defs[name] = _compile(defs[name], context)
            compiled.append(context.defs[name])
        return compiled[0](value)

    return check


def _any_of(options: list[Check]) -> Check:
    return lambda value: any(option(value) for option in options)


def _one_of(options: list[Check]) -> Check:
    return lambda value: sum(1 for option in options if option(value)) == 1


def _object_rules(schema: dict[str, Any], context: _Context) -> Check:
    """The mapping keywords; a value that is not a mapping passes them."""
    properties = {key: _compile(sub, context) for key, sub in schema.get("properties", {}).items()}
    required = frozenset(schema.get("required", ()))
    extra = schema.get("additionalProperties", True)
    extra_ok = None if extra is True else _compile(extra, context)
    names = _compile(schema["propertyNames"], context) if "propertyNames" in schema else None
    min_properties = schema.get("minProperties")
    max_properties = schema.get("maxProperties")
    dependent = [
        (key, frozenset(needed)) for key, needed in schema.get("dependentRequired", {}).items()
    ]

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if not required <= value.keys():
            return False
        if min_properties is not None and len(value) < min_properties:
            return False
        if max_properties is not None and len(value) > max_properties:
            return False
        for key, needed in dependent:
            if key in value and not needed <= value.keys():
                return False
        for key, item in value.items():
            if names is not None and not names(key):
                return False
            sub = properties.get(key, extra_ok)
            if sub is not None and not sub(item):
                return False
        return True

    return check


def _array_rules(schema: dict[str, Any], context: _Context) -> Check:
    """The list keywords; a value that is not a list passes them."""
    items = _compile(schema["items"], context) if "items" in schema else None
    min_items = schema.get("minItems")
    max_items = schema.get("maxItems")
    unique = schema.get("uniqueItems", False) is True

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return True
        if min_items is not None and len(value) < min_items:
            return False
        if max_items is not None and len(value) > max_items:
            return False
        if items is not None and not all(map(items, value)):
            return False
        return not unique or _all_different(value)

    return check


def _all_different(values: list[Any]) -> bool:
    if all(isinstance(value, str) for value in values):
        return len(set(values)) == len(values)
    return not any(
        json_equal(values[i], values[j])
        for i in range(len(values))
        for j in range(i + 1, len(values))
    )


def _closed(schema: dict[str, Any]) -> bool:
    return schema.get("additionalProperties", True) is False


def _object_check(schema: dict[str, Any], context: _Context) -> Check:
    """A mapping with only the listed fields: the shape of a batch, in one closure."""
    properties = {key: _compile(sub, context) for key, sub in schema.get("properties", {}).items()}
    required = frozenset(schema.get("required", ()))

    def check(value: Any) -> bool:
        if not isinstance(value, dict) or not required <= value.keys():
            return False
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None or not sub(item):
                return False
        return True

    return check


_TYPES: dict[str, Check] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    # jsonschema: 20.0 is an integer.
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _type_check(names: Any) -> Check:
    if isinstance(names, str):
        return _TYPES[names]
    if len(names) == 1:
        return _TYPES[names[0]]
    wanted = frozenset(names)

    # One pass over the kinds of value rather than one call per allowed type.
    def check(value: Any) -> bool:
        if value is None:
            return "null" in wanted
        if isinstance(value, bool):
            return "boolean" in wanted
        if isinstance(value, int):
            return bool(wanted & {"integer", "number"})
        if isinstance(value, float):
            # jsonschema: 20.0 is an integer.
            return "number" in wanted or ("integer" in wanted and value.is_integer())
        if isinstance(value, str):
            return "string" in wanted
        if isinstance(value, dict):
            return "object" in wanted
        if isinstance(value, list):
            return "array" in wanted
        return False

    return check


def _scalar_check(schema: dict[str, Any]) -> Check:
    """The keywords about the value itself, in one closure (most fields have only these)."""
    type_ok = _type_check(schema["type"]) if "type" in schema else None
    min_length = schema.get("minLength")
    max_length = schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    minimum = schema.get("minimum")
    maximum = schema.get("maximum")
    has_const = "const" in schema
    const = schema.get("const")
    enum_ok = _enum_check(schema["enum"]) if "enum" in schema else None

    def check(value: Any) -> bool:
        if type_ok is not None and not type_ok(value):
            return False
        if isinstance(value, str):
            if min_length is not None and len(value) < min_length:
                return False
            if max_length is not None and len(value) > max_length:
                return False
            if pattern is not None and pattern.search(value) is None:
                return False
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if minimum is not None and value < minimum:
                return False
            if maximum is not None and value > maximum:
                return False
        if has_const and not json_equal(value, const):
            return False
        return enum_ok is None or enum_ok(value)

    return check


def _enum_check(options: list[Any]) -> Check:
    if all(isinstance(option, str) for option in options):
        strings = frozenset(options)
        return lambda value: isinstance(value, str) and value in strings
    return lambda value: any(json_equal(value, option) for option in options)


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON has it: ``true`` is not ``1``, ``1`` is ``1.0``, all the way down."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


@functools.cache
def plan_check() -> Check:
    """The compiled check of saved plans (``schemas/plan.schema.json``), built once.

    Free-form values (metadata) may nest at most :data:`MAX_FREE_DEPTH` levels.
    """
    return fast_check(load_schema(PLAN_SCHEMA), free_depth=MAX_FREE_DEPTH)
