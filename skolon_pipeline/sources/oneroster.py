"""OneRoster 1.1 / 1.2 CSV drop → the same canonical staging tables as SS12000, inside DuckDB.

Two stages, like Microsoft SDS:

* **package** (here, before anything is read): the drop is a folder or a `.zip` with `manifest.csv`; every
  file the rules need is listed as `bulk` and present, decodable, and has its required headers. Anything else
  raises `SourceError` naming the file and the header, and the source fails. Delta files are refused.
* **record**: each CSV is read by DuckDB (`read_csv` with explicit options, every column text) into
  `raw_<file>`; Pandera schemas of the CSV files check the code lists (`status`, `role`, `classType` ...) and
  every failing row becomes an `INVALID_RECORD` of the record that owns it (`reader_invalid_records`, copied
  into `invalid_records` by the validate stage). Dates, shapes and references are judged by the canonical
  models and the rules as for any source. The flattening is `oneroster.sql`.

What real exports do is tolerated, each with a warning in `diagnostics.warnings` (entity `file`): a UTF-8
BOM, CRLF line ends, `;` as delimiter (Swedish Excel), Windows-1252 text (transcoded to UTF-8 in chunks),
extra columns, header-only files, missing optional columns, enum values in another letter case.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import io
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd
import pandera.pandas as pa

from skolon_pipeline.config import ArchiveLimits, Source
from skolon_pipeline.duck import row_counts
from skolon_pipeline.sources.drops import SourceError, inside
from skolon_pipeline.sources.enums import normalise_enums
from skolon_pipeline.validate.canonical import (
    CANONICAL_TABLES,
    INVALID_RECORDS_DDL,
    Owner,
    complete_staging,
    failure_rows,
)

MANIFEST = "manifest.csv"
VERSIONS = ("1.1", "1.2")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpec:
    """A OneRoster CSV the roster needs: the headers that must be there, the ones read when present, and every
    header the 1.1 and 1.2 bindings define (anything else is an extra column)."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    known: tuple[str, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.csv"


_COMMON = ("sourcedId", "status", "dateLastModified")
ORGS = FileSpec(
    "orgs",
    (*_COMMON, "name", "type"),
    ("identifier", "parentSourcedId"),
    (
        *_COMMON,
        "name",
        "type",
        "identifier",
        "parentSourcedId",
        "metadata.classification",
        "metadata.gender",
        "metadata.boarding",
    ),
)
ACADEMIC_SESSIONS = FileSpec(
    "academicSessions",
    (*_COMMON, "title", "type", "startDate", "endDate"),
    (),
    (*_COMMON, "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"),
)
CLASSES = FileSpec(
    "classes",
    (*_COMMON, "title", "classType", "schoolSourcedId", "termSourcedIds"),
    (),
    (
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
        "resources",
    ),
)
ENROLLMENTS = FileSpec(
    "enrollments",
    (*_COMMON, "classSourcedId", "schoolSourcedId", "userSourcedId", "role"),
    ("beginDate", "endDate"),
    (*_COMMON, "classSourcedId", "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"),
)
_USER_COLUMNS = (
    *_COMMON,
    "enabledUser",
    "orgSourcedIds",
    "role",
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
    "userMasterIdentifier",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
    "resourceSourcedIds",
)
USERS_11 = FileSpec(
    "users", (*_COMMON, "enabledUser", "orgSourcedIds", "role", "givenName", "familyName", "email"), (), _USER_COLUMNS
)
USERS_12 = FileSpec("users", (*_COMMON, "enabledUser", "givenName", "familyName", "email"), (), _USER_COLUMNS)
ROLES = FileSpec(
    "roles",
    (*_COMMON, "userSourcedId", "roleType", "role", "orgSourcedId"),
    ("beginDate", "endDate"),
    (*_COMMON, "userSourcedId", "roleType", "role", "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId"),
)


def file_specs(version: str) -> tuple[FileSpec, ...]:
    if version == "1.2":
        return ORGS, ACADEMIC_SESSIONS, CLASSES, USERS_12, ROLES, ENROLLMENTS
    return ORGS, ACADEMIC_SESSIONS, CLASSES, USERS_11, ENROLLMENTS


