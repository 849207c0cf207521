"""The signing side of tokens: only the users service holds private keys (docs/architecture.md).

Key rotation (the book's chapter 11): the keys folder holds several keys, one of which signs
(`JWT_SIGNING_KID`); every key, including retired public-only ones, is published in the JWKS so
that tokens signed before a rotation stay valid until they expire.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mythoughts_auth import ALGORITHM, KeySet, public_jwk
from servicekit.settings import ConfigError

PRIVATE_SUFFIX = ".key.pem"
PUBLIC_SUFFIX = ".pub.pem"


@dataclass(frozen=True)
class SigningKeys:
    signing_kid: str
    private_key: rsa.RSAPrivateKey
    public_keys: dict[str, rsa.RSAPublicKey]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(kid, key) for kid, key in sorted(self.public_keys.items())]}

    def key_set(self) -> KeySet:
        return KeySet(dict(self.public_keys))

    def issue(self, username: str, *, issuer: str, audience: str | None, ttl_seconds: int) -> str:
        """A signed token. ``audience=None`` is the legacy form (LEGACY_COMPATIBILITY):
        the book's verifiers (PyJWT without an audience) refuse any ``aud``, and raise an
        uncaught error for an ``nbf`` that a slightly slower clock sees in the future, so such
        a token carries neither."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "username": username,
            "sub": username,
            "iss": issuer,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_hex(8),
        }
        if audience is not None:
            claims["aud"] = audience
            claims["nbf"] = now
        return jwt.encode(
            claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.signing_kid}
        )


LEGACY_KID = "legacy"


def load_signing_keys(
    keys_dir: Path, signing_kid: str | None, legacy_key_file: Path | None = None
) -> SigningKeys:
    """The keys of JWT_KEYS_DIR, plus, when ``legacy_key_file`` is given, the book's private key
    (its PEM file as the book's users service reads it, PKCS#1 or PKCS#8) as kid ``legacy``,
    which then signs unless ``signing_kid`` says otherwise: a users service that signs with the
    book's key makes tokens that the book's services verify with their own public key file."""
    private: dict[str, rsa.RSAPrivateKey] = {}
    public: dict[str, rsa.RSAPublicKey] = {}
    if legacy_key_file is not None:
        private[LEGACY_KID] = _load_private_key(legacy_key_file)
        public[LEGACY_KID] = private[LEGACY_KID].public_key()
        signing_kid = signing_kid or LEGACY_KID
        if not keys_dir.is_dir():
            return _chosen(keys_dir, signing_kid, private, public)
    if not keys_dir.is_dir():
        raise ConfigError(
            f"configuration error: JWT_KEYS_DIR {str(keys_dir)!r} does not exist; "
            "create a key with `python -m users_service keys generate`"
        )
    for path in sorted(keys_dir.iterdir()):
        if path.name.endswith(PRIVATE_SUFFIX):
            kid = path.name[: -len(PRIVATE_SUFFIX)]
            private[kid] = _load_private_key(path)
            public[kid] = private[kid].public_key()
        elif path.name.endswith(PUBLIC_SUFFIX):
            kid = path.name[: -len(PUBLIC_SUFFIX)]
            pub = serialization.load_pem_public_key(path.read_bytes())
            if not isinstance(pub, rsa.RSAPublicKey):
                raise ConfigError(f"configuration error: {path} is not an RSA public key")
            public.setdefault(kid, pub)
    return _chosen(keys_dir, signing_kid, private, public)


def _load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"configuration error: cannot read private key {path}: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"configuration error: {path} is not an RSA private key")
    return key


def _chosen(
    keys_dir: Path,
    signing_kid: str | None,
    private: dict[str, rsa.RSAPrivateKey],
    public: dict[str, rsa.RSAPublicKey],
) -> SigningKeys:
    if not private:
        raise ConfigError(
            f"configuration error: no private key (*{PRIVATE_SUFFIX}) in {keys_dir}; "
            "create one with `python -m users_service keys generate`"
        )
    if signing_kid is None:
        if len(private) > 1:
            raise ConfigError(
                "configuration error: several private keys in "
                f"{keys_dir} ({', '.join(sorted(private))}); set JWT_SIGNING_KID to the one "
                "that signs"
            )
        signing_kid = next(iter(private))
    if signing_kid not in private:
        raise ConfigError(
            f"configuration error: JWT_SIGNING_KID={signing_kid!r} has no private key "
            f"{signing_kid}{PRIVATE_SUFFIX} in {keys_dir}"
        )
    return SigningKeys(signing_kid, private[signing_kid], public)


def generate_key(keys_dir: Path, kid: str | None = None) -> str:
    """Writes a new RSA-2048 key pair `<kid>.key.pem` (mode 0600) and `<kid>.pub.pem`."""
    kid = kid or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    keys_dir.mkdir(parents=True, exist_ok=True)
    private_path = keys_dir / f"{kid}{PRIVATE_SUFFIX}"
    if private_path.exists():
        raise FileExistsError(f"{private_path} already exists")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    (keys_dir / f"{kid}{PUBLIC_SUFFIX}").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return kid
