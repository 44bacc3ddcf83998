"""The mass-removal guard and removal-hold periods: what a night would change, and whether it may publish.

Before a night is published, its candidate roster (the rules' output) is compared with the last published
night before it. The night is **held** when, for any source,

* more than `max_removal_share` (sources.yaml `rules`, default 0.10) of its users would be removed, or
* more than `max_removal_share` of its memberships would be removed, or
* its user count would fall to zero (a source that had users), or
* its users or memberships would fall by more than `max_removal_share_week` (default 0.20) against the
  largest count of the last 7 published nights (a slow loss: 8 % a night passes the nightly share, not this), or
* more than `max_change_share` (default 0.30) of its users would change their username (school e-mail);

and then nothing of it is published: the previous roster and exports stay, `history.held_nights` says why,
and `history.held_changes` holds the change set that would have been published. `skolon-pipeline approve
--as-of D` approves a held night and runs it again. The approval is bound to what was reviewed: the held
night's fingerprint (of its candidate rows) is recorded with the approval (`approved_fingerprint`), and only a
candidate with that same fingerprint is let through. A night whose drop or candidate has changed since is
judged again, and held again (with a reason saying so) when it breaks a limit; no approval switches the guard
off for a night for good.

During a removal-hold period (`rules.hold_removals: [{from: …, to: …}]`, inclusive), additions and updates
publish but nothing is removed: every row of the last published night whose entity is missing from the
candidate is carried into the night unchanged, and recorded in `history.held_removals` with
`removal_held_until` (the period's last day). The first night after the period publishes the removals.

The guard only decides: `decide` reads the tables it is given (the candidate's change set and the rows
before and after) and returns a verdict; it writes nothing. Assembling the candidate, recording a held night
and publishing are the publish transaction's (publish/publish.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from skolon_pipeline.config import Installation
from skolon_pipeline.publish import history

SAMPLE_SIZE = 20


@dataclass(frozen=True)
class Policy:
    """A source's guard settings for one night."""

    max_removal_share: float
    removal_held_until: dt.date | None
    max_removal_share_week: float = 0.20
    max_change_share: float = 0.30


