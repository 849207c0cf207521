"""The site says only what it knows about a change (issue 14): after a timeout it cannot tell
whether the thought was saved, and says so; a repeat of the same form never posts twice.

The thoughts service is the real one (the session's local system), reached through a TCP proxy
that the test black-holes (testkit.faults.FaultProxy).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from testkit.faults import FaultProxy

NOTHING_CHANGED = "Nothing was changed"
POST_KEY = re.compile(r'name="post_key" value="([^"]+)"')


@pytest.fixture
def thoughts_proxy(backends) -> Iterator[FaultProxy]:
    target = urlsplit(backends.url("thoughts"))
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 80) as proxy:
        yield proxy


async def test_a_post_that_timed_out_is_not_confirmed_and_repeating_it_posts_once(
    start_frontend, forms, user, thoughts_proxy
):
    site = await start_frontend(
        thoughts_url=f"http://{thoughts_proxy.address}", http_timeout_seconds=0.5, http_retries=0
    )
    await forms.log_in(site, *user)
    home = await site.get("/")
    post_key = POST_KEY.search(home.text)
    assert post_key, "the page has no post key"
    form = {
        "text": "did this get saved?",
        "csrf_token": forms.csrf_token(home.text),
        "post_key": post_key.group(1),
    }

    thoughts_proxy.black_hole()
    unconfirmed = await site.post("/thoughts/", data=form)
    thoughts_proxy.restore()

    assert unconfirmed.status_code == 503
    assert unconfirmed.headers["retry-after"]
    assert "We could not confirm whether your thought was saved" in unconfirmed.text
    assert NOTHING_CHANGED not in unconfirmed.text
    assert "Try again" not in unconfirmed.text
    # The visitor sends the same form again (Back, then Post): one thought, however the first
    # attempt ended. (Through a site with the usual timeout: the first attempt, delivered by
    # now, may still hold the write lock.)
    patient = await start_frontend(thoughts_url=f"http://{thoughts_proxy.address}")
    patient.cookies = site.cookies
    again = await patient.post("/thoughts/", data=form)
    assert again.status_code == 303, again.text
    mine = await patient.get("/")
    assert mine.text.count("did this get saved?") == 1


async def test_the_page_after_a_successful_post_failing_does_not_say_nothing_changed(
    start_frontend, forms, user, thoughts_proxy
):
    site = await start_frontend(
        thoughts_url=f"http://{thoughts_proxy.address}", http_timeout_seconds=0.5, http_retries=0
    )
    await forms.log_in(site, *user)
    posted = await forms.submit(site, "/", "/thoughts/", {"text": "saved for sure"})
    assert posted.status_code == 303

    thoughts_proxy.black_hole()
    after = await site.get(posted.headers["location"])
    thoughts_proxy.restore()

    assert after.status_code == 503
    assert "Your thought is posted." in after.text
    assert NOTHING_CHANGED not in after.text


async def test_a_post_that_never_reached_the_service_changed_nothing(
    start_frontend, forms, user, thoughts_proxy
):
    site = await start_frontend(
        thoughts_url=f"http://{thoughts_proxy.address}", http_timeout_seconds=0.5, http_retries=0
    )
    await forms.log_in(site, *user)
    home = await site.get("/")
    thoughts_proxy.refuse()
    refused = await site.post(
        "/thoughts/", data={"text": "never sent", "csrf_token": forms.csrf_token(home.text)}
    )
    thoughts_proxy.restore()

    assert refused.status_code == 503
    assert NOTHING_CHANGED in refused.text
    assert "could not be reached" in refused.text
