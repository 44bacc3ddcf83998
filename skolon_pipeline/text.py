"""Text from registries shown on a terminal or in a log: control characters escaped, one line, bounded.

A name in a drop may carry terminal escape sequences (ESC [ ... clears the screen, rewrites earlier lines),
C1 controls (U+009B is a one-character CSI), line separators or bidirectional overrides (U+202E shows
`gpj.exe` as `exe.jpg`). Everything the CLI prints that may hold registry data goes through `printable`, so
it shows as `\\x1b[2J` and `\\u202e` instead of acting on the terminal.
"""

from __future__ import annotations

import re

# C0 controls and DEL, C1 controls (U+0080–U+009F, NEL U+0085 among them), the line and paragraph separators,
# and the bidirectional marks, embeddings, overrides and isolates.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_LINE = 500


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object, keep_newlines: bool = False) -> str:
    """`value` as text with every control character escaped (`\\x1b`, `\\u202e`); tabs and, with
    `keep_newlines`, line feeds are kept."""
    text = str(value)

    def escape(match: re.Match) -> str:
        ch = match.group()
        if ch == "\t" or (keep_newlines and ch == "\n"):
            return ch
        return _escape(match)

    return CONTROL_CHARACTERS.sub(escape, text)


def one_line(message: object, limit: int = MAX_LINE) -> str:
    """The first non-empty line of a message, control characters escaped, cut at `limit` characters."""
    # Only real line breaks end a line: a U+2028 in a registry value is escaped, not a place to cut.
    lines = [line.strip() for line in re.split(r"\r?\n", str(message)) if line.strip()]
    line = printable(lines[0]) if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
