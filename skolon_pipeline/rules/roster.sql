-- The eligibility rules (CONTRACT §3) and reason codes (CONTRACT §4), once, for every source format.
--
-- Reads the canonical tables of all sources as views c_<table> (plus c_invalid_records and c_warnings), and
-- rule_settings(source_id, as_of, effective_start, ...) / rule_terms(source_id, term_start, window_start)
-- built by skolon_pipeline.rules.engine from sources.yaml. Writes out_schools, out_users,
-- out_school_affiliations, out_groups, out_memberships, out_exclusions, out_excluded_persons,
-- out_excluded_groups and out_warnings.
-- Joins stay within a source: ids are unique per source, not across sources.
-- Reason codes appear as literals in this file only.

-- A date as the canonical models accept it: any calendar date from 0001-01-01 to 9999-12-31 (DuckDB would also
-- read a year 0, which is no date).
CREATE OR REPLACE TEMP MACRO d(x) AS CASE WHEN x >= '0001' THEN TRY_CAST(x AS DATE) END;

-- The started/ended rule (CONTRACT §3), stated once: something has started when its start date is on or before
-- the effective start date (absent: it always has), and has ended when its inclusive end date lies before the
-- night (absent: open-ended). End dates are never brought forward.
CREATE OR REPLACE TEMP MACRO has_started(s, effective_start) AS (s IS NULL OR s <= effective_start);
CREATE OR REPLACE TEMP MACRO has_ended(e, as_of) AS coalesce(e < as_of, FALSE);

-- The first night after the as-of date on which something starting on `s` and ending on `e` is active,
-- taking the look-ahead windows into account; NULL when it will have ended by then.
CREATE OR REPLACE TEMP MACRO first_visible(src, s, e) AS (
    SELECT CASE WHEN e IS NOT NULL AND e < v THEN NULL ELSE v END
    FROM (SELECT least(s, (SELECT min(greatest(t.window_start, rs.as_of + 1)) FROM rule_terms t
                           WHERE t.source_id = src AND t.term_start >= s AND t.term_start > rs.as_of)) AS v
          FROM rule_settings rs WHERE rs.source_id = src)
);

-- ─── Schools, their school authority, and the organisations above them ──────────────────────────────────
CREATE OR REPLACE TEMP TABLE known_schools AS
SELECT source_id, org_id AS school_id, name, school_unit_code, org_type,
       list_transform(coalesce(school_types, []::VARCHAR[]), LAMBDA t: upper(t)) AS school_types
FROM c_organisations WHERE org_type = 'Skolenhet';

-- Each school unit with the organisations above it, up to its nearest Huvudman (a parent cycle in the registry
-- must not loop forever).
CREATE OR REPLACE TEMP TABLE school_ancestors AS
WITH RECURSIVE up(source_id, school_id, org_id, org_type, depth) AS (
    SELECT source_id, school_id, school_id, 'Skolenhet', 0 FROM known_schools
    UNION ALL
    SELECT up.source_id, up.school_id, p.org_id, p.org_type, up.depth + 1
    FROM up
    JOIN c_organisations o ON o.source_id = up.source_id AND o.org_id = up.org_id
    JOIN c_organisations p ON p.source_id = o.source_id AND p.org_id = o.parent_id
    WHERE up.depth < 32 AND (up.depth = 0 OR up.org_type IS DISTINCT FROM 'Huvudman')
)
SELECT up.source_id, up.school_id, up.org_id, up.org_type, o.name, min(up.depth) AS depth
FROM up JOIN c_organisations o ON o.source_id = up.source_id AND o.org_id = up.org_id
WHERE up.depth > 0
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE school_authority AS
SELECT source_id, school_id, arg_min(org_id, depth) AS organisation_id, arg_min(name, depth) AS organisation_name
FROM school_ancestors WHERE org_type = 'Huvudman'
GROUP BY ALL;

-- Several sources, one roster: a school unit two sources both send (the same global id) is one school; the
-- row of the first source id that has an authority for it wins.
CREATE OR REPLACE TABLE out_schools AS
SELECT rs.as_of, s.school_id, s.source_id, s.name, s.school_unit_code, a.organisation_id, a.organisation_name
FROM known_schools s JOIN rule_settings rs USING (source_id)
LEFT JOIN school_authority a USING (source_id, school_id)
QUALIFY row_number() OVER (PARTITION BY s.school_id ORDER BY a.organisation_id IS NULL, s.source_id) = 1
ORDER BY s.school_id;

-- School references (CONTRACT §3): a reference to an organisation above school units (a Skola, Rektorsområde,
-- Förvaltning ...; never the Huvudman) is resolved to the units below it. Registries such as Edlevo hang
-- duties, groups and activities off the Skola.
CREATE OR REPLACE TEMP TABLE units_below AS
SELECT a.source_id, a.org_id, a.school_id AS unit_id, s.school_types,
       a.school_id || ' (' || coalesce(s.name, 'no name') || ')' AS unit_label
FROM school_ancestors a JOIN known_schools s USING (source_id, school_id)
WHERE a.org_type NOT IN ('Huvudman', 'Skolenhet');

