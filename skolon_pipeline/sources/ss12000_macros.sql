-- The macros the SS12000 flattening reads its records with (ss12000.sql, ss12000_groups.sql and
-- ss12000_checks.sql): run on each connection that flattens, as temp macros are a connection's own.

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
