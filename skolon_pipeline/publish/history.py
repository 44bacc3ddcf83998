"""Every published night, kept compactly as validity intervals, and the change set of each night.

`history.<table>` holds each distinct row of a published table once per run of consecutive published nights
it appeared in: `valid_from` is the first published night of the run, `valid_to` the first published night
it was no longer there (exclusive; `NULL` while it is in the latest night). A night's roster is therefore
the rows with `valid_from <= D AND (valid_to IS NULL OR valid_to > D)`; the table macros
`history.<table>_as_of(D)` say exactly that, for any date (a date between two published nights gets the
earlier night's rows). `nightly.<table>` (one row per night and row, keyed by `as_of`) and `roster.*` /
`diagnostics.*` are views over these tables, so the names analysts know stay.

A night's rows are a set: an exact repeat of a row within one night is stored once.

Publishing night N (`apply_night`) works for any N, also one older than the latest night (a backfill) or one
already published (a re-run): the intervals that touch N are cut at N, the night's rows are inserted as
`[N, next published night)`, and pieces of identical rows that now meet are merged again. Intervals of other
nights never change, so backfilling an old night leaves later nights exactly as they were.

`history.changes` is the change set of every published night against the published night before it, per
entity (school, user, group, membership, school affiliation): `added`, `removed` (with the reasons of the
night's exclusions of that record, when it has any), `updated` (with the names of the changed columns), and
`removal_held` for a removal that a removal-hold period keeps back (`removal_held_until`). It is recomputed
for the published night and for the night after it (whose predecessor may have changed) in the publish
transaction. Everything here is DuckDB SQL over whole tables; nothing is done row by row in Python.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from skolon_pipeline.publish import tables
from skolon_pipeline.publish.tables import Published


@dataclass(frozen=True)
class Entity:
    """A rostered thing whose changes are tracked: its table (and so its key) and how its exclusions are found."""

    name: str  # entity_type in history.changes
    table: Published
    exclusion_type: str | None  # entity_type of its rows in exclusions (None: schools have none)
    exclusion_record: str | None  # the expression over the entity's row that is the exclusion's record_id

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify it within a source (besides source_id)."""
        return self.table.key

    @property
    def entity_id(self) -> str:
        return " || '/' || ".join(self.key)


ENTITIES: tuple[Entity, ...] = (
    Entity("school", tables.SCHOOLS, None, None),
    Entity("user", tables.USERS, "person", "user_id"),
    Entity("group", tables.GROUPS, "group", "group_id"),
    Entity("membership", tables.MEMBERSHIPS, "membership", "group_id || '/' || user_id"),
    # An affiliation that ends while its user stays has no exclusion; one whose user is excluded shows why.
    Entity("school_affiliation", tables.SCHOOL_AFFILIATIONS, "person", "user_id"),
)

CHANGE_KINDS = ("added", "removed", "updated", "removal_held")


def date_sql(value: dt.date | None) -> str:
    return "NULL::DATE" if value is None else f"DATE '{value.isoformat()}'"


def at_night(table: str, night: dt.date, cols: list[str]) -> str:
    """The rows of history.<table> on night `night`, as a subquery."""
    d = date_sql(night)
    return f"(SELECT {', '.join(cols)} FROM history.{table} WHERE valid_from <= {d} AND (valid_to IS NULL OR valid_to > {d}))"


# ─── schema ────────────────────────────────────────────────────────────────────────────────────────────


