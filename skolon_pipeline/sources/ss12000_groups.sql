-- Groups and their memberships, flattened on a connection of their own while ss12000.sql reads the other
-- entities (skolon_pipeline.sources.ss12000._flatten): a table of 51 000 group records is one DuckDB row group,
-- so their statements run on one thread (profiled at 200 000 persons: the 1.3 million memberships 1.2 s of the
-- 3.2 s flattening, beside the persons' 1 s on the other core). The parsed records are kept in the reader's
-- in-memory database (skolon_raw, never the staging file) for ss12000_checks.sql, which another connection runs.

CREATE TABLE skolon_raw.first_groups AS
SELECT * EXCLUDE (rec),
       from_json(rec, '{"id": "JSON", "displayName": "JSON", "groupType": "JSON", "organisation": "JSON",
                       "schoolType": "JSON", "startDate": "JSON", "endDate": "JSON", "groupMemberships": "JSON"}') AS r
FROM first_copies(raw_groups);

CREATE OR REPLACE TEMP VIEW first_groups AS FROM skolon_raw.first_groups;

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
