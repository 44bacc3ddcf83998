"""Files that hold personal data are readable by their owner only: folders 0700, files 0600.

The warehouse, the per-night staging files (and DuckDB's write-ahead logs and spill files beside them) and the
export files all go through here. `owner_only()` sets the process umask to 077 while a stage writes, so that
files DuckDB creates on its own (`.wal`, `.tmp/`) are private from the first byte; `private_dir` and
`private_file` make the folders and files the pipeline creates private explicitly.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_UMASK = 0o077


def private_dir(path: Path, owned: bool = True) -> Path:
    """Creates `path` and any missing parents as owner-only folders. Folders that already existed are left as
    they are (the user's own data folder, say), except `path` itself when the pipeline `owned` it."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    if owned:
        os.chmod(path, DIR_MODE)
    return Path(path)


SLUG_MAX = 64


def slug(text: str | None, max_length: int = SLUG_MAX) -> str:
    """A file or folder name made from registry data (an authority's name, a school unit code): lower-case
    ASCII letters, digits and single '-' only, so never '.', '..', '/', a drive, a control character or an
    empty name. 'Lindby kommun' → 'lindby-kommun'; 'Österåkers Skolor AB' → 'osterakers-skolor-ab';
    '../../x' → 'x'."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower())[:max_length].strip("-") or "x"


class OutsideFolder(ValueError):
    """A path made from registry data would lie outside the folder it belongs in."""


def safe_path(base: Path, *names: str) -> Path:
    """`base / slug(name) / ...`, checked (links followed) to lie inside `base`: registry data never names a
    place outside the export folder, whatever it holds and whatever links an earlier run or a user left."""
    path = Path(base).joinpath(*(slug(name) for name in names))
    real, home = path.resolve(), Path(base).resolve()
    if real != home and home not in real.parents:
        raise OutsideFolder(f"{path} would lie outside {base}; refused")
    return path


def private_file(path: Path) -> Path:
    """Makes an existing file (and DuckDB's write-ahead log beside it, if any) owner-only."""
    for p in (Path(path), Path(f"{path}.wal")):
        if p.exists():
            os.chmod(p, FILE_MODE)
    return Path(path)


@contextmanager
def owner_only() -> Iterator[None]:
    """Every file and folder created inside the block is owner-only (umask 077), whoever creates it."""
    previous = os.umask(_UMASK)
    try:
        yield
    finally:
        os.umask(previous)