def ensure_history(con: duckdb.DuckDBPyConnection) -> None:
    """History tables, their macros, the change tables and the sync-date views (idempotent)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS history")
    for table in tables.PUBLISHED:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS history.{table.name} ({table.content_ddl()}, valid_from DATE NOT NULL, valid_to DATE)"
        )
        for column in table.columns:
            if column.name != "as_of":
                con.execute(f"ALTER TABLE history.{table.name} ADD COLUMN IF NOT EXISTS {column.ddl}")
        con.execute(
            f"""CREATE OR REPLACE MACRO history.{table.name}_as_of(d) AS TABLE
                SELECT * EXCLUDE (valid_from, valid_to) FROM history.{table.name}
                WHERE valid_from <= CAST(d AS DATE) AND (valid_to IS NULL OR valid_to > CAST(d AS DATE))"""
        )
    for table in tables.HISTORY_TABLES:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table.qualified} ({table.ddl()})")
        for column in table.columns:  # columns added since a warehouse was created
            if column.name not in table.primary_key:
                con.execute(f"ALTER TABLE {table.qualified} ADD COLUMN IF NOT EXISTS {column.ddl}")
    # "First synced" and "last changed by sync" per user and group: the first night it was published, and the
    # last night its row was added or changed. As of a night D: the `_as_of(D)` macros.
    for name, table, key in (("user", "users", "user_id"), ("group", "groups", "group_id")):
        select = f"""SELECT source_id, {key}, min(valid_from) AS first_synced, max(valid_from) AS last_changed
                     FROM history.{table}"""
        con.execute(f"CREATE OR REPLACE VIEW history.{name}_sync_dates AS {select} GROUP BY ALL")
        con.execute(
            f"""CREATE OR REPLACE MACRO history.{name}_sync_dates_as_of(d) AS TABLE
                {select} WHERE valid_from <= CAST(d AS DATE) GROUP BY ALL"""
        )


# ─── intervals ─────────────────────────────────────────────────────────────────────────────────────────


def apply_night(
    con: duckdb.DuckDBPyConnection,
    published: Published,
    night: dt.date,
    next_night: dt.date | None,
    rows_sql: str,
    sets: NewestNight | None = None,
) -> None:
    """Makes the rows of `rows_sql` (the table's content columns, a set: no row twice, as publish's candidate
    tables are made) the rows of history.<table> on `night`.

    `next_night` is the first published night after `night` (None if there is none); `sets`: the night's rows
    gone and new against the open intervals (`newest_night`), when the caller has them. Runs inside the
    caller's transaction."""
    table, cols = published.name, published.content_columns
    col_list = ", ".join(cols)
    n, m = date_sql(night), date_sql(next_night)
    if sets is not None:
        _close_and_open(con, table, cols, night, sets.gone[table], sets.new[table])
        return
    if next_night is None and _is_newest(con, table, night):
        _append_newest_night(con, table, cols, night, rows_sql)
        return
    covering = f"valid_from <= {n} AND (valid_to IS NULL OR valid_to > {n})"
    touched = f"({covering}) OR valid_to = {n} OR valid_from = {m}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _touched AS SELECT * FROM history.{table} WHERE {touched}")
    con.execute(f"DELETE FROM history.{table} WHERE {touched}")
    con.execute(
        f"""INSERT INTO history.{table} ({col_list}, valid_from, valid_to)
        WITH pieces AS (
            -- what lay before the night, cut at it
            SELECT {col_list}, valid_from, {n} AS valid_to FROM _touched WHERE valid_from < {n} AND ({covering})
            UNION ALL
            -- what lay after the night, from the next published night on
            SELECT {col_list}, {m}, valid_to FROM _touched
            WHERE {m} IS NOT NULL AND ({covering}) AND (valid_to IS NULL OR valid_to > {m})
            UNION ALL
            -- neighbours that may now meet the night's rows
            SELECT {col_list}, valid_from, valid_to FROM _touched WHERE valid_to = {n} OR valid_from = {m}
            UNION ALL
            SELECT DISTINCT {col_list}, {n}, {m} FROM {rows_sql} AS night_rows
        ), marked AS (
            SELECT *, CASE WHEN lag(valid_to) OVER w IS NOT DISTINCT FROM valid_from THEN 0 ELSE 1 END AS starts
            FROM pieces WINDOW w AS (PARTITION BY {col_list} ORDER BY valid_from)
        ), islands AS (
            SELECT *, sum(starts) OVER (PARTITION BY {col_list} ORDER BY valid_from ROWS UNBOUNDED PRECEDING) AS island
            FROM marked
        )
        SELECT {col_list}, min(valid_from), CASE WHEN bool_or(valid_to IS NULL) THEN NULL ELSE max(valid_to) END
        FROM islands GROUP BY {col_list}, island"""
    )
    con.execute("DROP TABLE _touched")


