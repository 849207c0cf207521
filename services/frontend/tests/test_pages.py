"""The pages against the real users and thoughts services: post, list, page, search, delete."""

from __future__ import annotations

import re
import uuid

import httpx

THOUGHT_ITEM = re.compile(r'<li class="thought" id="thought-(\d+)">')


def thought_ids(html: str) -> list[int]:
    return [int(match) for match in THOUGHT_ITEM.findall(html)]


def logged_in_as(html: str) -> str | None:
    match = re.search(r'<span class="who">.*?<strong><bdi>([^<]*)</bdi></strong>', html)
    return match.group(1) if match else None


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', html)
    assert match, f"no error shown for {field!r}"
    return match.group(1)


async def test_home_requires_login(frontend):
    response = await frontend.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_post_a_thought_and_see_it_newest_first(frontend, forms, user):
    await forms.log_in(frontend, *user)
    for text in ("first thought", "second thought"):
        posted = await forms.submit(frontend, "/", "/thoughts/", {"text": text})
        assert posted.status_code == 303
        assert posted.headers["location"] == "/"
    home = await frontend.get("/")
    assert home.status_code == 200
    assert logged_in_as(home.text) == user[0]
    assert "Your thought is posted." in home.text
    assert home.text.index("second thought") < home.text.index("first thought")
    # The flash message is shown once.
    assert "Your thought is posted." not in (await frontend.get("/")).text


async def test_author_names_are_bidi_isolated(frontend, forms, user):
    # A right-to-left name (Hebrew, Arabic) must not reorder the text around it (issue 14 #10).
    await forms.log_in(frontend, *user)
    await forms.submit(frontend, "/", "/thoughts/", {"text": "isolated author"})
    home = await frontend.get("/")
    assert f"<strong><bdi>{user[0]}</bdi></strong>" in home.text
    assert f"What are you thinking, <bdi>{user[0]}</bdi>?" in home.text
    found = await frontend.get("/search", params={"search": "isolated author"})
    assert f'<bdi class="author">{user[0]}</bdi>' in found.text


async def test_html_in_a_thought_is_shown_as_text(frontend, forms, user):
    await forms.log_in(frontend, *user)
    await forms.submit(frontend, "/", "/thoughts/", {"text": "<script>alert(1)</script>"})
    home = await frontend.get("/")
    assert "<script>alert(1)</script>" not in home.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in home.text


async def test_empty_thought_shows_the_error_next_to_the_field(frontend, forms, user):
    await forms.log_in(frontend, *user)
    response = await forms.submit(frontend, "/", "/thoughts/", {"text": "   "})
    assert response.status_code == 400
    assert "cannot be empty" in field_error(response.text, "text")
    assert 'aria-invalid="true"' in response.text


async def test_too_long_thought_keeps_the_text_and_says_how_long(frontend, forms, user):
    await forms.log_in(frontend, *user)
    text = "x" * 251
    response = await forms.submit(frontend, "/", "/thoughts/", {"text": text})
    assert response.status_code == 400
    assert "at most 250 characters; this one has 251" in field_error(response.text, "text")
    assert f">{text}</textarea>" in response.text


async def test_delete_my_thought(frontend, forms, user):
    await forms.log_in(frontend, *user)
    await forms.submit(frontend, "/", "/thoughts/", {"text": "short-lived"})
    home = await frontend.get("/")
    [thought_id] = thought_ids(home.text)
    deleted = await forms.submit(frontend, "/", f"/thoughts/{thought_id}/delete", {})
    assert deleted.status_code == 303
    home = await frontend.get("/")
    assert "The thought is deleted." in home.text
    assert "short-lived" not in home.text
    again = await forms.submit(frontend, "/", f"/thoughts/{thought_id}/delete", {})
    assert again.status_code == 303
    assert "That thought was already gone." in (await frontend.get("/")).text


async def test_home_pages_through_older_thoughts(start_frontend, forms, user):
    client = await start_frontend(page_size=2)
    await forms.log_in(client, *user)
    for number in range(5):
        await forms.submit(client, "/", "/thoughts/", {"text": f"thought number {number}"})
    seen: list[int] = []
    url: str | None = "/"
    pages = 0
    while url:
        page = await client.get(url)
        assert page.status_code == 200
        seen += thought_ids(page.text)
        pages += 1
        match = re.search(r'<a class="button quiet" href="([^"]+)" rel="next">', page.text)
        url = match.group(1).replace("&amp;", "&") if match else None
        if pages > 1:
            assert "Newest" in page.text
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == 5


async def test_a_mangled_page_link_starts_again_from_the_newest(frontend, forms, user):
    await forms.log_in(frontend, *user)
    response = await frontend.get("/?cursor=not-a-cursor")
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_search_works_without_login_and_keeps_the_query(start_frontend, forms, user):
    word = f"needle{uuid.uuid4().hex[:8]}"
    author = await start_frontend()
    await forms.log_in(author, *user)
    for number in range(3):
        await forms.submit(author, "/", "/thoughts/", {"text": f"a {word} number {number}"})

    visitor = await start_frontend(page_size=2)
    first = await visitor.get("/search", params={"search": word.upper()})
    assert first.status_code == 200
    assert f'value="{word.upper()}"' in first.text  # the query stays in the search box
    assert f"{word} number 2" in first.text
    assert f"{word} number 1" in first.text
    assert f"{word} number 0" not in first.text
    assert 'href="/login"' in first.text  # a visitor, offered to log in
    next_link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_link
    second = await visitor.get(next_link.group(1).replace("&amp;", "&"))
    assert f"{word} number 0" in second.text
    assert f'value="{word.upper()}"' in second.text


