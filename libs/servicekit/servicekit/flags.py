"""Feature flags, read through the OpenFeature SDK, served from a file (or a mounted ConfigMap).

A service asks `flags.enabled("signup", user=username, default=settings.signup_enabled)`; the
answer comes from OpenFeature's client, whose provider here is `FileFlagProvider`: a YAML (or
JSON, which is YAML) file named by `FEATURE_FLAGS_FILE`::

    flags:
      signup:
        enabled: false           # on for everybody (default false)
        users: ["alice", "Mary O'Neil"]  # on for these users (the targeting key)
        percentage: 10           # and for this share of all users, 0 to 100 (default 0)

A flag is on for a user when `enabled` is true, or the user is listed, or the user's bucket falls
under `percentage`. The bucket is a hash of the flag's name and the user (`bucket`), so a user
keeps their answer from one request, replica and restart to the next, a rollout from 10 to 20 %
only adds users, and two flags at 10 % reach different users. Without a user only `enabled`
counts. A flag missing from the file, or no file at all, answers the caller's default: that is
how an environment switch such as SIGNUP_ENABLED stays the default until a file says otherwise.

The file is read at start-up (a bad file stops the service with the reason), then looked at
again at most every `reload_seconds`: a ConfigMap update reaches running servers without a
restart. A file broken later is logged and ignored; the last good flags stay in force.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, FeatureProvider, Metadata
from openfeature.provider.no_op_provider import NoOpProvider
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)


class FlagRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    users: frozenset[str] = frozenset()
    percentage: float = Field(default=0, ge=0, le=100)


class FlagFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    flags: dict[str, FlagRule] = Field(default_factory=dict)


class BadFlagFile(ValueError):
    pass


def read_flag_file(path: Path) -> dict[str, FlagRule]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return FlagFile.model_validate(document).flags
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise BadFlagFile(f"feature flags file {path}: {exc}") from None


def bucket(flag: str, user: str) -> float:
    """Where `user` falls for `flag`, in [0, 100): the same on every server, every time."""
    digest = hashlib.sha256(f"{flag}\0{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def evaluate(flag: str, rule: FlagRule, user: str | None) -> tuple[bool, Reason]:
    if rule.enabled:
        return True, Reason.STATIC
    if user is None:
        return False, Reason.DEFAULT
    if user in rule.users:
        return True, Reason.TARGETING_MATCH
    if bucket(flag, user) < rule.percentage:
        return True, Reason.SPLIT
    return False, Reason.DEFAULT


@dataclass
class _Loaded:
    flags: dict[str, FlagRule]
    signature: tuple[int, int]  # mtime_ns, size
    checked: float


class FileFlagProvider(AbstractProvider):
    """An OpenFeature provider of boolean flags from a YAML/JSON file (see the module)."""

    def __init__(
        self,
        path: Path,
        *,
        reload_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.path = path
        self._reload_seconds = reload_seconds
        self._clock = clock
        signature = self._signature()
        self._loaded = _Loaded(read_flag_file(path), signature, clock())

    def _signature(self) -> tuple[int, int]:
        stat = os.stat(self.path)
        return stat.st_mtime_ns, stat.st_size

    def flags(self) -> dict[str, FlagRule]:
        """The flags in force; the file is looked at again once `reload_seconds` have passed."""
        loaded = self._loaded
        now = self._clock()
        if now - loaded.checked < self._reload_seconds:
            return loaded.flags
        loaded.checked = now
        try:
            signature = self._signature()
            if signature != loaded.signature:
                self._loaded = _Loaded(read_flag_file(self.path), signature, now)
                logger.info("feature flags reloaded from %s", self.path)
        except (OSError, BadFlagFile) as exc:
            logger.error("feature flags file unusable, keeping the last good flags: %s", exc)
        return self._loaded.flags

    def get_metadata(self) -> Metadata:
        return Metadata(name="mythoughts-flag-file")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        rule = self.flags().get(flag_key)
        if rule is None:
            return FlagResolutionDetails(default_value, reason=Reason.DEFAULT)
        user = evaluation_context.targeting_key if evaluation_context else None
        value, reason = evaluate(flag_key, rule, user)
        return FlagResolutionDetails(value, reason=reason, variant="on" if value else "off")

    def _not_boolean(self, default_value: Any) -> FlagResolutionDetails[Any]:
        return FlagResolutionDetails(
            default_value,
            reason=Reason.ERROR,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_message="this provider serves boolean flags only",
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._not_boolean(default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._not_boolean(default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._not_boolean(default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._not_boolean(default_value)


class Flags:
    """What a service asks its flags through: an OpenFeature client of its own domain, so that
    apps in one process (tests) each keep the provider they were built with."""

    def __init__(self, provider: FeatureProvider | None, *, service: str) -> None:
        self.domain = f"{service}-{uuid.uuid4().hex[:8]}"
        # And wait: `set_provider` initialises in a thread, and until that has run every
        # evaluation answers its default (PROVIDER_NOT_READY), a wrong answer at start-up.
        api.set_provider_and_wait(provider or NoOpProvider(), self.domain)
        self._client = api.get_client(self.domain)

    @classmethod
    def from_file(cls, path: Path | None, *, service: str, reload_seconds: float = 5.0) -> Flags:
        return cls(
            FileFlagProvider(path, reload_seconds=reload_seconds) if path else None,
            service=service,
        )

    def enabled(self, flag: str, *, user: str | None, default: bool) -> bool:
        context = EvaluationContext(targeting_key=user) if user is not None else None
        return self._client.get_boolean_value(flag, default, context)
