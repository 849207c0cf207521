"""A database that cannot be reached in time is an unavailable dependency: 503 with Retry-After.

Never a 500, never a hang (issue 14): a request that cannot get its database within the
deadlines of DatabaseOptions (connect, acquire, query) ends with DatabaseUnavailable, and so
does one whose connection was refused, reset or terminated under it. The drivers say so in
their own ways (asyncpg's connection errors, SQLAlchemy's pool timeout and invalidated
connections, the operating system's ECONNREFUSED); `as_unavailable()` recognises them wherever
they come from, so the kit answers 503 for every service, sessions and driver pool alike.
"""

from __future__ import annotations

import errno

# How long a client should wait before trying again: a database comes back, or fails over, in
# seconds; the probes take the instance out of rotation meanwhile.
RETRY_AFTER_SECONDS = 5

_CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    }
)


class DatabaseUnavailable(Exception):
    """The database could not be reached, or did not answer, in time.

    `outcome_unknown`: a write whose commit was sent but never confirmed; it may have been
    committed. The answer says so, so that a client repeats it only with its idempotency key.
    """

    def __init__(self, reason: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome_unknown = outcome_unknown

    def detail(self) -> str:
        if self.outcome_unknown:
            return (
                f"the database stopped answering ({self.reason}) after the change was sent: it "
                "may or may not have been stored; repeat it with the same Idempotency-Key to know"
            )
        return f"the database is unavailable ({self.reason}); nothing was changed, try again"


def as_unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """`error` as DatabaseUnavailable when it, or what caused it, says that the database could
    not be reached or answered too late; None for every other error (a bug stays a 500)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found = _recognise(current)
        if found is not None:
            return found
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return None


def _recognise(error: BaseException) -> DatabaseUnavailable | None:
    if isinstance(error, DatabaseUnavailable):
        return error
    name = type(error).__name__
    module = type(error).__module__
    if module.startswith("sqlalchemy"):
        from sqlalchemy import exc

        if isinstance(error, exc.TimeoutError):
            return DatabaseUnavailable("no database connection was free in time")
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            return DatabaseUnavailable("the database connection was lost")
        return None
    if module.startswith("asyncpg"):
        import asyncpg

        # Class 08 (connection exception) and 57 (operator intervention: the server is
        # shutting down, starting up, or terminated this backend).
        if isinstance(
            error, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
        ):
            return DatabaseUnavailable(f"the database connection failed ({name})")
        if isinstance(error, asyncpg.InterfaceError) and "closed" in str(error):
            return DatabaseUnavailable("the database connection was closed")
        return None
    if isinstance(error, TimeoutError) and _raised_by_a_driver(error):
        # asyncpg's command_timeout (SQLAlchemy sessions) raises a bare TimeoutError.
        return DatabaseUnavailable("the database did not answer in time")
    if isinstance(error, OSError) and (
        isinstance(error, ConnectionError) or error.errno in _CONNECTION_ERRNOS
    ):
        return DatabaseUnavailable(f"the database could not be reached ({name})")
    return None


def _raised_by_a_driver(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(("asyncpg", "sqlalchemy")):
            return True
        traceback = traceback.tb_next
    return False
