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
from typing import Any, Final


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
    "variable_unset": "a `${NAME}` not set while `validate` checks (a note, not an error)",
    # The schema.
    "unknown_field": "a field the schema does not know (a typo?)",
    "missing_field": "a required field is missing",
    "wrong_type": "a value of the wrong type (a string where a number goes, ...)",
    "out_of_range": "a number under the minimum or over the maximum",
    "empty_value": "an empty string where a value is needed",
    "bad_format": "a string not of the form its field needs (a name, a callback, ...)",
    "wrong_count": "a list with too few or too many values",
    "too_few_entries": "a mapping with fewer entries than needed",
    "wrong_value": "a value other than the one allowed (`version: 1`)",
    "schema_rule": "a value that breaks another rule of the schema",
    # Building the configuration.
    "bad_loop": "a `for_each` loop that cannot be expanded (a bad range, step or format)",
    "each_misuse": "`${each.NAME}` where no loop gives NAME its values",
    "too_many_batches": "`for_each` makes more batches than a run may",
    "more_problems": "a count of further problems of generated batches, not shown one by one",
    "no_project": "a batch without a project",
    "duplicate_name": "a batch name declared twice, or generated twice by one `for_each`",
    "settings_twice": "`settings` in more than one file",
    "not_json": "a metadata value that is not JSON",
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


@dataclass(frozen=True)
class Diagnostic:
    """One problem: how bad, which kind (a stable code), where and what.

    ``line`` and ``column`` are 1-based, None when the problem has no place in
    a file (a missing file, a whole project); ``path`` is the field path in
    the document (``batches[2].priority``), None when there is none.
    """

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        """``file:line:column: path: message``, as every command prints a problem."""
        if not self.line:
            return self.message
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The diagnostic as JSON data (the ``problems`` of ``validate --format json``)."""
        return {
            "severity": self.severity.value,
            "code": self.code,
            "file": self.file or None,
            "line": self.line or None,
            "column": self.column or None,
            "path": self.path or None,
            "message": self.message,
        }
