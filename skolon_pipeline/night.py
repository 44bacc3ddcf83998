"""The stages of one night, as plain functions: the Dagster assets call these, and so do the tests.

extract (per source) → validate (per source) → evaluate (all sources) → publish (warehouse).
Each source works in its own staging database `<staging>/<as_of>/<source_id>.duckdb`, so sources never
contend for a lock; only `publish` writes the warehouse.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from skolon_pipeline import duck
from skolon_pipeline.config import Installation, Source
from skolon_pipeline.duck import scalar
from skolon_pipeline.files import owner_only, private_dir, private_file
from skolon_pipeline.publish import publish as publishing
from skolon_pipeline.publish import snapshot
from skolon_pipeline.publish.guard import GuardResult, Policies
from skolon_pipeline.pull.drop import read_status as read_pull_status
from skolon_pipeline.rules.carry_over import carry_over
from skolon_pipeline.rules.conservation import conservation_gaps
from skolon_pipeline.rules.engine import run_rules
from skolon_pipeline.rules.freshness import Drop
from skolon_pipeline.sources.civic import KEY_FILE, is_demo_drop, pseudonym_key
from skolon_pipeline.sources.drops import SourceError, find_drop
from skolon_pipeline.sources.oneroster import extract_oneroster
from skolon_pipeline.sources.ss12000 import extract_ss12000
from skolon_pipeline.validate.canonical import TableReport, validate_staging

RULES_DB = "_rules.duckdb"  # source ids are [a-z0-9-]+, so this never clashes with a source's file


def night_dir(staging_dir: Path, as_of: dt.date) -> Path:
    return private_dir(staging_dir / as_of.isoformat())


def staging_file(staging_dir: Path, as_of: dt.date, source_id: str) -> Path:
    return night_dir(staging_dir, as_of) / f"{source_id}.duckdb"


def _fresh(path: Path):
    """A session on a new, empty DuckDB file (its spill folder removed when it ends); call inside
    `owner_only()` so that it and its WAL are private."""
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    return duck.session(path)


@dataclass(frozen=True)
class Extracted:
    source_id: str
    drop_date: dt.date
    drop_dir: Path
    staging_file: Path
    row_counts: dict[str, int]
    demo_key: bool = False  # civic numbers were hashed with the public demo key (the shipped demo drop)
    key_origin: str = ""  # SKOLON_PSEUDONYM_KEY, the key file's path, or the demo key
    key_created: bool = False  # this extract created the installation's key file


def key_file(staging_dir: Path) -> Path:
    """The installation's pseudonym key file, beside the warehouse (whose folder also holds `staging/`)."""
    return staging_dir.parent / KEY_FILE


def remove_leftovers(staging_dir: Path) -> None:
    """What killed runs left in the staging folder that holds personal data in clear: DuckDB spill folders
    (of databases no live process has open) and unpacked OneRoster archives (`<source>.scratch`, only used
    while a source is extracted; call only when no extract of that night is running, e.g. under the run lock)."""
    duck.remove_stale_spill(staging_dir)
    if staging_dir.is_dir():
        for scratch in staging_dir.glob(f"*/*{SCRATCH_SUFFIX}"):
            shutil.rmtree(scratch, ignore_errors=True)


SCRATCH_SUFFIX = ".scratch"


def extract(source: Source, as_of: dt.date, staging_dir: Path) -> Extracted:
    # Spill folders of killed runs of any night (a crash leaves none behind past the next run).
    duck.remove_stale_spill(staging_dir)
    if source.api is not None:
        # An API source whose pull failed tonight fails as a whole (its roster is carried over), rather than
        # quietly reading an older drop as if it were tonight's.
        pulled = read_pull_status(staging_dir, as_of, source.id)
        if pulled is not None and not pulled.get("ok"):
            raise SourceError(source.id, None, pulled.get("message") or "pull failed")
    drop_date, drop_dir = find_drop(source.id, source.root, as_of)
    with owner_only():
        key = pseudonym_key(key_file=key_file(staging_dir), demo_drop=is_demo_drop(drop_dir))
    path = staging_file(staging_dir, as_of, source.id)
    try:
        counts = _extract_into(path, source, as_of, staging_dir, drop_dir, key)
    except BaseException:
        # Half a staging file (a full disk, a kill, a bug) is personal data that no later step may read.
        _remove_staging(path)
        raise
    private_file(path)
    return Extracted(source.id, drop_date, drop_dir, path, counts, key.is_demo, key.origin, key.created)


