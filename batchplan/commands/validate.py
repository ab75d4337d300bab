"""``batchplan validate``: check the configuration; no network, no secrets needed.

An unset ``${NAME}`` is a note here, not an error, so that the check runs in a
pre-commit hook or a pull request without the values plan and apply need.
Three output formats: ``text`` for people, ``json`` for programs, ``github``
as GitHub workflow commands, which annotate the lines of a pull request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from batchplan.config import ConfigCheck, ConfigProblem, check_config
from batchplan.errors import EXIT_ERROR, EXIT_OK, ConfigError

FORMATS = ("text", "json", "github")


def validate(
    paths: Sequence[str],
    echo: Callable[[str], None],
    *,
    fmt: str = "text",
    variables: Mapping[str, str] | None = None,
) -> int:
    """Print every error and note; exit 1 if there is any error, else 0."""
    check = check_config(paths, variables=variables, require_variables=False)
    if fmt == "json":
        echo(json.dumps(_document(check), indent=2, ensure_ascii=False))
        return EXIT_ERROR if check.errors else EXIT_OK
    if fmt == "github":
        for problem in check.problems:
            echo(_workflow_command(problem))
        if not check.errors:
            echo(_summary(check))
        return EXIT_ERROR if check.errors else EXIT_OK
    for note in check.notes:
        echo(f"note: {note}")
    if check.errors:
        # The CLI's one error handler prints these as every other error.
        raise ConfigError([str(problem) for problem in check.errors])
    echo(_summary(check))
    return EXIT_OK


def _summary(check: ConfigCheck) -> str:
    config = check.config
    assert config is not None
    batches, files, projects = len(config.batches), len(config.files), len(config.projects)
    return (
        f"Configuration is valid: {batches} batch{'es' if batches != 1 else ''} "
        f"in {files} file{'s' if files != 1 else ''}, "
        f"{projects} project{'s' if projects != 1 else ''}."
    )


def _document(check: ConfigCheck) -> dict[str, Any]:
    """The ``--format json`` document (``format_version`` 1)."""
    config = check.config
    return {
        "format_version": 1,
        "valid": not check.errors,
        "problems": [_problem_json(problem) for problem in check.problems],
        "summary": None
        if config is None
        else {
            "batches": len(config.batches),
            "files": len(config.files),
            "projects": len(config.projects),
        },
    }


def _problem_json(problem: ConfigProblem) -> dict[str, Any]:
    return {
        "severity": problem.severity,
        "file": problem.file or None,
        "line": problem.line or None,
        "column": problem.column or None,
        "path": problem.path or None,
        "message": problem.message,
    }


def _workflow_command(problem: ConfigProblem) -> str:
    """``::error file=F,line=L,col=C::message`` (``::notice`` for a note)."""
    kind = "notice" if problem.note else "error"
    properties = []
    if problem.file:
        properties.append(f"file={_escape_property(problem.file)}")
    if problem.line:
        properties.append(f"line={problem.line}")
        properties.append(f"col={problem.column}")
    text = f"{problem.path}: {problem.message}" if problem.path else problem.message
    joined = ",".join(properties)
    return f"::{kind}{' ' + joined if joined else ''}::{_escape_data(text)}"


def _escape_data(text: str) -> str:
    # GitHub's own escaping for workflow command data (actions/toolkit).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
