"""The windows of ids that a PostgreSQL search page reads first (SEARCH_WINDOW, SearchSpan)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import BigInteger, literal_column
from sqlalchemy.dialects.postgresql import array

from servicekit.pagination import Order
from thoughts_service.models import Thought

# PostgreSQL search reads ids in windows of this many: window n holds the ids n * SEARCH_WINDOW
# to (n + 1) * SEARCH_WINDOW - 1, and the trigram index of migration 0002 is keyed by the window
# (`ARRAY[id / 65536]`) as well as by the trigrams. Without it, a page of a search for a rare
# word read every match of the table from the heap (978 at a million thoughts) to keep the
# newest 21. With it, a page asks first for the matches in two windows only (SearchSpan: for a
# word in 0.1% of the thoughts, 65 to 131 of them, enough for a page), and the index hands over
# only those. Larger windows read more matches per page; smaller ones more often leave a page
# short, and the rest of it comes from a plain search beyond the windows. The index's
# expression holds the same number: change both together, in a migration.
SEARCH_WINDOW = 65536
# `ARRAY[id / 65536]`, exactly as indexed (a bound 65536 would not match the index expression).
ID_WINDOW = array([Thought.id // literal_column(str(SEARCH_WINDOW), BigInteger)])
_MAX_ID = 2**63 - 1  # bigint


@dataclass(frozen=True)
class SearchSpan:
    """Where a page of a PostgreSQL search looks first: the ids `low` to `high` (both included),
    from the first id the page may hold to the far end of the next window in page order (see
    SEARCH_WINDOW). So the span holds the ids of one whole window at least, wherever in its
    window the page starts (one window alone would hold only a few ids when the page starts
    near the window's edge, newly begun by the latest thoughts for instance, and the page would
    mostly come from the slow search beyond it). At most two windows: `window` and
    `next_window`.
    """

    window: int
    next_window: int
    low: int
    high: int

    @classmethod
    def starting_at(cls, first_id: int, order: Order) -> SearchSpan | None:
        """The span of a page whose first possible id is `first_id` (in `order`); None for ids
        below zero: PostgreSQL's `id / 65536` rounds those towards zero, Python's `//` down.
        Identity ids start at 1, so only a made-up cursor gets there; the page is then one plain
        query."""
        if not 0 <= first_id <= _MAX_ID:
            return None
        window = first_id // SEARCH_WINDOW
        if order == "desc":
            low = max(0, (window - 1) * SEARCH_WINDOW)
            return cls(window, window - 1, low, first_id)
        high = min(_MAX_ID, (window + 2) * SEARCH_WINDOW - 1)
        return cls(window, window + 1, first_id, high)

    @classmethod
    def of_first_page(cls, edge: int, order: Order) -> SearchSpan | None:
        """The span of a first page (no cursor) when the newest (desc) or oldest (asc) thought
        is `edge`: the same windows as `starting_at(edge, order)`, its bound at the edge's side
        open (the largest bigint for desc, 0 for asc). Beyond the edge there are no ids, so it
        holds the same rows; and it stays the first page's span for as long as the edge stays
        in its window, so that a span made from an edge read earlier can be checked by the
        statement that reads the page (ThoughtRepository: the edge it reads must give the same
        span)."""
        span = cls.starting_at(edge, order)
        if span is None:
            return None
        if order == "desc":
            return cls(span.window, span.next_window, span.low, _MAX_ID)
        return cls(span.window, span.next_window, span.window * SEARCH_WINDOW, span.high)

    def values(self) -> dict[str, Any]:
        """The statement's values: its parameters are named as the fields."""
        return asdict(self)

    def rest_after(self, order: Order) -> int:
        """The cursor of the ids beyond the span, in page order."""
        return self.low if order == "desc" else self.high
