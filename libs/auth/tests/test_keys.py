"""KeySet constructors and the JWK format the users service publishes."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mythoughts_auth import KeySet, public_jwk


def same_key(a, b):
    return a.public_numbers() == b.public_numbers()


def test_public_jwk_has_the_published_fields(tokens):
    jwk = public_jwk("key-2024", tokens.public_key("key-2024"))

    assert set(jwk) == {"kty", "use", "alg", "kid", "n", "e"}
    assert (jwk["kty"], jwk["use"], jwk["alg"], jwk["kid"]) == ("RSA", "sig", "RS256", "key-2024")
    assert jwk["e"] == "AQAB"  # 65537, unpadded base64url
    assert "=" not in jwk["n"]


def test_public_jwk_round_trips_through_from_jwks(tokens):
    public_key = tokens.public_key("key-2024")

    key_set = KeySet.from_jwks({"keys": [public_jwk("key-2024", public_key)]})

    assert list(key_set) == ["key-2024"]
    assert same_key(key_set["key-2024"], public_key)


def test_to_jwks_round_trips(key_set):
    assert KeySet.from_jwks(key_set.to_jwks()) == key_set


def test_from_jwks_keeps_only_rs256_signing_keys(tokens):
    good = public_jwk("good", tokens.public_key("key-2024"))
    document = {
        "keys": [
            good,
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {**public_jwk("enc", tokens.public_key("key-2025")), "use": "enc"},
            {**public_jwk("ps", tokens.public_key("key-2025")), "alg": "PS256"},
            {**public_jwk("wrap", tokens.public_key("key-2025")), "key_ops": ["wrapKey"]},
            {k: v for k, v in public_jwk("x", tokens.public_key("key-2025")).items() if k != "kid"},
            {**public_jwk("bad-n", tokens.public_key("key-2025")), "n": "not base64url!"},
            {**public_jwk("no-e", tokens.public_key("key-2025")), "e": None},
            "not even an object",
        ]
    }

    key_set = KeySet.from_jwks(document)

    assert list(key_set) == ["good"]


def test_from_jwks_accepts_keys_without_optional_use_and_alg(tokens):
    jwk = public_jwk("bare", tokens.public_key("key-2024"))
    del jwk["use"], jwk["alg"]

    assert list(KeySet.from_jwks({"keys": [jwk]})) == ["bare"]


def test_from_jwks_keeps_the_first_of_duplicate_kids(tokens):
    first = public_jwk("dup", tokens.public_key("key-2024"))
    second = public_jwk("dup", tokens.public_key("key-2025"))

    key_set = KeySet.from_jwks({"keys": [first, second]})

    assert same_key(key_set["dup"], tokens.public_key("key-2024"))


@pytest.mark.parametrize("document", [{}, {"keys": {}}, {"keys": "x"}, []])
def test_from_jwks_refuses_a_document_without_a_keys_list(document):
    with pytest.raises(ValueError, match="'keys' list"):
        KeySet.from_jwks(document)


def test_from_pems_accepts_bytes_and_str(tokens):
    key_set = KeySet.from_pems(
        {
            "key-2024": tokens.public_pem("key-2024"),
            "key-2025": tokens.public_pem("key-2025").decode(),
        }
    )

    assert sorted(key_set) == ["key-2024", "key-2025"]
    assert same_key(key_set["key-2025"], tokens.public_key("key-2025"))


def test_from_pems_refuses_a_non_rsa_key():
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    with pytest.raises(ValueError, match="'ec' is not an RSA public key"):
        KeySet.from_pems({"ec": ec_pem})


def test_from_pems_refuses_garbage():
    with pytest.raises(ValueError, match="'junk' is not a PEM-encoded public key"):
        KeySet.from_pems({"junk": b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"})


def test_from_pem_dir_loads_every_pub_pem_file_named_by_kid(tmp_path, tokens):
    (tmp_path / "key-2024.pub.pem").write_bytes(tokens.public_pem("key-2024"))
    (tmp_path / "key-2025.pub.pem").write_bytes(tokens.public_pem("key-2025"))
    (tmp_path / "README.txt").write_text("not a key")
    (tmp_path / "other.pem").write_text("not a .pub.pem file either")

    key_set = KeySet.from_pem_dir(tmp_path)

    assert sorted(key_set) == ["key-2024", "key-2025"]
    assert same_key(key_set["key-2024"], tokens.public_key("key-2024"))


def test_from_pem_dir_refuses_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match=r"no \*\.pub\.pem files"):
        KeySet.from_pem_dir(tmp_path)


def test_from_pem_dir_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        KeySet.from_pem_dir(tmp_path / "missing")


def test_key_set_is_immutable(tokens):
    source = {"key-2024": tokens.public_key("key-2024")}
    key_set = KeySet(source)

    source["key-2025"] = tokens.public_key("key-2025")

    assert list(key_set) == ["key-2024"]
    with pytest.raises(TypeError):
        key_set["key-2025"] = tokens.public_key("key-2025")  # type: ignore[index]


def test_key_set_refuses_private_keys(tokens):
    with pytest.raises(TypeError, match="not an RSA public key"):
        KeySet({"oops": tokens.private_keys["key-2024"]})


def test_key_set_repr_shows_kids_only(key_set):
    assert repr(key_set) == "KeySet(['key-2024', 'key-2025'])"
