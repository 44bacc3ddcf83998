-- The rows of the validation file's sheets, for one night, for every school authority at once.
--
-- Reads the night's published relations by plain name (temp views made by skolon_pipeline.exports:
-- schools, users, school_affiliations, groups, memberships, exclusions, excluded_persons, excluded_groups),
-- school_counts (school_counts.sql over the same night), the variable `mask` ('Skyddad identitet') and the
-- function explain_reason(code, visible_from) (skolon_pipeline.exports.explanations).
--
-- Each sheet_<name> table has two hidden columns for filtering, `_authority` (the school authority's id) and
-- `_schools` (the school ids the row belongs to), then the sheet's columns in order. Adding a column to a sheet
-- is adding it to its SELECT here; the writer takes every column. Users and Groups end with "first synced" and
-- "last changed by sync" (user_sync_dates/group_sync_dates: the history as of the night).
--
-- Protected identity (securityMarking other than Ingen): people and details are read through shown_people and
-- shown_exclusions (exports/people.sql), which mask them once for every sheet; and nothing that places such a
-- person in a group is shown: no classes or groups, no Memberships row, no held-back membership row (counts
-- only, in the Summary and the groups' numbers of students). Id, role and school are shown.

-- ─── School authorities; records without a known school go to their source's only authority ────────────
CREATE OR REPLACE TEMP TABLE x_schools AS
SELECT source_id, school_id, name, school_unit_code,
       coalesce(organisation_id, 'source:' || source_id) AS authority_id,
       coalesce(organisation_name, source_id || ' (utan huvudman)') AS authority_name
FROM schools;

CREATE OR REPLACE TEMP TABLE x_source_authority AS
SELECT source_id,
       CASE WHEN count(DISTINCT authority_id) = 1 THEN any_value(authority_id) ELSE 'source:' || source_id END
           AS authority_id
FROM x_schools GROUP BY source_id;

-- Every group the night knows by name, included or not (people: shown_people, exports/people.sql).
CREATE OR REPLACE TEMP TABLE x_groups AS
SELECT source_id, group_id, name, group_type FROM groups
UNION ALL
SELECT source_id, group_id, name, group_type FROM excluded_groups;

-- ─── Summary: per school, the roster's figures and the exclusions per reason code ──────────────────────
CREATE OR REPLACE TEMP TABLE x_excluded_by_school AS
SELECT coalesce(xs.authority_id, sa.authority_id, 'source:' || x.source_id) AS _authority,
       xs.school_id, x.entity_type, x.record_id, x.reason_code
FROM exclusions x
LEFT JOIN x_schools xs ON xs.source_id = x.source_id AND xs.school_id = x.school_id
LEFT JOIN x_source_authority sa ON sa.source_id = x.source_id;

CREATE OR REPLACE TEMP TABLE x_authorities AS
SELECT DISTINCT authority_id, authority_name FROM x_schools
UNION
SELECT DISTINCT _authority, replace(_authority, 'source:', '') || ' (utan huvudman)' FROM x_excluded_by_school
WHERE _authority NOT IN (SELECT authority_id FROM x_schools);

CREATE OR REPLACE TEMP TABLE sheet_summary_base AS
SELECT xs.authority_id AS _authority, [xs.school_id] AS _schools,
       xs.name AS school, xs.school_unit_code, xs.school_id,
       c.students, c.teachers, c.staff, c.classes, c.groups AS teaching_groups, c.memberships,
       c.excluded_persons, c.excluded_groups, c.excluded_memberships
FROM x_schools xs JOIN school_counts c USING (source_id, school_id)
UNION ALL
-- held-back records whose school is unknown (no school link, an organisation that is not a school unit)
SELECT _authority, []::VARCHAR[], 'utan skola / no school', NULL, NULL, 0, 0, 0, 0, 0, 0,
       count(DISTINCT record_id) FILTER (WHERE entity_type = 'person'),
       count(DISTINCT record_id) FILTER (WHERE entity_type = 'group'),
       count(DISTINCT record_id) FILTER (WHERE entity_type = 'membership')
FROM x_excluded_by_school WHERE school_id IS NULL GROUP BY _authority;

-- ─── Users: everyone in the roster ─────────────────────────────────────────────────────────────────────
CREATE OR REPLACE TEMP TABLE x_user_schools AS
SELECT DISTINCT a.source_id, a.user_id, a.school_id, xs.name AS school, xs.authority_id
FROM school_affiliations a JOIN x_schools xs USING (source_id, school_id);

-- The names in order, each once (an empty list for none: NULL, as string_agg gives). list() and list_sort per
-- person instead of string_agg(DISTINCT ... ORDER BY), which sorted the 1.3 million memberships (profiled: 4 s).
CREATE OR REPLACE TEMP MACRO names_in_order(l) AS
    CASE WHEN len(list_distinct(l)) > 0 THEN array_to_string(list_sort(list_distinct(l)), ', ') END;

CREATE OR REPLACE TEMP TABLE x_user_groups AS
SELECT m.source_id, m.user_id,
       names_in_order(list(g.name) FILTER (WHERE g.group_type = 'Klass')) AS classes,
       names_in_order(list(g.name) FILTER (WHERE g.group_type IS DISTINCT FROM 'Klass')) AS groups
FROM memberships m JOIN groups g USING (source_id, group_id)
SEMI JOIN shown_people p ON p.source_id = m.source_id AND p.person_id = m.user_id AND NOT p.protected_identity
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE sheet_users AS
SELECT us.authority_id AS _authority, list_sort(list_distinct(list(us.school_id))) AS _schools,
       u.user_id, u.email AS username, u.given_name, u.family_name, u.role,
       names_in_order(list(us.school)) AS schools,
       any_value(ug.classes) AS classes, any_value(ug.groups) AS groups,
       sd.first_synced, sd.last_changed AS last_changed_by_sync
FROM (SELECT *, person_id AS user_id FROM shown_people WHERE included) u
JOIN x_user_schools us USING (source_id, user_id)
LEFT JOIN x_user_groups ug USING (source_id, user_id)
LEFT JOIN user_sync_dates sd USING (source_id, user_id)
GROUP BY us.authority_id, u.source_id, u.user_id, u.email, u.given_name, u.family_name, u.role, u.protected_identity,
         sd.first_synced, sd.last_changed
ORDER BY schools, u.role, family_name, given_name, u.user_id;

-- Only the Users sheet reads these: their memory is the larger sheets' (a 3 GB limit at 2 million persons).
DROP TABLE x_user_groups;
DROP TABLE x_user_schools;

-- ─── Groups ────────────────────────────────────────────────────────────────────────────────────────────
-- Each group's numbers counted once over the memberships, then joined: grouping the joined rows by every group
-- column cost 5.4 s at 2 million persons (1.6 s so).
CREATE OR REPLACE TEMP TABLE sheet_groups AS
SELECT xs.authority_id AS _authority, [g.school_id] AS _schools,
       g.group_id, g.name, xs.name AS school, g.group_type AS type,
       coalesce(n.students, 0) AS students, coalesce(n.teachers, 0) AS teachers,
       g.start_date, g.end_date, sd.first_synced, sd.last_changed AS last_changed_by_sync
FROM groups g JOIN x_schools xs USING (source_id, school_id)
LEFT JOIN (
    SELECT source_id, group_id,
           count(user_id) FILTER (WHERE role = 'student') AS students,
           count(user_id) FILTER (WHERE role = 'teacher') AS teachers
    FROM memberships GROUP BY source_id, group_id
) AS n USING (source_id, group_id)
LEFT JOIN group_sync_dates sd USING (source_id, group_id)
ORDER BY school, type, g.name, g.group_id;

-- ─── Memberships ───────────────────────────────────────────────────────────────────────────────────────
-- In order of school, group, role (teachers first), name and user id. The groups and the people are ranked
-- first, and the memberships sorted by the ranks: sorting 1.3 million memberships by their texts took twice
-- as long (profiled: 1.5-1.7 s against 0.8-1.0 s, the same rows in the same order).
CREATE OR REPLACE TEMP TABLE sheet_memberships AS
WITH ranked_groups AS (
    SELECT g.source_id, g.group_id, g.name, g.school_id, xs.authority_id, xs.name AS school,
           dense_rank() OVER (ORDER BY xs.name, g.name) AS place
    FROM groups g JOIN x_schools xs USING (source_id, school_id)
),

ranked_people AS (
    SELECT source_id, person_id, email, name, dense_rank() OVER (ORDER BY name, person_id) AS place
    FROM shown_people WHERE included AND NOT protected_identity
)

SELECT g.authority_id AS _authority, [g.school_id] AS _schools,
       g.name AS "group", g.group_id, g.school, m.user_id, u.email AS username, u.name,
       m.role, m.start_date, m.end_date
FROM memberships m JOIN ranked_groups g USING (source_id, group_id)
JOIN ranked_people u ON u.source_id = m.source_id AND u.person_id = m.user_id
ORDER BY g.place, m.role DESC, u.place;

-- ─── Excluded: every exclusion row, with who or what, the explanation and visible_from ─────────────────
CREATE OR REPLACE TEMP TABLE sheet_excluded AS
SELECT e._authority,
       CASE WHEN x.school_id IS NULL OR xs.school_id IS NULL THEN []::VARCHAR[] ELSE [x.school_id] END AS _schools,
       x.entity_type, x.record_id, p.name AS person, p.email, p.role, g.name AS "group",
       coalesce(xs.name, x.school_id) AS school,
       x.reason_code,
       explain_reason(x.reason_code, x.visible_from) AS explanation,
       x.detail,
       x.visible_from
FROM shown_exclusions x
LEFT JOIN x_schools xs ON xs.source_id = x.source_id AND xs.school_id = x.school_id
LEFT JOIN x_source_authority sa ON sa.source_id = x.source_id
CROSS JOIN LATERAL (SELECT coalesce(xs.authority_id, sa.authority_id, 'source:' || x.source_id) AS _authority) e
LEFT JOIN shown_people p ON p.source_id = x.source_id AND p.person_id = x.person_id
LEFT JOIN x_groups g ON g.source_id = x.source_id AND g.group_id = x.group_id
-- a protected person's held-back memberships would name their groups: counted in the Summary only
WHERE NOT (x.protected_identity AND x.entity_type = 'membership')
ORDER BY xs.school_id IS NULL, school, x.entity_type DESC, person, "group", x.record_id, x.reason_code;