-- An enrolment or a group counts at the one unit below whose schoolTypes contain its schoolType, else at the
-- only unit below; otherwise (none or several match) at none.
CREATE OR REPLACE TEMP TABLE typed_resolution AS
WITH refs AS (
    SELECT DISTINCT source_id, school_id AS org_id, upper(school_type) AS school_type FROM c_enrolments
    UNION
    SELECT DISTINCT source_id, school_id, upper(school_type) FROM c_groups
),
candidates AS (
    SELECT r.source_id, r.org_id, r.school_type, u.unit_id, u.unit_label, u.school_types,
           coalesce(list_contains(u.school_types, r.school_type), FALSE) AS matches
    FROM refs r JOIN units_below u USING (source_id, org_id)
)
SELECT source_id, org_id, school_type,
       CASE WHEN count(*) FILTER (WHERE matches) = 1 THEN min(unit_id) FILTER (WHERE matches)
            WHEN count(*) = 1 THEN min(unit_id) END AS unit_id,
       CASE WHEN count(*) FILTER (WHERE matches) = 1
                 THEN min(unit_label) FILTER (WHERE matches) || ', the unit with schoolType ' || school_type
            WHEN count(*) = 1 THEN min(unit_label) || ', the only unit below it' END AS chosen,
       count(*) FILTER (WHERE matches) AS matching,
       string_agg(unit_label || ' [' || coalesce(nullif(array_to_string(school_types, ', '), ''), 'no schoolTypes')
                  || ']', ', ' ORDER BY unit_id) AS units
FROM candidates
GROUP BY source_id, org_id, school_type;

-- An organisation as the details name it.
CREATE OR REPLACE TEMP MACRO org_label(src, org) AS coalesce(
    (SELECT 'organisation ' || org || ' (' || coalesce(o.name, 'no name') || ', '
            || coalesce(o.org_type, 'no type') || ')'
     FROM c_organisations o WHERE o.source_id = src AND o.org_id = org LIMIT 1),
    'organisation ' || org);

-- Why an organisation reference does not count as a school, for the detail text; `field` is the registry field
-- that holds the reference (what to set).
CREATE OR REPLACE TEMP MACRO school_problem(src, org, school_type, field) AS coalesce(
    (SELECT org_label(src, org) || ' is the school authority (Huvudman), not a school unit: set ' || field
            || ' to the Skolenhet'
     FROM c_organisations o WHERE o.source_id = src AND o.org_id = org AND o.org_type = 'Huvudman' LIMIT 1),
    (SELECT org_label(src, org) || ' is above the school units ' || t.units || ', and '
            || CASE WHEN t.school_type IS NULL THEN 'no schoolType is given'
                    WHEN t.matching = 0 THEN 'none of them has schoolType ' || t.school_type
                    ELSE t.matching || ' of them have schoolType ' || t.school_type END
            || ': set ' || field || ' to the school unit, or a schoolType that tells them apart'
     FROM typed_resolution t
     WHERE t.source_id = src AND t.org_id = org AND t.school_type IS NOT DISTINCT FROM upper(school_type) LIMIT 1),
    (SELECT 'organisation ' || org || ' (' || coalesce(o.name, 'no name') || ') is a '
            || coalesce(o.org_type, 'organisation of no type') || ', not a Skolenhet, and has no school unit below it'
     FROM c_organisations o WHERE o.source_id = src AND o.org_id = org LIMIT 1),
    CASE WHEN org IS NULL THEN 'no organisation given' ELSE 'organisation ' || org || ' is not in the drop' END);

-- ─── Groups ─────────────────────────────────────────────────────────────────────────────────────────────
-- A group with terms (OneRoster classes) is active when one of its terms is: its dates tonight are those of
-- the term that counts, an active one (the earliest), else the next to start, else the last to end.
CREATE OR REPLACE TEMP TABLE group_current_term AS
SELECT source_id, group_id, s, e FROM (
    SELECT t.source_id, t.group_id, d(t.start_date) AS s, d(t.end_date) AS e,
           row_number() OVER (
               PARTITION BY t.source_id, t.group_id
               ORDER BY CASE WHEN has_ended(d(t.end_date), rs.as_of) THEN 2
                             WHEN has_started(d(t.start_date), rs.effective_start) THEN 0 ELSE 1 END,
                        CASE WHEN NOT has_ended(d(t.end_date), rs.as_of) THEN d(t.start_date) END NULLS FIRST,
                        d(t.end_date) DESC NULLS FIRST) AS rn
    FROM c_group_terms t JOIN rule_settings rs USING (source_id))
WHERE rn = 1;

-- school_id: the school unit the group counts at (resolved from an organisation above units), else the
-- organisation it names; org_ref: the organisation it names.
CREATE OR REPLACE TEMP TABLE group_eval AS
SELECT source_id, group_id, school_id, org_ref, school_type, resolved_at, name, group_type, duplicate_contents,
       to_be_deleted, s, e, as_of, type_synced, school_known, has_started(s, effective_start) AS started,
       has_ended(e, as_of) AS ended, synced_types
FROM (
    SELECT g.source_id, g.group_id, coalesce(ks.school_id, tr.unit_id, g.school_id) AS school_id,
           g.school_id AS org_ref, g.school_type, CASE WHEN ks.school_id IS NULL THEN tr.chosen END AS resolved_at,
           g.name, g.group_type, g.duplicate_contents,
           coalesce(g.to_be_deleted, FALSE) AS to_be_deleted,
           CASE WHEN ct.group_id IS NULL THEN d(g.start_date) ELSE ct.s END AS s,
           CASE WHEN ct.group_id IS NULL THEN d(g.end_date) ELSE ct.e END AS e,
           rs.as_of, rs.effective_start,
           list_contains(rs.group_types, g.group_type) AS type_synced,
           coalesce(ks.school_id, tr.unit_id) IS NOT NULL AS school_known,
           array_to_string(rs.group_types, ', ') AS synced_types
    FROM c_groups g JOIN rule_settings rs USING (source_id)
    LEFT JOIN group_current_term ct ON ct.source_id = g.source_id AND ct.group_id = g.group_id
    LEFT JOIN known_schools ks ON ks.source_id = g.source_id AND ks.school_id = g.school_id
    LEFT JOIN typed_resolution tr ON tr.source_id = g.source_id AND tr.org_id = g.school_id
                                 AND tr.school_type IS NOT DISTINCT FROM upper(g.school_type));

