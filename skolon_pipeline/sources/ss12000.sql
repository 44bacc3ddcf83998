-- SS12000 v2.1 (and 2.0) records, one JSON value per row in raw_<entity>(file, idx, rec), flattened into the
-- canonical staging tables (skolon_pipeline/validate/canonical.py) plus the SS12000-only activity tables from which
-- teacher assignments are derived. Runs inside one source's staging database; getvariable('source_id') names it.
--
-- Values stay text here (dates included) so that Pandera sees exactly what the registry sent and can name a
-- bad value; the rules cast them. Ids are lower-cased and trimmed: registries mix the case of UUIDs.

CREATE OR REPLACE TEMP MACRO txt(v) AS nullif(trim(v), '');
CREATE OR REPLACE TEMP MACRO sid(v) AS nullif(lower(trim(v)), '');
-- An object reference {"id": ...}; a bare string id is tolerated.
CREATE OR REPLACE TEMP MACRO ref(j) AS
    sid(CASE json_type(j) WHEN 'OBJECT' THEN j->>'id' WHEN 'VARCHAR' THEN j->>'$' END);
-- An array of JSON values; a single value where an array belongs ("assignmentRole": "REKTOR") becomes a list of one.
CREATE OR REPLACE TEMP MACRO arr(j) AS CASE
    WHEN json_type(j) = 'ARRAY' THEN from_json(j, '["json"]')
    WHEN j IS NULL OR json_type(j) = 'NULL' THEN []::JSON[]
    ELSE [j] END;
-- A scalar as text whatever JSON type it came as (true, "true", 1 ...).
CREATE OR REPLACE TEMP MACRO val(j) AS txt(j->>'$');
-- The entries of a record's list field (Person.emails, Group.groupMemberships ...), one row each, with their place
-- in the list (1-based) and the record's id. Every nested table below is read through this one shape; entries
-- that are not objects are reported by list_problems at the end and left out by the callers.
CREATE OR REPLACE TEMP MACRO list_entries(tbl, field) AS TABLE
    SELECT id, generate_subscripts(els, 1) AS ordinal, unnest(els) AS el
    FROM (SELECT id, arr(struct_extract(r, field)) AS els FROM query_table(tbl));

-- One copy of each id: exact repeats are dropped quietly; `duplicate_contents` > 1 marks a conflicting repeat,
-- which the rules exclude as DUPLICATE_ID. Nested records are read from the first copy only.
-- Ranking runs on the narrow (id, file, idx) and only repeated ids are hashed: sorting whole records by id
-- cost twice as much (profiled on a 94 MB groups.json).
CREATE OR REPLACE TEMP MACRO first_copies(raw_table) AS TABLE
    WITH ranked AS (
        SELECT id, file, idx, count(*) OVER (PARTITION BY id) AS copies,
               row_number() OVER (PARTITION BY id ORDER BY file, idx) AS copy_no
        FROM query_table(raw_table)
),
    conflicting AS (
        SELECT r.id, count(DISTINCT md5(raw.rec::VARCHAR)) AS duplicate_contents
        FROM ranked r JOIN query_table(raw_table) raw ON raw.file = r.file AND raw.idx = r.idx
        WHERE r.copies > 1
        GROUP BY r.id
)
    SELECT r.id, raw.rec, r.file, r.idx, coalesce(c.duplicate_contents, 1) AS duplicate_contents
    FROM ranked r
    JOIN query_table(raw_table) raw ON raw.file = r.file AND raw.idx = r.idx
    LEFT JOIN conflicting c ON c.id = r.id
    WHERE r.copy_no = 1;

-- Each record is parsed once, into the fields the flattening reads (each still JSON, as sent); every
-- `rec->'field'` parsed the whole record again (profiled at 200 000 persons: a group's seven fields were seven
-- parses of its whole membership list). Field names are matched case-sensitively, as `->` does, and a
-- repeated key gives its first value, as `->` does.
CREATE TEMP TABLE first_organisations AS
SELECT * EXCLUDE (rec),
       from_json(rec, '{"id": "JSON", "displayName": "JSON", "organisationType": "JSON", "schoolUnitCode": "JSON",
                       "organisationCode": "JSON", "parentOrganisation": "JSON", "schoolTypes": "JSON",
                       "startDate": "JSON", "endDate": "JSON"}') AS r
FROM first_copies(raw_organisations);

-- schoolTypes (GR, GY ...) decide which unit below a Skola an enrolment or group with a schoolType belongs to.
CREATE TABLE organisations AS
SELECT getvariable('source_id') AS source_id, id AS org_id,
       val(r.displayName) AS name,
       val(r.organisationType) AS org_type,
       val(r.schoolUnitCode) AS school_unit_code,
       val(r.organisationCode) AS organisation_code,
       ref(r.parentOrganisation) AS parent_id,
       list_filter(list_transform(arr(r.schoolTypes), LAMBDA t: val(t)), LAMBDA t: t IS NOT NULL) AS school_types,
       val(r.startDate) AS start_date, val(r.endDate) AS end_date,
       duplicate_contents, file, idx
FROM first_organisations;

