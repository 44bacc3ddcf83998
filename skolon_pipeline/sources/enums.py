"""SS12000 code lists, and the tolerant repair of enum values sent in another letter case.

Values are Swedish and kept as they are (CONTRACT §2); `UNDERVISNING` becomes `Undervisning` with an
`ENUM_CASE` warning. Values outside the lists are kept unchanged: the rules treat them like any value that is
not configured (a group type that is not synced, a duty role that is not a teaching role). Deprecated 2.0
values (`KOMVUX`, `Stadsdel`, `Förskolechef`) are accepted as they are.
"""

from __future__ import annotations

import duckdb

ORGANISATION_TYPES = (
    "Huvudman",
    "Verksamhetsområde",
    "Förvaltning",
    "Rektorsområde",
    "Skola",
    "Skolenhet",
    "Varumärke",
    "Bolag",
    "Övrigt",
    "Stadsdel",
)
GROUP_TYPES = ("Undervisning", "Klass", "Mentor", "Provgrupp", "Schema", "Avdelning", "Personalgrupp", "Övrigt")
DUTY_ROLES = (
    "Rektor",
    "Lärare",
    "Förskollärare",
    "Barnskötare",
    "Bibliotekarie",
    "Lärarassistent",
    "Fritidspedagog",
    "Annan personal",
    "Studie- och yrkesvägledare",
    "Förstelärare",
    "Kurator",
    "Skolsköterska",
    "Skolläkare",
    "Skolpsykolog",
    "Speciallärare/specialpedagog",
    "Skoladministratör",
    "Övrig arbetsledning",
    "Övrig pedagogisk personal",
    "Förskolechef",
)
EMAIL_TYPES = ("Privat", "Skola elev", "Skola personal", "Arbete övrigt")
PERSON_STATUSES = ("Aktiv", "Utvandrad", "Avliden")
SECURITY_MARKINGS = ("Ingen", "Sekretessmarkering", "Skyddad folkbokföring")
ASSIGNMENT_ROLE_TYPES = (
    "Mentor",
    "Förskollärare",
    "Barnskötare",
    "Fritidspedagog",
    "Specialpedagog",
    "Elevhälsopersonal",
    "Pedagogisk ledare",
    "Schemaläggare",
    "Lärarassistent",
    "Administrativ personal",
)

# (staging table, column, entity reported on, id column, code list)
_ENUM_COLUMNS = (
    ("organisations", "org_type", "organisation", "org_id", ORGANISATION_TYPES),
    ("groups", "group_type", "group", "group_id", GROUP_TYPES),
    ("duties", "duty_role", "duty", "duty_id", DUTY_ROLES),
    ("person_emails", "email_type", "person", "person_id", EMAIL_TYPES),
    ("persons", "person_status", "person", "person_id", PERSON_STATUSES),
    ("persons", "security_marking", "person", "person_id", SECURITY_MARKINGS),
)


def normalise_enums(con: duckdb.DuckDBPyConnection, source_id: str, columns=_ENUM_COLUMNS) -> None:
    """Fixes letter case of known enum values, one warning per repaired record.

    `columns`: (table, column, entity reported on, id column, code list); the SS12000 staging tables by default.
    """
    for table, column, entity, id_column, values in columns:
        con.execute("CREATE OR REPLACE TEMP TABLE _enum(value VARCHAR)")
        con.executemany("INSERT INTO _enum VALUES (?)", [[v] for v in values])
        con.execute(
            f"""
            INSERT INTO warnings
            SELECT DISTINCT ?, ?, t.{id_column}, 'ENUM_CASE',
                   '{column} ' || t.{column} || ' read as ' || e.value
            FROM {table} t JOIN _enum e ON lower(t.{column}) = lower(e.value) AND t.{column} <> e.value
            """,
            [source_id, entity],
        )
        con.execute(
            f"""
            UPDATE {table} SET {column} = e.value FROM _enum e
            WHERE lower({table}.{column}) = lower(e.value) AND {table}.{column} <> e.value
            """
        )
    con.execute("DROP TABLE _enum")
