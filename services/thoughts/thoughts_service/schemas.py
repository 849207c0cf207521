"""What clients send and receive. Stored rows (models.Thought) never leave the service as such."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, WithJsonSchema

from servicekit.text import is_visible, user_perceived_length
from thoughts_service.models import TEXT_MAX, TEXT_MAX_CODE_POINTS

# "Trimming" removes Unicode White_Space characters (the 25 code points of that property) from
# both ends. Not str.strip(): it also strips U+001C-U+001F, which no regex engine calls
# whitespace, and the OpenAPI pattern below must accept exactly what the service accepts.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WS = r"\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Optional whitespace, 1 to TEXT_MAX_CODE_POINTS code points that start and end with
# non-whitespace, optional whitespace; no NUL anywhere (PostgreSQL text cannot hold it). The
# limit of TEXT_MAX user-perceived characters and the visible character are beyond what a
# pattern can say (the description says them).
TEXT_PATTERN = (
    rf"^[{_WS}]*[^{_WS}\x00](?:[^\x00]{{0,{TEXT_MAX_CODE_POINTS - 2}}}[^{_WS}\x00])?[{_WS}]*$"
)


def _trimmed_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("must be valid Unicode (it contains an unpaired surrogate)")
    text = value.strip(WHITESPACE)
    if not text:
        raise ValueError("must not be empty or only whitespace")
    if not is_visible(text):
        raise ValueError(
            "must contain a visible character, not only invisible ones (zero-width spaces, "
            "byte order marks, direction marks, ...)"
        )
    # Counted as a reader counts them (servicekit.text): "é", "👍🏽" and "🇫🇷" are one each.
    length = user_perceived_length(text)
    if length > TEXT_MAX:
        raise ValueError(
            f"must be at most {TEXT_MAX} characters after trimming whitespace, not {length}"
        )
    if len(text) > TEXT_MAX_CODE_POINTS:
        raise ValueError(
            f"must be at most {TEXT_MAX_CODE_POINTS} Unicode code points, not {len(text)} "
            "(characters made of many combining marks or joined emoji count more than one)"
        )
    return text


ThoughtText = Annotated[
    str,
    AfterValidator(_trimmed_text),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": TEXT_PATTERN,
            "description": f"1 to {TEXT_MAX} characters once leading and trailing whitespace "
            "is trimmed (the trimmed text is stored), counted as user-perceived characters "
            "(Unicode extended grapheme clusters, UAX #29: `é` written as e + accent, `👍🏽`, "
            f"`🇫🇷` are one each), and at most {TEXT_MAX_CODE_POINTS} code points; it must "
            "contain a visible character (not only zero-width or other invisible ones).",
        }
    ),
]


class ThoughtCreate(BaseModel):
    """A new thought. Other fields (the book's clients also send `username`) are ignored: the
    author is always the owner of the access token."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"text": "A new thought about microservices"}]},
    )

    text: ThoughtText


class ThoughtOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 1,
                    "username": "bruce",
                    "text": "A new thought about microservices",
                    "timestamp": "2025-11-22T10:15:00.123456Z",
                }
            ]
        },
    )

    id: int
    username: str
    text: str
    timestamp: AwareDatetime