CREATE OR REPLACE TEMP TABLE group_reasons AS
SELECT source_id, group_id, school_id, 'DUPLICATE_ID' AS reason_code,
       'the id appears ' || duplicate_contents || ' times with different content' AS detail, NULL::DATE AS candidate
FROM group_eval WHERE duplicate_contents > 1
UNION ALL
SELECT g.source_id, g.group_id, g.school_id, 'INVALID_RECORD', i.detail, NULL
FROM group_eval g JOIN c_invalid_records i
  ON i.source_id = g.source_id AND i.entity_type = 'group' AND i.record_id = g.group_id
UNION ALL
SELECT source_id, group_id, school_id, 'TO_BE_DELETED', 'status is tobedeleted in the source', NULL
FROM group_eval WHERE to_be_deleted
UNION ALL
SELECT source_id, group_id, school_id, 'GROUP_TYPE_NOT_SYNCED',
       'group type ' || coalesce(group_type, '(none)') || ' is not synced (synced: ' || synced_types || ')', NULL
FROM group_eval WHERE NOT type_synced
UNION ALL
SELECT source_id, group_id, school_id, 'GROUP_UNKNOWN_SCHOOL',
       school_problem(source_id, org_ref, school_type, 'organisation'), NULL
FROM group_eval WHERE NOT school_known
UNION ALL
SELECT source_id, group_id, school_id, 'GROUP_NOT_STARTED', 'the group starts on ' || s, first_visible(source_id, s, e)
FROM group_eval WHERE NOT started AND NOT ended
UNION ALL
SELECT source_id, group_id, school_id, 'GROUP_ENDED', 'the group ended on ' || e, NULL
FROM group_eval WHERE ended;

CREATE OR REPLACE TABLE out_groups AS
SELECT as_of, group_id, source_id, school_id, name, group_type, s AS start_date, e AS end_date
FROM group_eval g
WHERE NOT EXISTS (SELECT 1 FROM group_reasons r WHERE r.source_id = g.source_id AND r.group_id = g.group_id);

-- ─── Teacher assignments and student memberships ────────────────────────────────────────────────────────
CREATE OR REPLACE TEMP TABLE assignment_eval AS
SELECT t.source_id, t.group_id, t.person_id, t.duty_id, t.origin, t.origin_id, d(t.start_date) AS s, d(t.end_date) AS e,
       coalesce(t.to_be_deleted, FALSE) AS deleted,
       has_started(d(t.start_date), rs.effective_start) AS started,
       has_ended(d(t.end_date), rs.as_of) AS ended
FROM c_teacher_assignments t JOIN rule_settings rs USING (source_id);

CREATE OR REPLACE TEMP TABLE student_membership_eval AS
SELECT m.source_id, m.group_id, m.person_id, d(m.start_date) AS s, d(m.end_date) AS e,
       coalesce(m.to_be_deleted, FALSE) AS deleted,
       has_started(d(m.start_date), rs.effective_start) AS started,
       has_ended(d(m.end_date), rs.as_of) AS ended
FROM c_group_memberships m JOIN rule_settings rs USING (source_id);

-- Who teaches where: an active teacher assignment to an included group, at that group's school unit.
CREATE OR REPLACE TEMP TABLE teaching_units AS
SELECT DISTINCT a.source_id, a.person_id, g.school_id
FROM assignment_eval a JOIN out_groups g ON g.source_id = a.source_id AND g.group_id = a.group_id
WHERE a.started AND NOT a.ended AND NOT a.deleted AND a.person_id IS NOT NULL;

-- ─── Persons: their school links ────────────────────────────────────────────────────────────────────────
-- A duty on an organisation above school units counts at each unit below it where the person teaches (above),
-- else at every unit below it (a principal of a Skola with a GR and a GY unit is staff at both).
CREATE OR REPLACE TEMP TABLE duty_units AS
SELECT source_id, duty_id, unit_id, unit_label, teaches_here FROM (
    SELECT du.source_id, du.duty_id, u.unit_id, u.unit_label, t.person_id IS NOT NULL AS teaches_here
    FROM c_duties du
    JOIN units_below u ON u.source_id = du.source_id AND u.org_id = du.school_id
    LEFT JOIN teaching_units t ON t.source_id = du.source_id AND t.person_id = du.person_id AND t.school_id = u.unit_id
    WHERE du.person_id IS NOT NULL)
QUALIFY teaches_here OR NOT bool_or(teaches_here) OVER (PARTITION BY source_id, duty_id);

-- One row per duty and school unit it counts at (a duty on a unit: one row; unresolved: one row, school_known
-- false). school_id: the unit, else the organisation named; org_ref: the organisation named.
CREATE OR REPLACE TEMP TABLE duty_eval AS
SELECT du.source_id, du.duty_id, du.person_id, coalesce(ks.school_id, u.unit_id, du.school_id) AS school_id,
       du.school_id AS org_ref, du.duty_role, d(du.start_date) AS s, d(du.end_date) AS e,
       coalesce(ks.school_id, u.unit_id) IS NOT NULL AS school_known,
       list_contains(rs.teaching_duty_roles, du.duty_role) AS teaching,
       has_started(d(du.start_date), rs.effective_start) AS started,
       has_ended(d(du.end_date), rs.as_of) AS ended
FROM c_duties du JOIN rule_settings rs USING (source_id)
LEFT JOIN known_schools ks ON ks.source_id = du.source_id AND ks.school_id = du.school_id
LEFT JOIN duty_units u ON ks.school_id IS NULL AND u.source_id = du.source_id AND u.duty_id = du.duty_id
WHERE du.person_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE enrolment_eval AS
SELECT en.source_id, en.person_id, en.ordinal, coalesce(ks.school_id, tr.unit_id, en.school_id) AS school_id,
       en.school_id AS org_ref, en.school_type, CASE WHEN ks.school_id IS NULL THEN tr.chosen END AS resolved_at,
       d(en.start_date) AS s, d(en.end_date) AS e,
       coalesce(ks.school_id, tr.unit_id) IS NOT NULL AS school_known,
       coalesce(en.cancelled = 'true', FALSE) AS cancelled,
       has_started(d(en.start_date), rs.effective_start) AS started,
       has_ended(d(en.end_date), rs.as_of) AS ended
