"""Finding a source's registry drop for a night, and the error a source raises when it cannot be read."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from skolon_pipeline.bounds import shorten

_DROP_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ZIP_DROP = re.compile(r"^(\d{4}-\d{2}-\d{2})\.zip$", re.IGNORECASE)


class SourceError(RuntimeError):
    """A source as a whole cannot be read: names the source, the file and the problem."""

    def __init__(self, source_id: str, file: Path | str | None, problem: str):
        self.source_id = source_id
        self.file = str(file) if file is not None else None
        self.problem = shorten(problem)  # a message may quote what the registry sent: never at full length
        where = f" file {self.file}:" if self.file else ""
        super().__init__(f"source {source_id!r}:{where} {self.problem}")


def _drop_paths(root: Path) -> dict[dt.date, Path]:
    """Drops under a source folder: folders named YYYY-MM-DD, or archives YYYY-MM-DD.zip (OneRoster)."""
    if not root.is_dir():
        return {}
    drops: dict[dt.date, Path] = {}
    for child in sorted(root.iterdir()):
        zipped = _ZIP_DROP.match(child.name) if child.is_file() else None
        name = child.name if child.is_dir() and _DROP_NAME.match(child.name) else zipped.group(1) if zipped else None
        if name is None:
            continue
        try:
            date = dt.date.fromisoformat(name)
        except ValueError:
            continue  # 2026-02-30 is not a drop, whatever the folder says
        drops.setdefault(date, child)  # a folder wins over an archive of the same date
    return drops


def available_drops(root: Path) -> list[dt.date]:
    """Every drop date under a source folder, oldest first."""
    return sorted(_drop_paths(root))


def find_drop(source_id: str, root: Path, as_of: dt.date) -> tuple[dt.date, Path]:
    """The newest drop dated on or before the night (CONTRACT §2)."""
    drops = _drop_paths(root)
    eligible = sorted(d for d in drops if d <= as_of)
    if not eligible:
        raise SourceError(
            source_id,
            None,
            f"no registry drop dated on or before {as_of.isoformat()} in {root} (expected folders named YYYY-MM-DD)",
        )
    drop = eligible[-1]
    return drop, inside(source_id, root, drops[drop])


def inside(source_id: str, base: Path, path: Path) -> Path:
    """`path` when it lies within `base` with every link followed; a link out of it fails the source, so a
    drop can never make the pipeline read a file outside the source's folder (and so the data directory)."""
    real, home = path.resolve(), base.resolve()
    if real != home and home not in real.parents:
        raise SourceError(source_id, path, f"is a link to a place outside {base}; refused")
    return path
