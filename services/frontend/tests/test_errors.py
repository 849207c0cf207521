"""Errors that help: 503 pages naming the missing service, expired sessions, no tracebacks."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from testkit import free_port


class SlowHandler(BaseHTTPRequestHandler):
    """A backend that accepts connections and then takes far too long to answer."""

    def do_GET(self) -> None:
        time.sleep(2)
        # By now the frontend has timed out and closed the connection: the answer is written
        # into a closed socket, on purpose, and its BrokenPipeError is no news in the test log.
        with contextlib.suppress(ConnectionError):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"[]")

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def assert_helpful_503(response, service_words: str) -> None:
    assert response.status_code == 503
    assert "text/html" in response.headers["content-type"]
    assert service_words in response.text
    request_id = response.headers["x-request-id"]
    assert f"<code>{request_id}</code>" in response.text
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


async def test_a_stopped_thoughts_service_gives_a_503_page_with_the_request_id(
    start_frontend, forms, user
):
    client = await start_frontend(thoughts_url=f"http://127.0.0.1:{free_port()}")
    await forms.log_in(client, *user)
    response = await client.get("/")
    assert_helpful_503(response, "The thoughts service")
    assert "could not be reached" in response.text
    assert response.headers["retry-after"]
    # Search needs thoughts too; the login page needs only users and still works.
    assert_helpful_503(await client.get("/search?search=x"), "The thoughts service")
    assert (await client.get("/login")).status_code == 200


async def test_a_slow_backend_gives_a_503_page_in_bounded_time(start_frontend, slow_backend, forms):
    client = await start_frontend(users_url=slow_backend, http_timeout_seconds=0.3, http_retries=1)
    started = time.monotonic()
    form = await client.get("/login")
    assert time.monotonic() - started < 1.9
    assert form.status_code == 200  # the form still shows, and says logging in will not work
    assert "The accounts service is unavailable right now" in form.text
    started = time.monotonic()
    response = await client.post(
        "/login",
        data={"username": "u", "password": "p", "csrf_token": forms.csrf_token(form.text)},
    )
    assert time.monotonic() - started < 1.9
    assert_helpful_503(response, "The accounts service (users)")
    assert "did not answer in time" in response.text


async def test_a_quoted_request_id_is_the_one_in_the_page(start_frontend, forms):
    client = await start_frontend(users_url=f"http://127.0.0.1:{free_port()}")
    form = await client.get("/login")
    response = await client.post(
        "/login",
        data={"username": "u", "password": "p", "csrf_token": forms.csrf_token(form.text)},
        headers={"X-Request-ID": "support-case-42"},
    )
    assert_helpful_503(response, "The accounts service")
    assert "support-case-42" in response.text


async def test_every_page_but_login_and_signup_works_while_users_is_down(
    start_frontend, frontend, forms, user
):
    """Issue 14: the home page, a search with a session and the login form each asked the
    users service first, so all failed with 503 while it was down; tokens are verified offline
    by the backends, so only logging in and signing up need it."""
    await forms.log_in(frontend, *user)
    await forms.submit(frontend, "/", "/thoughts/", {"text": "before the outage"})
    down = await start_frontend(users_url=f"http://127.0.0.1:{free_port()}")
    down.cookies = frontend.cookies  # the same browser, now served while users is down

    home = await down.get("/")
    assert home.status_code == 200, home.text
    assert user[0] in home.text
    assert "before the outage" in home.text
    posted = await forms.submit(down, "/", "/thoughts/", {"text": "during the outage"})
    assert posted.status_code == 303, posted.text
    assert "during the outage" in (await down.get("/")).text
    search = await down.get("/search", params={"search": "the outage"})
    assert search.status_code == 200, search.text
    assert f"<strong><bdi>{user[0]}</bdi></strong>" in search.text  # still logged in
    login = await down.get("/login")
    assert login.status_code == 200
    assert "The accounts service is unavailable right now" in login.text
    assert 'href="/signup"' not in login.text
    assert_helpful_503(await down.get("/signup"), "The accounts service")
    # Logging out cannot revoke the token now, but the browser's session ends all the same.
    logout = await forms.submit(down, "/", "/logout", {})
    assert logout.status_code == 303
    assert "mt_session=" in logout.headers["set-cookie"]


async def test_an_expired_session_goes_to_the_login_page_with_a_message(
    frontend, forms, user, users_signer
):
    await forms.log_in(frontend, *user)
    # A token signed with the users service's own key, but whose time is up.
    expired = users_signer.sign(user[0], exp=int(time.time()) - 600)
    frontend.cookies.set("mt_session", expired, domain="frontend.test")
    response = await frontend.get("/?cursor=AAAAAAAAAAE")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/%3Fcursor%3DAAAAAAAAAAE"
    assert "mt_session=" in response.headers["set-cookie"]
    login = await frontend.get(response.headers["location"])
    assert "Your session has expired. Please log in again." in login.text
    assert 'name="next" value="/?cursor=AAAAAAAAAAE"' in login.text
    assert frontend.cookies.get("mt_session") is None


async def test_an_expired_session_on_a_form_post_also_goes_to_login(
    frontend, forms, user, users_signer
):
    await forms.log_in(frontend, *user)
    expired = users_signer.sign(user[0], exp=int(time.time()) - 600)
    # The token runs out while the page with the form is open: the form's CSRF token was made
    # for the session cookie the browser still holds.
    frontend.cookies.set("mt_session", expired, domain="frontend.test")
    page = await frontend.get("/login")
    response = await frontend.post(
        "/thoughts/", data={"text": "too late", "csrf_token": forms.csrf_token(page.text)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "Your session has expired" in (await frontend.get("/login")).text


async def test_a_public_page_forgets_an_expired_session_quietly(
    frontend, forms, user, users_signer
):
    expired = users_signer.sign(user[0], exp=int(time.time()) - 600)
    frontend.cookies.set("mt_session", expired, domain="frontend.test")
    response = await frontend.get("/search")
    assert response.status_code == 200
    assert 'href="/login"' in response.text
    assert frontend.cookies.get("mt_session") is None
