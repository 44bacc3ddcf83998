"""The mass-removal guard and removal-hold periods: what a night would change, and whether it may publish.

Before a night is published, its candidate roster (the rules' output) is compared with the last published
night before it. The night is **held** when, for any source,

* more than `max_removal_share` (sources.yaml `rules`, default 0.10) of its users would be removed, or
* more than `max_removal_share` of its memberships would be removed, or
* its user count would fall to zero (a source that had users);

and then nothing of it is published: the previous roster and exports stay, `history.held_nights` says why,
and `history.held_changes` holds the change set that would have been published. `skolon-pipeline approve
--as-of D` approves a held night (recorded in `history.held_nights.approved_at`) and runs it again; an
approved night is never held again.

During a removal-hold period (`rules.hold_removals: [{from: …, to: …}]`, inclusive), additions and updates
publish but nothing is removed: every row of the last published night whose entity is missing from the
candidate is carried into the night unchanged, and recorded in `history.held_removals` with
`removal_held_until` (the period's last day). The first night after the period publishes the removals.

Everything is computed in DuckDB over temp tables `cand_<table>` (the candidate after removal holds), on the
warehouse connection with the night's rules database attached as `rules_out`. `prepare_candidate` is the one
place a night's rows are assembled before publishing, so other ways of carrying rows over fit there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from skolon_pipeline import duck
from skolon_pipeline.publish import history
from skolon_pipeline.config import Installation

SAMPLE_SIZE = 20
GUARDED = {"user": "users", "membership": "memberships"}  # entity_type → what the messages call it


@dataclass(frozen=True)
class Policy:
    """A source's guard settings for one night."""

    max_removal_share: float
    removal_held_until: dt.date | None


@dataclass(frozen=True)
class Policies:
    per_source: dict[str, Policy]
    default: Policy  # for a source in the last published night that is no longer configured

    @classmethod
    def for_night(cls, installation: Installation, as_of: dt.date) -> Policies:
        return cls(
            {s.id: Policy(s.rules.max_removal_share, s.rules.removal_hold_until(as_of)) for s in installation.sources},
            Policy(installation.rules.max_removal_share, None),
        )


@dataclass
class GuardResult:
    """What the night would change against `compared_with`, and whether the guard holds it."""

    as_of: dt.date
    compared_with: dt.date | None
    held: bool
    reasons: list[str]
    counts: dict[str, int]  # "<entity>/<change>" → n
    per_source: dict[str, dict[str, float | int]]
    samples: dict[str, list[str]]  # "<source>/<entity>" → ids to be removed (ids only)
    approved: bool = False
    removal_held_until: dict[str, str] = field(default_factory=dict)  # source → last day of its hold

    @property
    def blocks(self) -> bool:
        return self.held and not self.approved


def _date(value: dt.date | None) -> str:
    return history.date_sql(value)


def previous_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dt.date | None:
    rows = con.execute("SELECT max(as_of) FROM nightly.nights WHERE as_of < ?", [as_of]).fetchall()
    return rows[0][0]


def next_night(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dt.date | None:
    rows = con.execute("SELECT min(as_of) FROM nightly.nights WHERE as_of > ?", [as_of]).fetchall()
    return rows[0][0]


def prepare_candidate(
    con: duckdb.DuckDBPyConnection, tables: dict[str, str], as_of: dt.date, previous: dt.date | None,
    policies: Policies,
) -> None:
    """cand_<table> temp tables: the rules' output (rules_out.main.out_<table>), plus, for sources in a
    removal-hold period, the last published night's rows of every entity that would be removed
    (listed in _held_removals)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _policy (source_id VARCHAR, max_removal_share DOUBLE, removal_held_until DATE)")
    con.executemany(
        "INSERT INTO _policy VALUES (?, ?, ?)",
        [[sid, p.max_removal_share, p.removal_held_until] for sid, p in policies.per_source.items()],
    )
    for table, definition in tables.items():
        cols = ", ".join(history.content_columns(definition))
        con.execute(f"CREATE OR REPLACE TEMP TABLE cand_{table} AS SELECT DISTINCT {cols} FROM rules_out.main.out_{table}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _held_removals ({history.HELD_REMOVALS_COLUMNS})")
    if previous is None or not any(p.removal_held_until for p in policies.per_source.values()):
        return
    for entity in history.ENTITIES:
        cols = history.content_columns(tables[entity.table])
        match = " AND ".join(f"c.{k} = p.{k}" for k in ("source_id", *entity.key))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _carried AS
                SELECT {', '.join(f'p.{c}' for c in cols)}, pol.removal_held_until
                FROM {history.at_night(entity.table, previous, cols)} p
                JOIN _policy pol ON pol.source_id = p.source_id AND pol.removal_held_until IS NOT NULL
                WHERE NOT EXISTS (SELECT 1 FROM cand_{entity.table} c WHERE {match})"""
        )
        con.execute(
            f"""INSERT INTO _held_removals SELECT DISTINCT {_date(as_of)}, source_id, '{entity.name}',
                       {entity.entity_id}, removal_held_until FROM _carried"""
        )
        con.execute(f"INSERT INTO cand_{entity.table} SELECT {', '.join(cols)} FROM _carried")
    con.execute("DROP TABLE _carried")


