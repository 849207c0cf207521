"""Access tokens for the tests of the packages that verify them (thoughts, tasks, the frontend).

Signing is the users service's job (users_service.signing), and no test suite imports another
service's code (tests/test_package_dependencies.py): the suites sign their tokens here, with an
RSA key made at test time (never committed), shaped as the users service issues them (RS256,
`kid` header, the username, issuer and audience claims the verifiers check).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "mythoughts-users"
AUDIENCE = "mythoughts"
# A key folder's file names, as the users service writes them (JWT_KEYS_DIR) and the verifiers
# read them (AUTH_PUBLIC_KEYS_DIR).
PRIVATE_SUFFIX = ".key.pem"
PUBLIC_SUFFIX = ".pub.pem"


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class TokenSigner:
    """Signs tokens with `key` under the key id `kid`."""

    key: rsa.RSAPrivateKey
    kid: str
    issuer: str = ISSUER
    audience: str = AUDIENCE

    @classmethod
    def generate(cls, kid: str = "test-key") -> TokenSigner:
        return cls(generate_private_key(), kid)

    @classmethod
    def from_keys_dir(cls, keys_dir: Path) -> TokenSigner:
        """The signing key of a running users service (its JWT_KEYS_DIR holds exactly one
        private key): tokens the service could have issued itself."""
        (path,) = keys_dir.glob(f"*{PRIVATE_SUFFIX}")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey), f"{path} is not an RSA private key"
        return cls(key, path.name.removesuffix(PRIVATE_SUFFIX))

    def write_public_key(self, keys_dir: Path) -> Path:
        """Writes `<kid>.pub.pem` into `keys_dir` (a verifier's AUTH_PUBLIC_KEYS_DIR)."""
        keys_dir.mkdir(parents=True, exist_ok=True)
        path = keys_dir / f"{self.kid}{PUBLIC_SUFFIX}"
        path.write_bytes(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return path

    def sign(
        self,
        username: str,
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        without: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """A token for `username`, valid for ten minutes; `claims` override or add claims,
        `without` leaves some out, `key`/`kid` sign with another key or name another key id."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "username": username,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        for name in without:
            del payload[name]
        return jwt.encode(
            payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    def bearer(self, username: str) -> dict[str, str]:
        """The Authorization header of a valid token for `username`."""
        return {"Authorization": f"Bearer {self.sign(username)}"}
