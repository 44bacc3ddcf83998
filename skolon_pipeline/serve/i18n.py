"""The web view's words, in Swedish (the default) and English. Reason explanations come from
exports/explanations.py, so the page says what the validation file says."""

from __future__ import annotations

LANGUAGES = ("sv", "en")
DEFAULT = "sv"

TEXT: dict[str, tuple[str, str]] = {
    "app": ("Skoladmin", "School Admin"),
    "overview": ("Översikt", "Overview"),
    "search": ("Sök", "Search"),
    "validation_file": ("Valideringsfil", "Validation file"),
    "login": ("Logga in", "Log in"),
    "logout": ("Logga ut", "Log out"),
    "username": ("Användarnamn", "Username"),
    "password": ("Lösenord", "Password"),
    "login_failed": ("Fel användarnamn eller lösenord.", "Wrong username or password."),
    "login_locked": (
        "För många misslyckade inloggningar. Försök igen om en stund.",
        "Too many failed logins. Try again in a while.",
    ),
    "login_expired": ("Formuläret hade gått ut. Försök igen.", "The form had expired. Please try again."),
    "login_oidc": ("Logga in med organisationens konto", "Log in with your organisation's account"),
    "signed_in_as": ("Inloggad som", "Signed in as"),
    "scope": ("Behörighet", "Access"),
    "scope_authority": ("Huvudman", "School authority"),
    "scope_schools": ("Skolor", "Schools"),
    "night": ("Natt", "Night"),
    "published": ("publicerad", "published"),
    "no_night": ("Ingen natt är publicerad ännu.", "No night has been published yet."),
    "school": ("Skola", "School"),
    "schools": ("Skolor", "Schools"),
    "school_unit_code": ("Skolenhetskod", "School unit code"),
    "students": ("Elever", "Students"),
    "teachers": ("Lärare", "Teachers"),
    "staff": ("Personal", "Staff"),
    "classes": ("Klasser", "Classes"),
    "teaching_groups": ("Undervisningsgrupper", "Teaching groups"),
    "memberships": ("Gruppmedlemskap", "Memberships"),
    "held_back": ("Ej synkade", "Held back"),
    "held_back_persons": ("Personer ej synkade", "Persons held back"),
    "held_back_groups": ("Grupper ej synkade", "Groups held back"),
    "held_back_memberships": ("Medlemskap ej synkade", "Memberships held back"),
    "held_back_per_reason": ("Ej synkade per orsak", "Held back per reason"),
    "no_school": ("utan skola", "no school"),
    "trend": ("De senaste 30 nätterna", "The last 30 nights"),
    "trend_users": ("användare i synken", "users in the roster"),
    "trend_held": ("personer ej synkade", "persons held back"),
    "sources": ("Källor", "Sources"),
    "source": ("Källa", "Source"),
    "carried_over": ("kunde inte läsas; visar data från", "could not be read; showing the data of"),
    "source_ok": ("läst i natt", "read tonight"),
    "drop_of": ("export från elevregistret", "registry export of"),
    "groups": ("Grupper", "Groups"),
    "group": ("Grupp", "Group"),
    "type": ("Typ", "Type"),
    "name": ("Namn", "Name"),
    "role": ("Roll", "Role"),
    "dates": ("Datum", "Dates"),
    "reason": ("Orsak", "Reason"),
    "reasons": ("Orsaker", "Reasons"),
    "what_to_fix": ("Vad som ska åtgärdas", "What to fix"),
    "visible_from": ("Synkas från", "Visible from"),
    "detail": ("Detalj", "Detail"),
    "all_reasons": ("Alla orsaker", "All reasons"),
    "filter": ("Filtrera", "Filter"),
    "and_memberships": ("och {n} gruppmedlemskap", "and {n} group memberships"),
    "more_rows": ("{n} till", "{n} more"),
    "next_page": ("Nästa sida", "Next page"),
    "search_placeholder": ("Namn, e-post eller id", "Name, e-mail or id"),
    "search_hint": (
        "Sök på del av ett namn, en e-postadress eller ett id.",
        "Search for part of a name, an e-mail address or an id.",
    ),
    "search_short": ("Skriv minst två tecken.", "Type at least two characters."),
    "search_civic": (
        "Sök inte på personnummer: de finns inte i synken. Sök på namn, e-post eller id.",
        "Do not search for civic numbers: the sync does not keep them. Search for a name, e-mail or id.",
    ),
    "no_match": (
        "Ingen träff. Finns personen i elevregistret, komplett och markerad för export?",
        "No match. Is the record in the registry, complete and marked for export?",
    ),
    "more_matches": ("och {n} träffar till: förfina sökningen", "and {n} more matches: refine the search"),
    "in_roster": ("I synken", "In the roster"),
    "yes": ("Ja", "Yes"),
    "no": ("Nej", "No"),
    "as_role": ("som {role}", "as {role}"),
    "protected": (
        "Skyddad identitet: bara id, roll och skola visas.",
        "Protected identity: only id, role and school are shown.",
    ),
    "person": ("Person", "Person"),
    "membership": ("Medlemskap", "Membership"),
    "email": ("E-post", "E-mail"),
    "members": ("Medlemmar", "Members"),
    "protected_members": (
        "{n} medlemmar med skyddad identitet visas inte.",
        "{n} members with a protected identity are not shown.",
    ),
    "held_memberships": ("Medlemskap som inte synkas", "Memberships held back"),
    "warnings": ("Värden som rättades eller inte används", "Values repaired or not used"),
    "history": ("Ändringar", "Changes"),
    "no_changes": ("Inga ändringar sedan den första natten.", "No changes since the first night."),
    "change": ("Ändring", "Change"),
    "facts": ("Uppgifter", "Facts"),
    "download": ("Ladda ned valideringsfilen", "Download the validation file"),
    "download_hint": (
        "Arbetsboken för din behörighet, den senaste natten (samma som nattens export).",
        "The workbook of your access, for the latest night (the same as the nightly export).",
    ),
    "not_found": ("Sidan finns inte", "Page not found"),
    "not_found_text": (
        "Det finns ingen sådan sida som du har behörighet till.",
        "There is no such page that you have access to.",
    ),
    "busy": ("Nattkörningen publicerar just nu", "The nightly run is publishing"),
    "busy_text": ("Försök igen om en liten stund.", "Please try again in a moment."),
    "busy_pages": ("Många använder School Admin just nu", "School Admin is busy right now"),
    "busy_pages_text": (
        (
            "Sidan kunde inte visas inom några sekunder, eftersom många sidor visas samtidigt eller "
            "nattkörningen går. Försök igen om en liten stund."
        ),
        (
            "The page could not be shown within a few seconds: many pages are being shown at once, or "
            "the nightly run is on. Please try again in a moment."
        ),
    ),
    "error": ("Något gick fel", "Something went wrong"),
    "error_text": (
        "Felet är loggat. Försök igen, eller kontakta den som driftar synken.",
        "The error has been logged. Try again, or contact whoever runs the sync.",
    ),
    "language": ("In English", "På svenska"),
    "student": ("elev", "student"),
    "teacher": ("lärare", "teacher"),
    "staff_role": ("personal", "staff"),
    "added": ("tillagd", "added"),
    "removed": ("borttagen", "removed"),
    "updated": ("ändrad", "updated"),
    "removal_held": ("borttagning väntar", "removal held"),
    "entity_user": ("person", "person"),
    "entity_school_affiliation": ("skoltillhörighet", "school affiliation"),
    "entity_group": ("grupp", "group"),
    "only_memberships": (
        "Bara gruppmedlemskap nämner detta id: det finns inte i elevregistrets export.",
        "Only group memberships name this id: it is not in the registry's export.",
    ),
}

ROLE_KEYS = {"student": "student", "teacher": "teacher", "staff": "staff_role"}


def translator(lang: str):
    index = 1 if lang == "en" else 0

    def t(key: str, **values) -> str:
        pair = TEXT.get(key)
        text = pair[index] if pair else key
        return text.format(**values) if values else text

    return t
