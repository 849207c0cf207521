"""Input and output models, kept apart from the stored row (see models.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_serializer

from users_service.usernames import USERNAME_MAX, new_username

# Printable text with at least one non-space character; control characters (C0/C1) are refused
# because they corrupt logs and terminals. Stated as a pattern so that the OpenAPI schema says it.
USERNAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_USERNAME = re.compile(USERNAME_PATTERN)


def _printable(value: str) -> str:
    # Checked here rather than by the field's `pattern`, whose message quoted the regex.
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            "a username has a visible character and no control characters (NUL, tab, newline ...)"
        )
    return value


# In the OpenAPI schema as a pattern (clients and Schemathesis read it), checked by _printable.
PRINTABLE = {"pattern": USERNAME_PATTERN}


def _new_username(value: str) -> str:
    # InvalidUsername is a ValueError: a 400 naming the field, with the reason.
    return new_username(value.strip())


# A new account's name (users_service.usernames): RFC 8265 PRECIS, single-script, no look-alike
# of a Latin name; stored in its UsernameCasePreserved form.
Username = Annotated[
    str,
    Field(
        min_length=1, max_length=USERNAME_MAX, json_schema_extra=PRINTABLE, examples=["Mary O'Neil"]
    ),
    AfterValidator(_printable),
    AfterValidator(_new_username),
]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
# The name a login gives: any account's name as typed (folded and looked up later), so longer
# than a stored one may be; printable, like a new one.
LoginName = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra=PRINTABLE),
    AfterValidator(_printable),
]


class Credentials(BaseModel):
    """A login: the book's clients send it form-encoded or as JSON."""

    model_config = ConfigDict(extra="ignore")
    username: LoginName
    password: Password


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: Username
    password: Password


class SignUp(UserCreate):
    password: Annotated[str, Field(min_length=8, max_length=1024)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    creation: datetime

    @field_serializer("creation")
    def _utc(self, value: datetime) -> str:
        # SQLite hands back naive datetimes; every timestamp we store is UTC.
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()


class LoginOut(BaseModel):
    """The book's login answer."""

    Authorized: str = Field(examples=["Bearer eyJhbGciOiJSUzI1NiIs..."])


class TokenRequest(BaseModel):
    """OAuth2 password grant form (RFC 6749 §4.3.2)."""

    grant_type: Literal["password"] = "password"
    username: LoginName
    password: Password
    scope: str = ""


class TokenOut(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class Features(BaseModel):
    signup: bool