# OneRoster code lists (1.1 and 1.2 together). Letter case is repaired with an ENUM_CASE warning.
STATUSES = ("active", "tobedeleted")
ORG_TYPES = ("department", "school", "district", "local", "state", "national")
SESSION_TYPES = ("gradingPeriod", "semester", "schoolYear", "term")
CLASS_TYPES = ("homeroom", "scheduled")
USER_ROLES = (
    "administrator",
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
)
ENROLLMENT_ROLES = ("administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher")
ROLE_TYPES = ("primary", "secondary")
BOOLEANS = ("true", "false")


@dataclass
class Package:
    """A drop that passed the package stage: where each file is (UTF-8 by now) and how to read it."""

    version: str
    files: dict[str, Path] = field(default_factory=dict)  # spec name → file to read
    delimiters: dict[str, str] = field(default_factory=dict)
    headers: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # (file, code, detail)

    def warn(self, file: str, code: str, detail: str) -> None:
        self.warnings.append((file, code, detail))


# ── package stage ───────────────────────────────────────────────────────────────────────────────────────


# Compression methods Python's zipfile reads; anything else (Deflate64 = 9, PKWARE DCL Implode = 10, ...) is
# refused up front rather than failing halfway through the unpacking.
_READABLE_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "Deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
}
_METHOD_NAMES = {
    9: "Deflate64",
    10: "PKWARE Implode",
    12: "bzip2",
    14: "LZMA",
    93: "Zstandard",
    95: "xz",
    98: "PPMd",
    99: "AES encryption",
}


