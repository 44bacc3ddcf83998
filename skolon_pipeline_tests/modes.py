"""The one rule for what the pipeline writes (GUIDE: personal data is sensitive): owner-only, folders 0700 and
files 0600. Every test of file modes asks this module."""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def not_owner_only(paths: Iterable[Path]) -> dict[str, str]:
    """The paths whose mode is not owner-only (0700 for a folder, 0600 for a file), with their mode: {} when all are."""
    return {str(p): oct(mode(p)) for p in paths if mode(p) != (0o700 if p.is_dir() else 0o600)}


def tree(root: Path) -> list[Path]:
    """The folder and everything under it."""
    return [root, *root.rglob("*")]
