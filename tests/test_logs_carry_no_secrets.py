"""No log line carries a password, a token or a cookie value.

One realistic session (tests/conftest.py: sign-up, good, wrong and throttled logins, posts,
searches, tasks, the web site's forms, logout, admin calls with the right and a wrong admin
token) runs against the four real service processes; then every line every service logged is
searched for every secret the session sent or received.
"""

from __future__ import annotations

import json

from devtools.observed import ALL_SERVICES, ObservedSystem, SessionSecrets
from devtools.pytest_plugin import JWT
from devtools.testing import LocalSystem


def test_no_log_line_carries_a_password_token_or_cookie(
    observed_system: ObservedSystem, realistic_session: SessionSecrets
) -> None:
    secrets = realistic_session.all()
    assert len(realistic_session.passwords) == 4
    assert len(realistic_session.tokens) == 3  # the admin token, a wrong one, a session token
    assert len(realistic_session.cookies) >= 2  # the session and CSRF cookies at least
    lines = [
        (name, line)
        for name in ALL_SERVICES
        for line in observed_system.system.logs(name).splitlines()
    ]
    # The logs are there to be searched: every request of the session was logged, by id.
    logged_ids = {json.loads(line).get("request_id") for _, line in lines if line.startswith("{")}
    missing = [rid for rid in realistic_session.request_ids if rid and rid not in logged_ids]
    assert not missing, f"requests of the session missing from the logs: {missing[:5]}"
    leaks = [
        (name, secret[:6] + "...", line[:200])
        for name, line in lines
        for secret in secrets
        if secret in line
    ]
    assert not leaks, leaks
    # JWTs have a recognisable shape: none at all in any line, whichever session made it.
    assert not [line for _, line in lines if '"eyJ' in line or " eyJ" in line or "=eyJ" in line]


def test_the_end_of_session_check_recognises_every_token(system: LocalSystem) -> None:
    # devtools.pytest_plugin searches every service's log of the whole run with this pattern
    # when the session ends: it must see a real token, as a header value or a cookie, and
    # nothing else the logs are full of.
    token = system.login_token("bruce", "bruce").removeprefix("Bearer ")
    for line in (f"Authorization: Bearer {token}", f"session={token}; Path=/", token):
        assert JWT.search(line), line
    assert not JWT.search('{"request_id":"7f3c2a9b","trace_id":"0af7651916cd43dd8448eb211c80319c"}')
