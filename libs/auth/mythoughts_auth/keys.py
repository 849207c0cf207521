"""Public keys that may have signed a token, indexed by key id (``kid``).

The users service is the only holder of signing keys; every other service only ever sees public
keys. Several keys are valid at once so that keys can be rotated without a flag day: the token
header's ``kid`` selects which key verifies it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers

from mythoughts_auth.algorithm import ALGORITHM

logger = logging.getLogger(__name__)

# "<kid>.pub.pem": the naming the book's services already use for their public key files.
PEM_SUFFIX = ".pub.pem"

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class KeySet(Mapping[str, RSAPublicKey]):
    """An immutable mapping ``kid -> RSA public key``.

    Immutable so that a key set can be shared between concurrent requests and swapped wholesale
    (as the JWKS source does on refresh) without anyone observing a half-updated set.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, RSAPublicKey] | None = None) -> None:
        checked: dict[str, RSAPublicKey] = {}
        for kid, key in (keys or {}).items():
            if not isinstance(kid, str) or not kid:
                raise ValueError("a key id must be a non-empty string")
            # Verification relies on every key being an RSA *public* key: reject anything else
            # here rather than fail obscurely (or, worse, succeed) at verification time.
            if not isinstance(key, RSAPublicKey):
                raise TypeError(f"key {kid!r} is not an RSA public key")
            checked[kid] = key
        self._keys: Mapping[str, RSAPublicKey] = MappingProxyType(checked)

    @classmethod
    def from_pems(cls, pems: Mapping[str, bytes | str]) -> KeySet:
        """Build a key set from PEM-encoded public keys (SubjectPublicKeyInfo), keyed by kid."""
        keys: dict[str, RSAPublicKey] = {}
        for kid, pem in pems.items():
            data = pem.encode("ascii") if isinstance(pem, str) else pem
            try:
                key = serialization.load_pem_public_key(data)
            except ValueError as exc:
                raise ValueError(f"key {kid!r} is not a PEM-encoded public key") from exc
            if not isinstance(key, RSAPublicKey):
                raise ValueError(f"key {kid!r} is not an RSA public key")
            keys[kid] = key
        return cls(keys)

    @classmethod
    def from_pem_dir(cls, path: str | os.PathLike[str]) -> KeySet:
        """Load every ``<kid>.pub.pem`` file in ``path``; the file name gives the kid.

        An empty or missing folder is an error: a service that can verify no token at all is
        misconfigured, and failing at start-up says so more clearly than 401s on every request.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"public key folder {folder} does not exist")
        pems = {
            file.name.removesuffix(PEM_SUFFIX): file.read_bytes()
            for file in sorted(folder.glob(f"*{PEM_SUFFIX}"))
            if file.is_file() and file.name != PEM_SUFFIX
        }
        if not pems:
            raise ValueError(f"no *{PEM_SUFFIX} files in {folder}")
        return cls.from_pems(pems)

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any]) -> KeySet:
        """Build a key set from a JWKS document (RFC 7517).

        Only RSA signature keys usable with RS256 are kept. Keys of other types or uses, and
        individually malformed keys, are skipped with a warning instead of failing the whole
        document: the users service may publish keys for other purposes, and one bad entry must
        not make every valid key unusable. A document without a ``keys`` list is an error.
        """
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("JWKS document has no 'keys' list")
        keys: dict[str, RSAPublicKey] = {}
        for entry in entries:
            if not isinstance(entry, Mapping) or not _is_rs256_signing_jwk(entry):
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                # Without a kid a key can never be selected, so it is useless to us.
                logger.warning("skipping JWKS key without a kid")
                continue
            if kid in keys:
                # Two keys claiming the same kid is a publishing error; keep the first rather
                # than let document order silently change which key verifies.
                logger.warning("skipping duplicate JWKS key %r", kid)
                continue
            try:
                keys[kid] = _rsa_key_from_jwk(entry)
            except ValueError as exc:
                logger.warning("skipping malformed JWKS key %r: %s", kid, exc)
        return cls(keys)

    def to_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document publishing every key of this set."""
        return {"keys": [public_jwk(kid, key) for kid, key in self._keys.items()]}

    def __getitem__(self, kid: str) -> RSAPublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        # Kids only: key material in logs is noise.
        return f"KeySet({sorted(self._keys)!r})"


def public_jwk(kid: str, public_key: RSAPublicKey) -> dict[str, str]:
    """The JWK (RFC 7517/7518) of an RSA public key, as published in ``/.well-known/jwks.json``."""
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": ALGORITHM,
        "kid": kid,
        "n": _encode_uint(numbers.n),
        "e": _encode_uint(numbers.e),
    }


def _is_rs256_signing_jwk(entry: Mapping[str, Any]) -> bool:
    if entry.get("kty") != "RSA":
        return False
    # "use" and "alg" are optional in a JWK; when present they must allow RS256 signatures.
    if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
        return False
    key_ops = entry.get("key_ops")
    return key_ops is None or (isinstance(key_ops, list) and "verify" in key_ops)


def _rsa_key_from_jwk(entry: Mapping[str, Any]) -> RSAPublicKey:
    numbers = RSAPublicNumbers(e=_decode_uint(entry.get("e")), n=_decode_uint(entry.get("n")))
    # public_key() validates the numbers (odd exponent > 1, and so on) and raises ValueError.
    return numbers.public_key()


def _encode_uint(value: int) -> str:
    # JWK integers are unsigned big-endian, minimal length, base64url without padding (RFC 7518).
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_uint(value: object) -> int:
    # Checked by hand because the base64 module silently discards characters outside the
    # alphabet, which would turn a corrupted key into a different, wrong key.
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value):
        raise ValueError("RSA parameters must be base64url strings")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except binascii.Error as exc:
        raise ValueError("RSA parameters must be base64url strings") from exc
    return int.from_bytes(raw, "big")


def load_rsa_public_key(path: str | os.PathLike[str]) -> RSAPublicKey:
    """The RSA public key in a PEM file, e.g. the book's services' public key file.

    Accepts SubjectPublicKeyInfo (``BEGIN PUBLIC KEY``, what ``openssl rsa -pubout`` writes)
    and PKCS#1 (``BEGIN RSA PUBLIC KEY``). ``ValueError`` names the file when it is neither.
    """
    file = Path(path)
    try:
        key = serialization.load_pem_public_key(file.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{file} is not a PEM-encoded public key") from exc
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"{file} is not an RSA public key")
    return key
