"""The one publish transaction: candidate → guard → intervals → change set → nights.

A night is published from the rules' output (the night's rules database, attached read-only as
`rules_out`) in one DuckDB transaction on the warehouse:

1. **candidate**: temp tables `cand_<table>`, the rules' rows plus, for sources in a removal-hold period, the
   last published night's rows of every entity that would be removed (listed in `_held_removals`). This is
   the one place a night's rows are assembled before publishing, so other ways of carrying rows over fit here;
2. **change set** of the candidate against the last published night before it (`_candidate_changes`), and
   the **guard**'s verdict on it (publish/guard.py); a held night is recorded in history.held_nights and
   history.held_changes, and nothing of it is published;
3. **intervals**: the candidate becomes the night's rows in history.<table> (publish/history.py);
4. the night's **change set** goes to history.changes (and the next published night's is recomputed, since
   its predecessor may now be this night), its held removals to history.held_removals;
5. **nights**: the night is listed in nightly.nights.

A failure anywhere rolls everything back, so the previous state stays complete. `check_night` runs steps 1
and 2 only for `run --dry-run` (the change set and the verdict); for the Dagster change_set asset it runs the
whole transaction on its private copy when the guard lets the night through and keeps that as the night's
prepared warehouse, which `publish_prepared` installs in the publish step (or, if anything changed in
between, that step publishes in full: the guard is applied again there, so a held night is never published).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from skolon_pipeline import duck
from skolon_pipeline.duck import scalar
from skolon_pipeline.publish import guard, history, tables, warehouse
from skolon_pipeline.publish.guard import GuardResult, Policies

_CANDIDATE = {t.name: f"cand_{t.name}" for t in tables.PUBLISHED}


@dataclass
class Published:
    """What publish_night did: rows per table when published, and the guard's verdict either way."""

    published: bool
    counts: dict[str, int]
    guard: GuardResult


def publish_night(
    con: duckdb.DuckDBPyConnection,
    rules_db: Path,
    as_of: dt.date,
    run_id: str,
    source_ids: list[str],
    policies: Policies,
) -> Published:
    """Publishes night `as_of` from the rules' output in one transaction, unless the guard holds it (then the
    hold is recorded and nothing of the night is published)."""
    return _transaction(con, rules_db, as_of, policies, run_id, record=True, source_ids=source_ids)


def check_night(
    warehouse_path: Path,
    rules_db: Path,
    as_of: dt.date,
    policies: Policies,
    run_id: str,
    record: bool = True,
    source_ids: list[str] | None = None,
) -> GuardResult:
    """The night's change set against the last published night before it and the guard's verdict; with
    `record`, a held night is written to history.held_nights/held_changes. Publishes nothing.

    With `record` and `source_ids`, a night the guard lets through is also published on the private copy and
    kept as the night's prepared warehouse (snapshot.Prepare), which `publish_prepared` installs unless the
    published warehouse or the rules' output changed in between: the candidate, the change set and the
    verdict are computed and the warehouse copied once a night, not twice. If preparing fails (a full disk),
    the night is checked again without it; the publish step then publishes in full (and reports the cause)."""
    if record and source_ids is not None:
        try:
            return _check(warehouse_path, rules_db, as_of, policies, run_id, record, source_ids)
        except (OSError, duckdb.Error):
            pass
    return _check(warehouse_path, rules_db, as_of, policies, run_id, record, None)


def _check(
    warehouse_path: Path,
    rules_db: Path,
    as_of: dt.date,
    policies: Policies,
    run_id: str,
    record: bool,
    source_ids: list[str] | None,
) -> GuardResult:
    from skolon_pipeline.publish import snapshot

    # On a private copy of the warehouse (an empty one before the first night), kept when a hold is recorded
    # (it replaces the published file) or as the prepared warehouse of a night let through; otherwise
    # discarded: readers of the published file are never in the way, and a dry run changes nothing.
    rules_identity = snapshot.identity(rules_db)  # before it is read: a rules re-run meanwhile is seen
    with snapshot.rewrite(warehouse_path) as writer:
        result = _transaction(writer.con, rules_db, as_of, policies, run_id, record=record, source_ids=source_ids)
        verdict = result.guard
        writer.keep = (record and verdict.blocks) or result.published
        if result.published:
            writer.prepare = snapshot.Prepare(
                as_of.isoformat(), run_id, rules_db, rules_identity, {"counts": result.counts, "guard": asdict(verdict)}
            )
    return verdict


