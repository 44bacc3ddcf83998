"""The one drop builder: writes SS12000 and OneRoster registry drops (CONTRACT §2) from Python records.

Scenarios decide which records exist (the demo municipality in `skolon_pipeline.demo`, the benchmark in
`bench/generate_drop.py`, the tests' `Registry` and `OneRosterDrop` in `skolon_pipeline_tests/`); this module
decides how they become files, so the formats are spelled once:

* SS12000: a drop folder `<source path>/<YYYY-MM-DD>/` with one file per entity (`OneFile`: an API page
  object `{"data": [...], "pageToken": null}` or a plain array, UTF-8 with or without BOM) or a folder of page
  files (`Pages`, `PageChain`: every page but the last names the next one in `pageToken`).
  `write_ss12000(drop, {entity: records}, layout)`; `read_ss12000(drop)` reads any of these forms back.
* OneRoster 1.1 / 1.2 bulk CSV: `write_oneroster(drop, {file: rows}, version)` writes the CSV files with their
  standard columns and `manifest.csv`, as a folder or a `.zip`.

Output is deterministic: the same records give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

# The entity files of CONTRACT §2 (the reader's `sources.ss12000.ENTITIES`, not imported: this module stays light
# enough for the benchmark's generator, and test_drops checks that the two agree).
SS12000_ENTITIES = ("organisations", "persons", "duties", "groups", "activities")
BOM = b"\xef\xbb\xbf"


# ─── JSON, encoded once ──────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class JsonStyle:
    """How a file's JSON is spelled. The default is one line, as an API sends it (json.dumps' separators)."""

    indent: int | None = None
    newline: bool = False  # a final "\n"
    bom: bool = False  # a UTF-8 byte order mark first, as some Windows tools write

    def encode(self, value: object) -> bytes:
        text = json.dumps(value, ensure_ascii=False, indent=self.indent)
        data = (text + "\n" if self.newline else text).encode("utf-8")
        return BOM + data if self.bom else data


COMPACT = JsonStyle()
INDENTED = JsonStyle(indent=1, newline=True)


def page(records: list[dict], token: str | None = None) -> dict:
    """An SS12000 API page object: the records and the token of the next page (None on the last page)."""
    return {"data": records, "pageToken": token}


# ─── SS12000 layouts ─────────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class OneFile:
    """The entity as one `<entity>.json`: a page object with pageToken null, or a plain JSON array."""

    style: JsonStyle = COMPACT
    array: bool = False


def next_page_token(next_page: int) -> str:
    return f"page-{next_page}"


@dataclass(frozen=True)
class Pages:
    """The entity as a folder `<entity>/` of page files of `size` records each (the last one may be shorter; an
    entity without records is one empty page). `token(n)` is the pageToken that points to page n (n >= 2);
    `name` formats a page's 1-based number into its file name."""

    size: int
    style: JsonStyle = COMPACT
    token: Callable[[int], str] = next_page_token
    name: str = "page-{:05d}.json"


class PageChain:
    """Writes a folder of page files one page at a time, so a generator never holds every record at once.

    A page is written when the next one arrives (only then is it known not to be the last): every page but the
    last carries the token of the next page, the last one pageToken null. Use as a context manager or call
    `close()`; a chain closed without pages writes one empty page.
    """

    def __init__(self, folder: Path, layout: Pages):
        self.folder = Path(folder)
        self.layout = layout
        self.pages = 0
        self._held: list[dict] | None = None
        self.folder.mkdir(parents=True, exist_ok=True)

    def write_page(self, records: list[dict]) -> None:
        """Adds one page (the caller decides its size)."""
        if self._held is not None:
            self._write(self._held, self.layout.token(self.pages + 2))
        self._held = records

    def write_records(self, records: Iterable[dict]) -> None:
        """Adds records in pages of the layout's size."""
        it = iter(records)
        while batch := list(islice(it, self.layout.size)):
            self.write_page(batch)

    def close(self) -> int:
        """Writes the last page (pageToken null); returns the number of pages."""
        if self._held is not None or not self.pages:
            self._write(self._held or [], None)
            self._held = None
        return self.pages

    def _write(self, records: list[dict], token: str | None) -> None:
        self.pages += 1
        path = self.folder / self.layout.name.format(self.pages)
        path.write_bytes(self.layout.style.encode(page(records, token)))

    def __enter__(self) -> PageChain:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def write_entity(drop: Path, entity: str, records: Iterable[dict], layout: OneFile | Pages = OneFile()) -> None:
    """One entity of an SS12000 drop in the given layout."""
    if isinstance(layout, Pages):
        with PageChain(Path(drop) / entity, layout) as chain:
            chain.write_records(records)
        return
    records = list(records)
    (Path(drop) / f"{entity}.json").write_bytes(layout.style.encode(records if layout.array else page(records)))


