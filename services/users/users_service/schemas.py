"""Input and output models, kept apart from the stored row (see models.py)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_serializer


def _valid_username(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise ValueError("the username must not be empty")
    if len(value) > 50:
        raise ValueError("the username must be at most 50 characters")
    if any(unicodedata.category(char).startswith("C") for char in value):
        raise ValueError("the username must not contain control characters")
    return value


Username = Annotated[
    str,
    Field(min_length=1, max_length=200, examples=["Mary O'Neil"]),
    AfterValidator(_valid_username),
]
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class Credentials(BaseModel):
    """A login: the book's clients send it form-encoded or as JSON."""

    model_config = ConfigDict(extra="ignore")
    username: Annotated[str, Field(min_length=1, max_length=200)]
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


class TokenOut(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class Features(BaseModel):
    signup: bool
