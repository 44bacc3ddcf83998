-- OneRoster 1.1/1.2 CSV rows (raw_orgs, raw_academicSessions, raw_classes, raw_users, raw_roles, raw_enrollments:
-- every column text, idx = row number; 1.1's users.orgSourcedIds/role already unfolded into raw_roles) flattened
-- into the canonical staging tables (skolon_pipeline/canonical.py), the same tables the SS12000 reader fills, so
-- the rules stay one piece of SQL. Also reads role_map(role, duty_role), staff_enrollment_roles(role) and
-- reader_invalid_records. getvariable('source_id') names the source; pid() prefixes and lower-cases an id.
--
-- OneRoster endDate is EXCLUSIVE (the first day no longer included); SS12000 and the canonical tables are
-- inclusive. The one conversion is incl_end() below. A value that is not an ISO date stays as sent, for the
-- canonical models to report as INVALID_RECORD.

CREATE OR REPLACE TEMP MACRO txt(v) AS nullif(trim(v), '');
CREATE OR REPLACE TEMP MACRO iso(v) AS
    regexp_full_match(trim(v), '\d{4}-\d{2}-\d{2}') AND try_strptime(trim(v), '%Y-%m-%d') IS NOT NULL;
CREATE OR REPLACE TEMP MACRO incl_end(v) AS CASE
    WHEN txt(v) IS NULL THEN NULL
    WHEN iso(v) THEN CAST(CAST(trim(v) AS DATE) - 1 AS VARCHAR)
    ELSE trim(v) END;
CREATE OR REPLACE TEMP MACRO deleted(v) AS coalesce(txt(v) = 'tobedeleted', FALSE);

-- One copy of each id: exact repeats are dropped quietly; duplicate_contents > 1 marks a conflicting repeat
-- (DUPLICATE_ID in the rules).
CREATE OR REPLACE TEMP MACRO first_rows(raw_table) AS TABLE
    SELECT * EXCLUDE (copy_no) FROM (
        SELECT *, count(DISTINCT md5(list_value(*COLUMNS(* EXCLUDE (idx)))::VARCHAR))
                      OVER (PARTITION BY pid(sourcedId)) AS duplicate_contents,
               row_number() OVER (PARTITION BY pid(sourcedId) ORDER BY idx) AS copy_no
        FROM query_table(raw_table) WHERE pid(sourcedId) IS NOT NULL
    ) WHERE copy_no = 1;

-- ─── Organisations ──────────────────────────────────────────────────────────────────────────────────────
-- school → Skolenhet; district/local/state → Huvudman (the nearest one above a school is its authority).
-- A department belongs to the nearest school above it: links to it count as links to that school. A department
-- with no school above it stands in for a school itself (DEPARTMENT_AS_SCHOOL warning).
CREATE OR REPLACE TEMP TABLE or_orgs AS
SELECT pid(sourcedId) AS org_id, txt(name) AS name, txt(type) AS type, txt(identifier) AS identifier,
       pid(parentSourcedId) AS parent_id, deleted(status) AS to_be_deleted, duplicate_contents, idx
FROM first_rows(raw_orgs);

CREATE OR REPLACE TEMP TABLE department_school AS
WITH RECURSIVE up(org_id, ancestor, depth) AS (
    SELECT org_id, parent_id, 1 FROM or_orgs WHERE type = 'department' AND parent_id IS NOT NULL
    UNION ALL
    SELECT up.org_id, o.parent_id, up.depth + 1
    FROM up JOIN or_orgs o ON o.org_id = up.ancestor
    WHERE o.type <> 'school' AND o.parent_id IS NOT NULL AND up.depth < 32
)
SELECT up.org_id, arg_min(up.ancestor, up.depth) AS school_id
FROM up JOIN or_orgs o ON o.org_id = up.ancestor AND o.type = 'school'
GROUP BY up.org_id;

-- An org reference as the school it stands for.
CREATE OR REPLACE TEMP MACRO school_ref(v) AS
    coalesce((SELECT ds.school_id FROM department_school ds WHERE ds.org_id = pid(v)), pid(v));

CREATE TABLE organisations AS
SELECT getvariable('source_id') AS source_id, o.org_id, o.name,
       CASE WHEN o.to_be_deleted THEN 'tobedeleted'
            WHEN o.type = 'school' THEN 'Skolenhet'
            WHEN o.type IN ('district', 'local', 'state') THEN 'Huvudman'
            WHEN o.type = 'department' AND ds.school_id IS NULL THEN 'Skolenhet'
            ELSE o.type END AS org_type,
       o.identifier AS school_unit_code, o.identifier AS organisation_code, o.parent_id,
       NULL::VARCHAR AS start_date, NULL::VARCHAR AS end_date,
       o.duplicate_contents, 'orgs.csv' AS file, o.idx
FROM or_orgs o LEFT JOIN department_school ds USING (org_id);

-- ─── Persons ────────────────────────────────────────────────────────────────────────────────────────────
CREATE OR REPLACE TEMP TABLE or_users AS
SELECT pid(sourcedId) AS person_id, txt(givenName) AS given_name, txt(familyName) AS family_name,
       txt(email) AS email, lower(txt(enabledUser)) AS enabled_user, deleted(status) AS to_be_deleted,
       duplicate_contents, idx
FROM first_rows(raw_users);

CREATE OR REPLACE TEMP TABLE or_roles AS
SELECT pid(sourcedId) AS role_id, pid(userSourcedId) AS person_id, txt(role) AS role, txt(roleType) AS role_type,
       school_ref(orgSourcedId) AS school_id, txt(beginDate) AS start_date, incl_end(endDate) AS end_date,
       deleted(status) AS to_be_deleted, idx
FROM raw_roles;

-- Someone whose only roles are parent, guardian or relative is not a roster user and is not reported
-- (as an SS12000 guardian is not).
CREATE OR REPLACE TEMP TABLE guardians_only AS
SELECT person_id FROM or_roles GROUP BY person_id
HAVING bool_and(role IN ('parent', 'guardian', 'relative'));

CREATE TABLE persons AS
SELECT getvariable('source_id') AS source_id, person_id, given_name, family_name,
       NULL::VARCHAR AS person_status, NULL::VARCHAR AS security_marking,
       CASE WHEN enabled_user = 'false' THEN 'enabledUser is false (the account is disabled in the source)' END
           AS inactive_reason,
       to_be_deleted, duplicate_contents, 'users.csv' AS file, idx
FROM or_users ANTI JOIN guardians_only USING (person_id);

-- The address a OneRoster source sends is the institution's: a school address for the rules.
CREATE TABLE person_emails AS
SELECT getvariable('source_id') AS source_id, u.person_id, 1 AS ordinal, u.email,
       CASE WHEN EXISTS (SELECT 1 FROM or_roles r WHERE r.person_id = u.person_id AND r.role <> 'student')
            THEN 'Skola personal' ELSE 'Skola elev' END AS email_type
FROM or_users u SEMI JOIN persons USING (person_id)
WHERE u.email IS NOT NULL;

-- A role row marked tobedeleted is a link that no longer exists.
CREATE TABLE enrolments AS
SELECT getvariable('source_id') AS source_id, person_id,
       row_number() OVER (PARTITION BY person_id ORDER BY idx) AS ordinal,
       school_id, NULL::VARCHAR AS school_type, start_date, end_date, NULL::VARCHAR AS cancelled
FROM or_roles WHERE role = 'student' AND NOT to_be_deleted;

CREATE TABLE duties AS
SELECT getvariable('source_id') AS source_id, r.role_id AS duty_id, r.person_id, r.school_id,
       m.duty_role, r.start_date, r.end_date, 1 AS duplicate_contents, 'roles' AS file, r.idx
FROM or_roles r JOIN role_map m USING (role)
WHERE NOT r.to_be_deleted;

CREATE TABLE responsibles (source_id VARCHAR, person_id VARCHAR, responsible_id VARCHAR, relation_type VARCHAR);

-- ─── Groups: classes, dated by their terms ──────────────────────────────────────────────────────────────
CREATE OR REPLACE TEMP TABLE or_sessions AS
SELECT pid(sourcedId) AS session_id, txt(startDate) AS start_date, incl_end(endDate) AS end_date
FROM first_rows(raw_academicSessions) WHERE NOT deleted(status);

CREATE OR REPLACE TEMP TABLE or_classes AS
SELECT pid(sourcedId) AS group_id, txt(title) AS name, txt(classType) AS class_type,
       school_ref(schoolSourcedId) AS school_id, termSourcedIds, deleted(status) AS to_be_deleted,
       duplicate_contents, idx
FROM first_rows(raw_classes);

CREATE OR REPLACE TEMP TABLE class_term_refs AS
SELECT c.group_id, pid(t.term) AS session_id
FROM or_classes c, LATERAL (SELECT unnest(string_split(coalesce(c.termSourcedIds, ''), ',')) AS term) t
WHERE pid(t.term) IS NOT NULL;

-- A class is active when one of its terms is (roster.sql): one row per term.
CREATE TABLE group_terms AS
SELECT getvariable('source_id') AS source_id, r.group_id, r.session_id, s.start_date, s.end_date
FROM class_term_refs r JOIN or_sessions s USING (session_id);

INSERT INTO reader_invalid_records
SELECT getvariable('source_id'), 'classes', 'group', r.group_id, NULL, r.group_id, NULL, 'termSourcedIds',
       'reference',
       'classes.termSourcedIds names academic session ' || r.session_id || ', which is not in academicSessions.csv'
FROM class_term_refs r ANTI JOIN or_sessions USING (session_id)
UNION ALL
SELECT getvariable('source_id'), 'classes', 'group', c.group_id, NULL, c.group_id, NULL, 'termSourcedIds',
       'not_null', 'classes.termSourcedIds is blank'
FROM or_classes c ANTI JOIN class_term_refs USING (group_id);

CREATE TABLE groups AS
SELECT getvariable('source_id') AS source_id, c.group_id, c.name,
       CASE c.class_type WHEN 'homeroom' THEN 'Klass' WHEN 'scheduled' THEN 'Undervisning' ELSE c.class_type END
           AS group_type,
       c.school_id,
       -- the span of the terms, for information; whether the class is active is decided per term
       (SELECT min(t.start_date) FROM group_terms t WHERE t.group_id = c.group_id) AS start_date,
       (SELECT max(t.end_date) FROM group_terms t WHERE t.group_id = c.group_id) AS end_date,
       NULL::VARCHAR AS inactive_reason, c.to_be_deleted, c.duplicate_contents, 'classes.csv' AS file, c.idx
FROM or_classes c;

-- ─── Enrollments: student memberships and teacher assignments ───────────────────────────────────────────
CREATE OR REPLACE TEMP TABLE or_enrollments AS
SELECT pid(sourcedId) AS enrollment_id, pid(classSourcedId) AS group_id, pid(userSourcedId) AS person_id,
       txt(role) AS role, txt(beginDate) AS start_date, incl_end(endDate) AS end_date,
       deleted(status) AS to_be_deleted, idx
FROM raw_enrollments;

-- An enrollment of a role that is neither student nor staff (parent, guardian, relative) is no membership.
CREATE TABLE group_memberships AS
SELECT getvariable('source_id') AS source_id, group_id,
       row_number() OVER (PARTITION BY group_id ORDER BY idx) AS ordinal,
       person_id, start_date, end_date, to_be_deleted
FROM or_enrollments
WHERE role IS NULL OR role NOT IN (
    SELECT role FROM staff_enrollment_roles
    UNION ALL
    SELECT unnest(['parent', 'guardian', 'relative'])
);

CREATE TABLE teacher_assignments AS
SELECT getvariable('source_id') AS source_id, group_id, person_id, NULL::VARCHAR AS duty_id,
       'enrollment' AS origin, enrollment_id AS origin_id, start_date, end_date, to_be_deleted
FROM or_enrollments
WHERE role IN (SELECT role FROM staff_enrollment_roles);

INSERT INTO warnings
SELECT getvariable('source_id'), 'enrollment', enrollment_id, 'ENROLLMENT_ROLE_IGNORED',
       'role ' || role || ' in class ' || group_id || ' is not a student or teacher membership; ignored'
FROM or_enrollments WHERE role IN ('parent', 'guardian', 'relative');

INSERT INTO warnings
SELECT getvariable('source_id'), 'organisation', org_id, 'DEPARTMENT_AS_SCHOOL',
       'department with no school above it; read as a school'
FROM organisations WHERE org_type = 'Skolenhet' AND org_id IN (SELECT org_id FROM or_orgs WHERE type = 'department');

INSERT INTO warnings
SELECT getvariable('source_id'), 'person', r.person_id, 'UNKNOWN_USER',
       'a ' || coalesce(r.role, '(no role)') || ' role names user ' || r.person_id
       || ', who is not in users.csv; ignored'
FROM or_roles r ANTI JOIN or_users USING (person_id);