def _remove_staging(path: Path) -> None:
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)


def _extract_into(path: Path, source: Source, as_of: dt.date, staging_dir: Path, drop_dir: Path, key) -> dict[str, int]:
    with owner_only(), _fresh(path) as con:
        if source.format == "oneroster":
            scratch = night_dir(staging_dir, as_of) / f"{source.id}{SCRATCH_SUFFIX}"
            try:
                counts = extract_oneroster(con, source, drop_dir, scratch)
            finally:  # unpacked and transcoded copies of the drop: personal data, gone with the step
                shutil.rmtree(scratch, ignore_errors=True)
        elif source.format == "ss12000":
            if not drop_dir.is_dir():
                raise SourceError(source.id, drop_dir, "an SS12000 drop is a folder of JSON files, not an archive")
            counts = extract_ss12000(
                con, source.id, drop_dir, key=key, school_email_domains=source.rules.school_email_domains, night=as_of
            )
        else:  # the configuration allows no other format
            raise SourceError(source.id, None, f"format {source.format!r} is not supported")
    return counts


# Every staging file records whether its source could be read tonight (source isolation: a source that fails
# leaves a file holding only this table, and the others go on).
# drop_date: the drop read (rules/freshness.py: DROP_STALE when it is too old).
_STATUS_DDL = (
    "CREATE OR REPLACE TABLE source_status (source_id VARCHAR, ok BOOLEAN, file VARCHAR, message VARCHAR, "
    "drop_date DATE)"
)


@dataclass(frozen=True)
class SourceFailed:
    """A source that could not be read tonight: its users, groups and memberships are carried over."""

    source_id: str
    file: str | None
    message: str


def extract_isolated(source: Source, as_of: dt.date, staging_dir: Path) -> Extracted | SourceFailed:
    """`extract`, but a SourceError fails only this source: it is recorded in the staging file and returned."""
    path = staging_file(staging_dir, as_of, source.id)
    try:
        extracted = extract(source, as_of, staging_dir)
    except SourceError as exc:
        with owner_only(), _fresh(path) as con:
            con.execute(_STATUS_DDL)
            con.execute("INSERT INTO source_status VALUES (?, false, ?, ?, NULL)", [source.id, exc.file, str(exc)])
        return SourceFailed(source.id, exc.file, str(exc))
    with owner_only(), duck.session(path) as con:
        record_read(con, source.id, extracted.drop_date)
    return extracted


def record_read(con: duckdb.DuckDBPyConnection, source_id: str, drop_date: dt.date) -> None:
    """Records in a staging database that its source was read tonight, from the drop of `drop_date`."""
    con.execute(_STATUS_DDL)
    con.execute("INSERT INTO source_status VALUES (?, true, NULL, NULL, ?)", [source_id, drop_date])


def source_failure(staging_dir: Path, as_of: dt.date, source_id: str) -> SourceFailed | None:
    """The source's failure tonight, or None when it was read (a staging file without status: read, too)."""
    path = staging_file(staging_dir, as_of, source_id)
    if not path.exists():
        return SourceFailed(source_id, None, f"source {source_id!r}: not extracted for night {as_of}")
    with duckdb.connect(str(path), read_only=True) as con:
        has_status = scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'source_status'")
        row = con.execute("SELECT ok, file, message FROM source_status").fetchone() if has_status else None
    if row is None or row[0]:
        return None
    return SourceFailed(source_id, row[1], row[2])


def source_drop_date(staging_dir: Path, as_of: dt.date, source_id: str) -> dt.date | None:
    """The date of the drop the source was read from tonight (None: not read, or a staging file from before)."""
    path = staging_file(staging_dir, as_of, source_id)
    if not path.exists():
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        has = scalar(
            con,
            """SELECT count(*) FROM duckdb_columns()
                             WHERE table_name = 'source_status' AND column_name = 'drop_date'""",
        )
        return scalar(con, "SELECT max(drop_date) FROM source_status") if has else None


def validate(source_id: str, path: Path) -> list[TableReport]:
    with owner_only(), duck.session(path) as con:
        return validate_staging(con, source_id)


@dataclass(frozen=True)
class Evaluated:
    rules_db: Path
    row_counts: dict[str, int]
    conservation: dict[str, dict]
    failed: tuple[SourceFailed, ...] = ()
    carried_over: dict[str, int] = field(default_factory=dict)  # table → rows carried over from an earlier night