def publish_prepared(warehouse_path: Path, rules_db: Path, as_of: dt.date, run_id: str) -> Published | None:
    """Installs the night's prepared warehouse (see check_night) if run `run_id` prepared it from the published
    warehouse as it is now and from `rules_db` as it is now; None otherwise (publish in full: publish_night)."""
    from skolon_pipeline.publish import snapshot

    extra = snapshot.install_prepared(warehouse_path, as_of.isoformat(), run_id, rules_db)
    if extra is None:
        return None
    verdict = dict(extra["guard"])
    for key in ("as_of", "compared_with"):
        verdict[key] = dt.date.fromisoformat(verdict[key]) if verdict[key] else None
    return Published(True, dict(extra["counts"]), GuardResult(**verdict))


def _transaction(
    con: duckdb.DuckDBPyConnection,
    rules_db: Path,
    as_of: dt.date,
    policies: Policies,
    run_id: str,
    *,
    record: bool,
    source_ids: list[str] | None,
) -> Published:
    """The transaction of publish_night (`source_ids` given) or of check_night (None: stops after the guard)."""
    warehouse.ensure_schema(con)
    # duck.transaction: a COMMIT that fails (a full disk) is reported by its own error, not the ROLLBACK's.
    with warehouse.attached_rules(con, rules_db), _insertion_order_restored(con), duck.transaction(con):
        previous, following = previous_night(con, as_of), next_night(con, as_of)
        _candidate(con, as_of, previous, policies)
        # The usual night, after every published one: each table's rows compared with the latest night's once,
        # for the change set and (if published) the intervals.
        sets = history.newest_night(con, as_of, _CANDIDATE) if following is None else None
        verdict = _guard(con, as_of, previous, policies, sets)
        if verdict.blocks and record:
            _record_hold(con, verdict, run_id)
        if verdict.blocks or source_ids is None:
            return Published(False, {}, verdict)
        _write_night(con, as_of, following, run_id, source_ids, verdict, sets)
        counts = {t.name: scalar(con, f"SELECT count(*) FROM {_CANDIDATE[t.name]}") for t in tables.PUBLISHED}
    return Published(True, counts, verdict)


@contextlib.contextmanager
def _insertion_order_restored(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The connection keeps its rows in the order written again once the transaction has ended (_write_night
    lets go of it; inside a failed transaction no setting could be changed back)."""
    try:
        yield
    finally:
        con.execute("RESET preserve_insertion_order")


def previous_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dt.date | None:
    return scalar(con, "SELECT max(as_of) FROM nightly.nights WHERE as_of < ?", [as_of])


def next_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dt.date | None:
    return scalar(con, "SELECT min(as_of) FROM nightly.nights WHERE as_of > ?", [as_of])


def _candidate(con: duckdb.DuckDBPyConnection, as_of: dt.date, previous: dt.date | None, policies: Policies) -> None:
    """cand_<table> temp tables: the rules' output (rules_out.main.out_<table>), plus, for sources in a
    removal-hold period, the last published night's rows of every entity that would be removed
    (listed in _held_removals)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _policy (source_id VARCHAR, max_removal_share DOUBLE, removal_held_until DATE)"
    )
    con.executemany(
        "INSERT INTO _policy VALUES (?, ?, ?)",
        [[sid, p.max_removal_share, p.removal_held_until] for sid, p in policies.per_source.items()],
    )
    for table in tables.PUBLISHED:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_CANDIDATE[table.name]} AS
                SELECT DISTINCT {", ".join(table.content_columns)} FROM rules_out.main.{table.rules_output}"""
        )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _held_removals ({tables.HELD_REMOVALS.ddl()})")
    if previous is None or not any(p.removal_held_until for p in policies.per_source.values()):
        return
    for entity in history.ENTITIES:
        cols = entity.table.content_columns
        candidate = _CANDIDATE[entity.table.name]
        match = " AND ".join(f"c.{k} = p.{k}" for k in ("source_id", *entity.key))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _carried AS
                SELECT {", ".join(f"p.{c}" for c in cols)}, pol.removal_held_until
                FROM {history.at_night(entity.table.name, previous, cols)} p
                JOIN _policy pol ON pol.source_id = p.source_id AND pol.removal_held_until IS NOT NULL
                WHERE NOT EXISTS (SELECT 1 FROM {candidate} c WHERE {match})"""
        )
        con.execute(
            f"""INSERT INTO _held_removals SELECT DISTINCT {history.date_sql(as_of)}, source_id, '{entity.name}',
                       {entity.entity_id}, removal_held_until FROM _carried"""
        )
        con.execute(f"INSERT INTO {candidate} SELECT {', '.join(cols)} FROM _carried")
    con.execute("DROP TABLE _carried")