FROM c_enrolments en JOIN rule_settings rs USING (source_id)
LEFT JOIN known_schools ks ON ks.source_id = en.source_id AND ks.school_id = en.school_id
LEFT JOIN typed_resolution tr ON tr.source_id = en.source_id AND tr.org_id = en.school_id
                             AND tr.school_type IS NOT DISTINCT FROM upper(en.school_type);

-- A person who is only someone's guardian is not a roster user and not reported (CONTRACT §2).
-- Per-person facts from each kind of link, aggregated once per table and joined by key (correlated EXISTS per
-- person made seven joins over the same tables: profiled at 1.7 s of the rules' 6 s on 200 000 persons).
CREATE OR REPLACE TEMP TABLE person_duty_facts AS
SELECT source_id, person_id,
       bool_or(school_known AND started AND NOT ended AND teaching) AS teaching_active,
       bool_or(school_known AND started AND NOT ended AND NOT teaching) AS other_duty_active,
       min(school_id) FILTER (WHERE school_known) AS school_id
FROM duty_eval GROUP BY source_id, person_id;

CREATE OR REPLACE TEMP TABLE person_enrolment_facts AS
SELECT source_id, person_id,
       bool_or(school_known AND NOT cancelled AND started AND NOT ended) AS enrolment_active,
       min(school_id) FILTER (WHERE school_known) AS school_id
FROM enrolment_eval GROUP BY source_id, person_id;

CREATE OR REPLACE TEMP TABLE person_links AS
SELECT p.source_id, p.person_id,
       d.person_id IS NOT NULL AS has_duty,
       e.person_id IS NOT NULL AS has_enrolment,
       EXISTS (SELECT 1 FROM c_responsibles r WHERE r.source_id = p.source_id AND r.responsible_id = p.person_id) AS is_guardian  -- noqa: LT06
FROM c_persons p
LEFT JOIN person_duty_facts d USING (source_id, person_id)
LEFT JOIN person_enrolment_facts e USING (source_id, person_id);

CREATE OR REPLACE TEMP TABLE person_eval AS
WITH assigned AS (SELECT DISTINCT source_id, person_id FROM teaching_units),
in_group AS (
    SELECT DISTINCT m.source_id, m.person_id FROM student_membership_eval m
    SEMI JOIN out_groups g ON g.source_id = m.source_id AND g.group_id = m.group_id
    WHERE m.started AND NOT m.ended AND NOT m.deleted
)
SELECT p.source_id, p.person_id, p.given_name, p.family_name, p.person_status, p.security_marking,
       p.civic_no_hash, p.inactive_reason, coalesce(p.to_be_deleted, FALSE) AS to_be_deleted,
       coalesce(p.private_emails, 0) AS private_emails, p.duplicate_contents,
       rs.teacher_requires_group, rs.student_requires_group, l.has_duty, l.has_enrolment,
       coalesce(d.teaching_active, FALSE) AS teaching_active,
       coalesce(d.other_duty_active, FALSE) AS other_duty_active,
       coalesce(e.enrolment_active, FALSE) AS enrolment_active,
       a.person_id IS NOT NULL AS assigned,
       g.person_id IS NOT NULL AS in_group,
       coalesce(d.school_id, e.school_id) AS school_id
FROM c_persons p JOIN rule_settings rs USING (source_id) JOIN person_links l USING (source_id, person_id)
LEFT JOIN person_duty_facts d USING (source_id, person_id)
LEFT JOIN person_enrolment_facts e USING (source_id, person_id)
LEFT JOIN assigned a USING (source_id, person_id)
LEFT JOIN in_group g USING (source_id, person_id)
WHERE l.has_duty OR l.has_enrolment OR NOT l.is_guardian;

-- The role a person would have by their links alone (NULL: no path qualifies).
CREATE OR REPLACE TEMP TABLE person_role AS
SELECT source_id, person_id,
       CASE WHEN teaching_active AND assigned THEN 'teacher'
            WHEN other_duty_active THEN 'staff'
            WHEN teaching_active AND NOT teacher_requires_group THEN 'teacher'
            WHEN enrolment_active AND (in_group OR NOT student_requires_group) THEN 'student'
       END AS role
FROM person_eval;

-- The school e-mail (CONTRACT §3): Skola elev / Skola personal, else Arbete övrigt, else an address on a
-- school domain; first in registry order within a kind. A Privat address is never used otherwise.
CREATE OR REPLACE TEMP TABLE chosen_email AS
SELECT source_id, person_id, email FROM (
    SELECT *, row_number() OVER (PARTITION BY source_id, person_id ORDER BY kind, ordinal) AS rn FROM (
        SELECT pe.source_id, pe.person_id, pe.ordinal, lower(pe.email) AS email,
               CASE WHEN pe.email_type IN ('Skola elev', 'Skola personal') THEN 1
                    WHEN pe.email_type = 'Arbete övrigt' THEN 2
                    WHEN list_contains(rs.school_email_domains, lower(split_part(pe.email, '@', -1))) THEN 3 END AS kind
        FROM c_person_emails pe JOIN rule_settings rs USING (source_id) WHERE pe.email IS NOT NULL)
    WHERE kind IS NOT NULL)
WHERE rn = 1;

CREATE OR REPLACE TEMP TABLE person_reasons_raw AS
-- Record-level problems
SELECT source_id, person_id, 'DUPLICATE_ID' AS reason_code,
       'the id appears ' || duplicate_contents || ' times with different content' AS detail, NULL::DATE AS candidate
FROM person_eval WHERE duplicate_contents > 1
UNION ALL
SELECT p.source_id, p.person_id, 'INVALID_RECORD', i.detail, NULL
FROM person_eval p
JOIN c_invalid_records i ON i.source_id = p.source_id AND i.entity_type = 'person' AND i.record_id = p.person_id
UNION ALL
SELECT source_id, person_id, 'MISSING_GIVEN_NAME', 'givenName is blank', NULL FROM person_eval WHERE given_name IS NULL
UNION ALL
SELECT source_id, person_id, 'MISSING_FAMILY_NAME', 'familyName is blank', NULL
FROM person_eval WHERE family_name IS NULL
UNION ALL
SELECT source_id, person_id, 'PERSON_INACTIVE', 'personStatus is ' || person_status, NULL
FROM person_eval WHERE person_status IN ('Utvandrad', 'Avliden')
UNION ALL
SELECT source_id, person_id, 'PERSON_INACTIVE', inactive_reason, NULL FROM person_eval WHERE inactive_reason IS NOT NULL
UNION ALL
SELECT source_id, person_id, 'TO_BE_DELETED', 'status is tobedeleted in the source', NULL
FROM person_eval WHERE to_be_deleted
UNION ALL
SELECT p.source_id, p.person_id, 'MISSING_EMAIL',
       CASE WHEN p.private_emails > 0 OR EXISTS (SELECT 1 FROM c_person_emails pe
                                                  WHERE pe.source_id = p.source_id AND pe.person_id = p.person_id)
            THEN 'only a private e-mail address (type Privat); a school address is needed'
            ELSE 'no e-mail address' END, NULL
FROM person_eval p ANTI JOIN chosen_email USING (source_id, person_id)
UNION ALL
SELECT c.source_id, c.person_id, 'INVALID_EMAIL', 'the school e-mail address is not a valid address', NULL
FROM chosen_email c SEMI JOIN person_eval USING (source_id, person_id)
WHERE NOT regexp_full_match(c.email, '[^@\s]+@[^@\s.]+(\.[^@\s.]+)+')
UNION ALL
-- Link problems, only when no path to a role qualifies
SELECT p.source_id, p.person_id, 'NO_SCHOOL_LINK', 'neither an enrolment nor a duty', NULL
FROM person_eval p WHERE NOT p.has_duty AND NOT p.has_enrolment
UNION ALL
SELECT x.source_id, x.person_id, 'UNKNOWN_SCHOOL',
       (CASE WHEN x.kind = 'duty' THEN 'duty ' || x.link_id ELSE 'enrolment ' || x.link_id END) || ': '
           || school_problem(x.source_id, x.org_ref, x.school_type, x.field), NULL
FROM (SELECT source_id, person_id, 'duty' AS kind, duty_id AS link_id, org_ref, NULL AS school_type, 'dutyAt' AS field
      FROM duty_eval WHERE NOT school_known
      UNION ALL
      SELECT source_id, person_id, 'enrolment', CAST(ordinal AS VARCHAR), org_ref, school_type, 'enroledAt'
      FROM enrolment_eval WHERE NOT school_known) x
JOIN person_role r USING (source_id, person_id) WHERE r.role IS NULL
UNION ALL
SELECT x.source_id, x.person_id, 'EMPLOYMENT_NOT_STARTED', 'the duty starts on ' || min(x.s),
       min(first_visible(x.source_id, x.s, x.e))
FROM duty_eval x JOIN person_eval p USING (source_id, person_id) JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND NOT p.teaching_active AND NOT p.other_duty_active
      AND x.school_known AND NOT x.started AND NOT x.ended
GROUP BY x.source_id, x.person_id
UNION ALL
SELECT x.source_id, x.person_id, 'EMPLOYMENT_ENDED', 'the last duty ended on ' || max(x.e), NULL
FROM duty_eval x JOIN person_eval p USING (source_id, person_id) JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND NOT p.teaching_active AND NOT p.other_duty_active AND x.school_known
GROUP BY x.source_id, x.person_id
HAVING bool_and(x.ended)
UNION ALL
SELECT p.source_id, p.person_id, 'NO_GROUP_ASSIGNMENT',
       'a teaching duty but no active assignment to a synced group (activity teacher or assignment role)', NULL
FROM person_eval p JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND p.teaching_active AND NOT p.assigned AND p.teacher_requires_group
UNION ALL
SELECT x.source_id, x.person_id, 'PLACEMENT_NOT_STARTED', 'the enrolment starts on ' || min(x.s),
       min(first_visible(x.source_id, x.s, x.e))
FROM enrolment_eval x JOIN person_eval p USING (source_id, person_id) JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND NOT p.enrolment_active AND x.school_known AND NOT x.cancelled AND NOT x.started AND NOT x.ended
GROUP BY x.source_id, x.person_id
UNION ALL
SELECT x.source_id, x.person_id, 'PLACEMENT_ENDED', 'the last enrolment ended on ' || max(x.e), NULL
FROM enrolment_eval x JOIN person_eval p USING (source_id, person_id) JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND NOT p.enrolment_active AND x.school_known AND NOT x.cancelled
GROUP BY x.source_id, x.person_id
HAVING bool_and(x.ended)
UNION ALL
SELECT x.source_id, x.person_id, 'PLACEMENT_CANCELLED', 'the enrolment is cancelled', NULL
FROM enrolment_eval x JOIN person_eval p USING (source_id, person_id) JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND NOT p.enrolment_active AND x.school_known
GROUP BY x.source_id, x.person_id
HAVING bool_and(x.cancelled)
UNION ALL
SELECT p.source_id, p.person_id, 'NO_ACTIVE_GROUP', 'enrolled, but no active membership in a synced group', NULL
FROM person_eval p JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NULL AND p.enrolment_active AND NOT p.in_group AND p.student_requires_group;

-- DUPLICATE_EMAIL among the people who would otherwise be included: all of them are held back, since the
-- registry must decide whose address it is.
CREATE OR REPLACE TEMP TABLE email_clash AS
SELECT c.source_id, c.person_id, c.email
FROM chosen_email c JOIN person_role r USING (source_id, person_id)
WHERE r.role IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM person_reasons_raw x WHERE x.source_id = c.source_id AND x.person_id = c.person_id);