def write_ss12000(
    drop: Path,
    entities: Mapping[str, Iterable[dict]],
    layout: Mapping[str, OneFile | Pages] | None = None,
    default: OneFile | Pages = OneFile(),
) -> Path:
    """Writes an SS12000 drop folder: every entity given, each in its `layout` (or `default`); returns the
    folder. Entities are written as given (placements, or a misspelt entity a test needs, included)."""
    drop = Path(drop)
    drop.mkdir(parents=True, exist_ok=True)
    layout = layout or {}
    for entity, records in entities.items():
        write_entity(drop, entity, records, layout.get(entity, default))
    return drop


def read_ss12000(drop: Path) -> dict[str, list[dict]]:
    """Every record of an SS12000 file drop, per entity (files or folders of pages, BOM or not)."""
    drop = Path(drop)
    out: dict[str, list[dict]] = {}
    for entity in SS12000_ENTITIES:
        files = []
        if (drop / f"{entity}.json").is_file():
            files.append(drop / f"{entity}.json")
        if (drop / entity).is_dir():
            files += sorted((drop / entity).glob("*.json"))
        records: list[dict] = []
        for path in files:
            document = json.loads(path.read_bytes().decode("utf-8-sig"))
            records += document["data"] if isinstance(document, dict) else document
        out[entity] = records
    return out


# ─── OneRoster CSV ───────────────────────────────────────────────────────────────────────────────────────
# The columns of each bulk file in the standard's order (users differ between 1.1 and 1.2); a row leaves out
# the columns it has no value for.
_COMMON = ["sourcedId", "status", "dateLastModified"]
_USER_FIELDS = [
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
]
ONEROSTER_COLUMNS: dict[str, list[str]] = {
    "orgs": [*_COMMON, "name", "type", "identifier", "parentSourcedId"],
    "academicSessions": [
        *_COMMON,
        "title",
        "type",
        "startDate",
        "endDate",
        "parentSourcedId",
        "schoolYear",
    ],
    "classes": [
        *_COMMON,
        "title",
        "grades",
        "courseSourcedId",
        "classCode",
        "classType",
        "location",
        "schoolSourcedId",
        "termSourcedIds",
        "subjects",
        "subjectCodes",
        "periods",
    ],
    # 1.1 names the user's orgs and role in users.csv; 1.2 moves them to roles.csv and adds names and pronouns
    "users_1.1": [*_COMMON, "enabledUser", "orgSourcedIds", "role", *_USER_FIELDS],
    "users_1.2": [
        *_COMMON,
        "enabledUser",
        *_USER_FIELDS,
        "userMasterIdentifier",
        "preferredGivenName",
        "preferredMiddleName",
        "preferredFamilyName",
        "primaryOrgSourcedId",
        "pronouns",
    ],
    "roles": [
        *_COMMON,
        "userSourcedId",
        "roleType",
        "role",
        "beginDate",
        "endDate",
        "orgSourcedId",
        "userProfileSourcedId",
    ],
    "enrollments": [
        *_COMMON,
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
        "primary",
        "beginDate",
        "endDate",
    ],
}


def oneroster_columns(file: str, version: str = "1.2") -> list[str]:
    return ONEROSTER_COLUMNS[f"users_{version}" if file == "users" else file]


def oneroster_manifest(files: Iterable[str], version: str = "1.2") -> list[list[str]]:
    """manifest.csv's rows (without the header): the given files in bulk mode, courses and demographics absent."""
    rows = [["manifest.version", "1.0"], ["oneroster.version", version]]
    rows += [[f"file.{name}", "bulk"] for name in files]
    rows += [["file.courses", "absent"], ["file.demographics", "absent"]]
    return rows


def oneroster_texts(
    files: Mapping[str, list[dict]], version: str = "1.2", delimiter: str = ",", line_end: str = "\n"
) -> dict[str, str]:
    """`<file>.csv` → its text for every file given, then `manifest.csv`."""
    texts = {}
    for name, rows in files.items():
        out = io.StringIO()
        writer = csv.DictWriter(
            out, oneroster_columns(name, version), delimiter=delimiter, lineterminator=line_end, restval=""
        )
        writer.writeheader()
        writer.writerows(rows)
        texts[f"{name}.csv"] = out.getvalue()
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=line_end)
    writer.writerow(["propertyName", "value"])
    writer.writerows(oneroster_manifest(files, version))
    texts["manifest.csv"] = out.getvalue()
    return texts


def write_oneroster(
    drop: Path,
    files: Mapping[str, list[dict]],
    version: str = "1.2",
    delimiter: str = ",",
    line_end: str = "\n",
    encoding: str = "utf-8",
    as_zip: bool = False,
) -> Path:
    """Writes a OneRoster bulk drop folder (or `<drop>.zip`, the files under `export/`, when as_zip); returns it."""
    texts = oneroster_texts(files, version, delimiter, line_end)
    drop = Path(drop)
    if as_zip:
        target = drop.with_name(drop.name + ".zip")
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w") as archive:
            for name, text in texts.items():
                archive.writestr(f"export/{name}", text.encode(encoding))
        return target
    drop.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (drop / name).write_bytes(text.encode(encoding))
    return drop
