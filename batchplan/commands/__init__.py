"""One module per command; each public function takes plain values and returns an exit code."""

from __future__ import annotations