@dataclass(frozen=True)
class Policies:
    per_source: dict[str, Policy]
    default: Policy  # for a source in the last published night that is no longer configured

    @classmethod
    def for_night(cls, installation: Installation, as_of: dt.date) -> Policies:
        def policy(rules, hold_until):
            return Policy(rules.max_removal_share, hold_until, rules.max_removal_share_week, rules.max_change_share)

        return cls(
            {s.id: policy(s.rules, s.rules.removal_hold_until(as_of)) for s in installation.sources},
            policy(installation.rules, None),
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
    fingerprint: str | None = None  # of the candidate night: what an approval approves

    @property
    def blocks(self) -> bool:
        return self.held and not self.approved


def decide(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    previous: dt.date | None,
    policies: Policies,
    *,
    changes: str,
    before: dict[str, str] | None,
    after: dict[str, str],
    approved: bool,
    week: str | None = None,
    before_counts: str | None = None,
    fingerprint: str | None = None,
    stale_approval: str | None = None,
) -> GuardResult:
    """The guard's verdict on a night, from the relations it is given (reads only those, writes nothing).

    `changes`: the night's change set (rows shaped as history.changes); `before`: the users and memberships
    of the last published night before it (table name → relation; None when there is none); `after`: the
    night's candidate users and memberships (by table name); `week`: per source, the largest user and
    membership counts of the last 7 published nights (source_id, users_max, memberships_max); `before_counts`:
    the counts recorded for the last published night (source_id, users, memberships), when it has them, read
    instead of counting `before` again; `approved`:
    whether this very candidate (`fingerprint`) was approved after a hold; `stale_approval`: when an approval
    exists for another candidate, what to say about it."""
    counts = {
        f"{e}/{c}": n
        for e, c, n in con.execute(
            f"SELECT entity_type, change, count(*) FROM {changes} GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    }
    for e in history.ENTITIES:
        for c in history.CHANGE_KINDS:
            counts.setdefault(f"{e.name}/{c}", 0)

    before = before or {t: f"(SELECT * FROM {after[t]} WHERE false)" for t in ("users", "memberships")}
    if before_counts:  # a source is in a count when it had a row (as counted below)
        before_users = f"SELECT source_id, users AS n FROM {before_counts} t WHERE users > 0"
        before_memberships = f"SELECT source_id, memberships AS n FROM {before_counts} t WHERE memberships > 0"
    else:
        before_users = f"SELECT source_id, count(*) AS n FROM {before['users']} t GROUP BY ALL"
        before_memberships = (
            f"SELECT source_id, count(DISTINCT group_id || '/' || user_id) AS n FROM {before['memberships']} t "
            "GROUP BY ALL"
        )
    stats = con.execute(
        f"""WITH before_users AS ({before_users}),
                 before_memberships AS ({before_memberships}),
                 after_users AS (SELECT source_id, count(*) AS n FROM {after["users"]} GROUP BY ALL),
                 after_memberships AS (SELECT source_id, count(DISTINCT group_id || '/' || user_id) AS n
                                       FROM {after["memberships"]} GROUP BY ALL),
                 renamed AS (SELECT a.source_id, count(*) AS n FROM {before["users"]} b
                             JOIN {after["users"]} a ON a.source_id = b.source_id AND a.user_id = b.user_id
                             WHERE a.email IS DISTINCT FROM b.email GROUP BY ALL),
                 week AS ({
            f"SELECT source_id, users_max, memberships_max FROM {week}"
            if week
            else "SELECT NULL::VARCHAR AS source_id, 0 AS users_max, 0 AS memberships_max WHERE false"
        }),
                 removed AS (SELECT source_id, entity_type, count(*) AS n FROM {changes}
                             WHERE change = 'removed' GROUP BY ALL),
                 sources AS (SELECT source_id FROM before_users UNION SELECT source_id FROM after_users
                             UNION SELECT source_id FROM before_memberships)
            SELECT s.source_id, coalesce(bu.n, 0), coalesce(au.n, 0), coalesce(ru.n, 0),
                   coalesce(bm.n, 0), coalesce(rm.n, 0), coalesce(am.n, 0), coalesce(rn.n, 0),
                   coalesce(w.users_max, 0), coalesce(w.memberships_max, 0)
            FROM sources s
            LEFT JOIN before_users bu USING (source_id) LEFT JOIN after_users au USING (source_id)
            LEFT JOIN before_memberships bm USING (source_id) LEFT JOIN after_memberships am USING (source_id)
            LEFT JOIN renamed rn USING (source_id) LEFT JOIN week w USING (source_id)
            LEFT JOIN removed ru ON ru.source_id = s.source_id AND ru.entity_type = 'user'
            LEFT JOIN removed rm ON rm.source_id = s.source_id AND rm.entity_type = 'membership'
            ORDER BY s.source_id"""
    ).fetchall()
    reasons: list[str] = []
    per_source: dict[str, dict] = {}
    for (
        source_id,
        users_before_n,
        users_after,
        users_removed,
        memberships_before,
        memberships_removed,
        memberships_after,
        renamed,
        users_week_max,
        memberships_week_max,
    ) in stats:
        policy = policies.per_source.get(source_id, policies.default)
        share = policy.max_removal_share
        per_source[source_id] = {
            "users_before": users_before_n,
            "users_after": users_after,
            "users_removed": users_removed,
            "memberships_before": memberships_before,
            "memberships_removed": memberships_removed,
            "max_removal_share": share,
            "memberships_after": memberships_after,
            "usernames_changed": renamed,
            "users_week_max": users_week_max,
            "memberships_week_max": memberships_week_max,
        }
        if users_before_n > 0 and users_after == 0:
            reasons.append(f"source {source_id!r}: no users left (the last published night had {users_before_n})")
        for what, removed, before_n in (
            ("users", users_removed, users_before_n),
            ("memberships", memberships_removed, memberships_before),
        ):
            if before_n > 0 and removed / before_n > share:
                reasons.append(
                    f"source {source_id!r}: {removed} of {before_n} {what} ({removed / before_n:.0%}) would be removed, "
                    f"more than max_removal_share {share:.0%}"
                )
        week_share = policy.max_removal_share_week
        for what, after_n, most in (
            ("users", users_after, users_week_max),
            ("memberships", memberships_after, memberships_week_max),
        ):
            if most > 0 and (most - after_n) / most > week_share:
                reasons.append(
                    f"source {source_id!r}: {what} would fall to {after_n} from {most} ({(most - after_n) / most:.0%} "
                    f"fewer than the largest of the last 7 published nights), more than max_removal_share_week "
                    f"{week_share:.0%}"
                )
        if users_before_n > 0 and renamed / users_before_n > policy.max_change_share:
            reasons.append(
                f"source {source_id!r}: {renamed} of {users_before_n} users ({renamed / users_before_n:.0%}) would change "
                f"their username (school e-mail), more than max_change_share {policy.max_change_share:.0%}"
            )
    if reasons and stale_approval:  # judged again, and still over a limit
        reasons.insert(0, stale_approval)
    samples = {}
    for source_id, entity_type, ids in con.execute(
        f"""SELECT source_id, entity_type, list(entity_id ORDER BY entity_id)[1:{SAMPLE_SIZE}]
            FROM {changes} WHERE change = 'removed' AND entity_type IN ('user', 'membership')
            GROUP BY ALL ORDER BY ALL"""
    ).fetchall():
        samples[f"{source_id}/{entity_type}"] = ids
    held_until = {
        sid: p.removal_held_until.isoformat() for sid, p in policies.per_source.items() if p.removal_held_until
    }
    return GuardResult(
        as_of,
        previous,
        bool(reasons),
        reasons,
        counts,
        per_source,
        samples,
        approved=approved,
        removal_held_until=held_until,
        fingerprint=fingerprint,
    )


def describe(result: GuardResult) -> list[str]:
    """The change set and verdict in a few lines (counts and reasons; no personal data)."""
    since = f"since {result.compared_with}" if result.compared_with else "(no earlier published night)"
    lines = [f"changes {since}:"]
    for entity in history.ENTITIES:
        c = {k: result.counts.get(f"{entity.name}/{k}", 0) for k in history.CHANGE_KINDS}
        line = f"  {entity.table.name:<20} +{c['added']} added, -{c['removed']} removed, ~{c['updated']} updated"
        if c["removal_held"]:
            line += f", {c['removal_held']} removals held"
        lines.append(line)
    for source_id, until in sorted(result.removal_held_until.items()):
        lines.append(f"  source {source_id!r}: removals are held until {until} (rules.hold_removals)")
    return lines
