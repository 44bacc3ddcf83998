-- ─── Nothing silently dropped (issue 12) ────────────────────────────────────────────────────────────────
-- Runs after ss12000.sql and ss12000_groups.sql, on the connection that ran ss12000.sql (its first_* tables are
-- temporary; the groups' are in the reader's in-memory database).
CREATE OR REPLACE TEMP VIEW first_groups AS FROM skolon_raw.first_groups;

-- What the flattening above leaves out is reported here: a record id that is not a string, a list field that
-- is not a list, a list entry that is not an object, an activity teacher or group entry that names nothing.
CREATE OR REPLACE TEMP MACRO json_kind(j) AS CASE json_type(j)
    WHEN 'VARCHAR' THEN 'a string' WHEN 'BIGINT' THEN 'a number' WHEN 'UBIGINT' THEN 'a number'
    WHEN 'DOUBLE' THEN 'a number' WHEN 'BOOLEAN' THEN 'a boolean' WHEN 'ARRAY' THEN 'a list'
    WHEN 'OBJECT' THEN 'an object' ELSE 'null' END;

-- Record checks the reader runs itself (validate_staging adds them to invalid_records): an id that is a list,
-- an object or a boolean is no id, and the record is an INVALID_RECORD of its owner. A number is read as its
-- text, with a warning.
CREATE TABLE reader_invalid_records (
    source_id VARCHAR, table_name VARCHAR, entity_type VARCHAR, record_id VARCHAR,
    person_id VARCHAR, group_id VARCHAR, role VARCHAR, field VARCHAR, check_name VARCHAR, detail VARCHAR);

