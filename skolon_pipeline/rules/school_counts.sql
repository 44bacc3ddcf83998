-- The per-school figures of the validation file's Summary sheet (diagnostics.school_counts).
--
-- A query over the published relations of one or more nights, by their plain names: schools, users,
-- school_affiliations, groups, memberships, exclusions. skolon_pipeline.warehouse binds those names (as CTEs)
-- to the latest night's roster.* / diagnostics.* views for the view, and to one night's rows for an export.
-- Joins include as_of and source_id: ids are unique per source and night only.
--
-- students / teachers / staff: included users affiliated with the school, by their role in the roster.
-- classes: synced groups of type Klass; groups: every other synced group (teaching groups).
-- memberships: memberships in the school's groups. excluded_*: held-back records (distinct record ids) whose
-- school is this one.
WITH people AS (
    SELECT a.as_of, a.source_id, a.school_id,
           count(DISTINCT a.user_id) FILTER (WHERE u.role = 'student') AS students,
           count(DISTINCT a.user_id) FILTER (WHERE u.role = 'teacher') AS teachers,
           count(DISTINCT a.user_id) FILTER (WHERE u.role = 'staff') AS staff
    FROM school_affiliations a JOIN users u USING (as_of, source_id, user_id)
    GROUP BY ALL
), school_groups AS (
    SELECT as_of, source_id, school_id,
           count(*) FILTER (WHERE group_type = 'Klass') AS classes,
           count(*) FILTER (WHERE group_type IS DISTINCT FROM 'Klass') AS groups
    FROM groups GROUP BY ALL
), school_memberships AS (
    SELECT m.as_of, m.source_id, g.school_id, count(*) AS memberships
    FROM memberships m JOIN groups g USING (as_of, source_id, group_id)
    GROUP BY ALL
), held_back AS (
    SELECT as_of, source_id, school_id,
           count(DISTINCT record_id) FILTER (WHERE entity_type = 'person') AS excluded_persons,
           count(DISTINCT record_id) FILTER (WHERE entity_type = 'group') AS excluded_groups,
           count(DISTINCT record_id) FILTER (WHERE entity_type = 'membership') AS excluded_memberships
    FROM exclusions WHERE school_id IS NOT NULL GROUP BY ALL
)
SELECT s.as_of, s.school_id,
       coalesce(p.students, 0) AS students, coalesce(p.teachers, 0) AS teachers, coalesce(p.staff, 0) AS staff,
       coalesce(g.classes, 0) AS classes, coalesce(g.groups, 0) AS groups,
       coalesce(m.memberships, 0) AS memberships,
       coalesce(h.excluded_persons, 0) AS excluded_persons, coalesce(h.excluded_groups, 0) AS excluded_groups,
       coalesce(h.excluded_memberships, 0) AS excluded_memberships,
       s.source_id
FROM schools s
LEFT JOIN people p USING (as_of, source_id, school_id)
LEFT JOIN school_groups g USING (as_of, source_id, school_id)
LEFT JOIN school_memberships m USING (as_of, source_id, school_id)
LEFT JOIN held_back h USING (as_of, source_id, school_id)
ORDER BY s.as_of, s.source_id, s.school_id
