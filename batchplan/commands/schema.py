"""``batchplan schema NAME``: print one of the JSON Schemas batchplan ships."""

from __future__ import annotations

from batchplan.commands.arguments import SchemaArguments
from batchplan.config.schema import schema_dir
from batchplan.errors import EXIT_OK, BatchplanError
from batchplan.views.schema import SchemaView, schema_view


def print_schema(filename: str, view: SchemaView) -> int:
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
    view.schema(text)
    return EXIT_OK


def run(args: SchemaArguments) -> int:
    """``batchplan schema`` with its parsed arguments."""
    return print_schema(args.filename, schema_view())
