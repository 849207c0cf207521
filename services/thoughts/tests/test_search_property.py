"""Search returns exactly what the reference definition says, on both databases.

The reference is written out here independently of the service's code: a thought matches when
the NFC-normalized, case-folded query is a substring of the NFC-normalized, case-folded text.
Data mixes case-folding traps (ß/SS, final sigma, Kelvin sign, dotted I, ligatures, combining
marks), LIKE wildcards, quotes, backslashes and FTS5 syntax, which must all be literal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy import text as sql

from thoughts_service.models import Thought
from thoughts_service.search import matches


def reference(query: str, text: str) -> bool:
    fold = lambda value: unicodedata.normalize("NFC", value).casefold()  # noqa: E731
    return fold(query) in fold(text)


CHARACTERS = [
    *"aAbBkKsSiIeE ",
    *"ßẞİıΣσςéÉ",
    "e\u0301",  # e + combining acute: NFC makes it é
    "\u212a",  # KELVIN SIGN, folds to k
    "\u212b",  # ANGSTROM SIGN, NFC makes it Å
    "ﬃ",  # ligature, folds to "ffi"
    "ǅ",  # title case
    "\u13a0",  # CHEROKEE LETTER A, whose case folding goes to upper case
    "😀",
    "中",
    *"%_\\'\"*-^():+.{}/",
]
FTS_WORDS = ["AND", "OR", "NOT", "NEAR", "near", "NEAR(a b)", "a*", '""', "''", "%%", "\\_", "^a"]
piece = st.one_of(st.sampled_from(CHARACTERS), st.sampled_from(FTS_WORDS))
thought_text = st.lists(piece, min_size=1, max_size=14).map("".join)
CASE_CHANGES: list[Callable[[str], str]] = [str, str.upper, str.lower, str.swapcase, str.casefold]


SPECIALS = "%_*\"'\\^-"


@st.composite
def query_for(draw: st.DrawFn, texts: list[str]) -> str:
    """A query that probes the stored texts: a piece of one with its case changed, a piece of one
    with a character replaced by a wildcard or quote (matches only if that is misread as
    syntax), or anything at all."""
    kind = draw(st.sampled_from(["piece", "wildcarded", "anything"] if texts else ["anything"]))
    if kind == "anything":
        return draw(st.lists(piece, max_size=5).map("".join))
    text = draw(st.sampled_from(texts))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 8)))
    query = text[start:end]
    if kind == "wildcarded" and query:
        position = draw(st.integers(0, len(query) - 1))
        query = query[:position] + draw(st.sampled_from(SPECIALS)) + query[position + 1 :]
    return draw(st.sampled_from(CASE_CHANGES))(query)


def test_reference_is_the_services_definition() -> None:
    for query, text in [("STRASSE", "straße"), ("k", "\u212a"), ("é", "e\u0301"), ("a", "b")]:
        assert matches(query, text) == reference(query, text)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), texts=st.lists(thought_text, max_size=8))
async def test_search_matches_the_reference(
    client: httpx.AsyncClient, app: Any, data: st.DataObject, texts: list[str]
) -> None:
    async with app.state.db.sessionmaker() as session:
        await session.execute(delete(Thought))
        thoughts = [Thought(username="prop", text=text) for text in texts]
        session.add_all(thoughts)
        await session.commit()
        stored = [(thought.id, thought.text) for thought in thoughts]

    query = data.draw(query_for(texts), label="query")
    order = data.draw(st.sampled_from(["asc", "desc"]), label="order")
    expected = [id_ for id_, text in stored if reference(query, text)]
    if order == "desc":
        expected.reverse()

    found: list[int] = []
    url: str | None = "/api/thoughts/"
    params: dict[str, Any] | None = {"search": query, "limit": 3, "order": order}
    while url is not None:
        response = await client.get(url, params=params)
        assert response.status_code == 200, response.text
        found += [thought["id"] for thought in response.json()]
        link = response.headers.get("link")
        url = urljoin(str(response.request.url), link[1 : link.index(">")]) if link else None
        params = None  # the Link URL carries them
    assert found == expected, {"query": query, "texts": texts}
    if app.state.db.dialect == "sqlite":
        # The triggers kept the FTS5 index exactly in step with the rows (raises otherwise).
        async with app.state.db.engine.begin() as connection:
            await connection.execute(
                # rank 1: also compare the index with the content table, not only itself.
                sql("INSERT INTO thoughts_fts(thoughts_fts, rank) VALUES ('integrity-check', 1)")
            )
