"""The views of ``batchplan plan`` and ``batchplan show``: text, JSON and Markdown.

May import: the core and ``plan``. Each wraps one of the renderers beside it
(:mod:`batchplan.views.text`, :mod:`~batchplan.views.json`,
:mod:`~batchplan.views.markdown`), loaded only when chosen, so the same plan
prints the same whether it was just made or read back from a saved file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from batchplan.errors import UsageError

if TYPE_CHECKING:
    from batchplan.plan.changes import Plan

Echo = Callable[[str], None]

#: ``--format`` of plan and show, in the order the help lists them.
PLAN_FORMATS = ("text", "json", "markdown")


class PlanView(Protocol):
    """Renders one plan and prints it on stdout (nothing else goes there)."""

    def render(self, plan: Plan) -> str: ...

    def show(self, plan: Plan) -> None: ...


@dataclass(frozen=True)
class _Printing:
    echo: Echo

    def render(self, plan: Plan) -> str:
        raise NotImplementedError

    def show(self, plan: Plan) -> None:
        self.echo(self.render(plan).rstrip("\n"))


@dataclass(frozen=True)
class PlanText(_Printing):
    """For terminals: coloured when ``color``; ``compact``: one line per batch."""

    color: bool = False
    verbose: bool = False
    compact: bool = False

    def render(self, plan: Plan) -> str:
        from batchplan.views.text import render_text

        return render_text(plan, color=self.color, verbose=self.verbose, compact=self.compact)


@dataclass(frozen=True)
class PlanJSON(_Printing):
    """For machines: the plan document, always whole."""

    def render(self, plan: Plan) -> str:
        from batchplan.views.json import render_json

        return render_json(plan)


@dataclass(frozen=True)
class PlanMarkdown(_Printing):
    """For pull requests; ``compact``: one line per batch."""

    compact: bool = False

    def render(self, plan: Plan) -> str:
        from batchplan.views.markdown import render_markdown

        return render_markdown(plan, compact=self.compact)


def no_state_line(location: str) -> str:
    """Said once, on stderr, by a plan from no state: it adopts or creates everything."""
    return f"no state at {location}: starting empty"


def plan_view(
    output_format: str,
    echo: Echo,
    *,
    color: bool = False,
    verbose: bool = False,
    compact: bool = False,
) -> PlanView:
    """The view ``--format`` chose. ``--compact`` shapes text and Markdown, never JSON."""
    if output_format == "json":
        if compact:
            raise UsageError("--compact applies to --format text and markdown, not json")
        return PlanJSON(echo)
    if output_format == "markdown":
        return PlanMarkdown(echo, compact)
    return PlanText(echo, color, verbose, compact)