def evaluate(
    con: duckdb.DuckDBPyConnection, tables: dict[str, str], as_of: dt.date, previous: dt.date | None,
    policies: Policies,
) -> GuardResult:
    """The candidate's change set (temp table _candidate_changes) and the guard's verdict."""
    current = {t: f"cand_{t}" for t in tables}
    prev_rows = history.night_rows(tables, previous) if previous else None
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _candidate_changes AS {history.changes_select(tables, as_of, prev_rows, current, previous)}"
    )
    con.execute(
        f"""INSERT INTO _candidate_changes BY NAME
            SELECT as_of, {_date(previous)} AS compared_with, source_id, entity_type, entity_id,
                   'removal_held' AS change, removal_held_until FROM _held_removals"""
    )
    counts = {f"{e}/{c}": n for e, c, n in con.execute(
        "SELECT entity_type, change, count(*) FROM _candidate_changes GROUP BY ALL ORDER BY ALL").fetchall()}
    for e in history.ENTITIES:
        for c in history.CHANGE_KINDS:
            counts.setdefault(f"{e.name}/{c}", 0)

    before = prev_rows or {t: f"(SELECT * FROM cand_{t} WHERE false)" for t in ("users", "memberships")}
    stats = con.execute(
        f"""WITH before_users AS (SELECT source_id, count(*) AS n FROM {before['users']} t GROUP BY ALL),
                 before_memberships AS (SELECT source_id, count(DISTINCT group_id || '/' || user_id) AS n
                                        FROM {before['memberships']} t GROUP BY ALL),
                 after_users AS (SELECT source_id, count(*) AS n FROM cand_users GROUP BY ALL),
                 removed AS (SELECT source_id, entity_type, count(*) AS n FROM _candidate_changes
                             WHERE change = 'removed' GROUP BY ALL),
                 sources AS (SELECT source_id FROM before_users UNION SELECT source_id FROM after_users
                             UNION SELECT source_id FROM before_memberships)
            SELECT s.source_id, coalesce(bu.n, 0), coalesce(au.n, 0), coalesce(ru.n, 0),
                   coalesce(bm.n, 0), coalesce(rm.n, 0)
            FROM sources s
            LEFT JOIN before_users bu USING (source_id) LEFT JOIN after_users au USING (source_id)
            LEFT JOIN before_memberships bm USING (source_id)
            LEFT JOIN removed ru ON ru.source_id = s.source_id AND ru.entity_type = 'user'
            LEFT JOIN removed rm ON rm.source_id = s.source_id AND rm.entity_type = 'membership'
            ORDER BY s.source_id"""
    ).fetchall()
    reasons: list[str] = []
    per_source: dict[str, dict] = {}
    for source_id, users_before_n, users_after, users_removed, memberships_before, memberships_removed in stats:
        policy = policies.per_source.get(source_id, policies.default)
        share = policy.max_removal_share
        per_source[source_id] = {
            "users_before": users_before_n, "users_after": users_after, "users_removed": users_removed,
            "memberships_before": memberships_before, "memberships_removed": memberships_removed,
            "max_removal_share": share,
        }
        if users_before_n > 0 and users_after == 0:
            reasons.append(f"source {source_id!r}: no users left (the last published night had {users_before_n})")
        for what, removed, before in (("users", users_removed, users_before_n),
                                      ("memberships", memberships_removed, memberships_before)):
            if before > 0 and removed / before > share:
                reasons.append(
                    f"source {source_id!r}: {removed} of {before} {what} ({removed / before:.0%}) would be removed, "
                    f"more than max_removal_share {share:.0%}"
                )
    samples = {}
    for source_id, entity_type, ids in con.execute(
        f"""SELECT source_id, entity_type, list(entity_id ORDER BY entity_id)[1:{SAMPLE_SIZE}]
            FROM _candidate_changes WHERE change = 'removed' AND entity_type IN ('user', 'membership')
            GROUP BY ALL ORDER BY ALL"""
    ).fetchall():
        samples[f"{source_id}/{entity_type}"] = ids
    held_until = {sid: p.removal_held_until.isoformat() for sid, p in policies.per_source.items() if p.removal_held_until}
    return GuardResult(as_of, previous, bool(reasons), reasons, counts, per_source, samples,
                       removal_held_until=held_until)


