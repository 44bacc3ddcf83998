-- The workbook's sheets as an admin reads them, over sheets.sql's tables (which the CSV files keep as they are,
-- for machines): words for roles, entity types and reasons in the file's language (the variable `lang`, 'sv'
-- or 'en'), codes and ids in the last columns, and on the Excluded sheet ("Ej synkade") one row per held-back
-- person or group, with the memberships held back only because of them counted on that row ("och 6
-- gruppmedlemskap") instead of a row each. `x_explanations(code, problem, fix)` holds the reason texts in
-- the file's language (exports/explanations.py). Each book_* view keeps `_authority` and `_schools` for the
-- per-file filter, and its table's rowid as `_position` (the sheet's order, by which a sheet longer than Excel
-- allows is cut into parts); validation_file.py gives the columns their headers.

CREATE OR REPLACE TEMP MACRO sv_en(sv, en) AS CASE WHEN getvariable('lang') = 'en' THEN en ELSE sv END;

CREATE OR REPLACE TEMP MACRO role_word(r) AS CASE r
    WHEN 'student' THEN sv_en('Elev', 'Student')
    WHEN 'teacher' THEN sv_en('Lärare', 'Teacher')
    WHEN 'staff' THEN sv_en('Personal', 'Staff')
    ELSE r END;

CREATE OR REPLACE TEMP MACRO entity_word(e) AS CASE e
    WHEN 'person' THEN 'Person'
    WHEN 'group' THEN sv_en('Grupp', 'Group')
    WHEN 'membership' THEN sv_en('Gruppmedlemskap', 'Group membership')
    ELSE e END;

-- "Anställningen har inte börjat ännu — visas från 2026-02-01" / "… — kontrollera tjänstens startdatum …"
CREATE OR REPLACE TEMP MACRO reason_text(problem, fix, visible_from) AS
    problem || ' — ' || CASE WHEN visible_from IS NOT NULL
                             THEN sv_en('visas från ', 'visible from ') || strftime(visible_from, '%Y-%m-%d')
                             ELSE fix END;

CREATE OR REPLACE TEMP VIEW book_summary AS
SELECT rowid AS _position, _authority, _schools,
       CASE WHEN school_id IS NULL THEN sv_en('utan skola', 'no school') ELSE school END AS school,
       school_unit_code, students, teachers, staff, classes, teaching_groups, memberships,
       excluded_persons, excluded_groups, excluded_memberships, school_id
FROM sheet_summary_base;

CREATE OR REPLACE TEMP VIEW book_users AS
SELECT rowid AS _position, _authority, _schools,
       given_name, family_name, username, role_word(role) AS role_word, schools, classes,
       groups, first_synced, last_changed_by_sync, role, user_id
FROM sheet_users;

CREATE OR REPLACE TEMP VIEW book_groups AS
SELECT rowid AS _position, _authority, _schools,
       name, school, type, students, teachers, start_date, end_date, first_synced,
       last_changed_by_sync, group_id
FROM sheet_groups;

CREATE OR REPLACE TEMP VIEW book_memberships AS
SELECT rowid AS _position, _authority, _schools,
       "group", school, name, username, role_word(role) AS role_word, start_date, end_date,
       role, group_id, user_id
FROM sheet_memberships;

-- ─── Ej synkade: each held-back record once, with all its reasons ─────────────────────────────────────
CREATE OR REPLACE TEMP TABLE x_held AS
SELECT x.source_id, x.entity_type, x.record_id, any_value(x.person_id) AS person_id,
       any_value(x.group_id) AS group_id, any_value(x.school_id) AS school_id,
       list(DISTINCT x.reason_code ORDER BY x.reason_code) AS codes,
       string_agg(reason_text(coalesce(e.problem, x.reason_code), coalesce(e.fix, ''), x.visible_from), chr(10)
                  ORDER BY x.reason_code) AS explanation,
       string_agg(x.detail, chr(10) ORDER BY x.reason_code) AS detail,
       max(x.visible_from) AS visible_from,
       bool_or(x.protected_identity) AS protected_identity
