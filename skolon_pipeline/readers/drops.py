"""Finding a source's registry drop for a night, and the error a source raises when it cannot be read."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

_DROP_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SourceError(RuntimeError):
    """A source as a whole cannot be read: names the source, the file and the problem."""

    def __init__(self, source_id: str, file: Path | str | None, problem: str):
        self.source_id = source_id
        self.file = str(file) if file is not None else None
        self.problem = problem
        where = f" file {self.file}:" if self.file else ""
        super().__init__(f"source {source_id!r}:{where} {problem}")


def available_drops(root: Path) -> list[dt.date]:
    """Every drop date under a source folder (folders named YYYY-MM-DD), oldest first."""
    if not root.is_dir():
        return []
    dates = []
    for child in root.iterdir():
        if child.is_dir() and _DROP_NAME.match(child.name):
            try:
                dates.append(dt.date.fromisoformat(child.name))
            except ValueError:
                continue  # 2026-02-30 is not a drop, whatever the folder says
    return sorted(dates)


def find_drop(source_id: str, root: Path, as_of: dt.date) -> tuple[dt.date, Path]:
    """The newest drop dated on or before the night (CONTRACT §2)."""
    eligible = [d for d in available_drops(root) if d <= as_of]
    if not eligible:
        raise SourceError(
            source_id,
            None,
            f"no registry drop dated on or before {as_of.isoformat()} in {root} "
            "(expected folders named YYYY-MM-DD)",
        )
    drop = eligible[-1]
    return drop, root / drop.isoformat()