CREATE OR REPLACE TEMP TABLE person_reasons AS
SELECT * FROM person_reasons_raw
UNION ALL
SELECT a.source_id, a.person_id, 'DUPLICATE_EMAIL',
       'the same school e-mail is used by ' || string_agg(DISTINCT b.person_id, ', ' ORDER BY b.person_id), NULL
-- across sources too; the same person (the same global id) in two sources is no clash
FROM email_clash a JOIN email_clash b ON a.email = b.email AND a.person_id <> b.person_id
GROUP BY a.source_id, a.person_id;

-- Included users per source (what conservation compares with); out_users below merges them across sources.
CREATE OR REPLACE TABLE source_users AS
SELECT rs.as_of, p.person_id AS user_id, p.source_id, p.given_name, p.family_name, c.email, r.role,
       coalesce(p.security_marking, 'Ingen') <> 'Ingen' AS protected_identity, p.civic_no_hash
FROM person_eval p JOIN rule_settings rs USING (source_id) JOIN person_role r USING (source_id, person_id)
JOIN chosen_email c USING (source_id, person_id)
WHERE r.role IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM person_reasons x WHERE x.source_id = p.source_id AND x.person_id = p.person_id);

-- Several sources, one roster: the same global id in two sources is one user, with the affiliations of both.
-- The row of the strongest role (teacher, staff, student) wins, then the first source id.
CREATE OR REPLACE TABLE out_users AS
SELECT * FROM source_users
QUALIFY row_number() OVER (PARTITION BY user_id
                           ORDER BY CASE role WHEN 'teacher' THEN 0 WHEN 'staff' THEN 1 ELSE 2 END, source_id) = 1
