"""What the data contract (../shared/CONTRACT.md) names, read from the contract itself.

Tests compare the pipeline with these, so a code added to the contract fails the tests until the demo and the
rules know it; read, not copied, so the list is said once."""

from __future__ import annotations

import re
from pathlib import Path

CONTRACT = Path(__file__).resolve().parents[1].parent / "shared" / "CONTRACT.md"


def _section(number: int) -> str:
    text = CONTRACT.read_text(encoding="utf-8")
    start = text.index(f"\n## {number}. ")
    return text[start : text.index(f"\n## {number + 1}. ", start)]


def _reason_codes() -> frozenset[str]:
    """The codes in the first column of §4's table (the warning codes after it are not reasons)."""
    rows = [line for line in _section(4).splitlines() if line.startswith("| `")]
    return frozenset(code for row in rows for code in re.findall(r"`([A-Z][A-Z_]+)`", row.split("|")[1]))


REASON_CODES = _reason_codes()
