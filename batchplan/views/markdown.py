"""The plan for a pull-request comment: summary first, details folded away.

The first line is a heading with the summary line and the hidden marker
``<!-- batchplan-plan -->``, by which a CI job finds its own comment and
updates it in place. Conflicts and warnings come next, as short lists, then
one ``<details>`` block with a table of the changes.

GitHub refuses comments over 65,536 characters, so the whole output is kept
under ``limit``: list items and table rows are added while they fit, and a
note says how many were left out. Everything user-supplied (batch, project,
file names) is shown as a code span, where Markdown, HTML, @mentions and
autolinks have no effect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from batchplan.escaping import escape_controls
from batchplan.plan.changes import Action, Change, Finding, Plan
from batchplan.plan.words import (
    finding_diagnostic,
    headline,
    metadata_text,
    refusal_line,
    summary_line,
    value_text,
)
from batchplan.views.text import SYMBOLS, by_project, compact_actions

MARKER = "<!-- batchplan-plan -->"
DEFAULT_LIMIT = 60_000
#: Below this the heading and fixed notes alone might not fit.
MIN_LIMIT = 2_000

_SHOW_ALL = "run `batchplan show` on the saved plan for the whole plan"
# Characters that can start Markdown inline syntax, a table cell or GitHub
# math; each is escaped with a backslash, which CommonMark defines for every
# ASCII punctuation character.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&$])")
_BACKTICKS = re.compile(r"`+")


def code(text: str, *, in_table: bool = False) -> str:
    """``text`` as a Markdown code span whose content shows literally.

    The fence is one backtick longer than the longest run inside; control,
    bidirectional and invisible characters (a newline would end a table row)
    show as escapes. In a GFM table a pipe must be escaped even inside a
    code span.
    """
    text = escape_controls(text)
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    if (
        text.startswith("`")
        or text.endswith("`")
        or (text.startswith(" ") and text.endswith(" ") and text.strip(" "))
    ):
        # CommonMark strips one space from each side of such content.
        text = f" {text} "
    return f"{fence}{text}{fence}"


def escape(text: str) -> str:
    """Free text (a conflict message) safe to place in a Markdown line.

    Control, bidirectional and invisible characters show as escapes.
    A word joiner after ``@`` keeps a name like ``@org/team`` from notifying
    anyone on every push.
    """
    text = escape_controls(text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("@", "@\u2060")


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


@dataclass
class _Section:
    """Fixed lines always shown, items shown while they fit, a note for the rest.

    Items get a line each (``sep="\\n"``), or are joined by ``sep`` onto the
    last ``before`` line, the note too. ``after`` follows the items; with one
    item per line the note (``more(n)`` for ``n`` left-out items) comes last.
    """

    before: list[str]
    items: list[str] = field(default_factory=list)
    more: Callable[[int], str] | None = None
    after: list[str] = field(default_factory=list)
    sep: str = "\n"

    def fixed_size(self) -> int:
        size = sum(len(line) + 1 for line in self.before + self.after)
        if self.items and self.more is not None:
            # The longest note it could need: every item left out.
            size += len(self.more(len(self.items))) + len(self.sep)
        return size

    def render(self, budget: int) -> tuple[list[str], int]:
        """The lines, given ``budget`` characters for the items; and the budget left."""
        shown: list[str] = []
        for item in self.items:
            cost = len(item) + (len(self.sep) if shown or self.sep == "\n" else 0)
            if cost > budget:
                break
            shown.append(item)
            budget -= cost
        left_out = len(self.items) - len(shown)
        note = [self.more(left_out)] if left_out and self.more is not None else []
        lines = list(self.before)
        if self.sep == "\n":
            lines.extend(shown)
        else:
            lines[-1] += self.sep.join(shown + note)
            note = []
        return [*lines, *self.after, *note], budget


def _layout(sections: Sequence[_Section], limit: int) -> str:
    """Fixed lines first, then the items of each section in order, while they fit."""
    budget = limit - sum(section.fixed_size() for section in sections)
    lines: list[str] = []
    for section in sections:
        shown, budget = section.render(max(budget, 0))
        lines.extend(shown)
    return "\n".join(lines) + "\n"


def _priority(value: int | None) -> str:
    return "(unknown)" if value is None else str(value)


def _row(change: Change) -> str:
    before, after = change.before, change.after
    if Action.PRIORITIZE not in change.actions:
        priority = ""
    elif Action.CREATE in change.actions:
        priority = _priority(after.priority if after else None)
    else:
        old = before.priority if before else None
        priority = f"{_priority(old)} -> {_priority(after.priority if after else None)}"
    if Action.FINALIZE not in change.actions:
        finalize = ""
    elif change.finalize_if_staging:
        finalize = "if created staging"
    else:
        finalize = "staging -> in_progress"
    symbol = SYMBOLS[change.symbol_action][0]
    cells = (
        code(symbol, in_table=True),
        ", ".join(action.value for action in change.actions),
        code(change.batch, in_table=True),
        code(change.project, in_table=True),
        priority,
        finalize,
        "<br>".join(code(item, in_table=True) for item in _details(change)),
    )
    return "| " + " | ".join(cells) + " |"


def _details(change: Change) -> list[str]:
    """What a create or set_metadata sends beyond the other columns, in shown form."""
    items = []
    if Action.CREATE in change.actions:
        if change.after is not None and change.after.callback:
            items.append(f"callback {change.after.callback}")
        items.extend(
            f"{flag}: true"
            for flag, value in (
                ("calibration_batch", change.calibration_batch),
                ("self_label_batch", change.self_label_batch),
            )
            if value
        )
        items.extend(f"metadata {e.key}: {value_text(e.after)}" for e in change.metadata)
    elif Action.SET_METADATA in change.actions:
        items.extend(f"metadata {metadata_text(e)}" for e in change.metadata)
    return items


def _subject(batch: str | None, project: str) -> str:
    return code(batch) if batch is not None else f"project {code(project)}"


def _conflict_line(conflict: Finding) -> str:
    """``- `batch` (`file:line:column`): message``: a conflict, worded as its diagnostic."""
    diagnostic = finding_diagnostic(conflict)
    place = f" ({code(diagnostic.place)})" if diagnostic.place else ""
    return f"- {_subject(conflict.batch, conflict.project)}{place}: {escape(diagnostic.message)}"


def _compact_sections(plan: Plan, limit: int) -> list[_Section]:
    """Counts per project in sight, then one line per batch, grouped by project, folded."""
    groups = by_project(plan)
    n = len(plan.changes)
    lines = []
    for project, changes, counts in groups:
        # Blank lines around the heading: right after a list item it would
        # continue that item.
        lines.append(f"\n**{code(project)}**: {counts}\n")
        lines.extend(
            f"- {code(SYMBOLS[c.symbol_action][0])} {code(c.batch)}: {compact_actions(c)}"
            for c in changes
        )
    return [
        _Section(
            ["", "Changes by project:"],
            [f"- {code(project)}: {counts}" for project, _, counts in groups],
            lambda left: f"- ... and {_count(left, 'more project')}; {_SHOW_ALL}.",
        ),
        _Section(
            [
                "",
                f"<details><summary>{_count(n, 'change')}, one line each</summary>",
            ],
            lines,
            lambda left: (
                f"\n_... and {_count(left, 'more line')} not shown "
                f"({limit + 1:,} characters limit); {_SHOW_ALL}._"
            ),
            after=["", "</details>"],
        ),
    ]


def render_markdown(plan: Plan, *, limit: int = DEFAULT_LIMIT, compact: bool = False) -> str:
    """The plan as a pull-request comment of fewer than ``limit`` characters.

    ``limit`` must be at least ``MIN_LIMIT``, so that the heading and the
    notes always fit; details are what gets left out. ``compact``: the
    counts per project, then one line per batch instead of the table.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT:,} characters, not {limit:,}")
    # Strictly under the limit: the layout may use limit - 1 characters.
    limit -= 1
    heading = [f"### {headline(plan)} {MARKER}"]
    if (plan.conflicts or plan.unsafe) and plan.summary.has_changes:
        # The heading names the problem; the counts still follow.
        heading += ["", summary_line(plan.summary)]
    if plan.conflicts and plan.unsafe:
        heading += ["", refusal_line(plan)]
    sections = [_Section(heading)]

    if plan.conflicts:
        n = len(plan.conflicts)
        sections.append(
            _Section(
                ["", f"**{_count(n, 'conflict')}**: apply refuses to start while any remain."],
                [_conflict_line(c) for c in plan.conflicts],
                lambda left: f"- ... and {left:,} more not shown; {_SHOW_ALL}.",
            )
        )
    if plan.warnings:
        n = len(plan.warnings)
        sections.append(
            _Section(
                ["", f"**{_count(n, 'warning')}**:"],
                [
                    f"- {_subject(w.batch, w.project)}: {escape(finding_diagnostic(w).message)}"
                    for w in plan.warnings
                ],
                lambda left: f"- ... and {left:,} more not shown; {_SHOW_ALL}.",
            )
        )
    if plan.targets:
        sections.append(
            _Section(
                ["", "Only these batches (`--target`): "],
                [code(name) for name in plan.targets],
                lambda left: f"and {left:,} more.",
                sep=", ",
            )
        )
    if plan.reassert_priority:
        sections.append(
            _Section(["", "Every managed priority is re-sent (`--reassert-priority`)."])
        )
    if plan.completed_with_priority:
        n = len(plan.completed_with_priority)
        has = "has" if n == 1 else "have"
        sections.append(
            _Section(
                [
                    "",
                    f"Note: {_count(n, 'completed batch', 'completed batches')} {has} a "
                    "priority in config; a completed batch has no tasks left to order, so "
                    "its priority is not sent.",
                ]
            )
        )
    if plan.unmanaged:
        n = len(plan.unmanaged)
        are = "is" if n == 1 else "are"
        sections.append(
            _Section(
                [
                    "",
                    f"{_count(n, 'live batch', 'live batches')} in managed projects {are} in "
                    "neither config nor state (unmanaged; `batchplan plan --verbose` lists them).",
                ]
            )
        )
    if plan.changes and compact:
        sections.extend(_compact_sections(plan, limit))
    elif plan.changes:
        n = len(plan.changes)
        sections.append(
            _Section(
                [
                    "",
                    f"<details><summary>{_count(n, 'change')}</summary>",
                    "",
                    "| | actions | batch | project | priority | finalize | details |",
                    "| --- | --- | --- | --- | --- | --- | --- |",
                ],
                [_row(change) for change in plan.changes],
                lambda left: (
                    f"\n_... and {_count(left, 'more change')} not shown "
                    f"({limit + 1:,} characters limit); {_SHOW_ALL}._"
                ),
                after=["", "</details>"],
            )
        )
    return _layout(sections, limit)
