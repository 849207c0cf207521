"""Demo data for local runs: the book's users `bruce` and `stephen`, with a few thoughts each.

Seeded through the services' own HTTP APIs, as any client would (no service's database is touched
from outside), and idempotent: an existing user is kept, and thoughts are added only to a user
who has none. The passwords equal the user names: local use only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import httpx

DEMO_THOUGHTS: dict[str, tuple[str, ...]] = {
    "bruce": (
        "Splitting the monolith one endpoint at a time, behind the load balancer.",
        "Backward compatibility is a feature: old clients must never notice the migration.",
        "Every service gets its own database. No peeking into each other's tables!",
        "Logs are JSON now, and one request id follows a click through every service.",
    ),
    "stephen": (
        "Containers make 'works on my machine' a thing of the past.",
        "A readiness probe that checks the database saved us from a bad deploy today.",
        "Rotating the token signing key without logging anybody out: JWKS for the win.",
    ),
}

Say = Callable[[str], None]


def wait_until_ready(urls: Iterable[str], timeout: float = 60.0, interval: float = 0.25) -> None:
    """Waits for every service's /readyz, or raises TimeoutError naming the ones not ready."""
    pending = list(urls)
    deadline = time.monotonic() + timeout
    while pending:
        for url in list(pending):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    pending.remove(url)
            except httpx.HTTPError:
                pass
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
        time.sleep(interval)


def seed_demo(
    users_url: str,
    thoughts_url: str,
    say: Say = print,
    demo: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, int]:
    """Creates the demo users and their thoughts when missing; {username: thoughts added}."""
    added: dict[str, int] = {}
    with httpx.Client(timeout=10) as client:
        for username, thoughts in (demo or DEMO_THOUGHTS).items():
            password = username
            created = client.post(
                f"{users_url}/admin/users/", json={"username": username, "password": password}
            )
            if created.status_code not in (201, 409):
                created.raise_for_status()
            login = client.post(
                f"{users_url}/api/login/", json={"username": username, "password": password}
            )
            login.raise_for_status()
            auth = {"Authorization": login.json()["Authorized"]}
            mine = client.get(f"{thoughts_url}/api/me/thoughts/", params={"limit": 1}, headers=auth)
            mine.raise_for_status()
            added[username] = 0
            if not mine.json():
                for text in thoughts:
                    client.post(
                        f"{thoughts_url}/api/me/thoughts/", json={"text": text}, headers=auth
                    ).raise_for_status()
                    added[username] += 1
            user_state = "created" if created.status_code == 201 else "exists"
            say(
                f"demo user {username!r} {user_state} (password {password!r}); "
                f"{added[username]} thought(s) added"
            )
    return added
