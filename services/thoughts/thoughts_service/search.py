"""What "search is a case-insensitive substring match" means, exactly, on every database.

The definition (the Python reference every database must agree with)::

    def search_key(s):  return unicodedata.normalize("NFC", s).casefold()
    def matches(query, text):  return search_key(query) in search_key(text)

That is: both strings are brought to Unicode Normalization Form C (so that "é" typed as one code
point and "é" typed as "e" + combining acute are the same), then to their Unicode *full case
folding* (`str.casefold`, Unicode's definition of caseless matching: "ß" and "SS" and "ss" are
equal, so are capital, small and final sigma, "K" and the Kelvin sign, "ﬃ" and "ffi"), and the
query must occur as a contiguous run of code points. Nothing else is fuzzy: no accent stripping
("e" does not find "é"), no word boundaries, and `%`, `_`, `*`, quotes, backslashes, `AND`,
`NEAR`, ... are just characters. The empty query matches everything (the book's "no search").

Why the databases do not fold case themselves: they all can, and all differently.

- SQLite `LIKE` folds ASCII letters only ("É" != "é").
- SQLite FTS5's trigram tokenizer (`case_sensitive 0`) folds one code point to one code point with
  its own tables (no "ß" = "ss"), from whichever Unicode version that SQLite build embeds.
- PostgreSQL `ILIKE`/`lower()` use the C library's `towlower` for the database's LC_CTYPE, which
  changes with the locale and the glibc version of the server (and is ASCII-only under "C").

So the application computes `search_key(text)` once, when a thought is stored, into the indexed
column `thoughts.search_text`; a query is folded with the same function; and both databases only
answer an exact, case-sensitive substring question about that column, which they agree on:

- SQLite: an FTS5 table with `tokenize='trigram case_sensitive 1'` over `search_text` (external
  content, kept in sync by triggers). A quoted FTS5 phrase of the query's consecutive trigrams
  matches exactly where the query occurs; quoting makes every FTS5 operator a literal. FTS5
  reads the whole list of rows of every trigram it looks up, and a common trigram is in a
  large share of all thoughts: a thousand characters of common words took seconds (issue 14).
  So the index is asked about `MAX_TRIGRAMS` trigrams at most (the query's first and last few
  characters, `fts5_query`), and an exact `instr` test of `search_text` keeps only the rows
  that contain the whole query: the same rows, for a bounded cost.
- PostgreSQL: `search_text LIKE '%<query with % _ / escaped>%' ESCAPE '/'` served by a `pg_trgm`
  GIN index. The index narrows the candidates (pg_trgm lowercases internally, which can only add
  candidates, never lose them) and PostgreSQL rechecks every candidate with the exact LIKE.

Queries whose key is shorter than 3 code points have no trigram to look up; they are answered by
an `instr`/`strpos` filter walking the primary key in page order, which stops after one page.

The key depends on Python's Unicode tables. After an upgrade to a Python with a newer Unicode
version, recompute the stored keys (`UPDATE` through the application), or a few newly cased
characters will match only in their new folding.
"""

from __future__ import annotations

import unicodedata

# FTS5 trigram and pg_trgm both work on 3 code points: shorter keys cannot use the index.
TRIGRAM = 3


def search_key(value: str) -> str:
    """The form in which both stored text and queries are compared (see the module docstring)."""
    return unicodedata.normalize("NFC", value).casefold()


def matches(query: str, text: str) -> bool:
    """The reference definition of a search hit."""
    return search_key(query) in search_key(text)


def uses_index(key: str) -> bool:
    return len(key) >= TRIGRAM


# The most trigrams an FTS5 query looks up (see the module docstring). Each common one costs
# SQLite about 4 ms at 300,000 thoughts; eight keep the worst search to some tens of ms there.
MAX_TRIGRAMS = 8


def fts5_phrase(key: str) -> str:
    """An FTS5 query matching `key` literally: one double-quoted string, quotes doubled."""
    return '"' + key.replace('"', '""') + '"'


def fts5_query(key: str) -> str:
    """An FTS5 query that finds every thought containing `key` (and maybe others, which the exact
    `instr` test removes), looking up at most MAX_TRIGRAMS trigrams: the key as one phrase when
    short enough, else its first and last characters as two phrases."""
    longest = MAX_TRIGRAMS + TRIGRAM - 1  # code points of a phrase of MAX_TRIGRAMS trigrams
    if len(key) <= longest:
        return fts5_phrase(key)
    ends = MAX_TRIGRAMS // 2 + TRIGRAM - 1
    return f"{fts5_phrase(key[:ends])} AND {fts5_phrase(key[-ends:])}"


def trigrams_looked_up(fts_query: str) -> int:
    """How many trigrams an FTS5 query of `fts5_query` looks up (for tests and docs)."""
    phrases = fts_query.split('" AND "')
    return sum(
        max(0, len(phrase.strip('"').replace('""', '"')) - TRIGRAM + 1) for phrase in phrases
    )


LIKE_ESCAPE = "/"


def like_contains_pattern(key: str) -> str:
    """A LIKE pattern (with ESCAPE '/') matching any string that contains `key`."""
    escaped = key.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"
