"""Where output goes: the colour policy and the line printers every command uses.

May import: the core. Kept apart from the renderers so that a command's
arguments can decide on colour without loading any of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

import click


def colour_wanted(no_color: bool) -> bool | None:
    """The colour policy from the flag and the environment; None: ask the terminal.

    ``--no-color`` and ``NO_COLOR`` win over ``FORCE_COLOR``, which wins over
    the terminal test. The same answer applies to stdout and stderr.
    """
    if no_color or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    return None


def use_color(no_color: bool, stream: TextIO | None = None) -> bool:
    """Whether to colour what goes to ``stream`` (stdout by default)."""
    wanted = colour_wanted(no_color)
    if wanted is not None:
        return wanted
    target = sys.stdout if stream is None else stream
    try:
        return target.isatty()
    except (AttributeError, ValueError):
        return False


def make_echo(color: bool) -> Callable[[str], None]:
    """A line printer for stdout that keeps or strips ANSI colour as decided."""

    def echo(line: str) -> None:
        click.echo(line, color=color)

    return echo


def tell(line: str) -> None:
    """Print a line on stderr: what a run chose, beside its output."""
    click.echo(line, err=True)
