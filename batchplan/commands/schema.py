"""``batchplan schema NAME``: print one of the JSON Schemas batchplan ships."""

from __future__ import annotations

from collections.abc import Callable

from batchplan.commands.arguments import SchemaArguments
from batchplan.config.schema import schema_dir
from batchplan.errors import EXIT_OK, BatchplanError
from batchplan.views.terminal import make_echo


def print_schema(filename: str, echo: Callable[[str], None]) -> int:
    """Print the schema file exactly as shipped, for an editor or a CI linter.

    The file is read by name, so a schema added to ``schemas/`` is printed
    without a code change here.
    """
    path = schema_dir() / filename
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        # Only a broken installation gets here: the wheel carries every schema.
        raise BatchplanError(
            f"{path}: cannot read the schema ({exc.strerror}); reinstall batchplan"
        ) from None
    echo(text.rstrip("\n"))
    return EXIT_OK


def run(args: SchemaArguments) -> int:
    """``batchplan schema`` with its parsed arguments; a schema is never coloured."""
    return print_schema(args.filename, make_echo(False))