ORDER BY user_id;

-- ─── School affiliations: each active enrolment or duty of an included user ─────────────────────────────
CREATE OR REPLACE TABLE out_school_affiliations AS
SELECT as_of, user_id, school_id, role, min(s) AS start_date,
       CASE WHEN bool_or(e IS NULL) THEN NULL ELSE max(e) END AS end_date, source_id
FROM (
    SELECT u.as_of, u.user_id, u.source_id, x.school_id, x.s, x.e,
           -- a teaching duty of someone who is staff by another duty is a staff affiliation
           CASE WHEN x.role = 'teacher' AND merged.role <> 'teacher' THEN 'staff' ELSE x.role END AS role
    FROM source_users u JOIN out_users merged USING (user_id) JOIN (
        SELECT source_id, person_id, school_id, CASE WHEN teaching THEN 'teacher' ELSE 'staff' END AS role, s, e
        FROM duty_eval WHERE school_known AND started AND NOT ended
        UNION ALL
        SELECT source_id, person_id, school_id, 'student', s, e
        FROM enrolment_eval WHERE school_known AND NOT cancelled AND started AND NOT ended
    ) x ON x.source_id = u.source_id AND x.person_id = u.user_id)
GROUP BY ALL
ORDER BY user_id, school_id, role;

-- ─── Memberships: students in groups and teacher assignments ────────────────────────────────────────────
CREATE OR REPLACE TEMP TABLE membership_rows AS
SELECT source_id, group_id, person_id AS member_id, person_id, 'student' AS role, s, e,
       started AND NOT deleted AS started, ended, deleted
FROM student_membership_eval
UNION ALL
SELECT source_id, group_id, coalesce(person_id, duty_id), person_id, 'teacher', s, e,
       started AND NOT deleted, ended, deleted
FROM assignment_eval;

-- One row per membership (group, member, role). Almost every one comes as one entry; only the keys sent more than
-- once (a person listed twice in a group, with two periods) are aggregated, the rest are read as they are: at 13
-- million entries, aggregating every key cost 25 of the rules' 68 s (each key unique, the hash table spilling).
-- Aggregate first, then look up the group and the person by their unique keys: joining before grouping made
-- DuckDB carry the joined columns through the aggregation (profiled: 3.5 s instead of 1.4 s at 1.3 M rows).
CREATE OR REPLACE TEMP TABLE membership_eval AS
WITH repeated AS (
    SELECT source_id, group_id, member_id, role FROM membership_rows GROUP BY ALL HAVING count(*) > 1
),
single AS (
    SELECT m.source_id, m.group_id, m.member_id, m.person_id, m.role,
           m.started AND NOT m.ended AS active, m.deleted,
           CASE WHEN NOT m.started AND NOT m.ended AND NOT m.deleted THEN m.s END AS next_start,
           CASE WHEN m.ended THEN m.e END AS last_end,
           CASE WHEN m.started AND NOT m.ended THEN m.s END AS start_date,
           CASE WHEN m.started AND NOT m.ended THEN m.e END AS end_date
    FROM membership_rows m ANTI JOIN repeated USING (source_id, group_id, member_id, role)
),
agg AS (
    SELECT m.source_id, m.group_id, m.member_id, any_value(m.person_id) AS person_id, m.role,
           bool_or(m.started AND NOT m.ended) AS active, bool_and(m.deleted) AS deleted,
           min(m.s) FILTER (WHERE NOT m.started AND NOT m.ended AND NOT m.deleted) AS next_start,
           max(m.e) FILTER (WHERE m.ended) AS last_end,
           min(m.s) FILTER (WHERE m.started AND NOT m.ended) AS start_date,
           CASE WHEN bool_or(m.e IS NULL AND m.started) THEN NULL
                ELSE max(m.e) FILTER (WHERE m.started AND NOT m.ended) END AS end_date
    FROM membership_rows m SEMI JOIN repeated USING (source_id, group_id, member_id, role)
    GROUP BY m.source_id, m.group_id, m.member_id, m.role
)
SELECT a.*, g.school_id, g.group_id IS NOT NULL AS group_known, p.person_id IS NOT NULL AS person_known
FROM (
    SELECT * FROM single
    UNION ALL
    SELECT * FROM agg
) AS a
LEFT JOIN group_eval g ON g.source_id = a.source_id AND g.group_id = a.group_id
LEFT JOIN c_persons p ON p.source_id = a.source_id AND p.person_id = a.person_id;