def _is_newest(con: duckdb.DuckDBPyConnection, table: str, night: dt.date) -> bool:
    """Whether `night` is later than every night history.<table> knows (the usual nightly case)."""
    latest = con.execute(f"SELECT greatest(max(valid_from), max(valid_to)) FROM history.{table}").fetchone()[0]
    return latest is None or latest < night


def _append_newest_night(
    con: duckdb.DuckDBPyConnection, table: str, cols: list[str], night: dt.date, rows_sql: str
) -> None:
    """apply_night for a night after every published one: close the open intervals whose row is gone, open
    one for each new row, leave the rest alone. Set operations on the open rows only, where the general path
    cuts and re-merges every open interval with a window over all columns (profiled: 3.7 s of a 10 s publish
    at 1.3 million memberships). EXCEPT compares whole rows as sets (NULLs equal, as the intervals do, and
    repeated rows once), so the night's rows are read as they are, not copied first; with no open interval
    (the first night, a table emptied) every row of the night opens one."""
    col_list = ", ".join(cols)
    n = date_sql(night)
    if not con.execute(f"SELECT EXISTS (SELECT 1 FROM history.{table} WHERE valid_to IS NULL)").fetchone()[0]:
        # rows_sql is a set: each row opens its interval as it is (a DISTINCT here cost 0.3 s at 1.3 million
        # memberships for nothing).
        con.execute(
            f"""INSERT INTO history.{table} ({col_list}, valid_from, valid_to)
                SELECT {col_list}, {n}, NULL::DATE FROM {rows_sql} AS night_rows"""
        )
        return
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _open_rows AS SELECT {col_list} FROM history.{table} WHERE valid_to IS NULL"
    )
    _except_both_ways(con, cols, "_open_rows", rows_sql, "_gone", "_new")
    _close_and_open(con, table, cols, night, "_gone", "_new")
    for temp in ("_open_rows", "_gone", "_new"):
        con.execute(f"DROP TABLE {temp}")


def _close_and_open(
    con: duckdb.DuckDBPyConnection, table: str, cols: list[str], night: dt.date, gone: str, new: str
) -> None:
    """Closes at `night` the open intervals of the rows in `gone` and opens one for each row in `new`."""
    col_list = ", ".join(cols)
    n = date_sql(night)
    matches = " AND ".join(f"h.{c} IS NOT DISTINCT FROM g.{c}" for c in cols)
    con.execute(f"UPDATE history.{table} h SET valid_to = {n} FROM {gone} g WHERE h.valid_to IS NULL AND {matches}")
    con.execute(
        f"INSERT INTO history.{table} ({col_list}, valid_from, valid_to) SELECT {col_list}, {n}, NULL FROM {new}"
    )


@dataclass(frozen=True)
class NewestNight:
    """A night after every published one, against the open intervals (the latest published night's rows): per
    table name, the temp table of the rows gone tonight and of the rows new tonight. Its change set is read from
    these (`changes_select`), and so are its intervals (`apply_night`): each table's rows are compared once."""

    gone: dict[str, str]
    new: dict[str, str]


def newest_night(con: duckdb.DuckDBPyConnection, night: dt.date, rows: dict[str, str]) -> NewestNight | None:
    """The NewestNight sets of `night`'s rows (table name → subquery of a set of rows), or None when `night` is
    not later than every published night (a backfill or a re-run: the general path) or nothing is published yet
    (the first night: every row is added). Every interval starts and ends on a published night, so after the
    latest one the open intervals are its rows."""
    latest = con.execute("SELECT max(as_of) FROM nightly.nights").fetchone()[0]
    if latest is None or latest >= night:
        return None
    open_rows = {
        t.name: f"(SELECT {', '.join(t.content_columns)} FROM history.{t.name} WHERE valid_to IS NULL)"
        for t in tables.PUBLISHED
    }
    return gone_and_new(con, open_rows, rows)


def gone_and_new(con: duckdb.DuckDBPyConnection, before: dict[str, str], after: dict[str, str]) -> NewestNight:
    """Temp tables `_gone_<table>` (rows of `before` not in `after`) and `_new_<table>` (the other way round),
    for every published table (table name → subquery of a set of its rows)."""
    gone = {t.name: f"_gone_{t.name}" for t in tables.PUBLISHED}
    new = {t.name: f"_new_{t.name}" for t in tables.PUBLISHED}
    for t in tables.PUBLISHED:
        _except_both_ways(con, t.content_columns, before[t.name], after[t.name], gone[t.name], new[t.name])
    return NewestNight(gone, new)


