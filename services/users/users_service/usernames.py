"""What a username may be, and the key that makes two names "the same name".

PRECIS (RFC 8265, `precis-i18n`): a new name is enforced with the UsernameCasePreserved profile
(what is stored and shown: width-mapped, NFC) and keyed with UsernameCaseMapped (also lower-cased):
`Bruce`, `bruce` and a full-width `bruce` (U+FF42...) share the key `bruce`, unique in the table.
Both profiles refuse what a reader cannot see: zero-width characters, bidi controls (the
right-to-left override), other default-ignorable and control characters. A name may hold single
spaces between its parts (RFC 8265 §3.3: each part is a username of its own).

Look-alikes (Unicode TR39, `confusable-homoglyphs`' script data): a new name must be
single-script, or one of TR39's "highly restrictive" mixes of Latin with Han, Hiragana, Katakana,
Bopomofo or Hangul, so `stephen` with a Cyrillic `e` (U+0435) is refused; and a name in one
non-Latin script made only of letters that look Latin (`paya` in Cyrillic) is refused as a
whole-script confusable.

Existing rows keep working whatever they hold: login looks a name up exactly first
(users_service.accounts), and migration 0002 gave rows the keys they could take.
"""

from __future__ import annotations

from confusable_homoglyphs import categories, confusables
from precis_i18n import get_profile

# What the users table holds (models.User.username) and every other service accepts as an owner.
USERNAME_MAX = 50

_PRESERVED = get_profile("UsernameCasePreserved")
_MAPPED = get_profile("UsernameCaseMapped")

# Scripts that never make a name mixed (digits, punctuation, combining marks).
_NEUTRAL = {"COMMON", "INHERITED"}
# TR39 §5.2 "highly restrictive": one script, or Latin with one of these East Asian sets.
_ALLOWED_MIXES = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)


class InvalidUsername(ValueError):
    """A name that may not be a new username; the message says why and is safe to show."""


def _parts(name: str) -> list[str]:
    parts = name.split(" ")
    if any(not part for part in parts):
        raise InvalidUsername("a username has single spaces between its parts, at most")
    return parts


def _enforce(profile: object, name: str) -> str:
    enforce = getattr(profile, "enforce")  # noqa: B009 - precis-i18n is untyped
    try:
        return " ".join(str(enforce(part)) for part in _parts(name))
    except UnicodeEncodeError as exc:
        character = exc.object[exc.start] if isinstance(exc.object, str) else "?"
        why = str(exc.reason).split("/")[-1].replace("_", " ")
        raise InvalidUsername(
            f"the username may not contain U+{ord(character):04X} ({why}): invisible, "
            "control and bidi-control characters, and those with a plainer form, are refused"
        ) from None


def username_key(name: str) -> str:
    """The uniqueness key (RFC 8265 UsernameCaseMapped); raises InvalidUsername."""
    return _enforce(_MAPPED, name)


def lookup_key(name: str) -> str | None:
    """The key a login looks a name up by, or None for a name no new account can have."""
    try:
        return username_key(name)
    except InvalidUsername:
        return None


def new_username(name: str) -> str:
    """The form a new account stores (UsernameCasePreserved), after every check; raises
    InvalidUsername."""
    preserved = _enforce(_PRESERVED, name)
    if len(preserved) > USERNAME_MAX:
        # Normalisation can lengthen a name: NFC writes U+0958 (Devanagari qa) as two code
        # points, so 50 of them would be stored as 100, past the column and what the other
        # services accept as an owner (the account could log in but never post).
        raise InvalidUsername(
            f"the username is {len(preserved)} characters once normalised (Unicode NFC); "
            f"a username is at most {USERNAME_MAX}"
        )
    username_key(preserved)
    scripts = categories.unique_aliases(preserved) - _NEUTRAL
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        raise InvalidUsername(
            f"the username mixes scripts ({', '.join(sorted(scripts))}); use letters of one script"
        )
    if scripts and scripts != {"LATIN"} and _looks_latin(preserved):
        raise InvalidUsername(
            "every letter of the username looks like a Latin letter; "
            "it would be mistaken for another name"
        )
    return preserved


def _looks_latin(name: str) -> bool:
    found = confusables.is_confusable(name, greedy=True, preferred_aliases=["latin"])
    lookalikes = {entry["character"] for entry in found} if found else set()
    letters = {c for c in name if categories.alias(c) not in _NEUTRAL}
    return bool(letters) and letters <= lookalikes