CREATE OR REPLACE TEMP TABLE membership_reasons AS
SELECT source_id, group_id, member_id, role, 'UNKNOWN_GROUP' AS reason_code,
       'group ' || group_id || ' is not in the drop (is it marked for export?)' AS detail, NULL::DATE AS candidate
FROM membership_eval WHERE NOT group_known
UNION ALL
SELECT source_id, group_id, member_id, role, 'UNKNOWN_PERSON',
       CASE WHEN person_id IS NULL THEN 'duty ' || member_id ELSE 'person ' || member_id END
           || ' is not in the drop', NULL
FROM membership_eval WHERE NOT person_known
UNION ALL
SELECT m.source_id, m.group_id, m.member_id, m.role, 'GROUP_EXCLUDED',
       'the group is excluded: ' || string_agg(DISTINCT r.reason_code, ', ' ORDER BY r.reason_code),
       -- held back only by the group's start date: visible when the group is
       CASE WHEN bool_and(r.candidate IS NOT NULL) THEN max(r.candidate) END
FROM membership_eval m JOIN group_reasons r ON r.source_id = m.source_id AND r.group_id = m.group_id
GROUP BY ALL
UNION ALL
SELECT m.source_id, m.group_id, m.member_id, m.role, 'MEMBER_EXCLUDED',
       'the person is not in the roster: ' || coalesce(
           (SELECT string_agg(DISTINCT r.reason_code, ', ' ORDER BY r.reason_code) FROM person_reasons r
            WHERE r.source_id = m.source_id AND r.person_id = m.person_id),
           'not a roster user (only a guardian)'),
       NULL
FROM membership_eval m
WHERE m.person_known
      AND NOT EXISTS (SELECT 1 FROM source_users u WHERE u.source_id = m.source_id AND u.user_id = m.person_id)
UNION ALL
SELECT source_id, group_id, member_id, role, 'MEMBERSHIP_NOT_STARTED',
       'the ' || CASE role WHEN 'student' THEN 'membership' ELSE 'teacher assignment' END
       || ' starts on ' || next_start,
       first_visible(source_id, next_start, NULL)
FROM membership_eval WHERE NOT active AND next_start IS NOT NULL
UNION ALL
SELECT source_id, group_id, member_id, role, 'TO_BE_DELETED', 'status is tobedeleted in the source', NULL
FROM membership_eval WHERE deleted
UNION ALL
SELECT source_id, group_id, member_id, role, 'MEMBERSHIP_ENDED',
       'the ' || CASE role WHEN 'student' THEN 'membership' ELSE 'teacher assignment' END
       || ' ended on ' || last_end, NULL
FROM membership_eval WHERE NOT active AND next_start IS NULL AND NOT deleted
UNION ALL
SELECT m.source_id, m.group_id, m.member_id, m.role, 'INVALID_RECORD', i.detail, NULL
FROM membership_eval m JOIN c_invalid_records i
  ON i.source_id = m.source_id AND i.entity_type = 'membership' AND i.role = m.role
 AND i.record_id = m.group_id || '/' || m.member_id;

