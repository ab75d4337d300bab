"""``batchplan validate``: check the configuration; no network, no secrets needed.

An unset ``${NAME}`` is a note here, not an error, so that the check runs in a
pre-commit hook or a pull request without the values plan and apply need.
Three output formats (see :mod:`batchplan.views.validate`): ``text`` for
people, ``json`` for programs, ``github`` as GitHub workflow commands, which
annotate the lines of a pull request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from batchplan.commands.arguments import ValidateArguments
from batchplan.config.environments import GivenValues
from batchplan.config.load import ConfigCheck, check_config
from batchplan.diagnostics import Diagnostic
from batchplan.errors import EXIT_ERROR, EXIT_OK, ConfigError
from batchplan.views.terminal import make_echo
from batchplan.views.validate import (
    VALIDATE_FORMATS,
    ConfigSummary,
    FileCount,
    Validation,
    validate_view,
)

FORMATS = VALIDATE_FORMATS


def validate(
    paths: Sequence[str],
    echo: Callable[[str], None],
    *,
    fmt: str = "text",
    variables: Mapping[str, str] | None = None,
    verbose: bool = False,
    given: GivenValues | None = None,
    variable_problems: Sequence[Diagnostic] = (),
) -> int:
    """Print every error, warning and note; exit 1 if there is any error, else 0.

    ``verbose`` (text only) adds a line per file: how many batches it holds,
    and how many of them ``for_each`` generated. ``given`` says where the
    values came from (undeclared ones are warned about);
    ``variable_problems`` are what was wrong with them, reported first.
    """
    view = validate_view(fmt, echo, verbose=verbose)
    check = check_config(paths, variables=variables, require_variables=False, given=given)
    validation = validation_of(check)
    if variable_problems:
        # Without the values, what the config then says is no valid summary.
        validation = Validation((*variable_problems, *validation.problems), None)
    view.show(validation)
    if not validation.errors:
        return EXIT_OK
    if not view.prints_errors:
        # The CLI's one error handler prints these as every other error.
        raise ConfigError(list(validation.errors))
    return EXIT_ERROR


def validation_of(check: ConfigCheck) -> Validation:
    """What the view prints: the diagnostics, and the summary of a valid configuration."""
    problems = check.problems
    config = check.config
    if config is None:
        return Validation(problems, None)
    counts = {file: [0, 0] for file in config.files}
    for batch in config.batches:
        if batch.position is None:
            continue
        count = counts.setdefault(batch.position.file, [0, 0])
        count[0] += 1
        count[1] += bool(batch.each)
    summary = ConfigSummary(
        batches=len(config.batches),
        files=len(config.files),
        projects=len(config.projects),
        per_file=tuple(FileCount(file, n, generated) for file, (n, generated) in counts.items()),
    )
    return Validation(problems, summary)


def run(args: ValidateArguments) -> int:
    """``batchplan validate`` with its parsed arguments."""
    return validate(
        args.paths,
        make_echo(args.color),
        fmt=args.format,
        variables=dict(args.variables),
        verbose=args.verbose,
        given=GivenValues(args.var_files, args.var_names),
        variable_problems=args.variable_problems,
    )
