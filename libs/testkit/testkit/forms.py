"""The frontend's forms as a client that is not a browser fills them in: every form that changes
state carries the CSRF token of the page it came from (frontend_service.csrf)."""

from __future__ import annotations

import re

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the page's form; AssertionError, with the page's start, when it has
    none (a page that is not the one expected: an error page, the login page)."""
    match = CSRF_INPUT.search(html)
    assert match, f"the page has no CSRF token:\n{html[:500]}"
    return match.group(1)