def _except_both_ways(
    con: duckdb.DuckDBPyConnection, cols: list[str], before: str, after: str, gone: str, new: str
) -> None:
    """Temp tables `gone` (rows of `before` not in `after`) and `new` (the other way round). EXCEPT compares whole
    rows as sets, NULLs equal and repeated rows once, as the intervals do."""
    col_list = ", ".join(cols)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {gone} AS SELECT {col_list} FROM {before} b EXCEPT SELECT {col_list} FROM {after} a"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {new} AS SELECT {col_list} FROM {after} a EXCEPT SELECT {col_list} FROM {before} b"
    )


def rebuild_from_snapshots(con: duckdb.DuckDBPyConnection, published: Published, snapshots: str) -> None:
    """Fills history.<table> from per-night snapshots (`snapshots`: the table's columns with `as_of`, one
    night per published night in nightly.nights): rows on consecutive published nights become one interval.
    Used to migrate warehouses written before history existed."""
    table, cols = published.name, published.content_columns
    col_list = ", ".join(cols)
    con.execute(
        f"""INSERT INTO history.{table} ({col_list}, valid_from, valid_to)
        WITH nights AS (
            SELECT as_of, row_number() OVER (ORDER BY as_of) AS idx, lead(as_of) OVER (ORDER BY as_of) AS next_night
            FROM nightly.nights
        ), rows AS (
            SELECT DISTINCT s.as_of, n.idx, n.next_night, {", ".join(f"s.{c}" for c in cols)}
            FROM {snapshots} s JOIN nights n USING (as_of)
        ), islands AS (
            SELECT *, idx - row_number() OVER (PARTITION BY {col_list} ORDER BY idx) AS island FROM rows
        )
        SELECT {col_list}, first_night, n.next_night
        FROM (SELECT {col_list}, min(as_of) AS first_night, max(as_of) AS last_night FROM islands
              GROUP BY {col_list}, island) i
        JOIN nights n ON n.as_of = i.last_night"""
    )


# ─── change sets ───────────────────────────────────────────────────────────────────────────────────────


def _removal_reasons(entity: Entity, exclusions_sql: str) -> tuple[str, str]:
    """(the reasons and detail columns, the join that finds them) of a change set's rows `d`: a removed record's
    reason codes that night, from `exclusions_sql`."""
    if not entity.exclusion_type:
        return "NULL::VARCHAR[] AS reasons, NULL::VARCHAR AS detail", ""
    join = f"""LEFT JOIN (
            SELECT source_id, record_id, list(DISTINCT reason_code ORDER BY reason_code) AS reasons,
                   string_agg(DISTINCT reason_code || coalesce(': ' || detail, ''), '; ' ORDER BY reason_code || coalesce(': ' || detail, '')) AS detail
            FROM {exclusions_sql} x WHERE entity_type = '{entity.exclusion_type}'
              AND record_id IN (SELECT _record FROM d WHERE change = 'removed')
            GROUP BY ALL
        ) r ON r.source_id = d.source_id AND r.record_id = d._record"""
    columns = (
        "CASE WHEN d.change = 'removed' THEN r.reasons END AS reasons, "
        "CASE WHEN d.change = 'removed' THEN r.detail END AS detail"
    )
    return columns, join


