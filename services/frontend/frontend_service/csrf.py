"""CSRF protection: a signed double-submit token bound to the session.

Every visitor gets a random nonce in a cookie. Each form carries a token that is an HMAC, under the
frontend's secret key, of that nonce *and* of the session it was rendered for. A POST is accepted
only when the token in the form matches the one computed from the cookies that came with it.

- Another site cannot read our pages, so it cannot know the token to put in a forged form.
- An attacker who manages to plant cookies (e.g. from a sibling subdomain) still cannot mint a
  token without the secret key.
- A token rendered for one session is worthless in another (e.g. after logging in or out), because
  the session is part of what is signed.

Only a hash of the session token enters the HMAC; the session token itself never appears in a page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

CSRF_FIELD = "csrf_token"


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


class CsrfSigner:
    def __init__(self, secret_key: str) -> None:
        # A derived key, so the secret is never used directly for more than one purpose.
        self._key = hashlib.sha256(b"mythoughts-frontend-csrf\0" + secret_key.encode()).digest()

    def token(self, nonce: str, session: str | None) -> str:
        session_hash = hashlib.sha256((session or "").encode()).hexdigest()
        message = f"{nonce}\0{session_hash}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def is_valid(self, token: str | None, nonce: str | None, session: str | None) -> bool:
        if not token or not nonce:
            return False
        return hmac.compare_digest(token.encode(), self.token(nonce, session).encode())