-- Every record with the owner its problems are reported on (CONTRACT §4: a duty's go to its person).
CREATE OR REPLACE TEMP VIEW first_records AS
SELECT 'organisations' AS table_name, 'organisation' AS entity, id, r.id AS id_json, id AS owner_id, NULL AS person_id,
       NULL AS group_id FROM first_organisations
UNION ALL
SELECT 'persons', 'person', id, r.id, id, id, NULL FROM first_persons
UNION ALL
SELECT 'duties', 'duty', id, r.id, id, ref(r.person), NULL FROM first_duties
UNION ALL
SELECT 'groups', 'group', id, r.id, id, NULL, id FROM first_groups
UNION ALL
SELECT 'activities', 'activity', id, r.id, id, NULL, NULL FROM first_activities;

-- The records whose id is not a string, found in one parse of every record (two checks each parsing every
-- record cost 2.5 s at 200 000 persons).
CREATE OR REPLACE TEMP TABLE odd_ids AS
SELECT * FROM (SELECT *, json_type(id_json) AS id_type FROM first_records) WHERE id_type <> 'VARCHAR';

INSERT INTO reader_invalid_records
SELECT getvariable('source_id'), table_name,
       CASE WHEN entity = 'duty' AND person_id IS NOT NULL THEN 'person' ELSE entity END,
       CASE WHEN entity = 'duty' THEN coalesce(person_id, id) ELSE owner_id END, person_id, group_id, NULL, 'id',
       'is_string', table_name || '.id failed is_string (' || json_kind(id_json) || ')'
FROM odd_ids WHERE id_type IN ('ARRAY', 'OBJECT', 'BOOLEAN');

INSERT INTO warnings
SELECT getvariable('source_id'), entity, id, 'ID_NOT_A_STRING', 'id is a number; read as the text ' || id
FROM odd_ids WHERE id_type IN ('BIGINT', 'UBIGINT', 'DOUBLE');

DROP TABLE odd_ids;

-- List fields: a single value where a list belongs is read as a list of one when it is what the list holds (an
-- object; for Activity.groups also a bare id), else ignored; list entries that are not objects are ignored.
-- Each with a warning naming the field and the entry.
CREATE OR REPLACE TEMP MACRO list_problems(tbl, field, label, bare_ids) AS TABLE
SELECT id, 'NOT_A_LIST' AS code,
       label || '.' || field || ' is ' || json_kind(struct_extract(r, field)) || ', not a list; '
       || CASE WHEN json_type(struct_extract(r, field)) = 'OBJECT'
                    OR (bare_ids AND json_type(struct_extract(r, field)) = 'VARCHAR')
               THEN 'read as a list of one' ELSE 'ignored' END AS detail
FROM query_table(tbl) WHERE json_type(struct_extract(r, field)) NOT IN ('ARRAY', 'NULL')
UNION ALL
SELECT id, 'ENTRY_IGNORED', label || '.' || field || '[' || n || '] is ' || kind || ', not an object; ignored'
FROM (SELECT id, types,
             unnest(list_filter(generate_series(1, len(types)),
                                LAMBDA i: types[i] <> 'OBJECT' AND NOT (bare_ids AND types[i] = 'VARCHAR'))) AS n
      FROM (SELECT id, json_type(struct_extract(r, field), '$[*]') AS types FROM query_table(tbl)
            WHERE json_type(struct_extract(r, field)) = 'ARRAY'))
     , LATERAL (SELECT CASE types[n] WHEN 'VARCHAR' THEN 'a string' WHEN 'ARRAY' THEN 'a list' WHEN 'NULL' THEN 'null'
                       WHEN 'BOOLEAN' THEN 'a boolean' ELSE 'a number' END AS kind);

INSERT INTO warnings
SELECT getvariable('source_id'), 'person', id, code, detail
FROM list_problems(first_persons, 'emails', 'Person', FALSE)
UNION ALL
SELECT getvariable('source_id'), 'person', id, code, detail
FROM list_problems(first_persons, 'enrolments', 'Person', FALSE)
UNION ALL
SELECT getvariable('source_id'), 'person', id, code, detail
FROM list_problems(first_persons, 'responsibles', 'Person', FALSE)
UNION ALL
SELECT getvariable('source_id'), 'duty', id, code, detail
FROM list_problems(first_duties, 'assignmentRole', 'Duty', FALSE)
UNION ALL
SELECT getvariable('source_id'), 'group', id, code, detail
FROM list_problems(first_groups, 'groupMemberships', 'Group', FALSE)
UNION ALL
SELECT getvariable('source_id'), 'activity', id, code, detail
FROM list_problems(first_activities, 'teachers', 'Activity', FALSE)
UNION ALL
SELECT getvariable('source_id'), 'activity', id, code, detail
FROM list_problems(first_activities, 'groups', 'Activity', TRUE);

-- Entries that are objects but name nothing the roster can use.
INSERT INTO warnings
SELECT getvariable('source_id'), 'activity', activity_id, 'TEACHER_IGNORED',
       'Activity.teachers[' || ordinal || '] names neither a duty nor a person; ignored'
FROM activity_teachers WHERE duty_id IS NULL AND person_id IS NULL
UNION ALL
SELECT getvariable('source_id'), 'activity', activity_id, 'ENTRY_IGNORED',
       'Activity.groups[' || n || '] names no group; ignored'
FROM (SELECT id AS activity_id, ordinal AS n, el FROM list_entries(first_activities, 'groups'))
WHERE json_type(el) IN ('OBJECT', 'VARCHAR') AND ref(el) IS NULL
UNION ALL
-- an activity with teachers but no group assigns no one: say so, so that the teacher's missing class is explained
SELECT getvariable('source_id'), 'activity', a.activity_id, 'ACTIVITY_WITHOUT_GROUPS',
       'Activity has ' || count(*) || ' teacher(s) but no groups; it assigns no one'
FROM activity_teachers a ANTI JOIN activity_groups USING (activity_id)
WHERE a.duty_id IS NOT NULL OR a.person_id IS NOT NULL
GROUP BY a.activity_id;

-- The records as sent are not needed any more (and hold what is never stored: addresses, phone numbers ...).
DROP VIEW first_records;
DROP TABLE first_organisations;
DROP TABLE first_persons;
DROP TABLE first_duties;
DROP VIEW first_groups;
DROP TABLE skolon_raw.first_groups;
DROP TABLE first_activities;