def diff_sql(entity: Entity, old_sql: str, new_sql: str, exclusions_sql: str) -> str:
    """added/removed/updated rows of `entity` between two sets of the table's rows (subqueries of its
    content columns); removed ones carry the reasons of `exclusions_sql` (the new night's exclusions).

    Each key's rows are compared by a fingerprint (their count and the XOR of their row hashes; a night's rows
    are a set, so equal sets give equal fingerprints), and only keys whose fingerprints differ are aggregated
    column by column to name the changed fields. Aggregating every column of every key of both nights took
    most of the publish step (profiled: 25 of 65 CPU seconds at 200 000 persons, 1.3 million memberships)."""
    cols = entity.table.content_columns
    fields = [c for c in cols if c not in entity.key and c != "source_id"]
    aggregates = ", ".join(f"list(DISTINCT {c} ORDER BY {c}) AS {c}" for c in fields)
    changed = ", ".join(f"CASE WHEN uo.{c} IS DISTINCT FROM un.{c} THEN '{c}' END" for c in fields)
    row_hash = f"hash({', '.join(cols)})"
    record = entity.exclusion_record or "NULL"
    reasons, join_reasons = _removal_reasons(entity, exclusions_sql)
    return f"""
        WITH o AS (SELECT source_id, {entity.entity_id} AS _id, any_value({record}) AS _record, count(*) AS _n,
                          bit_xor({row_hash}) AS _x
                   FROM {old_sql} t GROUP BY source_id, _id),
             n AS (SELECT source_id, {entity.entity_id} AS _id, count(*) AS _n, bit_xor({row_hash}) AS _x
                   FROM {new_sql} t GROUP BY source_id, _id),
             d AS (SELECT coalesce(n.source_id, o.source_id) AS source_id, coalesce(n._id, o._id) AS _id, o._record,
                          CASE WHEN o._id IS NULL THEN 'added' WHEN n._id IS NULL THEN 'removed' ELSE 'updated' END AS change
                   FROM o FULL JOIN n ON n.source_id = o.source_id AND n._id = o._id
                   WHERE o._id IS NULL OR n._id IS NULL OR o._n <> n._n OR o._x <> n._x),
             uo AS (SELECT source_id, {entity.entity_id} AS _id, {aggregates or "NULL AS _none"} FROM {old_sql} t
                    WHERE (source_id, {entity.entity_id}) IN (SELECT (source_id, _id) FROM d WHERE change = 'updated')
                    GROUP BY source_id, _id),
             un AS (SELECT source_id, {entity.entity_id} AS _id, {aggregates or "NULL AS _none"} FROM {new_sql} t
                    WHERE (source_id, {entity.entity_id}) IN (SELECT (source_id, _id) FROM d WHERE change = 'updated')
                    GROUP BY source_id, _id)
        SELECT d.source_id, '{entity.name}' AS entity_type, d._id AS entity_id, d.change,
               CASE WHEN d.change = 'updated'
                    THEN list_filter([{changed}]::VARCHAR[], lambda f: f IS NOT NULL) END AS changed_fields,
               {reasons}
        FROM d
        LEFT JOIN uo ON uo.source_id = d.source_id AND uo._id = d._id
        LEFT JOIN un ON un.source_id = d.source_id AND un._id = d._id
        {join_reasons}"""


