"""Limits on what hostile or broken input can make the pipeline hold, store or print.

A registry (or a mistyped configuration) can send anything: a 50 MB name, a 20 MB "date", a YAML file whose
aliases expand a thousandfold. Nothing of that size is ever needed, so nothing of that size is kept: a value
above `MAX_VALUE` characters makes its record an `INVALID_RECORD` (the value itself is dropped at extract),
and every error message and reason detail is cut to `MAX_MESSAGE` characters, so the full value is never
stored, logged or exported.
"""

from __future__ import annotations

import re

MAX_VALUE = 1_000_000  # characters in one registry value (a name, a date, an id): far beyond any real one
MAX_MESSAGE = 400  # characters in an error message or a reason detail
MAX_CONFIG_BYTES = 1_000_000  # sources.yaml
MAX_CONFIG_NODES = 100_000  # YAML nodes in sources.yaml once its aliases are expanded

# What a reader puts in place of a value above MAX_VALUE characters: OVERSIZED, the value's length, ':' and its
# first OVERSIZED_HEAD characters, so that validation reports it on the record that owns it without the value
# ever being held (U+E000: private use, never in registry text). Validation keeps only the head.
OVERSIZED = "\ue000oversized:"
OVERSIZED_HEAD = 100

# Control characters no name, id or address ever holds: C0 and DEL, C1 (U+0080-U+009F: U+0085 is a line break,
# U+009B a terminal escape), the line and paragraph separators, and the bidirectional embeddings, overrides and
# isolates that make text display in another order than it is read ("Trojan source", CVE-2021-42574).
CONTROL_CHARACTERS = "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
_CONTROL = re.compile(CONTROL_CHARACTERS)


def shorten(text: object, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to at most `limit` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(3):  # the tail's own length depends on the number it shows
        tail = f"… ({len(text) - keep:,} more characters)".replace(",", " ")
        keep = max(limit - len(tail), 0)
    return text[:keep] + tail


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None
