"""The observability tests' system and session: all four services, one session of everything.

`ObservedSystem` runs thoughts, users, frontend and tasks as real processes (devtools.testing)
with an admin token, as compose and Kubernetes run them; `run_realistic_session` makes every
kind of call a day brings (sign-up, good, wrong and throttled logins, posts, searches by index
and by scan, tasks on shared and own lists, the web site's forms, logout, admin calls with the
right and a wrong token) and returns what it sent that must never be logged. The fixtures are in
tests/conftest.py; tests/test_logs_carry_no_secrets.py and tests/test_prometheus_queries.py use
them.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

import httpx

from devtools.testing import LocalSystem
from testkit import csrf_token

ALL_SERVICES = ("thoughts", "users", "frontend", "tasks")


@dataclass
class ObservedSystem:
    """All four services as real processes, admin routes behind a generated admin token."""

    system: LocalSystem
    admin_token: str

    def url(self, name: str) -> str:
        return self.system.url(name)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@dataclass
class SessionSecrets:
    """What one realistic session sent or received that must never reach a log line."""

    passwords: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    cookies: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.passwords, *self.tokens, *self.cookies]


def _password() -> str:
    # Unmistakable in a log line, and never a substring of anything else logged.
    return f"pw-{secrets.token_hex(12)}"


def run_realistic_session(observed: ObservedSystem) -> SessionSecrets:
    """Sign-up, logins (good, wrong, throttled), posts, searches, tasks, logout and admin calls,
    through the API and through the web site's forms; returns every secret it used."""
    found = SessionSecrets()
    users, thoughts, tasks = (observed.url(n) for n in ("users", "thoughts", "tasks"))
    alice, bob, carol = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("alice", "bob", "carol"))
    alice_pw, bob_pw, carol_pw, wrong_pw = _password(), _password(), _password(), _password()
    wrong_admin = secrets.token_urlsafe(24)
    found.passwords += [alice_pw, bob_pw, carol_pw, wrong_pw]
    found.tokens += [observed.admin_token, wrong_admin]

    def check(response: httpx.Response, *expected: int) -> httpx.Response:
        assert response.status_code in expected, (response.request.url, response.text[:300])
        found.request_ids.append(response.headers.get("x-request-id", ""))
        return response

    with httpx.Client(timeout=15) as api:
        # Admin: create an account, read versions, refuse a wrong admin token.
        created = check(
            api.post(
                f"{users}/admin/users/",
                json={"username": alice, "password": alice_pw},
                headers=observed.admin,
            ),
            201,
        )
        check(api.get(f"{thoughts}/admin/version/", headers=observed.admin), 200)
        check(
            api.get(f"{users}/admin/version/", headers={"Authorization": f"Bearer {wrong_admin}"}),
            401,
        )
        # Public sign-up, then logins through the API: good, wrong, unknown, throttled.
        check(api.post(f"{users}/api/users/", json={"username": bob, "password": bob_pw}), 201)
        login = check(
            api.post(f"{users}/api/login/", json={"username": alice, "password": alice_pw}), 200
        )
        token = login.json()["Authorized"].removeprefix("Bearer ")
        found.tokens.append(token)
        bearer = {"Authorization": f"Bearer {token}"}
        for _ in range(4):  # the 4th is throttled (3 failures per name in tests)
            check(
                api.post(f"{users}/api/login/", json={"username": bob, "password": wrong_pw}),
                401,
                429,
            )
        check(api.post(f"{users}/api/login/", json={"username": carol, "password": wrong_pw}), 401)
        check(api.get(f"{users}/api/me/", headers=bearer), 200)
        # Thoughts: post, read, search by the index and by a scan.
        text = f"observed thought {uuid.uuid4().hex}"
        posted = check(
            api.post(f"{thoughts}/api/me/thoughts/", json={"text": text}, headers=bearer), 201
        )
        check(api.get(f"{thoughts}/api/thoughts/{posted.json()['id']}/"), 200)
        check(api.get(f"{thoughts}/api/thoughts/", params={"search": text[-10:]}), 200)
        check(api.get(f"{thoughts}/api/thoughts/", params={"search": "ob"}), 200)
        check(api.get(f"{thoughts}/api/me/thoughts/", headers=bearer), 200)
        # Tasks: the shared list without a token, alice's own list with hers.
        check(api.post(f"{tasks}/task", content=b'{"task": "shared"}'), 200)
        check(api.post(f"{tasks}/task", json={"task": "mine"}, headers=bearer), 200)
        listed = check(api.get(f"{tasks}/tasks", headers=bearer), 200).json()["data"]
        check(
            api.put(f"{tasks}/task/{listed[0]['id']}", json={"task": "changed"}, headers=bearer),
            200,
        )
        check(api.put(f"{tasks}/task/{'0' * 24}", json={"task": "nobody"}), 200)
        check(api.delete(f"{tasks}/task/{listed[0]['id']}", headers=bearer), 200)
        check(api.post(f"{tasks}/tasks/delete"), 200)
        # Admin: delete the thought and the account made for this session's sign-up test.
        check(
            api.delete(f"{thoughts}/admin/thoughts/{posted.json()['id']}/", headers=observed.admin),
            200,
            204,
        )
        del created

    with httpx.Client(base_url=observed.url("frontend"), timeout=15) as site:
        # The web site: a wrong password, a login, a post, a search, logout, a sign-up form.
        page = check(site.get("/login"), 200)
        check(
            site.post(
                "/login",
                data={"username": alice, "password": wrong_pw, "csrf_token": csrf_token(page.text)},
            ),
            400,
            401,
        )
        page = check(site.get("/login"), 200)
        check(
            site.post(
                "/login",
                data={"username": alice, "password": alice_pw, "csrf_token": csrf_token(page.text)},
            ),
            303,
        )
        found.cookies += [value for value in site.cookies.values() if len(value) >= 8]
        home = check(site.get("/"), 200)
        check(
            site.post(
                "/thoughts/",
                data={"text": f"through the site {text}", "csrf_token": csrf_token(home.text)},
            ),
            303,
        )
        found.cookies += [value for value in site.cookies.values() if len(value) >= 8]
        check(site.get("/search", params={"search": text[-10:]}), 200)
        home = check(site.get("/"), 200)
        check(site.post("/logout", data={"csrf_token": csrf_token(home.text)}), 303)
        signup = check(site.get("/signup"), 200)
        check(
            site.post(
                "/signup",
                data={
                    "username": carol,
                    "password": carol_pw,
                    "password_again": carol_pw,
                    "csrf_token": csrf_token(signup.text),
                },
            ),
            303,
        )
        found.cookies += [value for value in site.cookies.values() if len(value) >= 8]
    found.cookies = sorted(set(found.cookies))
    return found