def diff_from_sets_sql(entity: Entity, old_sql: str, new_sql: str, gone: str, new: str, exclusions_sql: str) -> str:
    """diff_sql for a night after every published one, from the rows gone and new tonight (NewestNight): the
    keys of those rows are the changed ones, and each is added (not in `old_sql`), removed (not in `new_sql`)
    or updated; only those keys are looked up and aggregated. Finding the changed keys by fingerprints
    aggregated over every key of both nights took 20 of the change set's 62 s at 2 million persons."""
    cols = entity.table.content_columns
    keys = ["source_id", *entity.key]
    key_list = ", ".join(keys)
    fields = [c for c in cols if c not in keys]
    aggregates = ", ".join(f"list(DISTINCT {c} ORDER BY {c}) AS {c}" for c in fields)
    changed = ", ".join(f"CASE WHEN uo.{c} IS DISTINCT FROM un.{c} THEN '{c}' END" for c in fields)
    record = entity.exclusion_record or "NULL"

    def on(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{k} = {b}.{k}" for k in keys)

    in_changed = f"({key_list}) IN (SELECT ({key_list}) FROM k)"
    reasons, join_reasons = _removal_reasons(entity, exclusions_sql)
    return f"""
        WITH k AS (SELECT {key_list} FROM {gone} UNION SELECT {key_list} FROM {new}),
             o AS (SELECT {key_list}, any_value({record}) AS _record FROM {old_sql} t WHERE {in_changed}
                   GROUP BY {key_list}),
             n AS (SELECT DISTINCT {key_list} FROM {new_sql} t WHERE {in_changed}),
             d AS (SELECT k.*, o._record,
                          CASE WHEN o.source_id IS NULL THEN 'added' WHEN n.source_id IS NULL THEN 'removed'
                               ELSE 'updated' END AS change
                   FROM k LEFT JOIN o ON {on("o", "k")} LEFT JOIN n ON {on("n", "k")}),
             uo AS (SELECT {key_list}, {aggregates or "NULL AS _none"} FROM {old_sql} t
                    WHERE ({key_list}) IN (SELECT ({key_list}) FROM d WHERE change = 'updated')
                    GROUP BY {key_list}),
             un AS (SELECT {key_list}, {aggregates or "NULL AS _none"} FROM {new_sql} t
                    WHERE ({key_list}) IN (SELECT ({key_list}) FROM d WHERE change = 'updated')
                    GROUP BY {key_list})
        SELECT d.source_id, '{entity.name}' AS entity_type, {" || '/' || ".join(f"d.{k}" for k in entity.key)} AS entity_id,
               d.change,
               CASE WHEN d.change = 'updated'
                    THEN list_filter([{changed}]::VARCHAR[], lambda f: f IS NOT NULL) END AS changed_fields,
               {reasons}
        FROM d
        LEFT JOIN uo ON {on("uo", "d")}
        LEFT JOIN un ON {on("un", "d")}
        {join_reasons}"""


def added_sql(entity: Entity, new_sql: str) -> str:
    """diff_sql against no rows at all: each of `entity`'s ids in `new_sql` once, added. What a night with no
    published night before it changes; without the fingerprints and the joins that comparing two nights needs
    (the first night of 200 000 persons, 1.7 million rows, in the change set step: 0.63 s → 0.45 s)."""
    return f"""SELECT DISTINCT source_id, '{entity.name}' AS entity_type, {entity.entity_id} AS entity_id,
                      'added' AS change, NULL::VARCHAR[] AS changed_fields, NULL::VARCHAR[] AS reasons,
                      NULL::VARCHAR AS detail
               FROM {new_sql} t"""


def night_rows(night: dt.date) -> dict[str, str]:
    """Each published table's rows on a published night, as subqueries (by table name)."""
    return {t.name: at_night(t.name, night, t.content_columns) for t in tables.PUBLISHED}


def changes_select(
    night: dt.date,
    previous: dict[str, str] | None,
    current: dict[str, str],
    compared_with: dt.date | None,
    sets: NewestNight | None = None,
) -> str:
    """history.changes rows of `night` (without removal holds): `previous` → `current` (table → subquery).
    With no previous night, everything is added; with `sets` (a night after every published one, `previous`
    the latest), the changed keys are those of its rows gone and new."""
    parts = []
    exclusions = current[tables.EXCLUSIONS.name]
    for e in ENTITIES:
        name = e.table.name
        if previous is None:
            diff = added_sql(e, current[name])
        elif sets is not None:
            diff = diff_from_sets_sql(e, previous[name], current[name], sets.gone[name], sets.new[name], exclusions)
        else:
            diff = diff_sql(e, previous[name], current[name], exclusions)
        parts.append(f"SELECT * FROM ({diff})")
    return f"""SELECT {date_sql(night)} AS as_of, {date_sql(compared_with)} AS compared_with, source_id, entity_type,
                      entity_id, change, changed_fields, reasons, detail, NULL::DATE AS removal_held_until
               FROM ({" UNION ALL ".join(parts)})"""


def record_changes(con: duckdb.DuckDBPyConnection, night: dt.date, previous_night: dt.date | None) -> None:
    """Replaces history.changes of published night `night` (against `previous_night`) from the history."""
    con.execute("DELETE FROM history.changes WHERE as_of = ?", [night])
    previous = night_rows(previous_night) if previous_night else None
    con.execute(
        f"INSERT INTO history.changes BY NAME {changes_select(night, previous, night_rows(night), previous_night)}"
    )
    con.execute(
        f"""INSERT INTO history.changes BY NAME
            SELECT as_of, {date_sql(previous_night)} AS compared_with, source_id, entity_type, entity_id,
                   'removal_held' AS change, removal_held_until
            FROM history.held_removals WHERE as_of = ?""",
        [night],
    )