CREATE TEMP TABLE first_persons AS
SELECT * EXCLUDE (rec),
       from_json(rec, '{"id": "JSON", "givenName": "JSON", "familyName": "JSON", "personStatus": "JSON",
                       "securityMarking": "JSON", "emails": "JSON", "civicNo": "JSON", "enrolments": "JSON",
                       "responsibles": "JSON"}') AS r
FROM first_copies(raw_persons);

-- Personal data is kept only where the roster needs it (README "Data protection"): e-mail addresses a school
-- address can be chosen from (CONTRACT §3: by type, or on a `school_email_domains` domain), the others only
-- counted; no addresses, phone numbers or photos; civic numbers only through the temporary civic_numbers table,
-- which skolon_pipeline.sources.civic turns into a keyed hash.
CREATE TEMP TABLE all_emails AS
SELECT person_id, ordinal, txt(el->>'value') AS email, txt(el->>'type') AS email_type,
       coalesce(lower(txt(el->>'type')) IN ('skola elev', 'skola personal', 'arbete övrigt')
                OR list_contains(getvariable('school_email_domains'), lower(split_part(txt(el->>'value'), '@', -1))),
                FALSE) AS choosable
FROM (SELECT id AS person_id, ordinal, el FROM list_entries(first_persons, 'emails'))
WHERE json_type(el) = 'OBJECT';

CREATE TABLE persons AS
SELECT getvariable('source_id') AS source_id, fp.id AS person_id,
       val(fp.r.givenName) AS given_name,
       val(fp.r.familyName) AS family_name,
       val(fp.r.personStatus) AS person_status,
       val(fp.r.securityMarking) AS security_marking,
       CAST(coalesce(pe.n, 0) AS INTEGER) AS private_emails,
       duplicate_contents, file, idx
FROM first_persons fp
LEFT JOIN (SELECT person_id, count(*) AS n FROM all_emails WHERE NOT choosable GROUP BY ALL) pe ON pe.person_id = fp.id;

CREATE TABLE person_emails AS
SELECT getvariable('source_id') AS source_id, person_id, ordinal, email, email_type
FROM all_emails WHERE choosable;

DROP TABLE all_emails;

-- civicNo is an object {"value", "nationality"} in 2.1; a bare string is tolerated.
CREATE OR REPLACE TEMP TABLE civic_numbers AS
SELECT id AS person_id,
       CASE json_type(r.civicNo) WHEN 'OBJECT' THEN val(r.civicNo->'value') ELSE val(r.civicNo) END
           AS raw,
       CASE json_type(r.civicNo) WHEN 'OBJECT' THEN val(r.civicNo->'nationality') END AS nationality
FROM first_persons
WHERE (r.civicNo) IS NOT NULL AND json_type(r.civicNo) <> 'NULL';

CREATE TABLE enrolments AS
SELECT getvariable('source_id') AS source_id, person_id, ordinal,
       ref(el->'enroledAt') AS school_id,
       txt(el->>'schoolType') AS school_type,
       val(el->'startDate') AS start_date, val(el->'endDate') AS end_date,
       lower(val(el->'cancelled')) AS cancelled
FROM (SELECT id AS person_id, ordinal, el FROM list_entries(first_persons, 'enrolments'))
WHERE json_type(el) = 'OBJECT';

-- Guardians: who is someone's guardian (so that a guardian-only person is not reported as missing). For a
-- person with a protected identity (securityMarking other than Ingen), which guardian is theirs is not stored.
CREATE TABLE responsibles AS
SELECT DISTINCT getvariable('source_id') AS source_id,
       CASE WHEN NOT protected THEN person_id END AS person_id,
       ref(el->'person') AS responsible_id,
       CASE WHEN NOT protected THEN txt(el->>'relationType') END AS relation_type
FROM (SELECT e.id AS person_id, e.el,
             coalesce(lower(val(p.r.securityMarking)), 'ingen') <> 'ingen' AS protected
      FROM list_entries(first_persons, 'responsibles') e
      JOIN first_persons p ON p.id IS NOT DISTINCT FROM e.id)  -- first_persons has one row per id (NULL too)
WHERE json_type(el) = 'OBJECT' AND ref(el->'person') IS NOT NULL;

CREATE TEMP TABLE first_duties AS
SELECT * EXCLUDE (rec),
       from_json(rec, '{"id": "JSON", "person": "JSON", "dutyAt": "JSON", "dutyRole": "JSON", "startDate": "JSON",
                       "endDate": "JSON", "assignmentRole": "JSON"}') AS r
FROM first_copies(raw_duties);

CREATE TABLE duties AS
SELECT getvariable('source_id') AS source_id, id AS duty_id,
       ref(r.person) AS person_id,
       ref(r.dutyAt) AS school_id,
       val(r.dutyRole) AS duty_role,
       val(r.startDate) AS start_date, val(r.endDate) AS end_date,
       duplicate_contents, file, idx
FROM first_duties;

CREATE TABLE duty_assignment_roles AS
SELECT getvariable('source_id') AS source_id, duty_id, ordinal,
       ref(el->'group') AS group_id, txt(el->>'assignmentRoleType') AS role_type,
       val(el->'startDate') AS start_date, val(el->'endDate') AS end_date
