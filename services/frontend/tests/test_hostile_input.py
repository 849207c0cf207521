"""Hostile input to the pages (issue 14 item 13): a clear page, never a 500 nor an "unavailable"
page for what is the visitor's mistake."""

from __future__ import annotations

import base64
import json
import time

import pytest

MAX_ID = 2**63 - 1


def _claims(**claims) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


# A readable, unexpired payload, so that the page goes on to call a backend with the "token".
READABLE = _claims(username="bruce", exp=int(time.time()) + 3600)


@pytest.mark.parametrize("path", ["/", "/search?search=coffee", "/login", "/thoughts/"])
# Named ids: the payload's expiry comes from the clock, and xdist's workers must collect the
# same test names however long apart they collect.
@pytest.mark.parametrize(
    "token",
    ["caf\u00e9.\u2603.token", f"eyJhbGciOiJSUzI1NiJ9.{READABLE}.sign\u00e9ture"],
    ids=["non-ascii-garbage", "readable-payload-non-ascii-signature"],
)
async def test_a_non_ascii_session_cookie_is_no_session(frontend, path, token):
    """A browser sends whatever bytes a cookie was set to; no token of ours is anything but
    ASCII, so such a cookie is no session at all (it cannot go into an Authorization header)."""
    cookie = f"mt_session={token}".encode()
    if path == "/thoughts/":
        response = await frontend.post(path, headers={"cookie": cookie}, data={"text": "hi"})
        assert response.status_code in (303, 403), response.text
        return
    response = await frontend.get(path, headers={"cookie": cookie})
    assert response.status_code in (200, 303), response.text
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login")


@pytest.mark.parametrize("thought_id", [str(MAX_ID + 1), "99999999999999999999999", "0", "-3"])
async def test_an_out_of_range_id_in_the_delete_form_is_not_an_outage(
    frontend, forms, user, thought_id
):
    await forms.log_in(frontend, *user)
    response = await forms.submit(frontend, "/", f"/thoughts/{thought_id}/delete", {})
    assert response.status_code != 503, response.text
    assert "unavailable" not in response.text.lower()
    # The form's address names no thought: the page says the request was not understood.
    assert response.status_code == 400, response.text


THUMB = "\U0001f44d\U0001f3fd"  # one character as a reader counts it; 4 UTF-16 units


async def test_the_form_counts_a_thoughts_characters_as_the_api_does(frontend, forms, user):
    """A browser's maxlength counts UTF-16 units (it cut 250 such emoji at 62); the limit is
    250 user-perceived characters on both sides, and the form says so after counting."""
    await forms.log_in(frontend, *user)
    home = await frontend.get("/")
    assert "maxlength" not in home.text.split('<textarea id="text"')[1].split(">")[0]

    posted = await forms.submit(frontend, "/", "/thoughts/", {"text": THUMB * 250})
    assert posted.status_code == 303, posted.text
    assert THUMB * 250 in (await frontend.get("/")).text

    refused = await forms.submit(frontend, "/", "/thoughts/", {"text": THUMB * 251})
    assert refused.status_code == 400
    assert "at most 250 characters; this one has 251" in refused.text


async def test_the_form_refuses_a_thought_of_only_invisible_characters(frontend, forms, user):
    await forms.log_in(frontend, *user)
    refused = await forms.submit(frontend, "/", "/thoughts/", {"text": "\ufeff\u200b"})
    assert refused.status_code == 400
    assert "invisible" in refused.text


async def test_a_pasted_text_of_thousands_of_characters_says_how_long_it_is(frontend, forms, user):
    """The textarea has no maxlength (it would count UTF-16 units): before, a text of more than
    10,000 characters got "The address or form was not understood", and the draft was lost."""
    await forms.log_in(frontend, *user)
    response = await forms.submit(frontend, "/", "/thoughts/", {"text": "x" * 20_000})
    assert response.status_code == 400, response.text
    assert "at most 250 characters; this one has 20000" in response.text


async def test_a_form_over_the_size_limit_is_a_page_not_json(frontend, forms, user):
    """The kit refuses a body over 64 KiB before reading it: the site answers with a page that
    says so (before: the API's problem+json, shown to the visitor as raw JSON)."""
    await forms.log_in(frontend, *user)
    response = await forms.submit(frontend, "/", "/thoughts/", {"text": "x" * 70_000})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "too large" in response.text
    assert "250 characters" in response.text
