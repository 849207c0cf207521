"""The services together, over HTTP: accounts, tokens verified through JWKS, the HTML site."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx

from devtools.seed import seed_demo
from testkit import csrf_token


def log_in_through_the_site(site: httpx.Client, username: str, password: str) -> None:
    page = site.get("/login")
    response = site.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_token(page.text)},
    )
    assert response.status_code == 303, response.text


def test_a_token_from_users_posts_in_thoughts_and_the_site_shows_it(system):
    username, password = f"Mary O'Neil {uuid.uuid4().hex[:6]}", "s3cret-pass"
    created = httpx.post(
        f"{system.url('users')}/admin/users/", json={"username": username, "password": password}
    )
    assert created.status_code == 201
    token = system.login_token(username, password)

    # thoughts verifies the token with the keys it fetched from users' JWKS URL.
    text = f"posted through the API {uuid.uuid4().hex}"
    posted = httpx.post(
        f"{system.url('thoughts')}/api/me/thoughts/",
        json={"text": text},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["username"] == username
    assert "AUTH_JWKS_URL" in system.processes["thoughts"].env

    with httpx.Client(base_url=system.url("frontend")) as site:
        log_in_through_the_site(site, username, password)
        home = site.get("/")
        assert home.status_code == 200
        assert text in home.text
        assert "Mary O&#39;Neil" in home.text
    # Everybody can find it, without logging in.
    found = httpx.get(f"{system.url('frontend')}/search", params={"search": text[-12:]})
    assert text in found.text


def test_the_demo_users_are_seeded_once(system):
    again = seed_demo(system.url("users"), system.url("thoughts"), say=lambda _line: None)
    assert again == {"bruce": 0, "stephen": 0}
    token = system.login_token("bruce", "bruce")
    mine = httpx.get(
        f"{system.url('thoughts')}/api/me/thoughts/",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert len(mine.json()) >= 4


def log_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def test_one_request_id_follows_a_click_through_every_service(system):
    with httpx.Client(base_url=system.url("frontend")) as site:
        login_id = f"login-{uuid.uuid4().hex}"
        page = site.get("/login")
        logged_in = site.post(
            "/login",
            data={
                "username": "stephen",
                "password": "stephen",
                "csrf_token": csrf_token(page.text),
            },
            headers={"X-Request-ID": login_id},
        )
        assert logged_in.status_code == 303, logged_in.text
        request_id = f"click-{uuid.uuid4().hex}"
        home = site.get("/", headers={"X-Request-ID": request_id})
        assert home.status_code == 200
        assert home.headers["x-request-id"] == request_id
        # Without a request id from the client, the frontend makes one and passes it on.
        searched = site.get("/search", params={"search": "JWKS"})
        generated = searched.headers["x-request-id"]

    # Pages other than login and sign-up do not call the users service (issue 14).
    for rid, expected in [
        (login_id, {"frontend": "/login", "users": "/api/login/"}),
        (request_id, {"frontend": "/", "thoughts": "/api/me/thoughts/"}),
        (generated, {"frontend": "/search", "thoughts": "/api/thoughts/"}),
    ]:
        for service, route in expected.items():
            records = access_records(system, service, rid, route)
            assert records, f"{service} has no access log line for {route} with {rid}"
            assert all(r["service"] == service for r in records)


def access_records(system, service: str, request_id: str, route: str) -> list[dict[str, Any]]:
    """The service's access log lines for one request; a server writes its access line just
    after sending the response, so give it a moment."""
    deadline = time.monotonic() + 5
    while True:
        records = [
            r
            for r in log_records(system.logs(service))
            if r.get("request_id") == request_id
            and r.get("logger") == "servicekit.access"
            and r.get("route") == route
        ]
        if records or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_tokens_never_reach_the_logs_or_urls(system):
    with httpx.Client(base_url=system.url("frontend")) as site:
        log_in_through_the_site(site, "bruce", "bruce")
        session = site.cookies.get("mt_session")
        assert session
        home = site.get("/")
        assert session not in home.text
    for service in ("frontend", "users", "thoughts"):
        assert session not in system.logs(service)
        assert "bruce" not in [r.get("password") for r in log_records(system.logs(service))]


def test_a_token_from_users_owns_a_task_list_in_tasks(system):
    username, password = f"tasker {uuid.uuid4().hex[:6]}", "s3cret-pass"
    system.create_user(username, password)
    auth = {"Authorization": f"Bearer {system.login_token(username, password)}"}
    tasks = system.url("tasks")
    text = f"buy milk {uuid.uuid4().hex}"

    # tasks verifies the token with the keys it fetched from users' JWKS URL: the task lands on
    # this user's own list, not on the shared list anonymous clients see.
    saved = httpx.post(f"{tasks}/task", content=json.dumps({"task": text}), headers=auth)
    assert saved.json() == {"message": "Task saved successfully!"}

    def listed(**headers: str) -> list[str]:
        listing = httpx.get(f"{tasks}/tasks", headers=headers).json()["data"]
        return [task["task"] for task in listing]

    assert text in listed(**auth)
    assert text not in listed()

    forged = {"Authorization": "Bearer " + auth["Authorization"].split()[1][:-4] + "AAAA"}
    assert httpx.get(f"{tasks}/tasks", headers=forged).status_code == 401