-- A membership or assignment without dates of its own lasts as long as its group: the roster says so, so that
-- consumers never have to guess what an empty date means (as Clever and SDS give enrolments their section's dates).
CREATE OR REPLACE TABLE out_memberships AS
SELECT rs.as_of, m.group_id, m.member_id AS user_id, m.role,
       coalesce(m.start_date, g.start_date) AS start_date, coalesce(m.end_date, g.end_date) AS end_date, m.source_id
FROM membership_eval m JOIN rule_settings rs USING (source_id)
JOIN out_groups g USING (source_id, group_id)
ANTI JOIN membership_reasons USING (source_id, group_id, member_id, role);

-- ─── Exclusions, with visible_from ──────────────────────────────────────────────────────────────────────
-- visible_from is the first night the record will appear if nothing in the registry changes: only for a record
-- held back by dates alone. A person may qualify by any one of their links (the earliest date wins) as long as
-- nothing else needs fixing; a membership needs its own dates, its person and its group (the latest wins).
CREATE OR REPLACE TEMP MACRO date_only_person_reason(code) AS code IN (
    'EMPLOYMENT_NOT_STARTED', 'PLACEMENT_NOT_STARTED', 'EMPLOYMENT_ENDED', 'PLACEMENT_ENDED', 'PLACEMENT_CANCELLED',
    'UNKNOWN_SCHOOL');

CREATE OR REPLACE TEMP TABLE person_visible AS
SELECT source_id, person_id,
       CASE WHEN bool_and(date_only_person_reason(reason_code)) THEN min(candidate) END AS visible_from
FROM person_reasons GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE membership_visible AS
SELECT r.source_id, r.group_id, r.member_id, r.role,
       CASE WHEN bool_and(r.candidate IS NOT NULL
                          OR (r.reason_code = 'MEMBER_EXCLUDED' AND pv.visible_from IS NOT NULL))
            THEN greatest(max(r.candidate), max(pv.visible_from)) END AS visible_from
FROM membership_reasons r
LEFT JOIN membership_eval m USING (source_id, group_id, member_id, role)
LEFT JOIN person_visible pv
    ON r.reason_code = 'MEMBER_EXCLUDED' AND pv.source_id = r.source_id AND pv.person_id = m.person_id
GROUP BY ALL;

CREATE OR REPLACE TABLE out_exclusions AS
SELECT rs.as_of, r.source_id, 'person' AS entity_type, r.person_id AS record_id, r.person_id, NULL AS group_id,
       p.school_id, r.reason_code, r.detail, v.visible_from
FROM person_reasons r JOIN rule_settings rs USING (source_id) JOIN person_eval p USING (source_id, person_id)
JOIN person_visible v USING (source_id, person_id)
UNION ALL
SELECT rs.as_of, r.source_id, 'group', r.group_id, NULL, r.group_id, r.school_id, r.reason_code, r.detail,
       CASE WHEN bool_and(r.candidate IS NOT NULL) OVER (PARTITION BY r.source_id, r.group_id)
            THEN max(r.candidate) OVER (PARTITION BY r.source_id, r.group_id) END
FROM group_reasons r JOIN rule_settings rs USING (source_id)
UNION ALL
SELECT rs.as_of, r.source_id, 'membership', r.group_id || '/' || r.member_id, m.person_id, r.group_id, m.school_id,
       r.reason_code, r.detail, v.visible_from
FROM membership_reasons r JOIN rule_settings rs USING (source_id)
JOIN membership_eval m USING (source_id, group_id, member_id, role)
JOIN membership_visible v USING (source_id, group_id, member_id, role)
ORDER BY source_id, entity_type, record_id, reason_code;

-- Who and what is held back, for the validation files and `explain`: names, the school e-mail, the role the
-- person would have (by their links), the school, and the protected-identity flag for masking. Never a civic
-- number. Only records with at least one exclusion row.
CREATE OR REPLACE TABLE out_excluded_persons AS
SELECT rs.as_of, p.source_id, p.person_id, p.given_name, p.family_name, c.email,
       coalesce(r.role,
                CASE WHEN p.has_duty AND EXISTS (SELECT 1 FROM duty_eval x WHERE x.source_id = p.source_id
                                                 AND x.person_id = p.person_id AND x.teaching) THEN 'teacher'
                     WHEN p.has_duty THEN 'staff'
                     WHEN p.has_enrolment THEN 'student' END) AS role,
       p.school_id,
       coalesce(p.security_marking, 'Ingen') <> 'Ingen' AS protected_identity
FROM person_eval p JOIN rule_settings rs USING (source_id) JOIN person_role r USING (source_id, person_id)
LEFT JOIN chosen_email c USING (source_id, person_id)
WHERE EXISTS (SELECT 1 FROM person_reasons x WHERE x.source_id = p.source_id AND x.person_id = p.person_id)
ORDER BY p.source_id, p.person_id;

CREATE OR REPLACE TABLE out_excluded_groups AS
SELECT as_of, source_id, group_id, school_id, name, group_type, s AS start_date, e AS end_date
FROM group_eval g
WHERE EXISTS (SELECT 1 FROM group_reasons r WHERE r.source_id = g.source_id AND r.group_id = g.group_id)
ORDER BY source_id, group_id;

-- ─── Warnings: field-level problems; the record stays ───────────────────────────────────────────────────
CREATE OR REPLACE TABLE out_warnings AS
SELECT rs.as_of, w.source_id, w.entity_type, w.record_id, w.code, w.detail
FROM c_warnings w JOIN rule_settings rs USING (source_id)
UNION ALL
SELECT rs.as_of, i.source_id, i.entity_type, i.record_id, 'INVALID_VALUE', i.detail
FROM c_invalid_records i JOIN rule_settings rs USING (source_id)
WHERE i.entity_type NOT IN ('person', 'group', 'membership')
UNION ALL
-- on the merged schools: a unit another source places under its authority has one
SELECT as_of, source_id, 'organisation', school_id, 'NO_SCHOOL_AUTHORITY',
       'no Huvudman above this school unit in the organisation tree'
FROM out_schools WHERE organisation_id IS NULL
UNION ALL
SELECT rs.as_of, x.source_id, 'duty', x.duty_id, 'SCHOOL_RESOLVED_FROM_PARENT',
       'dutyAt ' || org_label(x.source_id, x.org_ref) || ' is above the school units; counted at '
           || string_agg(u.unit_label, ', ' ORDER BY u.unit_id)
           || CASE WHEN bool_or(u.teaches_here) THEN ', where the person teaches'
                   ELSE ', every unit below it (the person teaches at none of them)' END
FROM (SELECT DISTINCT source_id, duty_id, org_ref FROM duty_eval WHERE school_known AND school_id <> org_ref) x
JOIN rule_settings rs USING (source_id) JOIN duty_units u USING (source_id, duty_id)
GROUP BY rs.as_of, x.source_id, x.duty_id, x.org_ref
UNION ALL
SELECT rs.as_of, x.source_id, 'person', x.person_id, 'SCHOOL_RESOLVED_FROM_PARENT',
       'enrolments[' || x.ordinal || '].enroledAt ' || org_label(x.source_id, x.org_ref)
           || ' is above the school units; counted at ' || x.resolved_at
FROM enrolment_eval x JOIN rule_settings rs USING (source_id) WHERE x.resolved_at IS NOT NULL
UNION ALL
SELECT as_of, source_id, 'group', group_id, 'SCHOOL_RESOLVED_FROM_PARENT',
       'organisation: ' || org_label(source_id, org_ref) || ' is above the school units; counted at ' || resolved_at
FROM group_eval WHERE resolved_at IS NOT NULL
ORDER BY ALL;
