"""One base error for everything a user can cause, and a subclass per area.

The CLI's single handler turns a :class:`BatchplanError` into its message and
``exit_code``; anything else is a bug and shows a traceback only with
``--debug``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from batchplan.diagnostics import Diagnostic, Severity

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_UNSAFE = 3
EXIT_STALE = 4
EXIT_INTERRUPTED = 130

#: When several outcomes hold at once, the first of these in this order is the
#: exit code: an error (conflicts, usage) beats a stale plan, which beats an
#: unsafe plan, which beats "changes pending".
PRECEDENCE = (EXIT_ERROR, EXIT_STALE, EXIT_UNSAFE, EXIT_CHANGES)


def first_exit(codes: Iterable[int]) -> int:
    """The exit code for several outcomes at once, by ``PRECEDENCE``; 0 for none."""
    found = set(codes)
    return next((code for code in PRECEDENCE if code in found), EXIT_OK)


def os_reason(exc: OSError) -> str:
    """``Permission denied``, not ``[Errno 13] Permission denied: 'x'``: callers name the path."""
    return exc.strerror or str(exc)


class BatchplanError(Exception):
    """An expected failure with a message a user can act on."""

    exit_code = EXIT_ERROR


class ConfigError(BatchplanError):
    """The configuration is invalid; carries every problem found, not just the first.

    ``problems`` are the lines printed; ``diagnostics`` the same problems with
    their codes and places (a plain sentence becomes an ``invalid_config`` one).
    """

    def __init__(self, problems: Sequence[str | Diagnostic]) -> None:
        self.diagnostics = tuple(
            p if isinstance(p, Diagnostic) else Diagnostic(Severity.ERROR, "invalid_config", p)
            for p in problems
        )
        self.problems = tuple(str(p) for p in self.diagnostics)
        super().__init__("\n".join(self.problems))


class UsageError(BatchplanError):
    """The command line itself is wrong (bad flag, missing argument)."""


class ApiError(BatchplanError):
    """A Scale API call failed; names the call and the answer it got."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.api_message = message
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{method} {path}: {answer}: {message}")


class ApiUnreachableError(ApiError):
    """No answer at all (connection refused, timeout) after every retry."""


class StateError(BatchplanError):
    """The state file or backend cannot be read, written or trusted."""


class LockError(StateError):
    """Another run holds the state lock."""


class PlanError(BatchplanError):
    """The plan has conflicts, or a saved plan file cannot be used."""


class UnsafePlanError(BatchplanError):
    """The plan exceeds a safety limit and ``--force`` was not given."""

    exit_code = EXIT_UNSAFE


class StalePlanError(BatchplanError):
    """A saved plan no longer matches config, live or state."""

    exit_code = EXIT_STALE


class ModifiedPlanError(StalePlanError):
    """A saved plan file whose content no longer matches its own digest."""
