"""Whole lists for the book's clients (LEGACY_COMPATIBILITY), streamed in bounded memory.

The book's services answer a list with every matching row, oldest first, and its frontend reads
only that first response. With legacy compatibility on, a list request that carries neither
`limit` nor `cursor` is answered that way; a request that pages keeps paging. The rows are read
in batches by key (as pages are, so no batch costs more than a page) and written out as each
batch arrives: the book's own server held the whole list in memory (2 GB at a million rows);
this holds one batch.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse

from servicekit.pagination import Order, PageRequest
from thoughts_service.repository import ThoughtRow

logger = logging.getLogger(__name__)

Fetch = Callable[[PageRequest], Awaitable[Sequence[ThoughtRow]]]

# Query parameters that make a request a paging one.
_PAGING = ("limit", "cursor")


def _rows_json(rows: Sequence[ThoughtRow]) -> bytes:
    return b",".join(orjson.dumps(row.to_json(), option=orjson.OPT_UTC_Z) for row in rows)


@dataclass(frozen=True)
class FullLists:
    """Answers un-paged list requests with every row; in `app.state.full_lists` when enabled."""

    batch_size: int = 1000

    def applies(self, request: Request) -> bool:
        return not any(name in request.query_params for name in _PAGING)

    async def response(self, fetch: Fetch, order: Order) -> StreamingResponse:
        """Every row `fetch` yields, page after page, as one JSON array. The first batch is
        read before the response starts, so that a failing database still gets its error
        answer (503) rather than a truncated 200."""
        first = await fetch(PageRequest(limit=self.batch_size, order=order))
        return StreamingResponse(self._body(fetch, order, first), media_type="application/json")

    async def _body(
        self, fetch: Fetch, order: Order, rows: Sequence[ThoughtRow]
    ) -> AsyncIterator[bytes]:
        yield b"["
        separator = b""
        while True:
            batch = rows[: self.batch_size]
            if batch:
                yield separator + _rows_json(batch)
                separator = b","
            if len(rows) <= self.batch_size:
                break
            # An error from here on can only cut the body short (the status is sent): the
            # client sees invalid JSON rather than a list that looks whole but is not.
            rows = await fetch(PageRequest(limit=self.batch_size, order=order, after=batch[-1].id))
        yield b"]"