class AllSourcesFailed(SourceError):
    """No source could be read: there is nothing to evaluate, and the previous roster stays as it was."""

    def __init__(self, failed: tuple[SourceFailed, ...]):
        RuntimeError.__init__(
            self, "every source failed; nothing is published: " + "; ".join(f.message for f in failed)
        )
        self.source_id, self.file, self.problem = failed[0].source_id, failed[0].file, "every source failed"


def evaluate(
    installation: Installation, as_of: dt.date, staging_dir: Path, warehouse_path: Path | None = None
) -> Evaluated:
    """The rules over every source read tonight; a failed source's last published rows are carried over from
    the warehouse (when given) and flagged stale."""
    failed = tuple(f for s in installation.sources if (f := source_failure(staging_dir, as_of, s.id)))
    failed_ids = {f.source_id for f in failed}
    sources = [s for s in installation.sources if s.id not in failed_ids]
    if not sources:
        raise AllSourcesFailed(failed)
    files = {s.id: staging_file(staging_dir, as_of, s.id) for s in sources}
    rules_db = night_dir(staging_dir, as_of) / RULES_DB
    with owner_only(), _fresh(rules_db) as con:
        drops = [
            Drop(s.id, source_drop_date(staging_dir, as_of, s.id), s.rules.max_drop_age_days, s.id not in failed_ids)
            for s in installation.sources
        ]
        counts = run_rules(con, sources, files, as_of, drops)
        gaps = conservation_gaps(con)
        carried = carry_over(con, warehouse_path, as_of, failed)
    private_file(rules_db)
    return Evaluated(rules_db, counts, gaps, failed, carried)


class NightHeld(RuntimeError):
    """The mass-removal guard held the night: nothing of it was published."""

    def __init__(self, result: GuardResult):
        self.result = result
        super().__init__(f"night {result.as_of} held: " + "; ".join(result.reasons))


def rules_db(staging_dir: Path, as_of: dt.date) -> Path:
    return night_dir(staging_dir, as_of) / RULES_DB


def check(
    installation: Installation,
    warehouse_path: Path,
    staging_dir: Path,
    as_of: dt.date,
    run_id: str,
    record: bool = True,
) -> GuardResult:
    """The night's change set against the last published night, and the guard's verdict (publishes nothing;
    with `record`, a night let through is prepared for `publish`, see publish.check_night)."""
    with owner_only():
        return publishing.check_night(
            warehouse_path,
            rules_db(staging_dir, as_of),
            as_of,
            Policies.for_night(installation, as_of),
            run_id,
            record=record,
            source_ids=[s.id for s in installation.sources],
        )


def publish(
    installation: Installation, warehouse_path: Path, rules_db: Path, as_of: dt.date, run_id: str
) -> publishing.Published:
    """Publishes the night unless the guard holds it (then NightHeld, and nothing of it is published): the
    warehouse `check` prepared for this run when nothing changed since, else in full."""
    with owner_only():
        prepared = publishing.publish_prepared(warehouse_path, rules_db, as_of, run_id)
    if prepared is not None:
        return prepared
    # A held night is recorded (history.held_nights), so the new warehouse replaces the published one either way.
    with snapshot.rewrite(warehouse_path) as writer:
        result = publishing.publish_night(
            writer.con,
            rules_db,
            as_of,
            run_id,
            [s.id for s in installation.sources],
            Policies.for_night(installation, as_of),
        )
    if not result.published:
        raise NightHeld(result.guard)
    return result


def evaluate_night(
    installation: Installation, as_of: dt.date, staging_dir: Path, warehouse_path: Path | None = None
) -> Evaluated:
    """Extract, validate and the rules in one call, without Dagster and without publishing: for tests of the rules
    and the readers. A source that cannot be read is isolated (carried over, listed in `Evaluated.failed`)."""
    for source in installation.sources:
        extracted = extract_isolated(source, as_of, staging_dir)
        if isinstance(extracted, Extracted):
            validate(source.id, extracted.staging_file)
    return evaluate(installation, as_of, staging_dir, warehouse_path)


def run_night(
    installation: Installation, as_of: dt.date, warehouse_path: Path, staging_dir: Path, run_id: str = "local"
):
    """All stages in one call, without Dagster: for tests and the benchmark's floor, not for production runs.
    Raises NightHeld when the guard holds the night."""
    evaluated = evaluate_night(installation, as_of, staging_dir, warehouse_path)
    publish(installation, warehouse_path, evaluated.rules_db, as_of, run_id)
    return evaluated
