"""Text from the API or a file, made safe to show on a terminal or in a review.

A batch name, project, callback or metadata value can hold bytes a terminal
acts on (ESC starts CSI and OSC sequences: OSC 52 writes the clipboard) or
characters that make text read differently from what it is (a right-to-left
override, a zero-width space). Every view passes such values through
:func:`escape_controls`, which shows each of those characters as a visible
``\\xNN`` / ``\\uNNNN`` escape and leaves everything else as it is.

May import: nothing from batchplan.
"""

from __future__ import annotations

import re

#: C0 controls (newline and tab included: a value never spans lines), DEL,
#: C1 controls, the Arabic letter mark, zero-width characters and marks
#: (U+200B-U+200F), line and paragraph separators, bidirectional embeddings,
#: overrides and isolates (U+202A-U+202E, U+2066-U+2069), invisible
#: operators (U+2060-U+2064) and the byte order mark.
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control, bidirectional or invisible character shown as an escape."""
    if UNSAFE.search(text) is None:
        return text
    return UNSAFE.sub(_visible, text)
