"""The workbook's Summary sheet as an admin reads it first: for whom and which night, the registry drop each
source was read from (and a warning when it is stale), when the file was made, then the per-school table,
and below it the reasons records are held back for, in words, with their number and code.

Plain rows around the streamed table (xlsx.Layout.before/after); fitted to one printed page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from skolon_pipeline.exports import xlsx
from skolon_pipeline.exports.explanations import EXPLANATIONS


@dataclass(frozen=True)
class Header:
    """What the Summary says first: for whom, which night, and when the file was made."""

    authority: str
    authority_id: str
    night: dt.date
    school: str | None
    generated_at: dt.datetime


_WORDS = {
    "title": ("Valideringsfil", "Validation file"),
    "authority": ("Huvudman", "School authority"),
    "night": ("Natt", "Night"),
    "school": ("Skola", "School"),
    "source": ("Källa {}", "Source {}"),
    "drop": ("export från {} ({} {} gammal)", "drop of {} ({} {} old)"),
    "day": (("dag", "dagar"), ("day", "days")),
    "no_drop": ("ingen export lästes i natt", "no drop was read tonight"),
    "unknown": ("exportdatum okänt", "drop date unknown"),
    "stale": (
        "VARNING: äldre än {} dagar (max_drop_age_days); registret kan ha slutat exportera",
        "WARNING: older than {} days (max_drop_age_days); the registry may have stopped exporting",
    ),
    "generated": ("Skapad", "Generated"),
    "sources": ("Källor", "Sources"),
    "reasons": ("Orsak", "Reason"),
    "records": ("Antal poster", "Records"),
    "code": ("Kod", "Code"),
    "protected": (
        "Personer med skyddad identitet visas bara med id, roll och skola; deras grupper visas inte "
        "(de räknas i antalen).",
        "Persons with a protected identity are shown with id, role and school only; their groups are not "
        "shown (they are counted in the numbers).",
    ),
}


def _w(key: str, lang: str):
    return _WORDS[key][0 if lang == "sv" else 1]


def summary_layout(con: duckdb.DuckDBPyConnection, header: Header, lang: str, layout: xlsx.Layout) -> xlsx.Layout:
    """The Summary's rows above and below its per-school table, for the authority (and school) being written."""
    sources = [
        r[0]
        for r in con.execute(
            """SELECT source_id FROM x_schools WHERE authority_id = $a
           UNION SELECT source_id FROM x_source_authority WHERE authority_id = $a
           UNION SELECT replace($a, 'source:', '') WHERE starts_with($a, 'source:')
           ORDER BY 1""",
            {"a": header.authority_id},
        ).fetchall()
    ]
    drops = {
        r[0]: r[1:]
        for r in con.execute(
            """SELECT source_id, drop_date, drop_age_days, max_drop_age_days, status FROM source_drops
           WHERE list_contains(?, source_id)""",
            [sources],
        ).fetchall()
    }
    before: list[tuple] = [
        (f"{_w('title', lang)} — {header.authority}",),
        (_w("authority", lang), header.authority),
        (_w("night", lang), header.night),
    ]
    if header.school:
        before.append((_w("school", lang), header.school))
    for source in sources:
        before.append((_w("source", lang).format(source), _drop_text(drops.get(source), lang)))
    before += [
        (_w("generated", lang), header.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip()),
        (_w("sources", lang), ", ".join(sources)),
        (),
    ]
    reasons = con.execute(
        """SELECT reason_code, count(DISTINCT record_id) FROM x_excluded_by_school
           WHERE _authority = getvariable('x_authority')
             AND (getvariable('x_school') IS NULL OR school_id = getvariable('x_school'))
           GROUP BY 1 ORDER BY 2 DESC, 1"""
    ).fetchall()
    after: list[tuple] = [()]
    if reasons:
        after.append(xlsx.Bold((_w("reasons", lang), _w("records", lang), _w("code", lang))))
        for code, n in reasons:
            e = EXPLANATIONS.get(code)
            after.append(((e.problem_sv if lang == "sv" else e.problem_en) if e else code, n, code))
        after.append(())
    after.append((_w("protected", lang),))
    return xlsx.Layout(
        headers=layout.headers, wrap=layout.wrap, before=tuple(before), after=tuple(after), filter=False, one_page=True
    )


def _drop_text(drop: tuple | None, lang: str) -> str:
    if drop is None:
        return _w("unknown", lang)
    drop_date, age, max_age, status = drop
    if drop_date is None:
        return _w("no_drop", lang)
    day = _w("day", lang)[0 if age == 1 else 1]
    text = _w("drop", lang).format(drop_date.isoformat(), age, day)
    if status == "stale":
        text += " — " + _w("stale", lang).format(max_age)
    return text