FROM shown_exclusions x LEFT JOIN x_explanations e ON e.code = x.reason_code
GROUP BY x.source_id, x.entity_type, x.record_id;

-- A membership held back only because its person is (MEMBER_EXCLUDED, perhaps GROUP_EXCLUDED too) is counted on
-- the person's row; only because its group is, on the group's row; a protected person's memberships are only
-- ever counted (their groups could identify them). Folded only when that person or group has a row.
CREATE OR REPLACE TEMP TABLE x_folded AS
SELECT m.source_id, m.record_id,
       CASE WHEN p.record_id IS NOT NULL AND (m.protected_identity OR list_contains(m.codes, 'MEMBER_EXCLUDED')
                                              AND list_has_all(['MEMBER_EXCLUDED', 'GROUP_EXCLUDED'], m.codes))
            THEN 'person'
            WHEN g.record_id IS NOT NULL AND m.codes = ['GROUP_EXCLUDED'] THEN 'group' END AS onto,
       m.person_id, m.group_id
FROM x_held m
LEFT JOIN x_held p ON p.source_id = m.source_id AND p.entity_type = 'person' AND p.record_id = m.person_id
LEFT JOIN x_held g ON g.source_id = m.source_id AND g.entity_type = 'group' AND g.record_id = m.group_id
WHERE m.entity_type = 'membership';

CREATE OR REPLACE TEMP TABLE x_folded_counts AS
SELECT source_id, onto AS entity_type, CASE onto WHEN 'person' THEN person_id ELSE group_id END AS record_id,
       count(*) AS memberships
FROM x_folded WHERE onto IS NOT NULL GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE x_book_excluded AS
SELECT coalesce(xs.authority_id, sa.authority_id, 'source:' || h.source_id) AS _authority,
       CASE WHEN h.school_id IS NULL OR xs.school_id IS NULL THEN []::VARCHAR[] ELSE [h.school_id] END AS _schools,
       CASE WHEN h.entity_type = 'group' THEN g.name ELSE p.name END AS name,
       CASE WHEN h.entity_type = 'group' THEN g.group_type ELSE role_word(p.role) END AS role_word,
       coalesce(xs.name, h.school_id) AS school,
       h.explanation,
       h.visible_from,
       CASE WHEN c.memberships > 0
            THEN sv_en('och ', 'and ') || c.memberships || sv_en(' gruppmedlemskap',
                 CASE WHEN c.memberships = 1 THEN ' group membership' ELSE ' group memberships' END) END AS also_held,
       entity_word(h.entity_type) AS entity,
       CASE WHEN h.entity_type = 'membership' THEN g.name END AS "group",
       h.detail,
       p.email,
       array_to_string(h.codes, ', ') AS reason_codes,
       h.record_id
FROM x_held h
LEFT JOIN x_folded f ON h.entity_type = 'membership' AND f.source_id = h.source_id AND f.record_id = h.record_id
LEFT JOIN x_folded_counts c ON c.source_id = h.source_id AND c.entity_type = h.entity_type AND c.record_id = h.record_id
LEFT JOIN x_schools xs ON xs.source_id = h.source_id AND xs.school_id = h.school_id
LEFT JOIN x_source_authority sa ON sa.source_id = h.source_id
LEFT JOIN shown_people p ON p.source_id = h.source_id AND p.person_id = h.person_id
LEFT JOIN x_groups g ON g.source_id = h.source_id AND g.group_id = h.group_id
WHERE f.onto IS NULL AND NOT (h.entity_type = 'membership' AND h.protected_identity)
ORDER BY xs.school_id IS NULL, school, name, h.entity_type DESC, "group", h.record_id;

CREATE OR REPLACE TEMP VIEW book_excluded AS SELECT rowid AS _position, * FROM x_book_excluded;