def _guard(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    previous: dt.date | None,
    policies: Policies,
    sets: history.NewestNight | None,
) -> GuardResult:
    """The candidate's change set (temp table _candidate_changes) and the guard's verdict on it."""
    prev_rows = history.night_rows(previous) if previous else None
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _candidate_changes AS "
        + history.changes_select(as_of, prev_rows, _CANDIDATE, previous, sets)
    )
    con.execute(
        f"""INSERT INTO _candidate_changes BY NAME
            SELECT as_of, {history.date_sql(previous)} AS compared_with, source_id, entity_type, entity_id,
                   'removal_held' AS change, removal_held_until FROM _held_removals"""
    )
    _week_max(con, as_of)
    fingerprint = _fingerprint(con)
    approved, stale = _approval(con, as_of, fingerprint)
    return guard.decide(
        con,
        as_of,
        previous,
        policies,
        changes="_candidate_changes",
        before=prev_rows,
        after=_CANDIDATE,
        approved=approved,
        week="_week_max",
        before_counts=_recorded_counts(con, previous),
        fingerprint=fingerprint,
        stale_approval=stale,
    )


def _recorded_counts(con: duckdb.DuckDBPyConnection, night: dt.date | None) -> str | None:
    """The relation of the counts recorded for published night `night` (history.night_counts), or None when
    there is no such night or it was published before counts were recorded."""
    if night is None or not scalar(
        con, f"SELECT count(*) FROM {tables.NIGHT_COUNTS.qualified} WHERE as_of = ?", [night]
    ):
        return None
    return f"(SELECT * FROM {tables.NIGHT_COUNTS.qualified} WHERE as_of = {history.date_sql(night)})"


WEEK_NIGHTS = 7  # the guard's slow-loss window: the last 7 published nights before a night


def _week_max(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """Temp table _week_max: per source, the largest user and membership counts of the last 7 published
    nights before `as_of` (for max_removal_share_week). Each night's counts were recorded when it was published
    (history.night_counts); a night published before they were is counted in the history, as it always was:
    counting seven nights there cost about a second a night at 200 000 persons."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _week_nights AS "
        "SELECT as_of AS night FROM nightly.nights WHERE as_of < ? ORDER BY as_of DESC LIMIT ?",
        [as_of, WEEK_NIGHTS],
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _week_max AS
           WITH recorded AS (
               SELECT as_of AS night, source_id, users, memberships FROM {tables.NIGHT_COUNTS.qualified}
               WHERE as_of IN (SELECT night FROM _week_nights)),
           uncounted AS (
               SELECT night FROM _week_nights WHERE night NOT IN (SELECT night FROM recorded)),
           users AS (
               SELECT n.night, u.source_id, count(*) AS n FROM uncounted n
               JOIN history.users u ON u.valid_from <= n.night AND (u.valid_to IS NULL OR u.valid_to > n.night)
               GROUP BY ALL),
           memberships AS (
               SELECT n.night, m.source_id, count(DISTINCT m.group_id || '/' || m.user_id) AS n FROM uncounted n
               JOIN history.memberships m ON m.valid_from <= n.night AND (m.valid_to IS NULL OR m.valid_to > n.night)
               GROUP BY ALL),
           counted AS (
               SELECT night, source_id, u.n AS users, m.n AS memberships
               FROM users u FULL JOIN memberships m USING (night, source_id)
               UNION ALL
               SELECT night, source_id, users, memberships FROM recorded)
           SELECT source_id, coalesce(max(users), 0) AS users_max, coalesce(max(memberships), 0) AS memberships_max
           FROM counted
           GROUP BY source_id"""
    )


