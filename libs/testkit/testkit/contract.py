"""The OpenAPI contract of an app, driven with generated requests (Schemathesis), in process."""

from __future__ import annotations

from typing import Any, cast

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import positive_data_acceptance


def run_schemathesis(
    app: Any,
    *,
    headers: dict[str, str] | None = None,
    max_examples: int = 25,
    negative: bool = False,
    rules_beyond_the_schema: frozenset[str] = frozenset(),
) -> list[str]:
    """Drives every operation of the app's OpenAPI schema with generated requests, in process.

    Every default Schemathesis check runs (no server errors, status codes, content types,
    response bodies match the schema). Returns the operations exercised; raises on the first
    failing case with Schemathesis's reproduction details. With `negative=True`, operations that
    take input are also sent input the schema forbids, which must be refused with a 4xx.
    `rules_beyond_the_schema` names operations (`"POST /api/users/"`) whose input obeys rules
    JSON Schema cannot state (e.g. a username's RFC 8265 rules): they may answer a schema-valid
    request 400, which their own tests cover; every other check still runs on them.
    """
    modes = [schemathesis.GenerationMode.POSITIVE]
    if negative:
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    exercised = []
    for result in schema.get_all_operations():
        operation = cast(Any, result).ok()  # an Err raises its schema error here
        for mode in modes:
            # Fixed headers (the bearer token) are part of each case rather than added when it
            # is sent: negative cases then never "remove" a header that is sent anyway.
            @given(case=operation.as_strategy(mode, headers=headers))
            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                beyond = case.operation.label in rules_beyond_the_schema
                case.call_and_validate(excluded_checks=[positive_data_acceptance] if beyond else [])

            try:
                check()
            except Unsatisfiable:
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
                # An operation without parameters or body has no invalid input to send.
        exercised.append(operation.label)
    return exercised
