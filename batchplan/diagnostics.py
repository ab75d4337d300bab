"""One type for every problem batchplan reports: a :class:`Diagnostic`.

YAML, schema, ``for_each`` and configuration problems, and the plan's
findings, all become a ``Diagnostic``: a severity, a stable code, where (file,
line, column and a path into the document) and a message for people. The
code is what tools match (``validate --format json``, the plan JSON); the
message's wording may change. :data:`CODES` lists every code with its
meaning; ``docs/diagnostics.md`` lists the same, and a test keeps them equal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, NamedTuple


class Severity(enum.Enum):
    """How much a diagnostic matters: an error stops the command, the others inform."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


#: Every code, with what it means. The plan's finding codes are the plan
#: document's ``code`` values, unchanged.
CODES: Final[dict[str, str]] = {
    # Reading files and YAML.
    "path_problem": "a config path given does not exist, is not a config file, or holds none",
    "file_unreadable": "a file cannot be read (permissions, not UTF-8, ...)",
    "file_too_large": "a file is over the size a config may have",
    "file_empty": "a file holds nothing",
    "yaml_syntax": "a file is not valid YAML",
    "yaml_invalid": "YAML batchplan refuses: an unknown tag, an alias cycle, too deep, ...",
    "yaml_bad_value": "a tagged value that is not of its tag (`!!int abc`)",
    "duplicate_key": "a mapping holds the same key twice",
    "variable_invalid": "a `${NAME}` or `${each.NAME}` that is malformed or has no value",
    "value_undeclared": "(warning) a `--var` or var-file value for a name `variables:` does "
    "not declare: no `${NAME}` can use it (a typo?)",
    "variable_unset": "a `${NAME}` not set while `validate` checks (a note, not an error)",
    "integer_too_long": "an integer of more digits than batchplan reads",
    # The schema.
    "unknown_field": "a field the schema does not know (a typo?)",
    "missing_field": "a required field is missing",
    "wrong_type": "a value of the wrong type (a string where a number goes, ...)",
    "out_of_range": "a number under the minimum or over the maximum",
    "empty_value": "an empty string where a value is needed",
    "too_long": "a string longer than its field allows",
    "bad_format": "a string not of the form its field needs (a name, a callback, ...)",
    "wrong_count": "a list with too few or too many values",
    "too_few_entries": "a mapping with fewer entries than needed",
    "wrong_value": "a value other than the one allowed (`version: 1`)",
    "schema_rule": "a value that breaks another rule of the schema",
    "schema_unreadable": "batchplan's own schema file cannot be read (a broken installation)",
    # Building the configuration.
    "bad_loop": "a `for_each` loop that cannot be expanded (a bad range, step or format)",
    "each_misuse": "`${each.NAME}` where no loop gives NAME its values",
    "too_many_batches": "`for_each` makes more batches than a run may",
    "more_problems": "a count of further problems (of a file, or of the batches one `for_each` "
    "generates), not shown one by one",
    "no_project": "a batch without a project",
    "duplicate_name": "a batch name declared twice, or generated twice by one `for_each`",
    "settings_twice": "`settings` in more than one file",
    "declared_twice": "`variables` or `environments` in more than one file",
    "variable_undeclared": "a `${NAME}` whose NAME the `variables` block does not declare",
    "bad_callback": "a callback the API would not take as a URL or an e-mail address "
    "(an unclosed `[`, a port that is no number, no host, ...)",
    "name_not_nfc": "a batch name not in Unicode NFC form (two spellings of one word)",
    "not_json": "a metadata value that is not JSON",
    "metadata_too_large": "a batch's metadata over the size it may have as JSON",
    "config_too_large": "the configuration stands for more bytes than a run may, once expanded",
    # Variables given on the command line.
    "var_malformed": "a `--var` without `=`",
    "variable_name_invalid": "a `--var` NAME or a `--var-file` key that is no variable name",
    "variable_not_text": "a `--var-file` value that is not a string (or an integer)",
    # A plain sentence with no kind of its own.
    "invalid_config": "another problem of the configuration",
    # The plan's findings (severity error unless said).
    "project_missing": "a configured project does not exist",
    "recorded_missing": "a batch in state is not live anywhere (wrong account or endpoint?)",
    "project_changed": "the name is live in another project",
    "callback_changed": "the configured callback differs from the live one",
    "create_flag_changed": "calibration_batch / self_label_batch differ from the live batch's",
    "already_finalized": "(warning) `finalized: false`, but the batch is already finalized",
    "name_cannot_change": "(warning) one batch forgotten and one created with the same fields: "
    "names cannot change",
    "status_left_alone": "(warning) the config asks a change of a batch in a status batchplan "
    "leaves alone (paused, cancelled, unknown): no call",
    "name_unmanageable": "(warning) a live name no config can hold: listed unmanaged, escaped",
    "managed_elsewhere": "the batch's `batchplan.lineage` metadata names another state",
}


class LoopValues(NamedTuple):
    """The loop values of one generated batch, a step of its field path.

    ``batches[0]`` then ``LoopValues((("region", "eu"),))`` then ``"name"``
    reads ``batches[0] (region=eu).name``: which of the entry's batches.
    """

    each: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        # A loop value may be as long as a list item can be: the path shows its start.
        return ", ".join(
            f"{name}={value if len(value) <= 40 else value[:37] + '...'}"
            for name, value in self.each
        )


#: Where a value is in a document: keys, list indices and, for a generated
#: batch, its loop values, from the top down. Built as data and turned into
#: text once, by :func:`path_text`.
FieldPath = tuple[str | int | LoopValues, ...]


def path_text(path: FieldPath) -> str:
    """``("batches", 2, "priority")`` as ``batches[2].priority``; ``()`` as ``""``."""
    text = ""
    for part in path:
        if isinstance(part, LoopValues):
            text += f" ({part})"
        elif isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Diagnostic:
    """One problem: how bad, which kind (a stable code), where and what.

    ``line`` and ``column`` are 1-based, None when the problem has no place in
    a file (a missing file, a whole project); ``path`` is the field path in
    the document as data (``("batches", 2, "priority")``), ``()`` when there
    is none; :attr:`path_text` is how it reads (``batches[2].priority``).
    """

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: FieldPath = ()

    @property
    def path_text(self) -> str:
        """The field path as people and tools read it: ``batches[2].priority``, or ``""``."""
        return path_text(self.path)

    @property
    def is_error(self) -> bool:
        """Whether this makes the configuration (or the plan) invalid."""
        return self.severity is Severity.ERROR

    @property
    def is_note(self) -> bool:
        """Whether this is only worth telling: it makes nothing invalid."""
        return self.severity is Severity.NOTE

    @property
    def place(self) -> str | None:
        """``file:line:column``, or None when the problem has no place in a file."""
        return f"{self.file}:{self.line}:{self.column}" if self.line else None

    def __str__(self) -> str:
        """``file:line:column: path: message``, as every command prints a problem."""
        where = self.place
        if where is None:
            return self.message
        path = self.path_text
        return f"{where}: {path}: {self.message}" if path else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The diagnostic as JSON data (the ``problems`` of ``validate --format json``)."""
        return {
            "severity": self.severity.value,
            "code": self.code,
            "file": self.file or None,
            "line": self.line or None,
            "column": self.column or None,
            "path": self.path_text or None,
            "message": self.message,
        }