def _fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A fingerprint of the candidate night (every published table's candidate rows, in any order): what a
    held night's approval approves. Another drop, or the same drop read under other rules, gives another."""
    parts = []
    for position, table in enumerate(tables.PUBLISHED):  # the table's position names it: no name in quotes
        cols = ", ".join(table.content_columns)
        parts.append(
            f"SELECT {position} AS t, count(*) AS n, sum(hash({cols})::HUGEINT) AS s, bit_xor(hash({cols})) AS x "
            f"FROM {_CANDIDATE[table.name]}"
        )
    rows = con.execute(" UNION ALL ".join(parts) + " ORDER BY t").fetchall()
    return duck.scalar(con, "SELECT md5(?)", [repr(rows)])


def _approval(con: duckdb.DuckDBPyConnection, as_of: dt.date, fingerprint: str) -> tuple[bool, str | None]:
    """(approved, what to say when an approval exists for another candidate than this one)."""
    rows = con.execute(
        "SELECT approved_at, approved_fingerprint FROM history.held_nights WHERE as_of = ? AND approved_at IS NOT NULL",
        [as_of],
    ).fetchall()
    if not rows:
        return False, None
    approved_at, approved_fingerprint = rows[0]
    if approved_fingerprint == fingerprint:
        return True, None
    return False, (
        f"the night was approved on {approved_at:%Y-%m-%d %H:%M}, but its drop or candidate has changed since: "
        "judged again, and held again"
    )


def _write_night(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    following: dt.date | None,
    run_id: str,
    source_ids: list[str],
    verdict: GuardResult,
    sets: history.NewestNight | None,
) -> None:
    """Intervals, change set, counts and nights of a night the guard lets through (inside the transaction)."""
    # The history holds sets: every reader selects what it needs and orders it, none reads rows in the order
    # they were written. Not keeping that order lets DuckDB write from both cores at once: a first night of
    # 200 000 persons (1.7 million intervals and as many changes) took 2.58-2.66 s to check and write instead
    # of 2.84-2.99 s. Set back by _insertion_order_restored.
    con.execute("SET preserve_insertion_order = false")
    for table in tables.PUBLISHED:
        history.apply_night(con, table, as_of, following, _CANDIDATE[table.name], sets)
    con.execute(
        "INSERT OR REPLACE INTO nightly.nights VALUES (?, current_timestamp, ?, ?)", [as_of, run_id, source_ids]
    )
    con.execute("DELETE FROM history.held_removals WHERE as_of = ?", [as_of])
    con.execute("INSERT INTO history.held_removals SELECT * FROM _held_removals")
    # The published rows are the candidate's, so the guard's counts of the candidate and its change set are the
    # night's.
    con.execute(f"DELETE FROM {tables.NIGHT_COUNTS.qualified} WHERE as_of = ?", [as_of])
    counts = [
        [as_of, source_id, s["users_after"], s["memberships_after"]] for source_id, s in verdict.per_source.items()
    ]
    if counts:
        con.executemany(f"INSERT INTO {tables.NIGHT_COUNTS.qualified} VALUES (?, ?, ?, ?)", counts)
    con.execute("DELETE FROM history.changes WHERE as_of = ?", [as_of])
    con.execute("INSERT INTO history.changes BY NAME SELECT * FROM _candidate_changes")
    if following is not None:
        history.record_changes(con, following, as_of)
    con.execute(
        "UPDATE history.held_nights SET published_at = current_timestamp WHERE as_of = ? AND approved_at IS NOT NULL",
        [as_of],
    )


# ─── held nights ───────────────────────────────────────────────────────────────────────────────────────


def _record_hold(con: duckdb.DuckDBPyConnection, result: GuardResult, run_id: str) -> None:
    """Records the held night and its change set (inside the caller's transaction)."""
    con.execute(
        """INSERT INTO history.held_nights (as_of, compared_with, held_at, run_id, reasons, fingerprint)
           VALUES (?, ?, current_timestamp, ?, ?, ?)
           ON CONFLICT (as_of) DO UPDATE SET compared_with = excluded.compared_with, held_at = excluded.held_at,
               run_id = excluded.run_id, reasons = excluded.reasons, fingerprint = excluded.fingerprint,
               approved_at = NULL, approved_fingerprint = NULL, published_at = NULL""",
        [result.as_of, result.compared_with, run_id, result.reasons, result.fingerprint],
    )
    con.execute("DELETE FROM history.held_changes WHERE as_of = ?", [result.as_of])
    con.execute("INSERT INTO history.held_changes BY NAME SELECT * FROM _candidate_changes")


def approve(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """Approves the change set the guard held for night `as_of` (its fingerprint, not the night: a re-run from
    another drop is judged again); raises LookupError if it was never held."""
    rows = con.execute("SELECT published_at FROM history.held_nights WHERE as_of = ?", [as_of]).fetchall()
    if not rows:
        raise LookupError(f"night {as_of} was not held by the guard (see history.held_nights)")
    con.execute(
        "UPDATE history.held_nights SET approved_at = current_timestamp, approved_fingerprint = fingerprint "
        "WHERE as_of = ?",
        [as_of],
    )


def held_run(con: duckdb.DuckDBPyConnection, as_of: dt.date, run_id: str) -> list[str] | None:
    """The guard's reasons if run `run_id` held night `as_of`, else None."""
    try:
        rows = con.execute(
            "SELECT reasons FROM history.held_nights WHERE as_of = ? AND run_id = ? AND approved_at IS NULL",
            [as_of, run_id],
        ).fetchall()
    except duckdb.CatalogException:
        return None
    return list(rows[0][0]) if rows else None
