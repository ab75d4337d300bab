"""Text from the API or a file, made safe to show on a terminal or in a review.

A batch name, project, callback or metadata value can hold bytes a terminal
acts on (ESC starts CSI and OSC sequences: OSC 52 writes the clipboard) or
characters that make text read differently from what it is (a right-to-left
override, a zero-width space). Every view passes such values through
:func:`escape_controls`, which shows each of those characters as a visible
``\\xNN`` / ``\\uNNNN`` escape and leaves everything else as it is. A name
that must be read exactly is shown with :func:`escaped` (quoted, as a JSON
string), and one to paste into a shell with :func:`shell_word`.

May import: nothing from batchplan.
"""

from __future__ import annotations

import json
import re
import shlex

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


#: Control characters (C0, DEL, C1): never valid in a name, and they could
#: disguise a line of terminal output or a line of YAML.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def _shell_escape(char: str) -> str:
    # ``\xHH`` is a byte to bash: C1 controls need ``\uHHHH`` to come out as UTF-8.
    return f"\\x{ord(char):02x}" if ord(char) < 0x80 else f"\\u{ord(char):04x}"


def shell_word(name: str) -> str:
    """A name as one shell word to paste into a command: ``$'a\\nb'`` when it holds controls.

    Single quotes would carry a line break literally, splitting the command
    as shown over two lines; bash's ``$'...'`` form escapes it instead.
    """
    if not CONTROL.search(name):
        return shlex.quote(name)
    inner = "".join(
        {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(
            char, _shell_escape(char) if CONTROL.match(char) else char
        )
        for char in name
    )
    return f"$'{inner}'"


def escaped(name: str) -> str:
    """A name as a JSON string: quoted, every control character escaped, safe on one line."""
    text = json.dumps(name, ensure_ascii=False)
    # json escapes C0 only; DEL, C1 and the Unicode line separators go out raw.
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
