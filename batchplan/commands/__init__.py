"""One module per command; each public function takes plain values and returns an exit code.

May import every layer; ``batchplan.cli`` (click) parses the command line and calls these.
"""

from __future__ import annotations
