"""``for_each``: one batch entry that stands for many batches.

A ``for_each`` maps loop names to the values each loop takes: a list of
scalars, or ``{range: [FROM, TO], step: ..., format: ...}`` over integers,
months (``YYYY-MM``) or days (``YYYY-MM-DD``), both ends included. Several
loops give their product, the first key outermost. Every string field of the
entry may use ``${each.NAME}``; such a field is compiled once into a
:class:`FieldTemplate` and rendered per generated batch with ``str.format``, so
generating 100,000 batches costs little more than building them.

This module knows nothing about files: problems are handed to a ``report``
callback, with the path below the loop (for :func:`loop_of`) or for the
field, and the config loader, which knows the file and the marks, makes each
one a :class:`~batchplan.diagnostics.Diagnostic`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from batchplan.config.yamlload import interpolate

#: Generated batches per run, across every ``for_each`` of every file.
MAX_GENERATED: Final = 100_000

_DAY_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTH_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})")
_TOKEN: Final = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_EACH_NAME: Final = re.compile(r"each\.([A-Za-z_][A-Za-z0-9_]*)")

_UNITS: Final = ("day", "week", "month", "year")
_DEFAULT_FORMAT: Final = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


#: Where a loop is wrong, below its name in ``for_each``: ``("range", 0)``.
LoopPath = tuple[str | int, ...]
#: Told each problem of a loop: where (a :data:`LoopPath`) and what.
LoopReport = Callable[[LoopPath, str], None]


class _BadLoop(Exception):
    """Why a loop cannot be expanded; :func:`loop_of` reports it."""

    def __init__(self, path: LoopPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Loop(NamedTuple):
    """One loop, its values as they appear in ``${each.NAME}``, computed lazily.

    ``width`` is at least the length of its longest value, known without
    computing them, so that what a loop expands to is budgeted first.
    """

    name: str
    size: int
    values: Callable[[], list[str]]
    width: int = 0


def loop_of(name: str, spec: Any, report: LoopReport) -> Loop | None:
    """The loop ``spec`` (already schema-valid) describes, or None after reporting why not.

    Counting comes first and needs no values, so a range of millions of days
    is refused by the cap without ever being built.
    """
    try:
        return _loop(name, spec)
    except _BadLoop as bad:
        report(bad.path, bad.message)
        return None


def _loop(name: str, spec: Any) -> Loop:
    if isinstance(spec, list):
        values = [_scalar_text(item) for item in spec]
        width = max(map(len, values), default=0)
        return Loop(name, len(values), lambda: values, width)
    bounds = spec["range"]
    start, end = bounds
    step = spec.get("step")
    fmt = spec.get("format")
    if isinstance(start, int) and isinstance(end, int):
        return _integer_loop(name, start, end, step, fmt)
    if isinstance(start, str) and isinstance(end, str):
        first, kind = _parse_point(start)
        last, last_kind = _parse_point(end)
        if first is None:
            raise _BadLoop(("range", 0), f"{start!r} is not a real date")
        if last is None:
            raise _BadLoop(("range", 1), f"{end!r} is not a real date")
        if kind != last_kind:
            raise _BadLoop(
                ("range",), f"both ends must be {_kind_words(kind)}: {start!r} and {end!r}"
            )
        return _calendar_loop(name, first, last, kind, step, fmt)
    raise _BadLoop(
        ("range",), "both ends must be integers, or both dates (YYYY-MM-DD) or months (YYYY-MM)"
    )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kind_words(kind: str) -> str:
    return "days (YYYY-MM-DD)" if kind == "day" else "months (YYYY-MM)"


def _parse_point(text: str) -> tuple[datetime.date | None, str]:
    day = _DAY_RE.fullmatch(text)
    try:
        if day:
            return datetime.date(int(day[1]), int(day[2]), int(day[3])), "day"
        month = _MONTH_RE.fullmatch(text)
        if month:
            return datetime.date(int(month[1]), int(month[2]), 1), "month"
    except ValueError:
        pass
    return None, "day" if day else "month"


def _integer_loop(name: str, start: int, end: int, step: Any, fmt: Any) -> Loop:
    if step is None:
        step = 1
    step = _whole(step)
    if not isinstance(step, int):
        raise _BadLoop(("step",), f"an integer range steps by a whole number, not {step!r}")
    if fmt is not None:
        raise _BadLoop(("format",), "'format' applies to date and month ranges only")
    if end < start:
        raise _BadLoop(("range",), f"the range goes backwards: {start} is after {end}")
    count = (end - start) // step + 1
    width = max(len(str(start)), len(str(end)))
    return Loop(name, count, lambda: [str(value) for value in range(start, end + 1, step)], width)


def _calendar_loop(
    name: str, first: datetime.date, last: datetime.date, kind: str, step: Any, fmt: Any
) -> Loop:
    if last < first:
        raise _BadLoop(
            ("range",), f"the range goes backwards: {first.isoformat()} is after {last.isoformat()}"
        )
    unit = kind if step is None else _whole(step)
    if kind == "month" and unit in ("day", "week"):
        raise _BadLoop(("step",), f"a range of months cannot step by {unit}; use days")
    if isinstance(unit, int):
        # A bare number counts the range's own unit: days or months.
        amount, unit = unit, kind
    else:
        amount = 1
    if not isinstance(unit, str) or unit not in _DEFAULT_FORMAT:
        raise _BadLoop(("step",), "expected day, week, month, year or a whole number")
    longest = _LONGEST_STEP[unit]
    if amount > longest:
        # Past every date there is, and past what date arithmetic can add.
        raise _BadLoop(
            ("step",),
            f"a step of more than {longest:,} {unit}s goes past the last date there is"
            " (9999-12-31); to take only the first date, list it: [FROM]",
        )
    if fmt is None:
        fmt = _DEFAULT_FORMAT[unit]
    elif not _formats_dates(fmt):
        raise _BadLoop(("format",), f"{fmt!r} holds no date field (such as %Y, %m or %d)")
    try:
        sample = first.strftime(fmt)
    except ValueError as exc:  # e.g. a format that ends in a lone '%'
        raise _BadLoop(("format",), f"{fmt!r} is not a date format: {exc}") from None
    # A date field is at most a few characters wider for another date
    # (a month's name): enough slack for each one.
    width = len(sample) + 16 * fmt.count("%")
    if unit in ("day", "week"):
        days = amount * (7 if unit == "week" else 1)
        count = (last - first).days // days + 1

        def day_values() -> list[str]:
            delta = datetime.timedelta(days=days)
            return [(first + delta * index).strftime(fmt) for index in range(count)]

        return Loop(name, count, day_values, width)
    months = amount * (12 if unit == "year" else 1)
    span = (last.year - first.year) * 12 + last.month - first.month
    count = span // months + 1
    if _add_months(first, (count - 1) * months) > last:
        count -= 1

    def month_values() -> list[str]:
        return [_add_months(first, index * months).strftime(fmt) for index in range(count)]

    return Loop(name, count, month_values, width)


_SPAN_DAYS: Final = (datetime.date.max - datetime.date.min).days
#: The longest step of each unit that still lands on a date.
_LONGEST_STEP: Final = {
    "day": _SPAN_DAYS,
    "week": _SPAN_DAYS // 7,
    "month": 9999 * 12,
    "year": 9999,
}


def _whole(step: Any) -> Any:
    """A step written as a whole float (``1e3``, which the schema lets through) as an int."""
    if isinstance(step, float) and step.is_integer():
        return int(step)
    return step


def _formats_dates(fmt: str) -> bool:
    return re.search(r"%[A-Za-z]", fmt) is not None


def _add_months(start: datetime.date, months: int) -> datetime.date:
    """``start`` moved by whole months, the day kept or clamped to the month's end.

    Always counted from ``start``, so 01-31 steps to 02-29 (a leap year), then
    03-31: the clamp of one month does not carry into the next.
    """
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    import calendar  # here, not at the top: only month loops pay its import

    return datetime.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


class FieldTemplate(NamedTuple):
    """A string field with ``${each.NAME}`` compiled for ``str.format``.

    ``value`` renders what the API receives; ``shown`` what output may show
    (``${NAME}`` variables kept as written), or ``None`` when the two agree.
    ``names`` are the loop names it uses.
    """

    value: str
    shown: str | None
    names: frozenset[str]

    def render(self, values: Sequence[str]) -> str:
        return self.value.format(*values)

    def render_shown(self, values: Sequence[str]) -> str:
        return (self.shown if self.shown is not None else self.value).format(*values)


def compile_template(
    raw: str,
    loops: Sequence[str],
    environ: Mapping[str, str],
    report: Callable[[str], None],
    report_unset: Callable[[str], None] | None = None,
) -> FieldTemplate | None:
    """Compile ``raw`` for the loops ``loops`` (in key order), or ``None`` after reporting.

    ``${NAME}`` variables are expanded here, once, so an unset one is reported
    once for the entry rather than once per generated batch.
    """
    position = {name: index for index, name in enumerate(loops)}
    value: list[str] = []
    shown: list[str] = []
    uses_variables = False
    used: set[str] = set()
    ok = True

    def fail(message: str) -> None:
        nonlocal ok
        ok = False
        report(message)

    last = 0
    for match in _TOKEN.finditer(raw):
        literal = raw[last : match.start()]
        value.append(_brace_escape(literal))
        shown.append(_brace_escape(literal))
        last = match.end()
        token = match.group(0)
        if token == "$${":
            value.append("${{")
            shown.append("$${{")
            continue
        body = match.group(1)
        each = _EACH_NAME.fullmatch(body) if match.group(2) else None
        if body.startswith("each.") and match.group(2):
            if each is None or each[1] not in position:
                known = ", ".join(loops)
                fail(f"'${{{body}}}' names no loop of this entry's for_each (loops: {known})")
                ok = False
                continue
            field = "{" + str(position[each[1]]) + "}"
            used.add(each[1])
            value.append(field)
            shown.append(field)
            continue
        uses_variables = True
        # An unclosed "${" runs to the end of the string, so ``token`` is all of it.
        expanded = interpolate(token, environ, fail, report_unset)
        value.append(_brace_escape(expanded))
        shown.append(_brace_escape(token))
    value.append(_brace_escape(raw[last:]))
    shown.append(_brace_escape(raw[last:]))
    if not ok:
        return None
    return FieldTemplate(
        "".join(value), "".join(shown) if uses_variables else None, frozenset(used)
    )


def _brace_escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
