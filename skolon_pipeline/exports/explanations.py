"""What every reason code means for an administrator, in Swedish and English, and what to fix in the registry.

`EXPLANATIONS[code]` is (what is wrong, what to do) in each language. `explain(code, visible_from)` renders the
sentence the validation file and `explain` show: "problem — fix" when something must be fixed, and
"problem — visas från D / … visible from D" when the record will appear by itself on night D.

A test checks that every reason code the rules can emit (the literals in rules/roster.sql) is here.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple


class Explanation(NamedTuple):
    problem_sv: str
    fix_sv: str
    problem_en: str
    fix_en: str


EXPLANATIONS: dict[str, Explanation] = {
    "MISSING_GIVEN_NAME": Explanation(
        "Förnamn saknas",
        "fyll i förnamnet i elevregistret",
        "Given name is missing",
        "fill in the given name in the registry",
    ),
    "MISSING_FAMILY_NAME": Explanation(
        "Efternamn saknas",
        "fyll i efternamnet i elevregistret",
        "Family name is missing",
        "fill in the family name in the registry",
    ),
    "MISSING_EMAIL": Explanation(
        "Skolans e-postadress saknas (en privat adress räcker inte)",
        "lägg in en e-postadress av typen Skola elev eller Skola personal i elevregistret",
        "The school e-mail address is missing (a private address is not enough)",
        "add an address of type Skola elev or Skola personal in the registry",
    ),
    "INVALID_EMAIL": Explanation(
        "Skolans e-postadress är inte en giltig adress",
        "rätta e-postadressen i elevregistret",
        "The school e-mail address is not a valid address",
        "correct the address in the registry",
    ),
    "DUPLICATE_EMAIL": Explanation(
        "Samma e-postadress används av en annan person",
        "ge varje person en egen skoladress i elevregistret (detaljen anger den andra personens id)",
        "Another person has the same e-mail address",
        "give each person their own school address in the registry (the detail names the other person's id)",
    ),
    "DUPLICATE_ID": Explanation(
        "Posten finns två gånger i exporten med olika innehåll",
        "ta bort dubbletten i elevregistret",
        "The record appears twice in the export with different content",
        "remove the duplicate in the registry",
    ),
    "INVALID_RECORD": Explanation(
        "Posten har ett felaktigt värde, t.ex. ett datum som inte finns",
        "rätta värdet i elevregistret (detaljen anger fält och fel)",
        "The record has an invalid value, e.g. a date that does not exist",
        "correct the value in the registry (the detail names the field and the check)",
    ),
    "PERSON_INACTIVE": Explanation(
        "Personen är utvandrad eller avliden enligt elevregistret, eller kontot är avstängt (OneRoster enabledUser=false)",
        "ingen åtgärd om det stämmer; annars rätta personstatus eller aktivera kontot i källsystemet",
        "The person is registered as emigrated or deceased, or the account is disabled (OneRoster enabledUser=false)",
        "nothing to do if that is right; otherwise correct the person status or enable the account in the source",
    ),
    "TO_BE_DELETED": Explanation(
        "Posten är markerad för borttagning i källsystemet (OneRoster status=tobedeleted)",
        "ingen åtgärd om den ska bort; annars återställ posten i källsystemet",
        "The record is marked for deletion in the source (OneRoster status=tobedeleted)",
        "nothing to do if it is meant to go; otherwise restore the record in the source",
    ),
    "NO_SCHOOL_LINK": Explanation(
        "Personen har varken skolplacering eller tjänst",
        "lägg in en skolplacering (elev) eller en tjänst (personal) i elevregistret",
        "The person has neither a school placement nor a duty",
        "add a school placement (student) or a duty (staff) in the registry",
    ),
    "EMPLOYMENT_NOT_STARTED": Explanation(
        "Anställningen har inte börjat ännu",
        "kontrollera tjänstens startdatum i elevregistret",
        "Employment has not started yet",
        "check the duty's start date in the registry",
    ),
    "EMPLOYMENT_ENDED": Explanation(
        "Anställningen har upphört",
        "förläng tjänstens slutdatum om personen arbetar kvar",
        "Employment has ended",
        "extend the duty's end date if the person still works here",
    ),
    "NO_GROUP_ASSIGNMENT": Explanation(
        "Läraren undervisar inte i någon grupp som synkas",
        "koppla läraren till en klass eller undervisningsgrupp (aktivitet eller mentorskap) i elevregistret",
        "The teacher teaches no group that is synced",
        "assign the teacher to a class or teaching group (activity or mentor role) in the registry",
    ),
    "PLACEMENT_NOT_STARTED": Explanation(
        "Skolplaceringen har inte börjat ännu",
        "kontrollera placeringens startdatum i elevregistret",
        "The school placement has not started yet",
        "check the placement's start date in the registry",
    ),
    "PLACEMENT_ENDED": Explanation(
        "Skolplaceringen har upphört",
        "förläng placeringens slutdatum om eleven går kvar",
        "The school placement has ended",
        "extend the placement's end date if the student is still at the school",
    ),
    "PLACEMENT_CANCELLED": Explanation(
        "Skolplaceringen är makulerad",
        "lägg in en giltig placering om eleven ska gå på skolan",
        "The school placement is cancelled",
        "add a valid placement if the student attends the school",
    ),
    "NO_ACTIVE_GROUP": Explanation(
        "Eleven är inte med i någon aktiv klass eller grupp som synkas",
        "placera eleven i en klass eller undervisningsgrupp i elevregistret",
        "The student is in no active class or group that is synced",
        "place the student in a class or teaching group in the registry",
    ),
    "UNKNOWN_SCHOOL": Explanation(
        "Placeringen eller tjänsten hör till en organisation som inte är en skolenhet i exporten",
        "koppla den till rätt skolenhet, eller markera skolenheten för export",
        "The placement or duty belongs to an organisation that is not a school unit in the export",
        "link it to the right school unit, or mark the school unit for export",
    ),
    "GROUP_UNKNOWN_SCHOOL": Explanation(
        "Gruppen hör till en organisation som inte är en skolenhet i exporten",
        "koppla gruppen till rätt skolenhet, eller markera skolenheten för export",
        "The group belongs to an organisation that is not a school unit in the export",
        "link the group to the right school unit, or mark the school unit for export",
    ),
    "GROUP_NOT_STARTED": Explanation(
        "Gruppen har inte börjat ännu",
        "kontrollera gruppens startdatum i elevregistret",
        "The group has not started yet",
        "check the group's start date in the registry",
    ),
    "GROUP_ENDED": Explanation(
        "Gruppen har upphört",
        "förläng gruppens slutdatum om den fortfarande används",
        "The group has ended",
        "extend the group's end date if it is still in use",
    ),
    "GROUP_TYPE_NOT_SYNCED": Explanation(
        "Grupptypen synkas inte",
        "ändra grupptypen (t.ex. till Klass eller Undervisning) om gruppen ska synkas",
        "The group type is not synced",
        "change the group type (e.g. to Klass or Undervisning) if it should be synced",
    ),
    "MEMBERSHIP_NOT_STARTED": Explanation(
        "Medlemskapet i gruppen har inte börjat ännu",
        "kontrollera medlemskapets startdatum i elevregistret",
        "The group membership has not started yet",
        "check the membership's start date in the registry",
    ),
    "MEMBERSHIP_ENDED": Explanation(
        "Medlemskapet i gruppen har upphört",
        "förläng medlemskapet om personen ska vara kvar i gruppen",
        "The group membership has ended",
        "extend the membership if the person should stay in the group",
    ),
    "MEMBER_EXCLUDED": Explanation(
        "Personen är själv inte med i synken",
        "åtgärda personens egna orsaker (se personens rader)",
        "The person is not synced",
        "fix the person's own reasons (see the person's rows)",
    ),
    "GROUP_EXCLUDED": Explanation(
        "Gruppen är själv inte med i synken",
        "åtgärda gruppens egna orsaker (se gruppens rader)",
        "The group is not synced",
        "fix the group's own reasons (see the group's rows)",
    ),
    "UNKNOWN_PERSON": Explanation(
        "Medlemskapet gäller en person som inte finns i exporten",
        "kontrollera att personen är komplett och markerad för export i elevregistret",
        "The membership names a person who is not in the export",
        "check that the person is complete and marked for export in the registry",
    ),
    "UNKNOWN_GROUP": Explanation(
        "Medlemskapet gäller en grupp som inte finns i exporten",
        "kontrollera att gruppen är markerad för export i elevregistret",
        "The membership names a group that is not in the export",
        "check that the group is marked for export in the registry",
    ),
}

# Warning codes (diagnostics.warnings): the record stays, a value was repaired or dropped; `explain` shows them.
WARNINGS: dict[str, tuple[str, str]] = {
    "INVALID_VALUE": (
        "Ett fält har ett felaktigt värde som inte används",
        "A field has an invalid value that is not used",
    ),
    "NO_SCHOOL_AUTHORITY": (
        "Skolenheten har ingen huvudman i organisationsträdet",
        "The school unit has no school authority (Huvudman) in the organisation tree",
    ),
    "INVALID_CIVIC_NO": (
        "Personnumret är ogiltigt och används inte; personen synkas ändå",
        "The civic number is invalid and not used; the person is synced anyway",
    ),
    "CIVIC_NO_NORMALISED": (
        "Personnumret hade ett annat format och lästes om",
        "The civic number was read from another form",
    ),
    "ENUM_CASE": (
        "Ett kodvärde hade fel skiftläge och lästes om",
        "A code value had the wrong letter case and was read anyway",
    ),
    "TEACHER_BY_PERSON": (
        "Aktiviteten anger läraren som person i stället för tjänst",
        "The activity names its teacher as a person instead of a duty",
    ),
    # Issue 12: exports shaped as real registries send them
    "SCHOOL_RESOLVED_FROM_PARENT": (
        "Hänvisningen gäller en organisation ovanför skolenheterna (t.ex. en Skola) och "
        "räknades till skolenheten/skolenheterna under den",
        "The reference names an organisation above the school units (such as a Skola) "
        "and was counted at the unit(s) below it",
    ),
    "ID_NOT_A_STRING": ("Id:t är ett tal och lästes som text", "The id is a number and was read as text"),
    "NOT_A_LIST": ("Ett fält som ska vara en lista är något annat", "A field that should be a list is something else"),
    "ENTRY_IGNORED": (
        "En post i en lista kunde inte läsas och används inte",
        "An entry in a list could not be read and is not used",
    ),
    "TEACHER_IGNORED": (
        "En lärarpost i aktiviteten anger varken tjänst eller person och används inte",
        "A teacher entry of the activity names neither a duty nor a person and is not used",
    ),
    "ACTIVITY_WITHOUT_GROUPS": (
        "Aktiviteten har lärare men inga grupper; ingen lärare kopplas till en grupp",
        "The activity has teachers but no groups; it assigns no teacher to a group",
    ),
    "ASSIGNMENT_ROLE_IGNORED": (
        "Ett uppdrag i tjänsten anger ingen grupp och används inte",
        "An assignment role of the duty names no group and is not used",
    ),
    "DROP_STALE": (
        "Registret har inte skickat någon ny export; nattens data kommer från en äldre export",
        "The registry has sent no new drop; the night's data comes from an older one",
    ),
}
MASK = "Skyddad identitet"
NOT_FOUND = "not in any registry drop — check that the record is complete and marked for export in the registry"


def explain_sv(code: str, visible_from: dt.date | None = None) -> str:
    e = EXPLANATIONS.get(code)
    if e is None:
        return code
    return f"{e.problem_sv} — visas från {visible_from.isoformat()}" if visible_from else f"{e.problem_sv} — {e.fix_sv}"


def explain_en(code: str, visible_from: dt.date | None = None) -> str:
    e = EXPLANATIONS.get(code)
    if e is None:
        return code
    return (
        f"{e.problem_en} — visible from {visible_from.isoformat()}" if visible_from else f"{e.problem_en} — {e.fix_en}"
    )


def explain(code: str, visible_from: dt.date | None = None) -> str:
    """'Anställningen har inte börjat ännu — visas från 2026-12-12 / Employment has not started yet — visible
    from 2026-12-12'."""
    return f"{explain_sv(code, visible_from)} / {explain_en(code, visible_from)}"


def explain_warning(code: str) -> str:
    sv, en = WARNINGS.get(code, (code, code))
    return f"{sv} / {en}"


def explanation_rows() -> list[tuple[str, str, str, str, str]]:
    """(code, problem_sv, fix_sv, problem_en, fix_en): the table DuckDB joins to build the Excluded sheet."""
    return [(code, *e) for code, e in EXPLANATIONS.items()]