def check_archive(source_id: str, zip_path: Path, members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    """Refuses, naming source, archive and entry, what would fail or fill the disk while unpacking: encrypted
    entries, compression methods that cannot be read, and more than the limits' expanded size or ratio. The
    sizes are the archive's own claims; the unpacking stops at them (zipfile reads no more than an entry's
    declared size, and a wrong CRC fails the entry)."""
    for m in members:
        if m.flag_bits & 0x1:
            raise SourceError(
                source_id,
                zip_path,
                f"entry {m.filename!r} is encrypted (password-protected); export the drop without a password",
            )
        if m.compress_type not in _READABLE_METHODS:
            method = _METHOD_NAMES.get(m.compress_type, f"method {m.compress_type}")
            raise SourceError(
                source_id,
                zip_path,
                f"entry {m.filename!r} is compressed with {method}, which cannot "
                "be read; re-pack the archive with standard Deflate",
            )
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise SourceError(
                source_id,
                zip_path,
                f"entry {m.filename!r} expands {ratio:.0f} times "
                f"({m.compress_size} to {m.file_size} bytes), more than the "
                f"limit of {limits.max_ratio:g} (archives.max_ratio): refused "
                "as a possible zip bomb",
            )
    total = sum(m.file_size for m in members)
    if total > limits.max_expanded_bytes:
        raise SourceError(
            source_id,
            zip_path,
            f"expands to {total} bytes, more than the limit of "
            f"{limits.max_expanded_bytes} (archives.max_expanded_bytes)",
        )


@contextlib.contextmanager
def open_drop(source_id: str, drop: Path, scratch: Path, limits: ArchiveLimits = ArchiveLimits()) -> Iterator[Path]:
    """The folder holding `manifest.csv`: the drop itself, or a `.zip` (the drop, or the one zip inside the
    drop folder) unpacked into `scratch`, which is removed afterwards. A bad archive (check_archive, or one
    that fails while unpacking: a full disk, a corrupt entry) is a SourceError: only this source fails."""
    zip_path = drop if drop.is_file() else None
    if zip_path is None and not (drop / MANIFEST).is_file():
        zips = sorted(p for p in drop.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
        if len(zips) == 1:
            zip_path = inside(source_id, drop, zips[0])
        elif len(zips) > 1:
            raise SourceError(source_id, drop, f"several .zip files ({', '.join(p.name for p in zips)}); expected one")
    if zip_path is None:
        yield drop
        return
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, mode=0o700)
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                manifests = [m for m in members if Path(m.filename).name == MANIFEST]
                if len(manifests) != 1:
                    raise SourceError(
                        source_id,
                        zip_path,
                        f"{MANIFEST} is missing from the archive"
                        if not manifests
                        else f"several {MANIFEST} in the archive",
                    )
                folder = Path(manifests[0].filename).parent
                # Only the files beside the manifest, by base name: nothing can be written outside scratch.
                wanted = [
                    m for m in members if Path(m.filename).parent == folder and m.filename.lower().endswith(".csv")
                ]
                check_archive(source_id, zip_path, wanted, limits)
                for member in wanted:
                    with archive.open(member) as src, open(scratch / Path(member.filename).name, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
        except zipfile.BadZipFile as exc:
            raise SourceError(source_id, zip_path, f"not a readable .zip archive ({exc})") from None
        except (OSError, RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(source_id, zip_path, f"cannot unpack: {exc}") from None
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _decoded_copy(source_id: str, path: Path, scratch: Path, package: Package) -> Path:
    """The file as UTF-8: itself when it is UTF-8 (BOM or not), else a Windows-1252 transcoded copy."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceError(source_id, path, "not decodable: UTF-16 text; export as UTF-8")
    if head.startswith(codecs.BOM_UTF8):
        package.warn(path.name, "CSV_BOM", "starts with a UTF-8 byte order mark (ignored)")
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            if b"\x00" in chunk:
                raise SourceError(source_id, path, "not decodable: contains NUL bytes (binary, or UTF-16?)")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                utf8 = False
                break
        else:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        return path
    target = scratch / f"{path.stem}.utf8.csv"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    decoder = codecs.getincrementaldecoder("cp1252")()
    try:
        with open(path, "rb") as src, open(target, "w", encoding="utf-8", newline="") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(decoder.decode(chunk))
            dst.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        target.unlink(missing_ok=True)
        raise SourceError(source_id, path, f"not decodable as UTF-8 or Windows-1252 (byte {exc.start})") from None
    package.warn(path.name, "CSV_WINDOWS_1252", "not UTF-8; read as Windows-1252")
    return target


def _read_header(source_id: str, path: Path, shown: Path) -> tuple[str, list[str], str]:
    """(delimiter, header names, line ending) from the first line."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        line = f.readline()
    if not line.strip():
        raise SourceError(source_id, shown, "empty: no header row")
    first = line.rstrip("\r\n")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    header = next(csv.reader(io.StringIO(first), delimiter=delimiter))
    return delimiter, [h.strip() for h in header], "\r\n" if line.endswith("\r\n") else "\n"


def _check_headers(source_id: str, spec: FileSpec, header: list[str], shown: Path, package: Package) -> None:
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise SourceError(source_id, shown, f"header {duplicates[0]!r} appears more than once")
    missing = [h for h in spec.required if h not in header]
    if missing:
        extras = [h for h in header if h not in spec.known]
        problems = []
        for name in missing:
            near = [h for h in header if h.lower() == name.lower()] or difflib.get_close_matches(name, extras, 1, 0.75)
            problems.append(
                f"required header {name!r} is missing" + (f" (found {near[0]!r}: misspelled?)" if near else "")
            )
        raise SourceError(source_id, shown, "; ".join(problems) + "; headers are case-sensitive")
    absent = [h for h in spec.optional if h not in header]
    if absent:
        package.warn(spec.file, "CSV_MISSING_COLUMN", f"no column {', '.join(absent)}; read as blank")
    extra = [h for h in header if h not in spec.known]
    if extra:
        package.warn(spec.file, "CSV_EXTRA_COLUMNS", f"extra columns ignored: {', '.join(extra)}")


def _manifest(source_id: str, folder: Path, scratch: Path, package_warnings: Package) -> dict[str, str]:
    path = folder / MANIFEST
    if not path.is_file():
        raise SourceError(source_id, path, "missing: a OneRoster drop needs manifest.csv")
    path = inside(source_id, folder, path)
    readable = _decoded_copy(source_id, path, scratch, package_warnings)
    delimiter, header, _ = _read_header(source_id, readable, path)
    if header[:2] != ["propertyName", "value"]:
        raise SourceError(source_id, path, f"expected the headers propertyName,value; found {','.join(header)}")
    with open(readable, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter))[1:]
    return {row[0].strip(): (row[1].strip() if len(row) > 1 else "") for row in rows if row and row[0].strip()}


def read_package(source_id: str, folder: Path, scratch: Path) -> Package:
    """The package stage: raises SourceError naming file and header, or returns what to read."""
    probe = Package(version="")
    manifest = _manifest(source_id, folder, scratch, probe)
    version = manifest.get("oneroster.version", "")
    if version not in VERSIONS:
        if version:
            raise SourceError(
                source_id, folder / MANIFEST, f"oneroster.version {version!r} is not supported (1.1 or 1.2)"
            )
        version = "1.2" if (folder / "roles.csv").is_file() else "1.1"
        probe.warn(MANIFEST, "MANIFEST_VALUE_BLANK", f"oneroster.version is blank; read as {version}")
    package = Package(version=version, warnings=probe.warnings)
    delta = sorted(k for k, v in manifest.items() if k.startswith("file.") and v.strip().lower() == "delta")
    if delta:
        raise SourceError(
            source_id,
            folder / MANIFEST,
            f"delta files are not supported yet ({', '.join(f'{k}=delta' for k in delta)}); send a bulk export",
        )
    for spec in file_specs(version):
        key = f"file.{spec.name}"
        mode = manifest.get(key, "").strip().lower()
        path = folder / spec.file
        if mode == "absent" or (not mode and not path.is_file()):
            raise SourceError(
                source_id, folder / MANIFEST, f"{key} is {mode or 'not listed'}; the roster needs {spec.file}"
            )
        if not mode:
            package.warn(MANIFEST, "MANIFEST_VALUE_BLANK", f"{key} is blank; {spec.file} read as bulk")
        elif mode != "bulk":
            raise SourceError(source_id, folder / MANIFEST, f"{key} is {mode!r}; expected bulk, delta or absent")
        if not path.is_file():
            raise SourceError(source_id, path, f"missing: the manifest lists {key} as bulk")
        path = inside(source_id, folder, path)
        readable = _decoded_copy(source_id, path, scratch, package)
        delimiter, header, line_end = _read_header(source_id, readable, path)
        _check_headers(source_id, spec, header, path, package)
        if delimiter == ";":
            package.warn(spec.file, "CSV_SEMICOLON", "';' as delimiter (a spreadsheet export?)")
        if line_end == "\r\n":
            package.warn(spec.file, "CSV_CRLF", "CRLF line ends")
        package.files[spec.name] = readable
        package.delimiters[spec.name] = delimiter
        package.headers[spec.name] = header
    return package


# ── record stage ────────────────────────────────────────────────────────────────────────────────────────


def load_raw(con: duckdb.DuckDBPyConnection, source_id: str, package: Package) -> None:
    """Each CSV into `raw_<name>` (idx counting from 1, every spec column as text, absent optional ones NULL)."""
    for spec in file_specs(package.version):
        header = package.headers[spec.name]
        wanted = (*spec.required, *spec.optional, *(("parentSourcedId",) if spec is ORGS else ()))
        select = ", ".join(f'"{c}"' if c in header else f'NULL::VARCHAR AS "{c}"' for c in dict.fromkeys(wanted))
        try:
            # The file, its delimiter and its header (the column names as sent) are parameters; only the
            # FileSpec's own column names are written into the SQL.
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE raw_{spec.name} AS
                SELECT row_number() OVER () AS idx, {select}
                FROM read_csv(?, delim = ?, quote = '"', escape = '"', header = true, auto_detect = false,
                              null_padding = true, columns = ?)""",
                [str(package.files[spec.name]), package.delimiters[spec.name], dict.fromkeys(header, "VARCHAR")],
            )
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            raise SourceError(source_id, package.files[spec.name].name, f"not readable as CSV: {message}") from None
        if con.execute(f"SELECT count(*) FROM raw_{spec.name}").fetchone()[0] == 0:
            package.warn(spec.file, "CSV_HEADER_ONLY", "a header and no records")


def _raw_enum_columns(version: str, role_map: dict[str, str]):
    """(raw table, column, entity, id column, code list) for the ENUM_CASE repair of the raw files."""
    roles = tuple(dict.fromkeys((*USER_ROLES, *role_map)))
    cols = [
        ("raw_orgs", "type", "organisation", "sourcedId", ORG_TYPES),
        ("raw_academicSessions", "type", "academic_session", "sourcedId", SESSION_TYPES),
        ("raw_classes", "classType", "group", "sourcedId", CLASS_TYPES),
        ("raw_enrollments", "role", "enrollment", "sourcedId", ENROLLMENT_ROLES),
    ]
    cols += [
        (f"raw_{n}", "status", "record", "sourcedId", STATUSES)
        for n in (
            "orgs",
            "academicSessions",
            "classes",
            "users",
            "enrollments",
            *(("roles",) if version == "1.2" else ()),
        )
    ]
    cols.append(
        ("raw_roles", "role", "person", "userSourcedId", roles)
        if version == "1.2"
        else ("raw_users", "role", "person", "sourcedId", roles)
    )
    if version == "1.2":
        cols.append(("raw_roles", "roleType", "person", "userSourcedId", ROLE_TYPES))
    return cols


def _enum(values) -> pa.Column:
    return pa.Column(str, pa.Check.isin(list(values)), nullable=True)


def _record_checks(version: str, role_map: dict[str, str]):
    """(name, SELECT over the raw tables giving the owner's ids, Pandera schema, owner) per file."""
    roles = [*USER_ROLES, *role_map]
    status = {"status": _enum(STATUSES)}
    user_source = "SELECT pid(sourcedId) AS person_id, status, lower(enabledUser) AS enabled_user" + (
        ", role FROM raw_users" if version == "1.1" else " FROM raw_users"
    )
    user_schema = {**status, "enabled_user": pa.Column(str, pa.Check.isin(list(BOOLEANS)), nullable=False)}
    if version == "1.1":
        user_schema["role"] = pa.Column(str, pa.Check.isin(roles), nullable=False)
    checks = [
        (
            "orgs",
            "SELECT pid(sourcedId) AS org_id, status, type FROM raw_orgs",
            {**status, "type": pa.Column(str, pa.Check.isin(list(ORG_TYPES)), nullable=False)},
            Owner("organisation", ("org_id",)),
        ),
        (
            "academicSessions",
            "SELECT pid(sourcedId) AS session_id, status, type FROM raw_academicSessions",
            {**status, "type": pa.Column(str, pa.Check.isin(list(SESSION_TYPES)), nullable=False)},
            Owner("academic_session", ("session_id",)),
        ),
        (
            "classes",
            "SELECT pid(sourcedId) AS group_id, status, classType AS class_type FROM raw_classes",
            {**status, "class_type": pa.Column(str, pa.Check.isin(list(CLASS_TYPES)), nullable=False)},
            Owner("group", ("group_id",)),
        ),
        ("users", user_source, user_schema, Owner("person", ("person_id",))),
        (
            "enrollments",
            "SELECT pid(classSourcedId) AS group_id, pid(userSourcedId) AS person_id, status, role FROM raw_enrollments "
            "WHERE role IS DISTINCT FROM 'student' AND role IN (SELECT role FROM staff_enrollment_roles)",
            {**status},
            Owner("membership", ("group_id", "person_id"), role="teacher"),
        ),
        (
            "enrollments",
            "SELECT pid(classSourcedId) AS group_id, pid(userSourcedId) AS person_id, status, role FROM raw_enrollments "
            "WHERE role IS NULL OR role NOT IN (SELECT role FROM staff_enrollment_roles)",
            {**status, "role": pa.Column(str, pa.Check.isin(list(ENROLLMENT_ROLES)), nullable=False)},
            Owner("membership", ("group_id", "person_id"), role="student"),
        ),
    ]
    if version == "1.2":
        checks.append(
            (
                "roles",
                "SELECT pid(userSourcedId) AS person_id, status, role, roleType AS role_type FROM raw_roles",
                {
                    **status,
                    "role": pa.Column(str, pa.Check.isin(roles), nullable=False),
                    "role_type": pa.Column(str, pa.Check.isin(list(ROLE_TYPES)), nullable=False),
                },
                Owner("person", ("person_id",)),
            )
        )
    return checks


def check_records(con: duckdb.DuckDBPyConnection, source_id: str, version: str, role_map: dict[str, str]) -> None:
    """Pandera schemas of the CSV files' code lists → `reader_invalid_records` (reported as INVALID_RECORD)."""
    con.execute(INVALID_RECORDS_DDL.replace("invalid_records", "reader_invalid_records"))
    for name, sql, columns, owner in _record_checks(version, role_map):
        df = con.execute(sql).df()
        try:
            pa.DataFrameSchema(columns, strict=False).validate(df, lazy=True)
        except pa.errors.SchemaErrors as exc:
            rows = pd.DataFrame(list(failure_rows(name, df, exc.failure_cases, owner, source_id)))
            con.register("_failed", rows)
            con.execute("INSERT INTO reader_invalid_records BY NAME SELECT * FROM _failed")
            con.unregister("_failed")


def extract_oneroster(con: duckdb.DuckDBPyConnection, source: Source, drop: Path, scratch: Path) -> dict[str, int]:
    """Reads one OneRoster drop into `con` (the source's staging database); returns the canonical row counts."""
    role_map = dict(source.oneroster_roles)
    with open_drop(source.id, drop, scratch / "unzipped", source.archive_limits) as folder:
        try:
            package = read_package(source.id, folder, scratch / "utf8")
            load_raw(con, source.id, package)
        finally:
            shutil.rmtree(scratch / "utf8", ignore_errors=True)
    con.execute(
        "CREATE OR REPLACE TABLE warnings (source_id VARCHAR, entity_type VARCHAR, record_id VARCHAR, "
        "code VARCHAR, detail VARCHAR)"
    )
    if package.warnings:
        con.executemany(
            "INSERT INTO warnings VALUES (?, 'file', ?, ?, ?)",
            [[source.id, file, code, detail] for file, code, detail in package.warnings],
        )
    if package.version == "1.1":
        # 1.1 keeps a user's role and schools on the user: the same shape as 1.2's roles.csv, one row per org.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE raw_roles AS
            SELECT row_number() OVER (ORDER BY u.idx, o.n) AS idx, u.sourcedId || '@' || trim(o.org) AS sourcedId,
                   u.status, u.dateLastModified, u.sourcedId AS userSourcedId, 'primary' AS roleType, u.role,
                   NULL::VARCHAR AS beginDate, NULL::VARCHAR AS endDate, nullif(trim(o.org), '') AS orgSourcedId
            FROM raw_users u,
                 LATERAL (SELECT unnest(string_split(coalesce(u.orgSourcedIds, ''), ',')) AS org,
                                 generate_subscripts(string_split(coalesce(u.orgSourcedIds, ''), ','), 1) AS n) o
            WHERE nullif(trim(o.org), '') IS NOT NULL"""
        )
    con.execute("CREATE OR REPLACE TEMP TABLE role_map (role VARCHAR, duty_role VARCHAR)")
    con.executemany("INSERT INTO role_map VALUES (?, ?)", [[r, d] for r, d in role_map.items()])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE staff_enrollment_roles AS SELECT unnest(?::VARCHAR[]) AS role",
        [[r for r in ENROLLMENT_ROLES if r not in ("student", "guardian", "parent", "relative")]],
    )
    con.execute("SET VARIABLE source_id = ?", [source.id])
    con.execute("SET VARIABLE id_prefix = ?", [source.id_prefix])
    con.execute(
        r"CREATE OR REPLACE TEMP MACRO pid(v) AS CASE WHEN nullif(trim(v), '') IS NOT NULL "
        r"THEN getvariable('id_prefix') || lower(trim(v)) END"
    )
    normalise_enums(con, source.id, _raw_enum_columns(package.version, role_map))
    con.execute("UPDATE warnings SET record_id = pid(record_id) WHERE code = 'ENUM_CASE'")
    check_records(con, source.id, package.version, role_map)
    con.execute(resources.files("skolon_pipeline.sources").joinpath("oneroster.sql").read_text(encoding="utf-8"))
    complete_staging(con)
    return row_counts(con, CANONICAL_TABLES)
