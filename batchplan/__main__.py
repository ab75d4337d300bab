"""``python -m batchplan`` is the same as the ``batchplan`` command."""

from __future__ import annotations

from batchplan.cli import main

if __name__ == "__main__":
    main()
