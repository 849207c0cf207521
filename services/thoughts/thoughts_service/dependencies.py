"""The FastAPI dependency of the routes: the app's ThoughtRepository."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from thoughts_service.inserts import PostgresInserts
from thoughts_service.repository import SearchEdges, ThoughtRepository


async def get_repository(request: Request) -> ThoughtRepository:
    # The app's database, not a session per request: the hot paths need none (see above).
    # async: a plain `def` dependency would run in a worker thread (servicekit.deps).
    state = request.app.state
    inserts = getattr(state, "thought_inserts", None)
    if inserts is None:  # one per app, so that concurrent posts meet in it
        inserts = state.thought_inserts = PostgresInserts(state.db)
    edges = getattr(state, "search_edges", None)
    if edges is None:  # one per app: what the last first page of a search saw
        edges = state.search_edges = SearchEdges()
    return ThoughtRepository(
        state.db, inserts=inserts, post_queue=state.post_queue, search_edges=edges
    )


RepositoryDep = Annotated[ThoughtRepository, Depends(get_repository)]