def is_approved(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> bool:
    rows = con.execute("SELECT approved_at IS NOT NULL FROM history.held_nights WHERE as_of = ?", [as_of]).fetchall()
    return bool(rows and rows[0][0])


def record_hold(con: duckdb.DuckDBPyConnection, result: GuardResult, run_id: str) -> None:
    """Records the held night and its change set (inside the caller's transaction)."""
    con.execute(
        """INSERT INTO history.held_nights (as_of, compared_with, held_at, run_id, reasons)
           VALUES (?, ?, current_timestamp, ?, ?)
           ON CONFLICT (as_of) DO UPDATE SET compared_with = excluded.compared_with, held_at = excluded.held_at,
               run_id = excluded.run_id, reasons = excluded.reasons""",
        [result.as_of, result.compared_with, run_id, result.reasons],
    )
    con.execute("DELETE FROM history.held_changes WHERE as_of = ?", [result.as_of])
    con.execute("INSERT INTO history.held_changes BY NAME SELECT * FROM _candidate_changes")


def approve(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """Marks a held night approved; raises LookupError if it was never held."""
    rows = con.execute("SELECT published_at FROM history.held_nights WHERE as_of = ?", [as_of]).fetchall()
    if not rows:
        raise LookupError(f"night {as_of} was not held by the guard (see history.held_nights)")
    con.execute("UPDATE history.held_nights SET approved_at = current_timestamp WHERE as_of = ?", [as_of])


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


def check_night(
    warehouse_path: Path, rules_db: Path, as_of: dt.date, policies: Policies, run_id: str, record: bool = True,
) -> GuardResult:
    """Computes the night's change set against the last published night before it and the guard's verdict;
    with `record`, a held night is written to history.held_nights/held_changes. Publishes nothing."""
    from skolon_pipeline.publish import warehouse

    # A dry run before the first night: compare with an empty warehouse, and create none.
    fresh = not record and not Path(warehouse_path).exists()
    with (duck.connect() if fresh else warehouse.connect(warehouse_path)) as con:
        warehouse.ensure_schema(con)
        with warehouse.attached_rules(con, rules_db):
            con.execute("BEGIN TRANSACTION")
            try:
                previous = previous_night(con, as_of)
                prepare_candidate(con, warehouse.TABLES, as_of, previous, policies)
                result = evaluate(con, warehouse.TABLES, as_of, previous, policies)
                result.approved = is_approved(con, as_of)
                if record and result.blocks:
                    record_hold(con, result, run_id)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    return result


def describe(result: GuardResult) -> list[str]:
    """The change set and verdict in a few lines (counts and reasons; no personal data)."""
    since = f"since {result.compared_with}" if result.compared_with else "(no earlier published night)"
    lines = [f"changes {since}:"]
    for entity in history.ENTITIES:
        c = {k: result.counts.get(f"{entity.name}/{k}", 0) for k in history.CHANGE_KINDS}
        line = f"  {entity.table:<20} +{c['added']} added, -{c['removed']} removed, ~{c['updated']} updated"
        if c["removal_held"]:
            line += f", {c['removal_held']} removals held"
        lines.append(line)
    for source_id, until in sorted(result.removal_held_until.items()):
        lines.append(f"  source {source_id!r}: removals are held until {until} (rules.hold_removals)")
    return lines
