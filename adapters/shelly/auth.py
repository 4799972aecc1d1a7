"""Shelly Gen2+ digest authentication, pure (shelly-api-docs gen2 "Authentication"; RFC 7616, SHA-256).

The user is always ``admin``; the realm is the device id. Two forms:

* HTTP: a ``401`` with ``WWW-Authenticate: Digest qop="auth", realm=…, nonce=…, algorithm=SHA-256`` is answered
  with a standard ``Authorization: Digest …`` header, ``HA2 = SHA-256("<METHOD>:<uri>")``;
* JSON-RPC frames (WebSocket): an error ``{"code": 401, "message": "<JSON challenge>"}`` whose challenge holds
  ``auth_type``, ``nonce``, ``nc``, ``realm``, ``algorithm``; every later frame carries an ``auth`` object whose
  ``HA2`` is the constant ``SHA-256("dummy_method:dummy_uri")`` (as aioshelly and the Allterco samples do).

Nothing here logs, and :class:`DigestCredentials` hides the password from ``repr``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.sdk import CodecError

__all__ = [
    "USERNAME",
    "Challenge",
    "DigestCredentials",
    "authorization_header",
    "parse_rpc_challenge",
    "parse_www_authenticate",
    "rpc_auth",
    "sha256_hex",
]

USERNAME = "admin"  # Shelly Gen2+: always
_RPC_HA2_INPUT = "dummy_method:dummy_uri"
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    password: str = field(repr=False)
    username: str = USERNAME

    def ha1(self, realm: str) -> str:
        return sha256_hex(f"{self.username}:{realm}:{self.password}")


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "SHA-256"
    qop: str | None = "auth"
    opaque: str | None = None
    nc: int = 1


def _check_algorithm(algorithm: str) -> str:
    if algorithm.upper() != "SHA-256":
        raise CodecError(f"digest algorithm {algorithm!r:.30} is not supported (Shelly uses SHA-256)")
    return "SHA-256"


def parse_www_authenticate(header: str) -> Challenge:
    """``Digest qop="auth", realm="shellypro4pm-…", nonce="60dc59c6", algorithm=SHA-256`` -> Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        raise CodecError(f"not a digest challenge: {header[:60]!r}")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = quoted.replace('\\"', '"') if quoted is not None else bare
    realm, nonce = params.get("realm"), params.get("nonce")
    if not realm or not nonce:
        raise CodecError(f"digest challenge without realm or nonce: {header[:80]!r}")
    qops = [q.strip() for q in (params.get("qop") or "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise CodecError(f"digest qop {params.get('qop')!r:.30} is not supported (need auth)")
    return Challenge(realm, nonce, _check_algorithm(params.get("algorithm") or "SHA-256"),
                     "auth" if qops else None, params.get("opaque"))


def authorization_header(credentials: DigestCredentials, challenge: Challenge, method: str, uri: str,
                         nc: int = 1, cnonce: str | None = None) -> str:
    """The ``Authorization`` header answering ``challenge`` for ``method uri`` (RFC 7616 3.4)."""
    cnonce = cnonce or secrets.token_hex(8)
    ha1 = credentials.ha1(challenge.realm)
    ha2 = sha256_hex(f"{method.upper()}:{uri}")
    nc_text = f"{nc:08x}"
    if challenge.qop:
        response = sha256_hex(f"{ha1}:{challenge.nonce}:{nc_text}:{cnonce}:{challenge.qop}:{ha2}")
    else:
        response = sha256_hex(f"{ha1}:{challenge.nonce}:{ha2}")
    parts = [
        f'username="{credentials.username}"', f'realm="{challenge.realm}"', f'nonce="{challenge.nonce}"',
        f'uri="{uri}"', f"algorithm={challenge.algorithm}", f'response="{response}"',
    ]
    if challenge.qop:
        parts += [f"qop={challenge.qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(parts)


def parse_rpc_challenge(error: Any) -> Challenge:
    """The challenge in a JSON-RPC ``error`` object ``{"code": 401, "message": "{\\"auth_type\\": …}"}``."""
    if not isinstance(error, dict) or error.get("code") != 401:
        raise CodecError("not an authentication challenge")
    message = error.get("message")
    try:
        body = orjson.loads(message) if isinstance(message, (str, bytes)) else message
    except orjson.JSONDecodeError as err:
        raise CodecError(f"401 challenge is not JSON: {str(message)[:60]!r}") from err
    if not isinstance(body, dict) or body.get("auth_type", "digest") != "digest":
        raise CodecError(f"401 challenge of an unknown kind: {str(message)[:60]!r}")
    realm, nonce = body.get("realm"), body.get("nonce")
    if not isinstance(realm, str) or not realm or isinstance(nonce, bool) or not isinstance(nonce, (int, str)):
        raise CodecError("401 challenge without realm or nonce")
    nc = body.get("nc", 1)
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 1:
        nc = 1
    return Challenge(realm, str(nonce), _check_algorithm(str(body.get("algorithm") or "SHA-256")), "auth", None, nc)


def rpc_auth(credentials: DigestCredentials, challenge: Challenge, cnonce: int | None = None) -> dict[str, Any]:
    """The ``auth`` object of a JSON-RPC frame answering ``challenge``."""
    cnonce = cnonce if cnonce is not None else secrets.randbelow(2**31)
    ha1 = credentials.ha1(challenge.realm)
    ha2 = sha256_hex(_RPC_HA2_INPUT)
    response = sha256_hex(f"{ha1}:{challenge.nonce}:{challenge.nc}:{cnonce}:auth:{ha2}")
    nonce: int | str = int(challenge.nonce) if challenge.nonce.isdigit() else challenge.nonce
    return {"realm": challenge.realm, "username": credentials.username, "nonce": nonce, "cnonce": cnonce,
            "response": response, "algorithm": challenge.algorithm}