async def test_search_with_no_match_says_so(frontend):
    response = await frontend.get("/search", params={"search": f"nothing{uuid.uuid4().hex}"})
    assert response.status_code == 200
    assert "No thought matches" in response.text


async def test_too_long_search_shows_the_error_next_to_the_box(frontend):
    response = await frontend.get("/search", params={"search": "y" * 201})
    assert response.status_code == 400
    assert "at most 200 characters" in field_error(response.text, "search")


async def test_wrong_password_shows_the_error_next_to_the_field(frontend, forms, user):
    response = await forms.submit(
        frontend, "/login", "/login", {"username": user[0], "password": "wrong"}
    )
    assert response.status_code == 400
    assert field_error(response.text, "password") == "Wrong username or password."
    assert f'value="{user[0]}"' in response.text  # the username is kept, the password is not
    assert "mt_session" not in response.headers.get("set-cookie", "")


async def test_empty_login_fields_are_named(frontend, forms):
    response = await forms.submit(frontend, "/login", "/login", {"username": "", "password": ""})
    assert response.status_code == 400
    assert field_error(response.text, "username") == "Enter your username."
    assert field_error(response.text, "password") == "Enter your password."


async def test_throttled_login_says_how_long_to_wait(frontend, forms, user):
    # The users service under test allows 3 failures per username (devtools.testing).
    for _ in range(3):
        await forms.submit(frontend, "/login", "/login", {"username": user[0], "password": "no"})
    response = await forms.submit(
        frontend, "/login", "/login", {"username": user[0], "password": user[1]}
    )
    assert response.status_code == 429
    wait = int(response.headers["retry-after"])
    assert wait > 0
    message = field_error(response.text, "password")
    assert message.startswith("Too many failed logins. Try again in")
    assert str(wait) in message or str((wait + 59) // 60) in message


async def test_sign_up_logs_the_new_user_in(frontend, forms):
    username = f"new {uuid.uuid4().hex[:8]}"
    login_page = await frontend.get("/login")
    assert 'href="/signup"' in login_page.text  # the users service under test enables sign-up
    response = await forms.submit(
        frontend,
        "/signup",
        "/signup",
        {"username": username, "password": "long enough", "password_again": "long enough"},
    )
    assert response.status_code == 303
    home = await frontend.get("/")
    assert logged_in_as(home.text) == username
    assert "Welcome!" in home.text


async def test_sign_up_errors_are_shown_per_field(frontend, forms, user):
    short = await forms.submit(
        frontend, "/signup", "/signup", {"username": "a", "password": "short", "password_again": ""}
    )
    assert short.status_code == 400
    assert "at least 8 characters" in field_error(short.text, "password")
    differ = await forms.submit(
        frontend,
        "/signup",
        "/signup",
        {"username": "a", "password": "long enough", "password_again": "long enougH"},
    )
    assert "differ" in field_error(differ.text, "password_again")
    taken = await forms.submit(
        frontend,
        "/signup",
        "/signup",
        {"username": user[0], "password": "long enough", "password_again": "long enough"},
    )
    assert "taken" in field_error(taken.text, "username")


async def test_static_stylesheet_is_served(frontend):
    response = await frontend.get("/static/style.css")
    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]
    assert ".topbar" in response.text


async def test_operations_endpoints_come_from_the_kit(frontend):
    assert (await frontend.get("/healthz")).json() == {"status": "ok"}
    assert (await frontend.get("/readyz")).status_code == 200
    # Operations are on the internal port only, by default (issue 14 item 13): 9002.
    for path in ("/admin/version/", "/metrics", "/docs", "/openapi.json"):
        assert (await frontend.get(path)).status_code == 404, path
    internal = "http://frontend.test:9002"
    assert (await frontend.get(f"{internal}/admin/version/")).json()["version"] == "0.1.0"
    metrics = await frontend.get(f"{internal}/metrics")
    assert "http_requests_total" in metrics.text
    assert (await frontend.get(f"{internal}/")).status_code == 404  # no pages there


async def test_unknown_page_is_an_html_404(frontend):
    response = await frontend.get("/nowhere")
    assert response.status_code == 404
    assert "There is no page at this address." in response.text
    assert isinstance(response, httpx.Response)


async def test_whitespace_around_a_full_length_thought_does_not_count(frontend, forms, user):
    await forms.log_in(frontend, *user)
    text = "y" * 250
    response = await forms.submit(frontend, "/", "/thoughts/", {"text": f"  {text}\n"})
    assert response.status_code == 303
    assert f">{text}</p>" in (await frontend.get("/")).text


async def test_a_mangled_search_page_link_starts_the_search_again(frontend):
    response = await frontend.get("/search", params={"search": "a b", "cursor": "bad"})
    assert response.status_code == 303
    assert response.headers["location"] == "/search?search=a+b"
