"""Safe, bounded YAML reading that remembers where every value was written.

Config files come from pull requests, so the reader treats them as untrusted:
only plain data (no ``!!python/...`` or other tags), a single document, and
hard limits on file size, nesting depth and alias expansion, checked while
the events stream in, so that a hostile file fails in milliseconds instead of
exhausting memory or the stack. Every problem becomes a
:class:`~batchplan.diagnostics.Diagnostic` naming the file, the line and column
and the field path; no other exception leaves :func:`load_yaml`.

Scalars are typed by the YAML 1.2 core schema (the one yaml-language-server
uses in editors), not PyYAML's YAML 1.1: only ``true``/``false`` are
booleans, so ``finalized: yes`` is an error instead of a guess, and
``2020-07-01`` is a string. ``${NAME}`` is expanded in values while reading
(see :func:`interpolate`).

Containers are :class:`YamlMap` / :class:`YamlList`, a ``dict`` / ``list``
that also holds the 1-based (line, column) of each key and value, so a
schema error found on the plain data can be pointed back at the file.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, NoReturn

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from batchplan.diagnostics import Diagnostic, FieldPath, Severity
from batchplan.errors import os_reason
from batchplan.redact import remember

#: Bigger files are refused unread: a config of 100,000 batches is ~5 MiB.
MAX_FILE_BYTES: Final = 32 * 1024 * 1024
#: Values in one file after aliases are expanded; bounds "billion laughs".
MAX_NODES: Final = 2_000_000
#: Bytes one file stands for once aliases and ``${NAME}`` values are expanded,
#: counted as the JSON it amounts to: an alias repeats its anchor's bytes, so a
#: 1 MiB string aliased 20,000 times is 20 GiB, refused after 64 aliases.
MAX_EXPANDED_BYTES: Final = 64 * 1024 * 1024
#: Decimal digits of an integer: Python's own limit for turning an integer into
#: text (int_max_str_digits), fixed here so every machine reads a file alike.
#: A larger one could not even be printed in a message or a plan.
MAX_INTEGER_DIGITS: Final = 4300
#: Errors reported per file; the rest are only counted ("and N more").
MAX_PROBLEMS: Final = 100
#: Duplicate keys per file whose message says where the first one was.
_PLACED_DUPLICATES: Final = 100
#: Nesting of mappings and lists; a valid config needs 3.
MAX_DEPTH: Final = 64

# libyaml is ~10x faster than the pure-Python parser; both give the same events.
_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)

Mark = tuple[int, int]
"""(line, column), both 1-based."""

_TAG_PREFIX: Final = "tag:yaml.org,2002:"
_STR: Final = _TAG_PREFIX + "str"
_INT: Final = _TAG_PREFIX + "int"
_FLOAT: Final = _TAG_PREFIX + "float"
_BOOL: Final = _TAG_PREFIX + "bool"
_NULL: Final = _TAG_PREFIX + "null"
_MAP_TAGS: Final = frozenset({None, "!", _TAG_PREFIX + "map"})
_SEQ_TAGS: Final = frozenset({None, "!", _TAG_PREFIX + "seq"})

# YAML 1.2 core schema: https://yaml.org/spec/1.2.2/#1032-tag-resolution
_CORE_WORDS: Final[Mapping[str, Any]] = {
    "": None,
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
_INT_RE: Final = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE: Final = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
# Plain scalars that start with anything else are strings: the fast path.
_MAYBE_TYPED_START: Final = frozenset("-+.0123456789~nNtTfF")

# Characters YAML forbids (https://yaml.org/spec/1.2.2/#51-character-set).
_NON_PRINTABLE: Final = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

_VARIABLE: Final = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_EACH_PREFIX: Final = "each."
_VARIABLE_BODY: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


class Template(str):
    """A string value holding ``${each.NAME}``: kept exactly as written.

    Such a value is only known once ``for_each`` gives the loop values, so
    the reader expands nothing in it (not even ``${NAME}`` or ``$${``); the
    config loader expands it per generated batch. The type tells it apart from
    a plain string that merely reads ``${each.x}`` after a ``$${`` escape.
    """

    __slots__ = ()


_NOTHING_WRITTEN: Final[Mapping[str, str]] = MappingProxyType({})
_NOTHING_WRITTEN_AT: Final[Mapping[int, str]] = MappingProxyType({})


class YamlMap(dict[str, Any]):
    """A mapping that remembers where it, each key and each value were written.

    ``written`` holds, for values that came from ``${NAME}``, the text as
    written: that, not the value, is what messages and plans may show.
    """

    __slots__ = ("expanded_bytes", "mark", "marks", "written")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        #: Its size as JSON, roughly, with aliases and ``${NAME}`` expanded.
        self.expanded_bytes = 0
        # Key line, key column, value line, value column for each key, in key
        # order: one flat array of machine integers rather than two tables of
        # tuples, as a config may hold 100,000 mappings. Looked up only to
        # word a problem or place a batch.
        self.marks = array("l")
        # Shared and empty until a value needs it: most mappings never do,
        # and a config may hold 100,000 of them.
        self.written: Mapping[str, str] = _NOTHING_WRITTEN

    @property
    def key_marks(self) -> Mapping[str, Mark]:
        """Where each key was written."""
        return _Marks(self, 0)

    @property
    def value_marks(self) -> Mapping[str, Mark]:
        """Where each value was written."""
        return _Marks(self, 2)


class _Marks(Mapping[str, Mark]):
    """A read-only view of one half of :attr:`YamlMap.marks`."""

    __slots__ = ("_at", "_map")

    def __init__(self, mapping: YamlMap, at: int) -> None:
        self._map = mapping
        self._at = at

    def __getitem__(self, key: str) -> Mark:
        if key not in self._map:
            raise KeyError(key)
        at = list(self._map).index(key) * 4 + self._at
        marks = self._map.marks
        return marks[at], marks[at + 1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: object) -> bool:
        return key in self._map


class YamlRoot(YamlMap):
    """The top-level mapping of a file, which also counts its ``${each.NAME}`` strings."""

    __slots__ = ("templates",)

    def __init__(self, mark: Mark) -> None:
        super().__init__(mark)
        self.templates = 0


class YamlList(list[Any]):
    """A list that remembers where it and each item were written."""

    __slots__ = ("expanded_bytes", "item_marks", "mark", "written")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        #: Its size as JSON, roughly, with aliases and ``${NAME}`` expanded.
        self.expanded_bytes = 0
        self.item_marks: list[Mark] = []
        self.written: Mapping[int, str] = _NOTHING_WRITTEN_AT


_INTEGER_CEILING: Final = 10**MAX_INTEGER_DIGITS


class _TooManyDigits:
    """What an integer past :data:`MAX_INTEGER_DIGITS` reads as, until reported."""


_TOO_MANY_DIGITS: Final = _TooManyDigits()


def _too_many_digits(value: Any) -> bool:
    if value is _TOO_MANY_DIGITS:
        return True
    # Only ints can be this large: a float tops out near 1.8e308.
    return type(value) is int and not -_INTEGER_CEILING < value < _INTEGER_CEILING


def text_bytes(text: str) -> int:
    """The UTF-8 size of ``text``, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class _Fatal(Exception):
    """Stops reading one file; :func:`load_yaml` makes it a Diagnostic naming the file."""

    def __init__(
        self, mark: Mark, message: str, path: FieldPath = (), code: str = "yaml_invalid"
    ) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.path = path
        self.code = code

    def diagnostic(self, file: str) -> Diagnostic:
        return problem_at(file, self.mark, self.path, self.message, self.code)


def problem_at(
    file: str,
    mark: Mark,
    path: FieldPath,
    message: str,
    code: str,
    severity: Severity = Severity.ERROR,
) -> Diagnostic:
    """A problem at ``mark`` of ``file``; a mark of line 0 means the file as a whole."""
    line, column = mark
    return Diagnostic(severity, code, message, file, line or None, column or None, path)


class _Anchored(NamedTuple):
    value: Any
    size: int
    height: int
    written: str | None
    #: What the value counts towards MAX_EXPANDED_BYTES each time it is used.
    nbytes: int = 0


_IN_PROGRESS: Final = _Anchored(None, 0, 0, None)
_DUPLICATE: Final = object()


class _Frame:
    """A mapping or list being built, with what the next child needs to know."""

    __slots__ = ("anchor", "container", "height", "key", "key_mark", "nbytes", "size")

    def __init__(self, container: YamlMap | YamlList, anchor: str | None) -> None:
        self.container = container
        self.anchor = anchor
        # For a mapping: None while a key is expected, else the key whose
        # value comes next (_DUPLICATE: a repeated key, whose value is dropped).
        self.key: object = None
        self.key_mark: Mark = (0, 0)
        self.size = 1
        self.height = 1
        # Braces or brackets, as in JSON; keys and values add their own.
        self.nbytes = 2


def load_yaml(
    path: Path,
    environ: Mapping[str, str] | None,
    *,
    require_variables: bool = True,
    variables_file: bool = False,
    name: str | None = None,
) -> tuple[YamlRoot | None, list[Diagnostic]]:
    """Read one config file into a :class:`YamlMap`, with every problem found.

    The map is ``None`` when the file could not be read as a whole (bad
    bytes, broken YAML, a limit hit, not a mapping at the top); otherwise it
    is returned even if some values had problems (an unset variable, a
    duplicate key), so that the caller can report schema errors too.

    ``environ`` supplies ``${NAME}``; ``None`` reads every ``$`` literally.
    ``variables_file`` words problems for a ``--var-file`` (a mapping of
    names to values) rather than for a config file. Without
    ``require_variables`` an unset variable is a note, not an error.
    ``name`` is the file as problems name it (default: ``path`` as text).
    """
    file = str(path) if name is None else name
    composer = None
    try:
        composer = _Composer(_read_text(path, variables_file), environ, require_variables, file)
        composer.variables_file = variables_file
        return composer.compose()
    except _Fatal as fatal:
        # Problems found before the fatal one (an unset variable above a
        # syntax error) are still worth reporting.
        if composer is None:
            return None, [fatal.diagnostic(file)]
        composer.count_hidden()
        return None, [*composer.problems, fatal.diagnostic(file)]
    except RecursionError:  # pragma: no cover - the depth limit should prevent it
        message = "the file is nested too deeply to read"
        return None, [problem_at(file, (1, 1), (), message, "yaml_invalid")]
    except MemoryError:  # pragma: no cover - the size limits should prevent it
        message = "not enough memory to read the file"
        return None, [problem_at(file, (1, 1), (), message, "yaml_invalid")]


def _read_text(path: Path, variables_file: bool = False) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Fatal((1, 1), _too_big(size), code="file_too_large")
        with path.open("rb") as fh:
            # Read in chunks up to one byte more than allowed (st_size lies for
            # pipes and /proc); one read(MAX + 1) would allocate the whole
            # 32 MiB up front for every file, however small.
            chunks: list[bytes] = []
            total = 0
            while total <= MAX_FILE_BYTES:
                chunk = fh.read(min(1 << 20, MAX_FILE_BYTES + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            data = b"".join(chunks)
    except OSError as exc:
        # Line 0: a problem with the file as a whole, told as one plain sentence.
        what = "variables file" if variables_file else "config"
        raise _Fatal(
            (0, 0), f"cannot read {what} {path}: {os_reason(exc)}", code="file_unreadable"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise _Fatal((1, 1), _too_big(len(data)), code="file_too_large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        raise _Fatal(
            (line, column),
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); batchplan reads UTF-8 YAML only",
            code="file_unreadable",
        ) from None
    text = text.removeprefix("\ufeff")
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        char = ord(bad.group())
        what = "a NUL byte" if char == 0 else f"control character U+{char:04X}"
        raise _Fatal(
            _mark_of(text, bad.start()),
            f"{what} is not allowed in YAML (is this a binary file?)",
        )
    return text


def _too_big(size: int) -> str:
    mib = MAX_FILE_BYTES // (1024 * 1024)
    return (
        f"the file is {size / (1024 * 1024):.1f} MiB, more than the {mib} MiB limit;"
        " split it into several files"
    )


def _mark_of(text: str, index: int) -> Mark:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag


class _Composer:
    """Builds YamlMap/YamlList from parser events, enforcing the limits as it goes.

    Written as a loop over events with an explicit stack rather than recursion,
    so depth is bounded by MAX_DEPTH and never by Python's stack.
    """

    def __init__(
        self,
        text: str,
        environ: Mapping[str, str] | None,
        require_variables: bool = True,
        file: str = "",
    ) -> None:
        self.text = text
        #: The file as problems name it.
        self.file = file
        self.environ = environ
        self.require_variables = require_variables
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.nodes = 0
        self.expanded = 0
        self.problems: list[Diagnostic] = []
        # Errors past MAX_PROBLEMS: how many, and where the last one was.
        self.errors = 0
        self.hidden = 0
        self.last_hidden: Mark = (1, 1)
        self.root: Any = None
        self.root_mark: Mark = (1, 1)
        self.root_map: YamlRoot | None = None
        self.variables_file = False
        self.duplicates = 0
        self.documents = 0

    def compose(self) -> tuple[YamlRoot | None, list[Diagnostic]]:
        try:
            self._run(_events(self.text))
        except yaml.YAMLError as exc:
            raise _Fatal(*self._syntax_error(exc), code="yaml_syntax") from None
        self.count_hidden()
        if self.documents == 0 or self.root is None:
            raise _Fatal(
                (1, 1), f"the file is empty; it needs {self._top_level()}", code="file_empty"
            )
        if not isinstance(self.root, YamlRoot):
            kind = "a list" if isinstance(self.root, list) else "a single value"
            raise _Fatal(
                self.root_mark,
                f"the top level must be {self._top_level()}, not {kind}",
            )
        return self.root, self.problems

    def _top_level(self) -> str:
        if self.variables_file:
            return "a mapping of variable names to values"
        return "a mapping with 'version: 1' and 'batches:'"

    def _syntax_error(self, exc: yaml.YAMLError) -> tuple[Mark, str]:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where: Mark = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"invalid YAML: {problem}"
        if context:
            # libyaml often notices a problem (an unclosed bracket) lines after
            # its cause, so say where the construct it was reading began.
            begun = getattr(exc, "context_mark", None)
            if begun is not None and (begun.line + 1, begun.column + 1) != where:
                context += f" that began at line {begun.line + 1}, column {begun.column + 1}"
            message += f" ({context})"
        lines = self.text.splitlines()
        if 0 < where[0] <= len(lines):
            line = lines[where[0] - 1]
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            if "\t" in indent or "tab" in problem:
                message += "; indent with spaces, YAML does not allow tabs for indentation"
        return where, message

    def _run(self, events: Iterable[yaml.Event]) -> None:
        stack = self.stack
        for event in events:
            kind = type(event)
            if kind is ScalarEvent:
                self._scalar(event)  # type: ignore[arg-type]
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self._start(event)  # type: ignore[arg-type]
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                container = frame.container
                container.expanded_bytes = frame.nbytes
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = _Anchored(
                        container, frame.size, frame.height, None, frame.nbytes
                    )
                self._attach(
                    container, container.mark, frame.size, frame.height, None, frame.nbytes
                )
            elif kind is AliasEvent:
                self._alias(event)  # type: ignore[arg-type]
            elif kind is DocumentStartEvent:
                self.documents += 1
                if self.documents > 1:
                    raise _Fatal(
                        _mark(event),
                        "a second YAML document ('---') in one file; use one document per file",
                    )

    def _start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        mark = _mark(event)
        is_map = type(event) is MappingStartEvent
        if event.tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            self._bad_tag(event.tag, mark)
        self._expect_value(mark)
        if len(self.stack) >= MAX_DEPTH:
            # No field path: at this depth it would be a line of "[0]"s.
            raise _Fatal(mark, f"values nested more than {MAX_DEPTH} levels deep")
        self._count(1, 2, mark)
        if not is_map:
            container: YamlMap | YamlList = YamlList(mark)
        elif self.stack:
            container = YamlMap(mark)
        else:
            container = self.root_map = YamlRoot(mark)
        if event.anchor is not None:
            self.anchors[event.anchor] = _IN_PROGRESS
        self.stack.append(_Frame(container, event.anchor))

    def _scalar(self, event: ScalarEvent) -> None:
        mark = _mark(event)
        raw: str = event.value
        tag = event.tag
        if self.stack:
            frame = self.stack[-1]
            if frame.key is None and isinstance(frame.container, YamlMap):
                self._key(frame, frame.container, raw, tag, mark)
                return
        text = raw
        written = None
        if "$" in raw and self.environ is not None:
            if is_template(raw):
                if tag not in (None, "!", _STR):
                    self._bad_tag(tag, mark)
                nbytes = text_bytes(raw) + 2
                self._count(1, nbytes, mark)
                if self.root_map is not None:
                    self.root_map.templates += 1
                if event.anchor is not None:
                    self.anchors[event.anchor] = _Anchored(Template(raw), 1, 0, None, nbytes)
                self._attach(Template(raw), mark, 1, 0, None, nbytes)
                return
            text = self._interpolate(raw, mark)
            if text != raw.replace("$${", "${"):
                written = raw
        # A value from ${NAME} counts by what it expands to, quotes included.
        nbytes = (len(text) if text.isascii() else text_bytes(text)) + 2
        self._count(1, nbytes, mark)
        if tag is None or tag == "!":
            # (plain, quoted) implicit flags: only an untagged plain scalar is typed.
            # A variable set to "" gives "", not the null an empty plain
            # scalar means: `name: ${N}` with N= is an empty name, told as such.
            typed = event.implicit[0] and tag is None and (text or written is None)
            value = _core_value(text) if typed else text
        elif tag == _STR:
            value = text
        elif tag in (_INT, _FLOAT, _BOOL, _NULL):
            value = _core_value(text)
            if not _tag_matches(tag, value) and not _too_many_digits(value):
                self._report(
                    mark, f"{text!r} is not a valid {_short_tag(tag)}", code="yaml_bad_value"
                )
        else:
            self._bad_tag(tag, mark)
        if type(value) is not str and _too_many_digits(value):
            self._report(
                mark,
                f"an integer of more than {MAX_INTEGER_DIGITS:,} digits;"
                " batchplan reads integers up to that size",
                code="integer_too_long",
            )
            # Not the number itself: nothing downstream could print it.
            value = None
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(value, 1, 0, written, nbytes)
        self._attach(value, mark, 1, 0, written, nbytes)

    def _key(self, frame: _Frame, mapping: YamlMap, raw: str, tag: str | None, mark: Mark) -> None:
        if tag not in (None, "!", _STR):
            self._bad_tag(tag, mark)
        if raw in mapping:
            frame.key = _DUPLICATE
            self.duplicates += 1
            if self.errors >= MAX_PROBLEMS:
                # Counted, not worded: a hostile file may hold a million.
                self._hide(mark)
                return
            message = f"key '{raw}' appears twice in this mapping"
            if self.duplicates <= _PLACED_DUPLICATES:
                # Finding the first key's line walks the mapping's keys: fine
                # for a few, quadratic for a hostile file of a million.
                message += f"; first at line {mapping.key_marks[raw][0]}"
            self._report(mark, message, self._path(raw), code="duplicate_key")
            return
        # Charged without a check: a key is never an alias, and the value
        # that follows it is checked.
        nbytes = (len(raw) if raw.isascii() else text_bytes(raw)) + 2
        self.expanded += nbytes
        frame.nbytes += nbytes
        frame.key = raw
        frame.key_mark = mark

    def _alias(self, event: AliasEvent) -> None:
        mark = _mark(event)
        self._expect_value(mark)
        anchored = self.anchors.get(event.anchor or "")
        if anchored is None:
            raise _Fatal(
                mark, f"alias *{event.anchor} refers to no anchor &{event.anchor} before it"
            )
        if anchored is _IN_PROGRESS:
            raise _Fatal(mark, f"alias *{event.anchor} is inside its own anchor (a cycle)")
        if len(self.stack) + anchored.height > MAX_DEPTH:
            raise _Fatal(
                mark,
                f"alias *{event.anchor} nests values more than {MAX_DEPTH} levels deep",
            )
        self._count(anchored.size, anchored.nbytes, mark, alias=event.anchor)
        self._attach(
            anchored.value,
            mark,
            anchored.size,
            anchored.height,
            anchored.written,
            anchored.nbytes,
        )

    def _expect_value(self, mark: Mark) -> None:
        if self.stack:
            frame = self.stack[-1]
            if frame.key is None and isinstance(frame.container, YamlMap):
                raise _Fatal(mark, "a mapping key must be a plain string", self._path())

    def _count(self, nodes: int, nbytes: int, mark: Mark, alias: str | None = None) -> None:
        """Charge ``nodes`` values and ``nbytes`` bytes to the file's budgets."""
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise _Fatal(
                mark,
                f"more than {MAX_NODES:,} values once aliases are expanded"
                " (an alias bomb?); split the file or use fewer aliases",
            )
        self.expanded += nbytes
        if self.expanded > MAX_EXPANDED_BYTES:
            mib = MAX_EXPANDED_BYTES // (1024 * 1024)
            why = (
                f"alias *{alias} ({nbytes:,} bytes) takes the file past {mib} MiB"
                if alias is not None
                else f"the file stands for more than {mib} MiB"
            )
            raise _Fatal(
                mark,
                f"{why} once aliases and ${{NAME}} values are expanded (an alias bomb?);"
                " split the file or repeat less",
                self._path(),
            )

    def _report(
        self,
        mark: Mark,
        message: str,
        path: FieldPath | None = None,
        *,
        code: str,
        note: bool = False,
    ) -> None:
        """Record a problem of the value being read (or at ``path``); past
        MAX_PROBLEMS errors, only count it."""
        if note:
            where = self._path() if path is None else path
            self.problems.append(problem_at(self.file, mark, where, message, code, Severity.NOTE))
        elif self.errors >= MAX_PROBLEMS:
            self._hide(mark)
        else:
            self.errors += 1
            where = self._path() if path is None else path
            self.problems.append(problem_at(self.file, mark, where, message, code))

    def count_hidden(self) -> None:
        """Add one problem that counts the errors not recorded, if any."""
        if self.hidden:
            self.problems.append(
                problem_at(
                    self.file,
                    self.last_hidden,
                    (),
                    f"and {self.hidden:,} more problems in this file"
                    f" (the first {MAX_PROBLEMS} are shown)",
                    "more_problems",
                )
            )
            self.hidden = 0

    def _hide(self, mark: Mark) -> None:
        self.hidden += 1
        self.last_hidden = mark

    def _attach(
        self,
        value: Any,
        mark: Mark,
        size: int,
        height: int,
        written: str | None,
        nbytes: int,
    ) -> None:
        if not self.stack:
            self.root, self.root_mark = value, mark
            return
        frame = self.stack[-1]
        frame.size += size
        frame.nbytes += nbytes
        if height >= frame.height:
            frame.height = height + 1
        container = frame.container
        if isinstance(container, YamlMap):
            key = frame.key
            frame.key = None
            if key is _DUPLICATE:
                return
            assert isinstance(key, str)
            container[key] = value
            container.marks.extend((*frame.key_mark, *mark))
            if written is not None:
                if container.written is _NOTHING_WRITTEN:
                    container.written = {}
                container.written[key] = written  # type: ignore[index]
        else:
            if written is not None:
                if container.written is _NOTHING_WRITTEN_AT:
                    container.written = {}
                container.written[len(container)] = written  # type: ignore[index]
            container.append(value)
            container.item_marks.append(mark)

    def _bad_tag(self, tag: str | None, mark: Mark) -> NoReturn:
        raise _Fatal(
            mark,
            f"YAML tag '{_short_tag(tag or '')}' is not allowed; batchplan reads plain data only",
            self._path(),
        )

    def _path(self, last: str | None = None) -> FieldPath:
        """The field path of the value being read, e.g. ``("batches", 3, "priority")``."""
        parts: list[str | int] = []
        for frame in self.stack:
            container = frame.container
            if isinstance(container, YamlMap):
                if isinstance(frame.key, str):
                    parts.append(frame.key)
            else:
                parts.append(len(container))
        if last is not None:
            parts.append(last)
        return tuple(parts)

    def _interpolate(self, raw: str, mark: Mark) -> str:
        assert self.environ is not None
        return interpolate(
            raw,
            self.environ,
            lambda message: self._report(mark, message, code="variable_invalid"),
            None
            if self.require_variables
            else lambda message: self._report(mark, message, code="variable_unset", note=True),
        )


def is_template(raw: str) -> bool:
    """Whether ``raw`` refers to a loop value, ``${each.NAME}`` (not ``$${each.``)."""
    if "${" + _EACH_PREFIX not in raw:
        return False
    return any(
        match.group(0) != "$${" and match.group(1).startswith(_EACH_PREFIX)
        for match in _VARIABLE.finditer(raw)
    )


def unset_message(name: str) -> str:
    """What an unset ``${NAME}`` without a fallback is told as."""
    return (
        f"variable '{name}' is not set (set it in the environment or give"
        f" --var {name}=VALUE, or write ${{{name}:-fallback}} to give a default)"
    )


def interpolate(
    raw: str,
    environ: Mapping[str, str],
    report: Callable[[str], None],
    report_unset: Callable[[str], None] | None = None,
) -> str:
    """Expand ``${NAME}`` and ``${NAME:-fallback}``; ``$${`` is a literal ``${``.

    ``:-`` uses the fallback when NAME is unset or empty, as in the shell.
    Each problem (an unset variable, a malformed ``${``) is passed to
    ``report(message)``; its ``${...}`` expands to "" so reading can go on.
    An unset variable goes to ``report_unset`` instead when one is given.
    Every value found is remembered as a secret (masked in all output) unless
    ``environ`` names it in ``shown_names``: a declared, non-sensitive
    variable, whose value plans show.
    """
    shown: frozenset[str] = getattr(environ, "shown_names", frozenset())

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body, closed = match.group(1), match.group(2)
        if not closed:
            report(f"unclosed '${{' in {raw!r}; write '$${{' for a literal '${{'")
            return ""
        parsed = _VARIABLE_BODY.fullmatch(body)
        if parsed is None:
            report(
                f"malformed '${{{body}}}': expected ${{NAME}} or ${{NAME:-fallback}};"
                " write '$${' for a literal '${'"
            )
            return ""
        name, fallback = parsed.group(1), parsed.group(2)
        if fallback is not None and "${" in fallback:
            # The first "}" ends the reference, so "${X:-${Y}}" would read as
            # the fallback "${Y" followed by "}": refused rather than misread.
            report(
                f"'${{{body}}}...': a fallback cannot hold another '${{': nested defaults "
                f"are not supported; give {name} a value with --var, a var file or "
                "a declared default instead"
            )
            return ""
        value = environ.get(name)
        if value and name not in shown:
            remember(value)  # a variable's value may be a secret: masked in every output
        if fallback is not None:
            return value if value else fallback
        if value is None:
            (report_unset or report)(unset_message(name))
            return ""
        return value

    return _VARIABLE.sub(expand, raw)


def _events(text: str) -> Iterator[yaml.Event]:
    """The parser's events, as ``yaml.parse`` gives them with half the calls per event."""
    loader = _Loader(text)
    try:
        get_event = loader.get_event
        while (event := get_event()) is not None:
            yield event
    finally:
        loader.dispose()


def _core_value(text: str) -> Any:
    """Type a plain scalar by the YAML 1.2 core schema."""
    if text and text[0] not in _MAYBE_TYPED_START:
        return text
    if text in _CORE_WORDS:
        return _CORE_WORDS[text]
    if _INT_RE.fullmatch(text):
        try:
            if text.startswith("0o"):
                return int(text[2:], 8)
            if text.startswith("0x"):
                return int(text[2:], 16)
            return int(text)
        except ValueError:  # more digits than Python converts (int_max_str_digits)
            return _TOO_MANY_DIGITS
    if _FLOAT_RE.fullmatch(text):
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(text)
    return text


def _tag_matches(tag: str, value: Any) -> bool:
    if tag == _NULL:
        return value is None
    if tag == _BOOL:
        return isinstance(value, bool)
    if tag == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mark(event: yaml.Event) -> Mark:
    start = event.start_mark
    return (start.line + 1, start.column + 1) if start is not None else (1, 1)
