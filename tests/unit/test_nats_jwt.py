"""The NATS JWT encoder and creds format, against the documented layout (nats-server accepting
them is checked by the auth integration tests)."""

from __future__ import annotations

import base64
import json

import pytest

from cotal_tui.server.nats_jwt import (
    JwtError,
    Nkey,
    claims_jti,
    decode_jwt,
    encode_jwt,
    format_creds,
    parse_creds,
    public_kind,
)


def _part(token: str, i: int) -> dict[str, object]:
    seg = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def test_keys_have_the_nkey_prefixes() -> None:
    for kind, first, seed_prefix in (
        ("operator", "O", "SO"),
        ("account", "A", "SA"),
        ("user", "U", "SU"),
    ):
        key = Nkey.create(kind)
        assert key.public.startswith(first) and len(key.public) == 56
        assert key.seed.startswith(seed_prefix)
        assert public_kind(key.public) == kind
        assert Nkey(key.seed).public == key.public


def test_jwt_layout_header_claims_and_signature() -> None:
    op = Nkey.create("operator")
    user = Nkey.create("user")
    token = encode_jwt(
        issuer=op, subject=user.public, name="agent", nats={"type": "user"}, issued_at=1700000000
    )
    assert all("=" not in part for part in token.split("."))
    assert _part(token, 0) == {"typ": "JWT", "alg": "ed25519-nkey"}
    claims = _part(token, 1)
    assert claims["iss"] == op.public
    assert claims["sub"] == user.public
    assert claims["name"] == "agent"
    assert claims["iat"] == 1700000000
    assert claims["nats"] == {"type": "user", "version": 2}
    assert claims["jti"] == claims_jti(claims)
    assert len(str(claims["jti"])) == 52  # base32 of a 32-byte digest, unpadded
    assert decode_jwt(token) == claims


def test_tampered_jwt_does_not_verify() -> None:
    op = Nkey.create("operator")
    token = encode_jwt(issuer=op, subject=op.public, name="x", nats={"type": "operator"})
    header, claims, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    forged["name"] = "y"
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(JwtError, match="does not verify"):
        decode_jwt(f"{header}.{body}.{sig}")
    with pytest.raises(JwtError, match="three"):
        decode_jwt("a.b")


def test_creds_round_trip_in_the_standard_layout() -> None:
    acct = Nkey.create("account")
    user = Nkey.create("user")
    token = encode_jwt(issuer=acct, subject=user.public, name="agent", nats={"type": "user"})
    text = format_creds(token, user.seed)
    assert text.startswith("-----BEGIN NATS USER JWT-----\n")
    assert "------END NATS USER JWT------" in text
    assert "-----BEGIN USER NKEY SEED-----" in text
    assert "------END USER NKEY SEED------" in text
    creds = parse_creds(text)
    assert creds.jwt == token and creds.seed == user.seed
    assert creds.public == user.public
    assert creds.claims["sub"] == user.public
    with pytest.raises(JwtError, match="not a NATS creds file"):
        parse_creds("nothing here")