FROM (SELECT id AS duty_id, ordinal, el FROM list_entries(first_duties, 'assignmentRole'))
WHERE json_type(el) = 'OBJECT';

CREATE TEMP TABLE first_groups AS
SELECT * EXCLUDE (rec),
       from_json(rec, '{"id": "JSON", "displayName": "JSON", "groupType": "JSON", "organisation": "JSON",
                       "schoolType": "JSON", "startDate": "JSON", "endDate": "JSON", "groupMemberships": "JSON"}') AS r
FROM first_copies(raw_groups);

CREATE TABLE groups AS
SELECT getvariable('source_id') AS source_id, id AS group_id,
       val(r.displayName) AS name,
       val(r.groupType) AS group_type,
       ref(r.organisation) AS school_id,
       val(r.schoolType) AS school_type,
       val(r.startDate) AS start_date, val(r.endDate) AS end_date,
       duplicate_contents, file, idx
FROM first_groups;

CREATE TABLE group_memberships AS
SELECT getvariable('source_id') AS source_id, group_id, ordinal,
       ref(el->'person') AS person_id,
       val(el->'startDate') AS start_date, val(el->'endDate') AS end_date
FROM (SELECT id AS group_id, ordinal, el FROM list_entries(first_groups, 'groupMemberships'))
WHERE json_type(el) = 'OBJECT';

CREATE TEMP TABLE first_activities AS
SELECT * EXCLUDE (rec),
       from_json(rec, '{"id": "JSON", "displayName": "JSON", "organisation": "JSON", "startDate": "JSON",
                       "endDate": "JSON", "groups": "JSON", "teachers": "JSON"}') AS r
FROM first_copies(raw_activities);

CREATE TABLE activities AS
SELECT getvariable('source_id') AS source_id, id AS activity_id,
       val(r.displayName) AS name,
       ref(r.organisation) AS school_id,
       val(r.startDate) AS start_date, val(r.endDate) AS end_date,
       duplicate_contents, file, idx
FROM first_activities;

CREATE TABLE activity_groups AS
SELECT DISTINCT getvariable('source_id') AS source_id, activity_id, ref(el) AS group_id
FROM (SELECT id AS activity_id, el FROM list_entries(first_activities, 'groups'))
WHERE ref(el) IS NOT NULL;

CREATE TABLE activity_teachers AS
SELECT getvariable('source_id') AS source_id, activity_id, ordinal,
       ref(el->'duty') AS duty_id,
       ref(el->'person') AS person_id,
       val(el->'startDate') AS start_date, val(el->'endDate') AS end_date
FROM (SELECT id AS activity_id, ordinal, el FROM list_entries(first_activities, 'teachers'))
WHERE json_type(el) = 'OBJECT';

-- Teacher group assignments (CONTRACT §2): Activity.teachers[] for each of Activity.groups[], dates defaulting
-- to the activity's; and Duty.assignmentRole[].group, dates defaulting to the duty's. A teacher entry that names
-- a person instead of a duty is taken as that person (reported as a warning below).
CREATE TABLE teacher_assignments AS
SELECT getvariable('source_id') AS source_id, ag.group_id,
       coalesce(d.person_id, t.person_id) AS person_id, t.duty_id,
       'activity' AS origin, a.activity_id AS origin_id, t.ordinal AS origin_ordinal,
       coalesce(t.start_date, a.start_date) AS start_date,
       coalesce(t.end_date, a.end_date) AS end_date
FROM activity_teachers t
JOIN activities a USING (activity_id)
JOIN activity_groups ag USING (activity_id)
LEFT JOIN duties d ON d.duty_id = t.duty_id
WHERE t.duty_id IS NOT NULL OR t.person_id IS NOT NULL
UNION ALL
SELECT getvariable('source_id'), r.group_id, d.person_id, d.duty_id,
       'assignmentRole', d.duty_id, r.ordinal,
       coalesce(r.start_date, d.start_date), coalesce(r.end_date, d.end_date)
FROM duty_assignment_roles r
JOIN duties d USING (duty_id)
WHERE r.group_id IS NOT NULL;

CREATE TABLE warnings (source_id VARCHAR, entity_type VARCHAR, record_id VARCHAR, code VARCHAR, detail VARCHAR);

INSERT INTO warnings
SELECT getvariable('source_id'), 'activity', activity_id, 'TEACHER_BY_PERSON',
       'Activity.teachers[' || ordinal || '] names person ' || person_id || ' instead of a duty; taken as that person'
FROM activity_teachers WHERE duty_id IS NULL AND person_id IS NOT NULL;

INSERT INTO warnings
SELECT getvariable('source_id'), 'duty', duty_id, 'ASSIGNMENT_ROLE_IGNORED',
       'Duty.assignmentRole[' || ordinal || '] names no group; ignored'
FROM duty_assignment_roles WHERE group_id IS NULL;

-- ─── Nothing silently dropped (issue 12) ────────────────────────────────────────────────────────────────
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
DROP TABLE first_groups;
DROP TABLE first_activities;
