"""The metric names a PromQL expression reads, for checking them against what services export.

Prometheus 2.42 (Debian's) has no `/api/v1/parse_query`, so this is a small tokenizer that knows
PromQL's lexical parts: it removes string literals, label matchers `{...}`, ranges and subqueries
`[...]`, the label lists of `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`, durations
and numbers; what is left that is an identifier, not a keyword and not followed by `(` (a
function or an aggregation) is a metric name. Grafana's `$__rate_interval`-style variables sit
inside `[...]` and go with them. Whether the expression parses at all is Prometheus's to say
(tests/test_prometheus_queries.py sends every expression to a real one).
"""

from __future__ import annotations

import re

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_NUMBERS = re.compile(
    r"(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?"
    r"(?:\d+(?:ms|[smhdwy]))*)"
)
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Binary operators, modifiers and literals that look like identifiers.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "atan2", "bool", "offset", "inf", "nan", "by", "without", "on"}
    | {"ignoring", "group_left", "group_right"}
)


def metric_names(expr: str) -> set[str]:
    text = _STRINGS.sub(" ", expr)
    # Innermost first, until none is left (a subquery holds a range holds nothing nested, but
    # label matchers may sit inside a subquery's expression).
    for pattern in (_MATCHERS, _RANGES, _LABEL_LISTS):
        previous = None
        while previous != text:
            previous, text = text, pattern.sub(" ", text)
    text = _NUMBERS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        if word.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names
