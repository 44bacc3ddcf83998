-- Civic numbers (personnummer, samordningsnummer, temporary TF numbers): validated and normalised in DuckDB.
--
-- Input: the TEMPORARY table civic_numbers(person_id, raw, nationality) that a reader fills from the registry
-- (never a table of the staging file), and getvariable('civic_reference'), the night. Output: the TEMPORARY
-- table civic_checked(person_id, normalised, problem, tolerated): `normalised` is the 12-character form that is
-- hashed (NULL when the value is dropped), `problem` why it was dropped, `tolerated` the deviating form it was
-- read from. Problems and forms are described, the value itself is never repeated.
--
-- Swedish numbers (nationality SE, SWE or absent): YYYYMMDDNNNC with the Luhn check digit C over the last ten
-- digits; a samordningsnummer has the day + 60; a temporary number has TF in place of the first two of the
-- last four digits (YYYYMMDDTFNN, no check digit). Tolerated: a hyphen after the date, and the 10-digit form
-- YYMMDD(-|+)NNNC or YYMMDDNNNC, whose century puts the birth date on or before the night ('+': 100 years more).
-- A number of another nationality is hashed as sent (trimmed, upper case), without Swedish checks.

CREATE OR REPLACE TEMP MACRO civic_int(s, start, len) AS CAST(substr(s, start, len) AS INTEGER);

-- The real day of the month: a samordningsnummer adds 60 to it.
CREATE OR REPLACE TEMP MACRO civic_day(dd) AS CASE WHEN dd > 60 THEN dd - 60 ELSE dd END;

-- The century digits of a 10-digit number s (YYMMDD...), with separator sep.
CREATE OR REPLACE TEMP MACRO civic_century(s, sep) AS
    year(getvariable('civic_reference')) // 100
    - CASE WHEN civic_int(s, 1, 2) * 10000 + civic_int(s, 3, 2) * 100 + civic_day(civic_int(s, 5, 2))
                > (year(getvariable('civic_reference')) % 100) * 10000
                  + month(getvariable('civic_reference')) * 100 + day(getvariable('civic_reference'))
           THEN 1 ELSE 0 END
    - CASE WHEN sep = '+' THEN 1 ELSE 0 END;

-- Luhn over the last ten digits of a 12-digit number: weights 2,1,2,... on the first nine, digit sums of the
-- products, and the check digit makes the total a multiple of ten.
CREATE OR REPLACE TEMP MACRO civic_luhn_ok(s) AS (
    list_sum(list_transform(range(3, 12), LAMBDA i:
        (civic_int(s, i, 1) * (2 - (i - 3) % 2)) // 10 + (civic_int(s, i, 1) * (2 - (i - 3) % 2)) % 10))
    + civic_int(s, 12, 1)) % 10 = 0;

CREATE OR REPLACE TEMP TABLE civic_forms AS
SELECT person_id, s, swedish,
       CASE WHEN NOT swedish THEN 'foreign'
            WHEN regexp_full_match(s, '[0-9]{12}') THEN 'twelve'
            WHEN regexp_full_match(s, '[0-9]{8}TF[0-9]{2}') THEN 'tf'
            WHEN regexp_full_match(s, '[0-9]{8}-[0-9]{4}') THEN 'hyphen'
            WHEN regexp_full_match(s, '[0-9]{8}-TF[0-9]{2}') THEN 'hyphen'
            WHEN regexp_full_match(s, '[0-9]{6}[-+][0-9]{4}') THEN 'ten_separator'
            WHEN regexp_full_match(s, '[0-9]{10}') THEN 'ten'
       END AS form
FROM (SELECT person_id, upper(trim(raw)) AS s,
             coalesce(nullif(upper(trim(nationality)), ''), 'SE') IN ('SE', 'SWE') AS swedish
      FROM civic_numbers WHERE nullif(trim(raw), '') IS NOT NULL);

CREATE OR REPLACE TEMP TABLE civic_twelve AS
SELECT person_id, form, s,
       CASE form
           WHEN 'foreign' THEN s
           WHEN 'twelve' THEN s
           WHEN 'tf' THEN s
           WHEN 'hyphen' THEN replace(s, '-', '')
           WHEN 'ten' THEN lpad(CAST(civic_century(s, '-') AS VARCHAR), 2, '0') || s
           WHEN 'ten_separator' THEN lpad(CAST(civic_century(s, substr(s, 7, 1)) AS VARCHAR), 2, '0')
                                     || substr(s, 1, 6) || substr(s, 8, 4)
       END AS t
FROM civic_forms;

CREATE OR REPLACE TEMP TABLE civic_checked AS
SELECT person_id,
       CASE WHEN problem IS NULL THEN t END AS normalised,
       problem,
       CASE form WHEN 'hyphen' THEN 'with a hyphen'
                 WHEN 'ten' THEN 'in 10 digits'
                 WHEN 'ten_separator' THEN 'in 10 digits with a separator' END AS tolerated
FROM (
    SELECT person_id, form, t,
           CASE WHEN form IS NULL THEN 'not a civic number (expected 12 digits YYYYMMDDNNNN or YYYYMMDDTFNN)'
                WHEN form = 'foreign' AND (length(t) > 64 OR regexp_matches(t, '[[:cntrl:]]'))
                    THEN 'not a civic number (too long or with control characters)'
                WHEN form = 'foreign' THEN NULL
                WHEN birth IS NULL THEN 'no such birth date'
                WHEN birth > getvariable('civic_reference') THEN 'the birth date is after the night'
                WHEN substr(t, 9, 2) <> 'TF' AND NOT civic_luhn_ok(t) THEN 'wrong check digit'
           END AS problem
    FROM (SELECT *, CASE WHEN form <> 'foreign' THEN
                   TRY_CAST(substr(t, 1, 4) || '-' || substr(t, 5, 2) || '-'
                            || lpad(CAST(civic_day(civic_int(t, 7, 2)) AS VARCHAR), 2, '0') AS DATE) END AS birth
          FROM civic_twelve)
);

INSERT INTO warnings
SELECT getvariable('source_id'), 'person', person_id, 'INVALID_CIVIC_NO',
       'civicNo dropped: ' || problem || '; the person stays'
FROM civic_checked WHERE problem IS NOT NULL;

INSERT INTO warnings
SELECT getvariable('source_id'), 'person', person_id, 'CIVIC_NO_NORMALISED',
       'civicNo given ' || tolerated || ', read as the 12-digit form'
FROM civic_checked WHERE problem IS NULL AND tolerated IS NOT NULL;

DROP TABLE civic_forms;
DROP TABLE civic_twelve;
