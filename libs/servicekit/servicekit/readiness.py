"""The database part of /readyz: reachable, and migrations at this version's head.

Readiness decides whether a load balancer sends this process traffic (the gateway's health
check, a Kubernetes readiness probe: out after two failures). It must go false when this
process cannot serve and another could: the database cut off (black-holed, refused), the
migrations behind, a shutdown. It must not go false because the process is busy: every server
of a route is busy together under a saturating load, and taking all of them out turns a slow
system into one that answers 503 to everything. The rule:

1. The probe reads the migration revision on a connection of its own
   (`Database.probe_engine`), never one of the request pool: a pool whose every connection is
   taken by requests is a loaded service, not an unready one. The old check took a pooled
   connection and gave up after 0.8 s; under load it found none free, answered 503 on every
   server, and the gateway took them all out (bench/README.md, "Health checks under overload").
2. It waits at most READINESS_DATABASE_SECONDS, so that the probe answers within a second
   whatever the database does (issue 14). An error (connection refused or reset, bad
   credentials) is "unreachable" at once.
3. When the probe gets no answer in time but the database answered statements of this
   process's requests meanwhile (`Database.last_answer`, which both pools record), the
   database is reachable and slow to answer us, as on a machine whose cores are all taken: the
   check passes, with the revision the last probe read. When nothing was answered while the
   probe waited (a black hole, a frozen server), the database counts as unreachable.

Why not the other way round, skipping the probe while statements succeed: a database that has
just gone silent would look reachable for as long as "recently" means, and the migrations check
needs its read anyway. Why not the separate connection alone: on an overloaded machine its round
trip can outlast the deadline while the requests' statements keep being answered.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from servicekit.db import Database
from servicekit.migrations import current_revision

# The probe's own deadline for the database, so that /readyz answers within a second.
READINESS_DATABASE_SECONDS = 0.8

_UNREAD = object()  # no probe has read the revision yet


@dataclass
class DatabaseReadiness:
    """The database checks of /readyz for one process: `await check()` on every probe."""

    database: Database
    # This version's head, and every revision of its history (servicekit.migrations).
    head: str | None
    known: frozenset[str]
    _revision: object = field(default=_UNREAD, init=False)
    # The read in progress, which a probe that comes while it runs waits for instead of
    # starting another (see `_read_revision`).
    _read: asyncio.Future[str | None] | None = field(default=None, init=False)

    async def check(self) -> tuple[bool, dict[str, str]]:
        """Whether the database part is ready, and its checks by name ("ok" or what is wrong)."""
        started = time.monotonic()
        try:
            revision = await self._read_revision()
        except TimeoutError:
            if self.database.last_answer.at < started or self._revision is _UNREAD:
                return False, {"database": f"no answer within {READINESS_DATABASE_SECONDS}s"}
            database = "busy: no answer to the probe in time, to requests' statements meanwhile"
            return self._migrations({"database": database}, self._revision)
        except Exception as exc:
            return False, {"database": f"unreachable: {type(exc).__name__}"}
        self._revision = revision
        return self._migrations({"database": "ok"}, revision)

    async def _read_revision(self) -> str | None:
        """The revision, or TimeoutError after READINESS_DATABASE_SECONDS.

        A read the probe stops waiting for is not cancelled: it runs on to its end, bounded by
        the database's own deadlines (connect, acquire, statement: servicekit.db), and the next
        probe waits for it rather than starting another. Cancelling it instead threw its
        connection away (SQLAlchemy cannot tell what a cancelled statement left behind), and on
        a machine so loaded that a round trip took the probe's whole deadline, every next probe
        had to open a new connection, took longer still and was cancelled in turn: never ready
        again while the load lasted. (`asyncio.wait_for` also waits for the cancelled read's
        clean-up, which on a silent network takes a statement timeout.)
        """
        if self._read is None or self._read.done():
            self._read = asyncio.ensure_future(current_revision(self.database.probe_engine))
            self._read.add_done_callback(_retrieve)
        read = self._read
        done, _ = await asyncio.wait({read}, timeout=READINESS_DATABASE_SECONDS)
        if not done:
            raise TimeoutError
        return read.result()

    def close(self) -> None:
        """Stops a read in progress (at shutdown, before the database is disposed of)."""
        if self._read is not None:
            self._read.cancel()

    def _migrations(self, checks: dict[str, str], revision: object) -> tuple[bool, dict[str, str]]:
        if revision == self.head:
            return True, checks | {"migrations": "ok"}
        if isinstance(revision, str) and revision not in self.known:
            # A rolling update runs the next release's migration Job while this version's pods
            # still serve. Migrations are additive for one release (README, "Run it on
            # Kubernetes"), so the old version stays ready.
            ahead = f"ahead: at {revision}, this version's head is {self.head}"
            return True, checks | {"migrations": ahead}
        return False, checks | {"migrations": f"at {revision}, head is {self.head}"}


def _retrieve(read: asyncio.Future[str | None]) -> None:
    """A read's error is the probes' news; one that no probe waited for any more is no news
    (asyncio would log it as never retrieved)."""
    if not read.cancelled():
        read.exception()
