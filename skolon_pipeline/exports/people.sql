-- Everyone and every held-back reason of one night, as an export or `explain` may show them: the ONE place where
-- protected identity (securityMarking other than Ingen) is masked. Every sheet (sheets.sql) and explain.py read
-- people and exclusion details through these views, never users/excluded_persons/exclusions.detail directly.
--
-- Reads the night's published relations by plain name (warehouse.use_night) and the variable `mask`
-- ('Skyddad identitet'). What a protected person keeps: id, role, school and counts. Never their name, e-mail,
-- groups, or the detail of their records; and no other record's detail says that they exist (issue 18 item
-- 12: a DUPLICATE_EMAIL detail names only the non-protected persons who share the address).

CREATE OR REPLACE TEMP VIEW shown_people AS
SELECT source_id, person_id, included, role, protected_identity,
       CASE WHEN protected_identity THEN getvariable('mask') ELSE given_name END AS given_name,
       CASE WHEN protected_identity THEN getvariable('mask') ELSE family_name END AS family_name,
       CASE WHEN protected_identity THEN getvariable('mask')
            ELSE nullif(concat_ws(' ', given_name, family_name), '') END AS name,
       CASE WHEN protected_identity THEN getvariable('mask') ELSE email END AS email,
       school_id
FROM (SELECT source_id, user_id AS person_id, given_name, family_name, email, role,
             coalesce(protected_identity, FALSE) AS protected_identity, TRUE AS included, NULL::VARCHAR AS school_id
      FROM users
      UNION ALL
      SELECT source_id, person_id, given_name, family_name, email, role, coalesce(protected_identity, FALSE), FALSE,
             school_id
      FROM excluded_persons);

-- Whom a search by name or e-mail may find: everyone but protected persons, by their real name and address
-- (the plain columns, so that DuckDB compares the few distinct names rather than 200 000 computed ones).
CREATE OR REPLACE TEMP VIEW findable_people AS
SELECT source_id, user_id AS person_id, given_name, family_name, email FROM users
WHERE NOT coalesce(protected_identity, FALSE)
UNION ALL
SELECT source_id, person_id, given_name, family_name, email FROM excluded_persons
WHERE NOT coalesce(protected_identity, FALSE);

-- The ids of everyone who had a protected identity on any published night (a few in a thousand), for the
-- details that name other persons, also in the reasons of past nights that `explain` shows.
SET VARIABLE protected_ids = (
    SELECT coalesce(list(DISTINCT person_id), []::VARCHAR[])
    FROM (SELECT user_id AS person_id FROM history.users WHERE protected_identity
          UNION ALL
          SELECT person_id FROM history.excluded_persons WHERE protected_identity));

-- A DUPLICATE_EMAIL detail lists the other persons' ids ("... is used by a, b"; across sources too); the only
-- reason whose detail names someone else.
CREATE OR REPLACE TEMP MACRO duplicate_email_others(detail) AS
    string_split(regexp_extract(detail, 'is used by (.*)$', 1), ', ');

-- A detail as it may be shown about a person who is not protected themselves.
CREATE OR REPLACE TEMP MACRO shown_detail(code, detail) AS
    CASE WHEN code = 'DUPLICATE_EMAIL' AND list_has_any(duplicate_email_others(detail), getvariable('protected_ids'))
         THEN coalesce('the same school e-mail is used by ' || nullif(array_to_string(list_filter(
                  duplicate_email_others(detail),
                  LAMBDA o: NOT list_contains(getvariable('protected_ids'), o)), ', '), ''),
              'the same school e-mail is used by another record in the registry')
         ELSE detail END;

-- The night's protected persons, as 'source/person' keys (a list: no join, so a look-up by record stays cheap).
SET VARIABLE protected_keys = (SELECT coalesce(list(source_id || '/' || person_id), []::VARCHAR[])
                               FROM shown_people WHERE protected_identity);

CREATE OR REPLACE TEMP VIEW shown_exclusions AS
SELECT source_id, entity_type, record_id, person_id, group_id, school_id, reason_code, visible_from,
       protected_identity, CASE WHEN protected_identity THEN NULL ELSE shown_detail(reason_code, detail) END AS detail
FROM (SELECT *, coalesce(list_contains(getvariable('protected_keys'), source_id || '/' || person_id), FALSE)
                    AS protected_identity
      FROM exclusions);
