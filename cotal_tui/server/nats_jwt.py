"""NATS decentralized-auth JWTs and creds files, on the `nkeys` package.

The format (docs.nats.io, "JWTs" / nats-io/jwt v2): three base64url (unpadded) parts
`header.claims.signature`; header `{"typ":"JWT","alg":"ed25519-nkey"}`; claims carry `jti` (the
base32 SHA-256 of the claims serialized with an empty `jti`), `iat` (seconds), `iss` (the signer's
public nkey), `sub` (the subject's public nkey), `name`, and `nats` with the type-specific fields
plus `type` and `version: 2`; the signature is the ed25519 signature of `header.claims` by the
issuer's seed. We write it ourselves because the one PyPI encoder (`nats-jwt`) calls itself
untested and pins old dependencies; nats-server accepting our JWTs is the decisive test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import nkeys
from nacl.signing import VerifyKey  # nkeys' own ed25519 dependency

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}

_PREFIX = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_PUBLIC_FIRST = {"operator": "O", "account": "A", "user": "U"}


class JwtError(ValueError):
    """A JWT or creds file is malformed or its signature does not verify."""


@dataclass(frozen=True)
class Nkey:
    """An nkey pair held as its seed (`S…`); `public` is the `O…`/`A…`/`U…` public key."""

    seed: str

    @property
    def _pair(self) -> nkeys.KeyPair:
        return nkeys.from_seed(self.seed.encode())

    @property
    def public(self) -> str:
        return self._pair.public_key.decode()

    def sign(self, data: bytes) -> bytes:
        return bytes(self._pair.sign(data))

    @classmethod
    def create(cls, kind: str) -> Nkey:
        """A fresh random key of `kind` ("operator", "account" or "user")."""
        seed = nkeys.encode_seed(os.urandom(32), _PREFIX[kind])
        return cls(seed=seed.decode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def claims_jti(claims: dict[str, Any]) -> str:
    """Base32 (unpadded) SHA-256 of the claims with `jti` empty, as nats-io/jwt computes it."""
    body = {**claims, "jti": ""}
    return base64.b32encode(hashlib.sha256(_compact(body)).digest()).rstrip(b"=").decode()


def encode_jwt(
    *,
    issuer: Nkey,
    subject: str,
    name: str,
    nats: dict[str, Any],
    issued_at: int | None = None,
) -> str:
    """Sign a claims set: `nats` must hold `type`; `version: 2` is added."""
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()) if issued_at is None else issued_at,
        "iss": issuer.public,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    claims["jti"] = claims_jti(claims)
    signing_input = f"{_b64(_compact(HEADER))}.{_b64(_compact(claims))}"
    signature = issuer.sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def decode_jwt(token: str, *, verify: bool = True) -> dict[str, Any]:
    """The claims of a NATS JWT; with `verify`, check the header and the issuer's signature."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JwtError("not a JWT: expected three dot-separated parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, json.JSONDecodeError) as exc:
        raise JwtError(f"not a JWT: {exc}") from exc
    if not verify:
        return dict(claims)
    if header.get("alg") != "ed25519-nkey" or header.get("typ") != "JWT":
        raise JwtError(f"unsupported JWT header {header!r}; expected {HEADER!r}")
    issuer = str(claims.get("iss", ""))
    try:
        VerifyKey(_public_raw(issuer)).verify(f"{parts[0]}.{parts[1]}".encode(), signature)
    except Exception as exc:  # noqa: BLE001 - any failure is a bad signature
        raise JwtError(f"JWT signature does not verify against its issuer {issuer}") from exc
    return dict(claims)


def _public_raw(public: str) -> bytes:
    raw = base64.b32decode(public + "=" * (-len(public) % 8))
    return raw[1:-2]


_CREDS_JWT = re.compile(r"-{3,}BEGIN NATS USER JWT-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}END NATS USER JWT")
_CREDS_SEED = re.compile(
    r"-{3,}BEGIN USER NKEY SEED-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}END USER NKEY SEED"
)


def format_creds(jwt: str, seed: str) -> str:
    """A standard NATS .creds file (the layout `nsc` and @nats-io/jwt `fmtCreds` write)."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n"
        "\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n"
        "\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n"
        "\n"
        "*************************************************************\n"
    )


@dataclass(frozen=True)
class Creds:
    jwt: str
    seed: str

    @property
    def public(self) -> str:
        return Nkey(self.seed).public

    @property
    def claims(self) -> dict[str, Any]:
        return decode_jwt(self.jwt, verify=False)


def parse_creds(text: str) -> Creds:
    """The user JWT and seed of a creds file (ours or any NATS tooling's)."""
    jwt = _CREDS_JWT.search(text)
    seed = _CREDS_SEED.search(text)
    if not jwt or not seed:
        raise JwtError("not a NATS creds file: missing the user JWT or the user nkey seed block")
    return Creds(jwt=jwt.group(1), seed=seed.group(1))


def public_kind(public: str) -> str | None:
    """ "operator", "account" or "user" from a public key's first letter (None if unknown)."""
    for kind, first in _PUBLIC_FIRST.items():
        if public.startswith(first):
            return kind
    return None
