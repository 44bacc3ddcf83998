-- SS12000 v2.1 (and 2.0) records, one JSON value per row in raw_<entity>(file, idx, rec), flattened into the
-- canonical staging tables (skolon_pipeline/validate/canonical.py) plus the SS12000-only activity tables from which
-- teacher assignments are derived. Runs inside one source's staging database; getvariable('source_id') names it.
--
-- Values stay text here (dates included) so that Pandera sees exactly what the registry sent and can name a
-- bad value; the rules cast them. Ids are lower-cased and trimmed: registries mix the case of UUIDs.
--
-- The flattening is three files, run by skolon_pipeline.sources.ss12000 (_flatten) with the macros of
-- ss12000_macros.sql: this one (organisations, persons, duties, activities, teacher assignments) and
-- ss12000_groups.sql (groups and their memberships) at the same time on two connections, then
-- ss12000_checks.sql (what the flattening leaves out) over both.

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
