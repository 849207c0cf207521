"""Sessions and CSRF: cookie flags, tokens bound to the session, refused forged forms."""

from __future__ import annotations

from http.cookies import SimpleCookie

from frontend_service.csrf import CsrfSigner


def cookie_attributes(set_cookie_headers: list[str], name: str) -> dict[str, str | bool]:
    for header in set_cookie_headers:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            morsel = jar[name]
            attributes: dict[str, str | bool] = {"value": morsel.value}
            lowered = header.lower()
            attributes["httponly"] = "httponly" in lowered
            attributes["secure"] = "; secure" in lowered
            attributes["samesite"] = str(morsel["samesite"]).lower()
            attributes["path"] = str(morsel["path"])
            attributes["max-age"] = str(morsel["max-age"])
            return attributes
    raise AssertionError(f"no Set-Cookie for {name} in {set_cookie_headers}")


async def test_login_sets_an_httponly_lax_secure_session_cookie(start_frontend, forms, user):
    client = await start_frontend(cookie_secure=True)
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={"username": user[0], "password": user[1], "csrf_token": forms.csrf_token(page.text)},
    )
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    session = cookie_attributes(cookies, "__Host-mt_session")
    assert session["httponly"] is True
    assert session["secure"] is True
    assert session["samesite"] == "lax"
    assert session["path"] == "/"
    # The cookie lives a little longer than the token, so an expired token can be recognised.
    assert 3600 < int(str(session["max-age"])) <= 3600 + 13 * 3600
    csrf = cookie_attributes(cookies, "__Host-mt_csrf")
    assert csrf["httponly"] is True
    assert csrf["secure"] is True
    # The token never appears in a URL: the redirect goes to a plain path.
    assert response.headers["location"] == "/"
    home = await client.get("/")
    assert home.status_code == 200
    assert str(session["value"]) not in home.text


async def test_local_http_cookies_are_not_secure(frontend, forms, user):
    page = await frontend.get("/login")
    response = await frontend.post(
        "/login",
        data={"username": user[0], "password": user[1], "csrf_token": forms.csrf_token(page.text)},
    )
    session = cookie_attributes(response.headers.get_list("set-cookie"), "mt_session")
    assert session["secure"] is False
    assert session["httponly"] is True
    assert session["samesite"] == "lax"


async def test_a_post_without_csrf_token_is_refused(frontend, user):
    await frontend.get("/login")  # the visitor has a CSRF cookie, but the form has no token
    response = await frontend.post("/login", data={"username": user[0], "password": user[1]})
    assert response.status_code == 403
    assert "Form expired" in response.text
    assert "text/html" in response.headers["content-type"]
    assert "mt_session" not in response.headers.get("set-cookie", "")


async def test_a_post_without_csrf_cookie_is_refused(start_frontend, forms, user):
    # A forged form from another site: a token copied from somebody's page, but the victim's
    # browser does not have the cookie it belongs to.
    first = await start_frontend()
    token = forms.csrf_token((await first.get("/login")).text)
    victim = await start_frontend()
    response = await victim.post(
        "/login", data={"username": user[0], "password": user[1], "csrf_token": token}
    )
    assert response.status_code == 403


async def test_every_state_changing_form_checks_the_token(frontend, forms, user):
    await forms.log_in(frontend, *user)
    for action, data in [
        ("/thoughts/", {"text": "forged"}),
        ("/thoughts/1/delete", {}),
        ("/logout", {}),
        ("/signup", {"username": "x", "password": "12345678", "password_again": "12345678"}),
    ]:
        refused = await frontend.post(action, data={**data, "csrf_token": "forged"})
        assert refused.status_code == 403, action
    mine = await frontend.get("/")
    assert "forged" not in mine.text


async def test_a_token_from_before_login_is_worthless_after_it(frontend, forms, user):
    anonymous_page = await frontend.get("/login")
    old_token = forms.csrf_token(anonymous_page.text)
    await forms.log_in(frontend, *user)
    response = await frontend.post("/thoughts/", data={"text": "hi", "csrf_token": old_token})
    assert response.status_code == 403


async def test_json_bodies_cannot_skip_the_check(frontend, forms, user):
    await forms.log_in(frontend, *user)
    response = await frontend.post("/thoughts/", json={"text": "sneaky"})
    assert response.status_code == 403


def test_csrf_tokens_are_bound_to_nonce_session_and_key():
    signer = CsrfSigner("k" * 40)
    token = signer.token("nonce", "session-a")
    assert signer.is_valid(token, "nonce", "session-a")
    assert not signer.is_valid(token, "nonce", "session-b")
    assert not signer.is_valid(token, "other-nonce", "session-a")
    assert not signer.is_valid(token, "nonce", None)
    assert not CsrfSigner("x" * 40).is_valid(token, "nonce", "session-a")
    assert not signer.is_valid(None, "nonce", "session-a")
    assert not signer.is_valid(token, None, "session-a")
    assert "session-a" not in token


async def test_pages_carry_security_headers_and_are_not_cached(frontend):
    response = await frontend.get("/login")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_login_redirects_only_to_local_paths(frontend, forms, user):
    page = await frontend.get("/login?next=//evil.example/x")
    assert 'name="next" value="/"' in page.text
    response = await frontend.post(
        "/login",
        data={
            "username": user[0],
            "password": user[1],
            "next": "https://evil.example/",
            "csrf_token": forms.csrf_token(page.text),
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_login_returns_to_the_page_that_asked(frontend, forms, user):
    page = await frontend.get("/login?next=/search%3Fsearch%3Dabc")
    response = await frontend.post(
        "/login",
        data={
            "username": user[0],
            "password": user[1],
            "next": "/search?search=abc",
            "csrf_token": forms.csrf_token(page.text),
        },
    )
    assert response.headers["location"] == "/search?search=abc"


async def test_logout_forgets_the_session(frontend, forms, user):
    await forms.log_in(frontend, *user)
    response = await forms.submit(frontend, "/", "/logout", {})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert 'mt_session=""' in response.headers["set-cookie"] or "Max-Age=0" in str(
        response.headers.get_list("set-cookie")
    )
    login_page = await frontend.get("/login")
    assert "You have logged out." in login_page.text
    home = await frontend.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/login"
